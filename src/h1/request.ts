/** HTTP/1.1 request head serialization (RFC 9112 §3). Pure. */
import type { ConnRequest } from '../http/types.js';
import { knownLength } from '../http/body.js';
import { BAD_FIELD_VALUE_RE, isClean, isFieldName } from '../http/fields.js';
import { NameSet } from '../util/name-set.js';

/** Methods whose requests conventionally carry a body: an empty one is sent as `content-length: 0`. */
const BODY_METHODS = new NameSet(['POST', 'PUT', 'PATCH']);

export interface SerializedHead {
  head: string;
  /** How the body must be framed on the wire. */
  framing: 'none' | 'length' | 'chunked';
  /** A streamed body's Content-Length, given by the caller: what it must come to, exactly; -1 otherwise. */
  declared: number;
}

/**
 * Build the request head. Throws TypeError on a header that would break
 * framing (CR/LF/NUL in a value, a bad name): never let a caller smuggle.
 */
export function serializeRequestHead(req: ConnRequest): SerializedHead {
  let head = `${req.method} ${req.path} HTTP/1.1\r\nhost: ${req.authority}\r\n`;
  let hasLength = false;
  let declared = -1;
  let hasTe = false;
  /** Where the first cookie line's value ends in `head` (before its CRLF); -1: none yet. */
  let cookieEnd = -1;
  // A list of checked, lower-case fields (http/fields.ts markClean) is written without checking it again.
  const clean = isClean(req.headers);
  for (const [name, value] of req.headers) {
    if (!clean) {
      if (!isFieldName(name)) throw new TypeError(`invalid header name ${JSON.stringify(name)}`);
      if (BAD_FIELD_VALUE_RE.test(value)) throw new TypeError(`invalid header value for ${name}`);
    }
    const lower = clean ? name : name.toLowerCase();
    if (lower === 'host') continue;
    if (lower === 'content-length') {
      hasLength = true;
      declared = Number(value);
    }
    if (lower === 'transfer-encoding') hasTe = true;
    if (lower === 'cookie') {
      // RFC 9113 §8.2.3, RFC 9114 §4.2.1: cookie fields split for compression (an h2/h3 client's crumbs) are
      // concatenated with "; " before they go to HTTP/1.1, whose Cookie is one field line (RFC 6265 §5.4).
      if (cookieEnd >= 0) {
        head = `${head.slice(0, cookieEnd)}; ${value}${head.slice(cookieEnd)}`;
        cookieEnd += value.length + 2;
        continue;
      }
      cookieEnd = head.length + name.length + 2 + value.length;
    }
    head += `${name}: ${value}\r\n`;
  }
  if (hasLength && hasTe) throw new TypeError('both content-length and transfer-encoding given');
  const len = knownLength(req.body);
  let framing: SerializedHead['framing'];
  if (len === null) {
    framing = hasLength ? 'length' : 'chunked';
    if (!hasLength && !hasTe) head += 'transfer-encoding: chunked\r\n';
  } else if (len > 0) {
    framing = 'length';
    if (!hasLength) head += `content-length: ${len}\r\n`;
  } else {
    framing = 'none';
    if (!hasLength && BODY_METHODS.has(req.method)) head += 'content-length: 0\r\n';
  }
  return { head: `${head}\r\n`, framing, declared: len === null && hasLength ? declared : -1 };
}
