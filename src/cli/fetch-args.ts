/**
 * `originlink fetch`'s command line: our options and curl's common ones where they make sense, read into one
 * plan. A bad option or value is a `CliExit` with curl's exit code for it (2 a bad option, 3 a malformed URL,
 * 1 a scheme we do not speak, 26 a request body file that cannot be read, 77 a CA file that cannot be read, 58 a
 * client certificate that cannot be read or does not fit its key).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { ProtocolPolicy } from '../connect/connect.js';
import type { HeaderList } from '../http/types.js';
import { certificatePairProblem } from '../net/pem.js';
import { redact } from '../util/redact.js';
import { EGRESS_OPTIONS, EGRESS_USAGE, egressFromArgs } from './egress-args.js';
import { EXIT_TABLE } from './exit-codes.js';

export const FETCH_USAGE = `usage: originlink fetch URL [options]
  --protocol auto|h1|h2|h3   protocol policy (default auto: h2 or HTTP/1.1 by ALPN, h3 once known)
  --http1.1 | --http2 | --http3
                             HTTP/1.1, HTTP/2 (by ALPN over https; over http:// --http2 is HTTP/1.1, as curl's
                             is when the origin ignores its Upgrade, which we do not send: --http2-prior-knowledge
                             for cleartext h2c), HTTP/3. Otherwise the protocol named is required: no fallback
  --repeat N                 send the request N times (default 1) and print a summary
  --concurrency C            requests in flight at once with --repeat (default 1)
  --cacert FILE              trust this CA certificate (PEM)
  -k, --insecure             do not verify the certificate
  -E, --cert FILE            show this client certificate (PEM) to an origin that asks for one (mutual TLS)
  --key FILE                 the private key of --cert (PEM; default: FILE of --cert, when it holds the key too)
  -X, --request M            request method (default GET, POST with --data, HEAD with -I); also --method
  -H, --header 'N: V'        add a request header (repeatable); 'N:' sends no N, 'N;' sends N empty
  -A, --user-agent UA        the User-Agent header (none by default)
  -u, --user USER:PASS       HTTP Basic authentication (also from the URL's user:pass@)
  -d, --data STRING|@FILE    request body, form-encoded type; repeated: joined by '&'; @FILE (@- stdin)
                             read without its CR and LF
  -I, --head                 HEAD request; print the response head
  -i, --include              print the response head before the body
  -L, --location             follow redirects (301, 302, 303, 307, 308; 303, and 301/302 after a POST, as GET)
  --location-trusted         -L, and credentials (Authorization, Cookie) go to other origins too (else dropped)
  --max-redirs N             most redirects followed with -L (default 50; -1 no limit)
  -f, --fail                 an HTTP status of 400 or more is a failure: no body, exit 22
  -o, --output FILE          write the body to FILE (default: stdout, unless --json)
  -w, --write-out FORMAT     print FORMAT after the transfer: %{http_code} %{http_version} %{time_total}
                             %{time_connect} %{time_appconnect} %{time_starttransfer} %{size_download}
                             %{remote_ip} %{remote_port} %{local_ip} %{local_port} %{num_redirects}
                             %{url_effective} %{content_type} %{scheme} %{exitcode} %{errormsg}
  -m, --max-time S           give up after S seconds (exit 28; 0: no limit)
  --connect-timeout S        connect (TCP + TLS, or QUIC) deadline, seconds (default 10; exit 28)
  -s, --silent               no error message (the exit code still says it)
  -S, --show-error           with -s: the error message still
  --json                     print one JSON object with the result (or the error: { error, exitCode })
  -v, --verbose              tell the connection's story on stderr, curl-style (address, protocol and ALPN,
                             TLS version, resumed, TFO, 0-RTT, reused, timings, request and response heads)
  -V, --version              print the version
  --max-connections N        pool limit (default 32)
  --session-store FILE|URL   keep TLS sessions / QUIC tickets in FILE across runs (resumption, 0-RTT),
                             or share them with a fleet: redis://[user:pass@]HOST:PORT/DB (rediss:// for TLS;
                             redis-sentinel://H:P,H:P/MASTER for Sentinel, redis-cluster://H:P,H:P for Cluster;
                             ?prefix=P&keyFile=F&ca=F: key prefix, AES-256-GCM key file for tickets, CA for rediss)
  --origin-cache FILE|URL    keep per-origin protocol facts (Alt-Svc, broken h3) in FILE across runs, or in Redis (URL as above)
${EGRESS_USAGE}
exit codes (curl's):
${EXIT_TABLE}`;

/** A failure of the command line itself, with curl's exit code for it. */
export class CliExit extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

const OPTIONS = {
  protocol: { type: 'string' },
  'http1.1': { type: 'boolean' },
  http2: { type: 'boolean' },
  'http2-prior-knowledge': { type: 'boolean' },
  http3: { type: 'boolean' },
  'http3-only': { type: 'boolean' },
  repeat: { type: 'string', default: '1' },
  concurrency: { type: 'string', default: '1' },
  cacert: { type: 'string' },
  insecure: { type: 'boolean', short: 'k', default: false },
  cert: { type: 'string', short: 'E' },
  key: { type: 'string' },
  request: { type: 'string', short: 'X' },
  method: { type: 'string' },
  header: { type: 'string', short: 'H', multiple: true },
  'user-agent': { type: 'string', short: 'A' },
  user: { type: 'string', short: 'u' },
  data: { type: 'string', short: 'd', multiple: true },
  head: { type: 'boolean', short: 'I', default: false },
  include: { type: 'boolean', short: 'i', default: false },
  location: { type: 'boolean', short: 'L', default: false },
  'location-trusted': { type: 'boolean', default: false },
  'max-redirs': { type: 'string', default: '50' },
  fail: { type: 'boolean', short: 'f', default: false },
  output: { type: 'string', short: 'o' },
  'write-out': { type: 'string', short: 'w' },
  'max-time': { type: 'string', short: 'm' },
  'connect-timeout': { type: 'string' },
  silent: { type: 'boolean', short: 's', default: false },
  'show-error': { type: 'boolean', short: 'S', default: false },
  json: { type: 'boolean', default: false },
  verbose: { type: 'boolean', short: 'v', default: false },
  version: { type: 'boolean', short: 'V', default: false },
  'max-connections': { type: 'string' },
  'session-store': { type: 'string' },
  'origin-cache': { type: 'string' },
  ...EGRESS_OPTIONS,
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export interface FetchPlan {
  help: boolean;
  version: boolean;
  url: string;
  protocol: ProtocolPolicy;
  method: string;
  headers: HeaderList;
  body: string | Buffer | null;
  repeat: number;
  concurrency: number;
  ca: Buffer | null;
  caPath: string | null;
  /** The client certificate and key (--cert, --key), PEM. */
  identity: { cert: Buffer; key: Buffer } | null;
  insecure: boolean;
  head: boolean;
  include: boolean;
  follow: boolean;
  /** --location-trusted: credentials (Authorization, Cookie) go to the origins -L leads to as well. */
  trusted: boolean;
  /** -1: no limit (curl's). */
  maxRedirs: number;
  fail: boolean;
  output: string | null;
  writeOut: string | null;
  maxTimeMs: number | null;
  connectTimeoutMs: number | null;
  /** Error messages on stderr (not with -s, unless -S). */
  showErrors: boolean;
  json: boolean;
  verbose: boolean;
  maxConnections: number | null;
  sessionStore: string | null;
  originCache: string | null;
  egress: ReturnType<typeof egressFromArgs>;
}

/** Node's parser's refusal as one line: the option and where the list of options is. */
function parserRefusal(e: unknown): CliExit | null {
  const code = (e as { code?: unknown }).code;
  if (typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS_')) return null;
  const opt = /'(-[^']*)'/.exec((e as Error).message)?.[1] ?? '';
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION')
    return new CliExit(2, `option ${opt}: is unknown (originlink fetch --help lists the options)`);
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE')
    return new CliExit(
      2,
      `option ${opt}: ${/argument missing|takes an argument/i.test((e as Error).message) ? 'needs a value' : 'takes no value'}`,
    );
  return new CliExit(2, (e as Error).message.split('\n')[0] ?? 'bad arguments');
}

export function parseFetchArgs(argv: string[]): FetchPlan {
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; options: typeof OPTIONS }>>;
  // A value that looks like an option (curl's `--max-redirs -1`) is taken as the value Node's parser would refuse.
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--max-redirs' && argv[i + 1] === '-1') args.push(`--max-redirs=${argv[++i]}`);
    else args.push(argv[i] as string);
  }
  try {
    parsed = parseArgs({ args, allowPositionals: true, options: OPTIONS });
  } catch (e) {
    throw parserRefusal(e) ?? e;
  }
  const v = parsed.values;
  const egress = egressFromArgs(v);
  const url = parsed.positionals[0] ?? '';
  if (parsed.positionals.length > 1) throw new CliExit(2, `one URL only (got ${parsed.positionals.length})`);
  const plan = {
    help: v.help,
    version: v.version,
    url,
    egress,
    insecure: v.insecure,
    head: v.head,
    include: v.include,
    follow: v.location || v['location-trusted'],
    trusted: v['location-trusted'],
    fail: v.fail,
    json: v.json,
    verbose: v.verbose,
    showErrors: !v.silent || v['show-error'],
    output: v.output ?? null,
    writeOut: v['write-out'] ?? null,
    sessionStore: v['session-store'] ?? null,
    originCache: v['origin-cache'] ?? null,
  };
  if (v.help || v.version)
    return {
      ...plan,
      protocol: 'auto',
      method: 'GET',
      headers: [],
      body: null,
      repeat: 1,
      concurrency: 1,
      ca: null,
      caPath: null,
      identity: null,
      maxRedirs: 50,
      maxTimeMs: null,
      connectTimeoutMs: null,
      maxConnections: null,
    };
  if (!url) throw new CliExit(2, 'a URL is required (originlink fetch --help)');
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new CliExit(3, `URL rejected: not a URL: ${JSON.stringify(redact(url))}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new CliExit(1, `Protocol "${u.protocol.slice(0, -1)}" not supported (http and https only)`);
  const protocol = protocolFrom(v, u);
  const repeat = int(v.repeat, '--repeat', 1);
  // What this command adds on its own (-A, -u or the URL's user, -d's type), each left out by -H 'Name:' (curl's).
  const own: HeaderList = [];
  if (v['user-agent']) own.push(['user-agent', v['user-agent']]); // -A '': none, as curl
  const user =
    v.user ?? (u.username || u.password ? `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}` : null);
  if (user !== null) own.push(['authorization', `Basic ${Buffer.from(user).toString('base64')}`]);
  // The URL's user and password go as Authorization (above), never in the request target.
  if (u.username || u.password) {
    u.username = '';
    u.password = '';
    plan.url = u.href;
  }
  let body: string | Buffer | null = null;
  if (v.data !== undefined) {
    // curl's -d: the parts joined by '&'; @FILE (or @- for stdin) read with its CR and LF taken out.
    const parts = v.data.map((d) => (d.startsWith('@') ? dataFile(d.slice(1)) : Buffer.from(d)));
    body = Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [p] : [AMP, p])));
    own.push(['content-type', 'application/x-www-form-urlencoded']);
  }
  const headers: HeaderList = [];
  const dropped = new Set<string>();
  for (const h of v.header ?? []) {
    const i = h.indexOf(':');
    // 'Name;' sends the field empty; 'Name:' sends none of it (curl's).
    if (i < 0 && h.endsWith(';') && h.length > 1) {
      headers.push([h.slice(0, -1).trim(), '']);
      continue;
    }
    if (i <= 0) throw new CliExit(2, `bad header ${JSON.stringify(h)} (want 'Name: value')`);
    const name = h.slice(0, i).trim();
    const value = h.slice(i + 1).trim();
    if (value === '') dropped.add(name.toLowerCase());
    else headers.push([name, value]);
  }
  const given = new Set(headers.map(([n]) => n.toLowerCase()));
  for (const f of own) if (!dropped.has(f[0]) && !given.has(f[0])) headers.push(f);
  if (v.request !== undefined && v.method !== undefined && v.request !== v.method)
    throw new CliExit(2, '-X/--request and --method disagree');
  if (v.head && body !== null) throw new CliExit(2, '-I/--head and -d/--data ask for two methods: give one');
  const method = (v.request ?? v.method ?? (v.head ? 'HEAD' : body !== null ? 'POST' : 'GET')).toUpperCase();
  let ca: Buffer | null = null;
  if (v.cacert !== undefined) {
    try {
      ca = readFileSync(v.cacert);
    } catch (e) {
      throw new CliExit(
        77,
        `cannot read the CA file ${v.cacert}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
    if (!ca.includes('-----BEGIN CERTIFICATE-----'))
      throw new CliExit(77, `the CA file ${v.cacert} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  return {
    ...plan,
    identity: identityFrom(v.cert, v.key),
    protocol,
    method,
    headers,
    body,
    repeat,
    concurrency: Math.min(int(v.concurrency, '--concurrency', 1), repeat),
    ca,
    caPath: v.cacert ?? null,
    maxRedirs: v['max-redirs'] === '-1' ? -1 : int(v['max-redirs'], '--max-redirs', 0),
    // -m 0: no limit, as curl's.
    maxTimeMs: v['max-time'] === undefined || Number(v['max-time']) === 0 ? null : seconds(v['max-time'], '--max-time'),
    connectTimeoutMs: v['connect-timeout'] === undefined ? null : seconds(v['connect-timeout'], '--connect-timeout'),
    maxConnections: v['max-connections'] === undefined ? null : int(v['max-connections'], '--max-connections', 1),
  };
}

const AMP = Buffer.from('&');

/** -d @FILE's bytes (`-` for stdin) without CR and LF, curl's; unreadable: exit 26. */
function dataFile(path: string): Buffer {
  let b: Buffer;
  try {
    b = readFileSync(path === '-' ? 0 : path);
  } catch (e) {
    throw new CliExit(
      26,
      `cannot read the request body ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  return b.includes(13) || b.includes(10) ? Buffer.from(b.filter((c) => c !== 13 && c !== 10)) : b;
}

/** --cert and --key (curl's: the key may sit in the certificate's file): read and checked as a pair, else exit 58. */
function identityFrom(certPath: string | undefined, keyPath: string | undefined): FetchPlan['identity'] {
  if (certPath === undefined) {
    if (keyPath !== undefined) throw new CliExit(2, '--key needs --cert');
    return null;
  }
  const read = (p: string, what: string): Buffer => {
    try {
      return readFileSync(p);
    } catch (e) {
      throw new CliExit(
        58,
        `cannot read the ${what} ${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
  };
  const cert = read(certPath, 'client certificate');
  const key = keyPath === undefined ? cert : read(keyPath, 'client key');
  const bad = certificatePairProblem(cert, key, certPath, keyPath ?? certPath);
  if (bad) throw new CliExit(58, `client certificate: ${bad.reason}`);
  return { cert, key };
}

/** --protocol, or curl's --http* flags (at most one way of saying it). */
function protocolFrom(
  v: {
    protocol?: string | undefined;
    'http1.1'?: boolean | undefined;
    http2?: boolean | undefined;
    'http2-prior-knowledge'?: boolean | undefined;
    http3?: boolean | undefined;
    'http3-only'?: boolean | undefined;
  },
  u: URL,
): ProtocolPolicy {
  const said: ProtocolPolicy[] = [];
  if (v['http1.1']) said.push('h1');
  // Over http://, curl's --http2 asks by Upgrade: h2c, which we do not send (RFC 9113 §3.1 deprecates it): HTTP/1.1.
  if (v.http2) said.push(u.protocol === 'https:' ? 'h2' : 'h1');
  if (v['http2-prior-knowledge']) said.push('h2');
  if (v.http3 || v['http3-only']) said.push('h3');
  if (v.protocol !== undefined) {
    if (!['auto', 'h1', 'h2', 'h3'].includes(v.protocol))
      throw new CliExit(2, `--protocol must be auto, h1, h2 or h3 (got ${v.protocol})`);
    said.push(v.protocol as ProtocolPolicy);
  }
  if (new Set(said).size > 1) throw new CliExit(2, `the protocol options disagree (${said.join(', ')}): give one`);
  return said[0] ?? 'auto';
}

function int(v: string | undefined, name: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new CliExit(2, `${name} must be an integer ≥ ${min} (got ${v})`);
  return n;
}

function seconds(v: string, name: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new CliExit(2, `${name} must be a positive number of seconds (got ${v})`);
  return Math.max(1, Math.round(n * 1000));
}
