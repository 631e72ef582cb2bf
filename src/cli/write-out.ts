/**
 * `-w/--write-out FORMAT`: curl's variables, as curl(1) names them, written after the transfer (and after a
 * failure, with http_code 000 and the exit code). `%{name}` is a variable, `%%` a percent sign, `\n` `\r` `\t`
 * the control characters; a name we do not know is said once on stderr and writes nothing, as curl does.
 */

/** What a transfer leaves for --write-out; times in seconds, as curl prints them. */
export interface WriteOutVars {
  http_code: number;
  http_version: string;
  size_download: number;
  time_total: number;
  time_connect: number;
  time_appconnect: number;
  time_starttransfer: number;
  remote_ip: string;
  remote_port: number | string;
  local_ip: string;
  local_port: number | string;
  num_redirects: number;
  url_effective: string;
  content_type: string;
  scheme: string;
  exitcode: number;
  errormsg: string;
}

const ALIASES: Record<string, keyof WriteOutVars> = { response_code: 'http_code' };

export function writeOut(format: string, v: WriteOutVars, warn: (line: string) => void): string {
  return format.replace(/%\{([a-z_]+)\}|%%|\\[nrt\\]/g, (m, name: string | undefined) => {
    if (m === '%%') return '%';
    if (m === '\\n') return '\n';
    if (m === '\\r') return '\r';
    if (m === '\\t') return '\t';
    if (m === '\\\\') return '\\';
    const key = ALIASES[name as string] ?? (name as keyof WriteOutVars);
    if (!(key in v)) {
      warn(`unknown --write-out variable: '${name as string}'`);
      return '';
    }
    const x = v[key];
    if (key === 'http_code') return String(x).padStart(3, '0');
    if (typeof x === 'number' && key.startsWith('time_')) return x.toFixed(6);
    return String(x);
  });
}
