/**
 * HTTP/1.1 response head serialization (RFC 9112 §4, §6, §7.1.2), beside the
 * request writer (request.ts). Pure: text out, the server writes it.
 *
 * The framing fields are ours: a handler's Content-Length, Transfer-Encoding,
 * Connection, Keep-Alive and Upgrade are dropped from its list and the server
 * chooses the framing (its Content-Length is kept aside in `declared`, for
 * a length the server may honour). A 101 keeps Connection and Upgrade
 * (RFC 9110 §15.2.2).
 */
import { BAD_FIELD_VALUE_RE, CONTENT_LENGTH_RE, isFieldName } from '../http/fields.js';
import { reasonPhrase } from '../http/status.js';
import type { HeaderList } from '../http/types.js';
import { NameSet } from '../util/name-set.js';

const CRLF = '\r\n';
/** Fields we set ourselves from the framing we choose: a handler's are dropped. */
const FRAMING = new NameSet(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade']);
/** Interim and 101 responses keep Connection and Upgrade; they have no body. */
const BODY_FRAMING = new NameSet(['content-length', 'transfer-encoding']);
/** The status lines of 100–599 made so far: a response's line is text made once, not a number's and three joins. */
const STATUS_LINES: (string | undefined)[] = new Array(500);

function statusLine(status: number): string {
  if (!(status >= 100 && status <= 599 && (status | 0) === status))
    return `HTTP/1.1 ${status} ${reasonPhrase(status)}${CRLF}`;
  return (STATUS_LINES[status - 100] ??= `HTTP/1.1 ${status} ${reasonPhrase(status)}${CRLF}`);
}

/**
 * Writes response heads for one connection. `declared` is the Content-Length
 * the last `head` call dropped from the handler's fields (null: none), read
 * right after it: one writer per connection, no object per response.
 */
export class ResponseHeadWriter {
  declared: string | null = null;

  /** Status line and the handler's fields, framing fields left out (the caller adds its own, then the blank line). */
  head(status: number, headers: HeaderList | undefined, checked = false): string {
    return statusLine(status) + this.#fieldLines(headers, FRAMING, checked);
  }

  /**
   * A whole 1xx head (103 Early Hints: RFC 8297), from fields one of our parsers already checked; `reason`: the
   * phrase to send (a relayed origin's, checked), '' for the usual one of the status.
   */
  interim(status: number, headers: HeaderList, reason = ''): string {
    return `HTTP/1.1 ${status} ${reason || reasonPhrase(status)}${CRLF}${this.#fieldLines(headers, BODY_FRAMING, true)}${CRLF}`;
  }

  /** A whole 101 head: the handler's fields with its Connection and Upgrade. */
  switching(headers: HeaderList | undefined): string {
    return `HTTP/1.1 101 ${reasonPhrase(101)}${CRLF}${this.#fieldLines(headers, BODY_FRAMING, false)}${CRLF}`;
  }

  /**
   * A handler's fields as lines, those named in `skip` left out. A name or value that would break the head (CR,
   * LF: response splitting) is a handler bug — unless `checked` (ServerResponse.checked: fields one of our
   * parsers already held to the same rules, names in lower case), when they are taken as they are.
   */
  #fieldLines(headers: HeaderList | undefined, skip: NameSet, checked: boolean): string {
    let text = '';
    this.declared = null;
    if (headers === undefined) return text;
    for (const [n, v] of headers) {
      if (!checked && (!isFieldName(n) || BAD_FIELD_VALUE_RE.test(v)))
        throw new TypeError(`handler gave an invalid response field ${JSON.stringify(n)}`);
      const name = checked ? n : n.toLowerCase();
      if (skip.has(name)) {
        if (name === 'content-length') this.declared = v;
        continue;
      }
      text += `${n}: ${v}${CRLF}`;
    }
    return text;
  }
}

/**
 * `connection: close`, or for an HTTP/1.0 client that may keep the connection `connection: keep-alive` (RFC 9112 §9.3).
 */
export function connectionLine(minor: number, close: boolean): string {
  return close ? `connection: close${CRLF}` : minor === 0 ? `connection: keep-alive${CRLF}` : '';
}

/**
 * The Content-Length line of a response without a body (RFC 9110 §8.6): none on a 1xx or 204; on a HEAD or 304
 * response only the length the GET/200 would have had — the handler's, when it is a valid one; for a HEAD whose
 * handler gave the GET's bytes, their count; else none.
 */
export function bodilessLength(status: number, declared: string | null, bytes: number): string {
  if (status < 200 || status === 204) return '';
  if (declared !== null && CONTENT_LENGTH_RE.test(declared)) return `content-length: ${declared}${CRLF}`;
  return bytes > 0 && status !== 304 ? `content-length: ${bytes}${CRLF}` : '';
}

/** The last chunk and a trailer section (RFC 9112 §7.1.2); a field that would break it is left out. */
export function trailerBlock(trailers: HeaderList): Buffer {
  let t = '0\r\n';
  for (const [n, v] of trailers) {
    if (!isFieldName(n) || BAD_FIELD_VALUE_RE.test(v)) continue;
    t += `${n}: ${v}${CRLF}`;
  }
  return Buffer.from(`${t}${CRLF}`, 'latin1');
}
