/**
 * HTTP/1.1 field lines (RFC 9112 §5) and the parse error both parsers throw.
 */
import type { HeaderList } from '../http/types.js';

/**
 * Why a message could not be parsed. A server answers `malformed` with 400,
 * `too-large` with 431 (header section) or 413, `unsupported` with 501
 * (a transfer coding we do not implement, RFC 9112 §6.1) and `version` with
 * 505, then closes (the framing of what follows is unknown).
 */
export class H1ParseError extends Error {
  readonly kind: 'malformed' | 'too-large' | 'unsupported' | 'version';
  constructor(kind: H1ParseError['kind'], message: string) {
    super(message);
    this.name = 'H1ParseError';
    this.kind = kind;
  }
}

import { BAD_FIELD_VALUE_RE, TOKEN_RE } from '../http/fields.js';

export { TOKEN_RE };

/**
 * RFC 9110 §5.5: only OWS (SP, HTAB) around a value is dropped. String.prototype.trim() would also take
 * a bare CR or LF and the obs-text byte 0xA0 (NBSP in latin1) off the ends.
 */
export function trimOws(v: string): string {
  let a = 0;
  let b = v.length;
  while (a < b && (v.charCodeAt(a) === 0x20 || v.charCodeAt(a) === 0x09)) a++;
  while (b > a && (v.charCodeAt(b - 1) === 0x20 || v.charCodeAt(b - 1) === 0x09)) b--;
  return a === 0 && b === v.length ? v : v.slice(a, b);
}

/**
 * The codings of a Transfer-Encoding value, lower-case. RFC 9110 §5.6.1 would have empty list elements
 * ignored, but parsers disagree on `chunked,` (llhttp reads its final coding as empty, not chunked): the
 * message's framing hangs on it (RFC 9112 §6.1, §6.3), so an empty element is refused, and so is a
 * coding that is not a token.
 */
export function transferCodings(te: string): string[] {
  const out = te.split(',').map((s) => trimOws(s).toLowerCase());
  if (out.includes('')) throw new H1ParseError('malformed', 'empty element in Transfer-Encoding');
  // RFC 9112 §7: a transfer-coding is a token (parameters, which no registered coding takes, are refused too).
  for (const c of out) if (!TOKEN_RE.test(c)) throw new H1ParseError('malformed', `invalid transfer coding ${JSON.stringify(c.slice(0, 40))}`);
  return out;
}

/** Connection options (RFC 9110 §7.6.1) that HTTP/1.1 framing acts on, as bits of `connectionOptions`. */
export const CONN_CLOSE = 1;
export const CONN_KEEP_ALIVE = 2;
export const CONN_UPGRADE = 4;

/**
 * The options named by a message's Connection field values (its lines joined with ','), as CONN_* bits;
 * others (field names to drop, RFC 9110 §7.6.1) are the forwarder's business (http/fields.ts). The usual
 * single option costs a lower-casing and a comparison, no list.
 */
export function connectionOptions(value: string): number {
  if (value.indexOf(',') < 0) return optionBit(trimOws(value).toLowerCase());
  let bits = 0;
  for (const part of value.split(',')) bits |= optionBit(trimOws(part).toLowerCase());
  return bits;
}

function optionBit(t: string): number {
  return t === 'close' ? CONN_CLOSE : t === 'keep-alive' ? CONN_KEEP_ALIVE : t === 'upgrade' ? CONN_UPGRADE : 0;
}

/**
 * Field names as they come on the wire (any case) → their lower-case form, for names already checked to
 * be tokens: most lines of most messages carry one of a few dozen names, which then cost one hash lookup
 * instead of a token check and a lower-casing copy each. Seeded with the common names in the two spellings
 * peers send; it learns up to LEARNED_NAMES more and then stops growing (a peer inventing names cannot make
 * it grow without bound, nor push the common ones out).
 */
const NAME_CACHE = new Map<string, string>();
const LEARNED_NAMES = 256;
for (const n of [
  'accept', 'accept-encoding', 'accept-language', 'accept-ranges', 'access-control-allow-origin', 'age', 'alt-svc',
  'authorization', 'cache-control', 'connection', 'content-disposition', 'content-encoding', 'content-language',
  'content-length', 'content-location', 'content-range', 'content-security-policy', 'content-type', 'cookie', 'date',
  'etag', 'expect', 'expires', 'forwarded', 'host', 'if-match', 'if-modified-since', 'if-none-match', 'if-range',
  'if-unmodified-since', 'keep-alive', 'last-modified', 'link', 'location', 'origin', 'pragma', 'range', 'referer',
  'retry-after', 'server', 'set-cookie', 'strict-transport-security', 'te', 'trailer', 'transfer-encoding',
  'upgrade', 'user-agent', 'vary', 'via', 'www-authenticate', 'x-content-type-options', 'x-forwarded-for',
  'x-forwarded-host', 'x-forwarded-proto', 'x-frame-options', 'x-request-id', 'traceparent', 'tracestate',
]) {
  NAME_CACHE.set(n, n);
  NAME_CACHE.set(n.replace(/(^|-)([a-z])/g, (_, d: string, c: string) => d + c.toUpperCase()), n);
}
NAME_CACHE.set('ETag', 'etag');
NAME_CACHE.set('WWW-Authenticate', 'www-authenticate');
NAME_CACHE.set('TE', 'te');
const SEEDED = NAME_CACHE.size;

/** The lower-case form of a field name from the wire; throws H1ParseError when it is not a token. */
function fieldName(raw: string): string {
  const known = NAME_CACHE.get(raw);
  if (known !== undefined) return known;
  // RFC 9112 §5.1: no whitespace between the field name and the colon (a 400 for a request).
  if (!TOKEN_RE.test(raw)) throw new H1ParseError('malformed', `invalid header name ${JSON.stringify(raw.slice(0, 60))}`);
  const lower = raw.toLowerCase();
  if (NAME_CACHE.size < SEEDED + LEARNED_NAMES) NAME_CACHE.set(raw, lower);
  return lower;
}

/** Field lines `lines[from..]` as a list with lower-case names. Throws H1ParseError. */
export function parseFieldLines(lines: string[], from: number): HeaderList {
  const out: HeaderList = [];
  for (let i = from; i < lines.length; i++) {
    const line = lines[i] as string;
    // RFC 9112 §5.2: obs-fold is refused (a proxy cannot repair it safely).
    if (line.length > 0 && (line.charCodeAt(0) === 0x20 || line.charCodeAt(0) === 0x09)) {
      throw new H1ParseError('malformed', 'obsolete line folding in header section');
    }
    const colon = line.indexOf(':');
    if (colon <= 0) throw new H1ParseError('malformed', `malformed header line ${JSON.stringify(line.slice(0, 60))}`);
    const name = fieldName(line.slice(0, colon));
    const raw = line.slice(colon + 1);
    if (BAD_FIELD_VALUE_RE.test(raw)) throw new H1ParseError('malformed', `invalid header value for ${name}`);
    out.push([name, trimOws(raw)]);
  }
  return out;
}

const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * A complete head (start line and field lines, up to the empty line) at the
 * start of `chunk`: its lines and the bytes after it, or null when more are
 * needed. Past `maxBytes` without its end it is `too-large` (the 431 / the
 * response error), so a peer cannot make us buffer without bound.
 */
export function splitHead(chunk: Buffer, maxBytes: number, what: string): { lines: string[]; rest: Buffer } | null {
  const end = chunk.indexOf(HEADER_END);
  if ((end < 0 ? chunk.length : end + 4) > maxBytes) throw new H1ParseError('too-large', `${what} header section exceeds ${maxBytes} bytes`);
  if (end < 0) return null;
  return { lines: chunk.toString('latin1', 0, end).split('\r\n'), rest: chunk.subarray(end + 4) };
}
