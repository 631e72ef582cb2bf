/**
 * Alt-Svc header field codec (RFC 7838 §3). Pure: a field value in, a list
 * of alternatives out. Malformed members are skipped, never thrown: a bad
 * advertisement must not fail the response that carried it.
 *
 *   Alt-Svc       = clear / 1#alt-value
 *   alt-value     = alternative *( OWS ";" OWS parameter )
 *   alternative   = protocol-id "=" alt-authority
 *   alt-authority = quoted-string   ; [ uri-host ] ":" port
 *   parameter     = token "=" ( token / quoted-string )
 */
import { TOKEN_RE } from '../http/fields.js';

export interface AltService {
  /** ALPN protocol id, percent-decoded (RFC 7838 §3: protocol-id is percent-encoded). */
  protocol: string;
  /** Alternative host; '' means the origin's own host. */
  host: string;
  port: number;
  /** Freshness in seconds (`ma`); RFC 7838 §3.1 default 86400. */
  maxAge: number;
  /** `persist=1`: keep across network changes. */
  persist: boolean;
}

export type AltSvcResult = { type: 'clear' } | { type: 'alternatives'; alternatives: AltService[] };

/** RFC 7838 §3.1: "ma" defaults to 24 hours. */
export const DEFAULT_MAX_AGE_S = 86_400;

/** Parse one or more Alt-Svc field values (several field lines join with commas, RFC 9110 §5.3). */
export function parseAltSvc(value: string | readonly string[]): AltSvcResult {
  const text = typeof value === 'string' ? value : value.join(',');
  const members = splitTopLevel(text, ',');
  if (members.length === 1 && members[0]!.trim() === 'clear') return { type: 'clear' };
  const alternatives: AltService[] = [];
  for (const m of members) {
    const alt = parseMember(m);
    if (alt) alternatives.push(alt);
  }
  return { type: 'alternatives', alternatives };
}

/** The first HTTP/3 (RFC 9114 ALPN `h3`) alternative, or null. */
export function findH3(r: AltSvcResult): AltService | null {
  if (r.type !== 'alternatives') return null;
  return r.alternatives.find((a) => a.protocol === 'h3') ?? null;
}

function parseMember(member: string): AltService | null {
  const parts = splitTopLevel(member, ';');
  const head = parts[0]?.trim() ?? '';
  const eq = head.indexOf('=');
  if (eq <= 0) return null;
  const rawId = head.slice(0, eq).trim();
  if (!TOKEN_RE.test(rawId)) return null;
  let protocol: string;
  try {
    protocol = decodeURIComponent(rawId);
  } catch {
    return null;
  }
  const auth = unquote(head.slice(eq + 1).trim());
  if (auth === null) return null;
  const colon = auth.lastIndexOf(':');
  if (colon < 0) return null;
  let host = auth.slice(0, colon);
  const portText = auth.slice(colon + 1);
  if (!/^\d{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  if (port < 1 || port > 65535) return null;
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  let maxAge = DEFAULT_MAX_AGE_S;
  let persist = false;
  for (const p of parts.slice(1)) {
    const i = p.indexOf('=');
    if (i <= 0) continue;
    const name = p.slice(0, i).trim().toLowerCase();
    const raw = p.slice(i + 1).trim();
    const v = raw.startsWith('"') ? unquote(raw) : raw;
    if (v === null) continue;
    // Unknown parameters are ignored (RFC 7838 §3).
    if (name === 'ma' && /^\d+$/.test(v)) maxAge = Math.min(Number(v), 2 ** 31 - 1);
    else if (name === 'persist') persist = v === '1';
  }
  return { protocol, host, port, maxAge, persist };
}

/** quoted-string → its content (RFC 9110 §5.6.4), or null when it is not one. */
function unquote(s: string): string | null {
  if (s.length < 2 || !s.startsWith('"') || !s.endsWith('"')) return null;
  let out = '';
  for (let i = 1; i < s.length - 1; i++) {
    const c = s[i]!;
    if (c === '\\') {
      i++;
      if (i >= s.length - 1) return null;
      out += s[i];
    } else if (c === '"') return null;
    else out += c;
  }
  return out;
}

/** Split on `sep` outside quoted strings. */
function splitTopLevel(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quoted) {
      cur += c;
      if (c === '\\' && i + 1 < s.length) cur += s[++i];
      else if (c === '"') quoted = false;
    } else if (c === '"') {
      quoted = true;
      cur += c;
    } else if (c === sep) {
      if (cur.trim() !== '') out.push(cur);
      cur = '';
    } else cur += c;
  }
  if (cur.trim() !== '') out.push(cur);
  return out;
}
