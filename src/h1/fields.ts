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
    const name = line.slice(0, colon);
    // RFC 9112 §5.1: no whitespace between the field name and the colon (a 400 for a request).
    if (!TOKEN_RE.test(name)) throw new H1ParseError('malformed', `invalid header name ${JSON.stringify(name.slice(0, 60))}`);
    const raw = line.slice(colon + 1);
    if (BAD_FIELD_VALUE_RE.test(raw)) throw new H1ParseError('malformed', `invalid header value for ${name}`);
    const value = trimOws(raw);
    out.push([name.toLowerCase(), value]);
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
