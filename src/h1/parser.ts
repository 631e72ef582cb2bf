/**
 * Sans-IO HTTP/1.1 response parser (RFC 9112). Bytes in, callbacks out; no
 * sockets, no clock. One parser serves every response on a connection:
 * call `expect(method)` before each request's response.
 *
 * Message body length follows RFC 9112 §6.3, in order:
 *  1. a response to HEAD, any 1xx, 204 and 304 has no body;
 *  2. Transfer-Encoding with `chunked` last → chunked; any other coding → read until close;
 *  3. a valid Content-Length → that many bytes (differing duplicates are an error, §6.3 item 5);
 *  4. otherwise the body runs until the connection closes.
 */
import type { HeaderList } from '../http/types.js';
import { H1BodyDecoder } from './body.js';
import { contentLengthOf } from '../http/field-section.js';
import { CONTENT_LENGTH_RE } from '../http/fields.js';
import { MAX_INTERIM_RESPONSES } from '../http/status.js';
import {
  CONN_CLOSE,
  CONN_KEEP_ALIVE,
  connectionOptions,
  FieldMemory,
  H1ParseError,
  HeldBytes,
  parseFieldLines,
  splitHead,
  transferCodings,
} from './fields.js';

export { H1ParseError } from './fields.js';

export interface H1Head {
  status: number;
  reason: string;
  /** HTTP/1.0 or 1.1 minor version. */
  minor: number;
  headers: HeaderList;
  /** Connection may be reused after this message. */
  keepAlive: boolean;
  /** `Keep-Alive: timeout=N` in ms, when present. */
  keepAliveTimeoutMs: number | null;
  /** Body framing chosen by §6.3. */
  framing: 'none' | 'length' | 'chunked' | 'close';
  contentLength: number | null;
}

export interface H1ParserHandler {
  /** Final (non-1xx) response head. */
  onHead(head: H1Head): void;
  /** An interim (1xx, not 101) response before it, checked (RFC 9110 §15.2). */
  onInterim?(status: number, headers: HeaderList, reason: string): void;
  onBody(chunk: Buffer): void;
  onTrailers(trailers: HeaderList): void;
  /** The message is complete; the parser is ready for `expect()` again. */
  onComplete(): void;
}

export interface H1ParserLimits {
  /** Maximum bytes of a status line plus header section (and of a trailer section). */
  maxHeaderBytes: number;
  maxHeaderCount: number;
}

const enum St {
  Idle,
  Head,
  Body,
  Done,
}

interface StatusLine {
  readonly minor: number;
  readonly status: number;
  readonly reason: string;
}
/**
 * RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ], reason-phrase = 1*( HTAB / SP / VCHAR /
 * obs-text ).
 */
const STATUS_LINE_RE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: ([\t \x21-\x7e\x80-\xff]*))?$/;
/**
 * Status lines read lately, compared in place: a server sends a few ("HTTP/1.1 200 OK") over and over, and a
 * comparison at the head's start costs less than cutting the line out and hashing it. Up to RECENT_MAX, the oldest
 * replaced; each kept as a string of its own (not a slice holding a whole head).
 */
const recent: Array<{ readonly line: string; readonly parsed: StatusLine }> = [];
const RECENT_MAX = 8;
let replaceAt = 0;

/** "HTTP/", what every response begins with. */
const HTTP_SLASH = Buffer.from('HTTP/', 'latin1');

/**
 * Why bytes where a response must begin cannot be one (RFC 9112 §4: it begins with its HTTP-version, "HTTP/"), or
 * null when their first (up to five) bytes may still be: the one rule for the parser and for bytes that came before
 * a request left (client/h1.ts).
 */
export function notHttpStart(b: Buffer): string | null {
  for (let i = 0, n = Math.min(b.length, 5); i < n; i++) if (b[i] !== HTTP_SLASH[i]) return notHttp1(b);
  return null;
}

/** What a response that does not begin with "HTTP/" looks like, for its error. */
function notHttp1(b: Buffer): string {
  // RFC 9113 §4.1: a 9-byte frame header, its type at byte 3; a server's first frame is SETTINGS (4), §3.4.
  if (b.length >= 4 && b[0] === 0 && b[3] === 4)
    return 'not an HTTP/1.1 response: an HTTP/2 SETTINGS frame (the origin speaks HTTP/2 only, cleartext: use protocol h2)';
  // RFC 8446 §5.1: a TLS record, content type 21 (alert) or 22 (handshake), version 3.x.
  if (b.length >= 2 && (b[0] === 21 || b[0] === 22) && b[1] === 3)
    return 'not an HTTP/1.1 response: a TLS record (the origin expects https)';
  return `not an HTTP/1.1 response: begins ${JSON.stringify(b.subarray(0, 16).toString('latin1'))}`;
}

/** The status line `text[0..eol)`. */
function statusLineOf(text: string, eol: number): StatusLine {
  for (let i = 0; i < recent.length; i++) {
    const r = recent[i] as (typeof recent)[number];
    if (r.line.length === eol && text.startsWith(r.line)) return r.parsed;
  }
  // A copy of its own: the entry (and its reason phrase, a slice of it) must not keep the head alive.
  const line = Buffer.from(text.slice(0, eol), 'latin1').toString('latin1');
  const m = STATUS_LINE_RE.exec(line);
  if (!m) throw new H1ParseError('malformed', `malformed status line: ${JSON.stringify(line.slice(0, 80))}`);
  const parsed: StatusLine = { minor: Number(m[1]), status: Number(m[2]), reason: m[3] ?? '' };
  const e = { line, parsed };
  if (recent.length < RECENT_MAX) recent.push(e);
  else {
    recent[replaceAt] = e;
    replaceAt = (replaceAt + 1) % RECENT_MAX;
  }
  return parsed;
}

/**
 * What a final response's head makes besides its field lines, for a request with (`noBody`: HEAD) or without a body.
 */
type Framed = Omit<H1Head, 'headers'> & { noBody: boolean };

export class H1ResponseParser {
  #h: H1ParserHandler;
  #limits: H1ParserLimits;
  #st: St = St.Idle;
  #noBody = false;
  readonly #held = new HeldBytes();
  /** Interim (1xx) responses to the current request (MAX_INTERIM_RESPONSES). */
  #interims = 0;
  #body: H1BodyDecoder;
  #keepAlive = true;
  /** This connection's last field lines (most repeat from one response to the next). */
  readonly #fields = new FieldMemory<Framed>();

  constructor(handler: H1ParserHandler, limits: H1ParserLimits) {
    this.#h = handler;
    this.#limits = limits;
    this.#body = new H1BodyDecoder(handler, limits.maxHeaderBytes);
  }

  /** True between `expect()` and the end of the final response. */
  get busy(): boolean {
    return this.#st !== St.Idle && this.#st !== St.Done;
  }

  /** True when bytes were received for the current message (any part of it). */
  receivedAny = false;

  /** The current request asked to switch protocols (RFC 9110 §7.8): a 101 is then its final response. */
  #upgrade = false;

  /**
   * Prepare for the response to a request with this method (`upgrade`: it carries Upgrade, so a 101 ends the
   * HTTP/1.1 exchange: the head is delivered, and every byte after it is returned by `execute` as not consumed).
   */
  expect(method: string, upgrade = false): void {
    this.#st = St.Head;
    this.#noBody = method === 'HEAD';
    this.#upgrade = upgrade;
    this.#held.clear();
    this.#interims = 0;
    this.receivedAny = false;
  }

  /** Feed bytes. Throws H1ParseError on malformed input. Returns bytes left unconsumed after completion. */
  execute(data: Buffer): Buffer | null {
    if (data.length > 0) this.receivedAny = true;
    let chunk: Buffer | null = data;
    if (this.#held.held) {
      chunk = this.#held.take(data, this.#limits.maxHeaderBytes);
      if (chunk === null) return null;
    }
    while (chunk && chunk.length > 0) {
      switch (this.#st) {
        case St.Idle:
        case St.Done:
          return chunk; // bytes beyond the message: the caller decides (unsolicited data)
        case St.Head:
          chunk = this.#parseHead(chunk);
          break;
        case St.Body:
          chunk = this.#body.feed(chunk);
          if (this.#body.done) this.#complete();
          break;
      }
    }
    return null;
  }

  /**
   * The peer closed its side. Completes a read-until-close body; anything
   * else mid-message is an error (`truncated`).
   */
  eof(): 'complete' | 'idle' | 'truncated' {
    if (this.#st === St.Body && this.#body.untilClose) {
      this.#body.finishAtClose();
      this.#complete();
      return 'complete';
    }
    if (this.#st === St.Idle || this.#st === St.Done) return 'idle';
    return 'truncated';
  }

  #parseHead(chunk: Buffer): Buffer | null {
    // A response begins with its HTTP-version, "HTTP/" (RFC 9112 §4): bytes that cannot are refused as they come,
    // not held until a line end or the close that may never come (an h2c-only or TLS port answers in binary).
    const alien = notHttpStart(chunk);
    if (alien !== null) throw new H1ParseError('malformed', alien);
    const h = splitHead(chunk, this.#limits.maxHeaderBytes, 'response', this.#fields);
    if (!h) {
      this.#held.hold(chunk, true);
      return null;
    }
    const { text, rest } = h;
    const max = this.#limits.maxHeaderCount;
    // The connection's last response head again (FieldMemory), to a request of the same kind: what its text made.
    const made = this.#fields.made;
    if (made !== null && made.noBody === this.#noBody) {
      const headers = this.#fields.again(text, max);
      if (headers !== null) {
        this.#begin(made, headers);
        return rest;
      }
    }
    const eol = text.indexOf('\r\n');
    const { minor, status, reason } = statusLineOf(text, eol < 0 ? text.length : eol);
    const fieldsFrom = eol < 0 ? text.length : eol + 2;
    const headers = parseFieldLines(text, fieldsFrom, max, 'response header', this.#fields);
    if (status === 101 && this.#upgrade) {
      // RFC 9110 §7.8, §15.2.2: the new protocol starts right after the empty line that ends the 101; no body.
      this.#noBody = true;
      this.#startBody(status, reason, minor, headers);
      return rest;
    }
    if (status < 200) {
      // 1xx interim responses carry no body; 101 switches protocols, for a request that asked (`expect`) only.
      if (status === 101) throw new H1ParseError('malformed', 'unexpected 101 Switching Protocols');
      // RFC 9110 §15.2: HTTP/1.0 has no 1xx; one labelled HTTP/1.0 is a broken or confused peer.
      if (minor === 0) throw new H1ParseError('malformed', `interim ${status} response labelled HTTP/1.0`);
      // RFC 9110 §8.6, RFC 9112 §6.1: no Content-Length or Transfer-Encoding in a 1xx (it has no content).
      for (const [n, v] of headers) {
        if (n === 'content-length' || n === 'transfer-encoding')
          throw new H1ParseError('malformed', `${n} in an interim ${status} response`);
        // RFC 9112 §9.6: a server that sends `close` closes after that response — a 1xx included — so whatever
        // follows on this connection is not its answer (llhttp stops there too).
        if (n === 'connection' && (connectionOptions(v) & CONN_CLOSE) !== 0)
          throw new H1ParseError('malformed', `Connection: close in an interim ${status} response`);
      }
      if (++this.#interims > MAX_INTERIM_RESPONSES)
        throw new H1ParseError('malformed', `more than ${MAX_INTERIM_RESPONSES} interim responses`);
      this.#h.onInterim?.(status, headers, reason);
      return rest;
    }
    this.#startBody(status, reason, minor, headers);
    return rest;
  }

  #startBody(status: number, reason: string, minor: number, headers: HeaderList): void {
    let lengths = 0;
    let length = '';
    let te: string | null = null;
    let connection: string | null = null;
    let keepAliveTimeoutMs: number | null = null;
    for (const [name, value] of headers) {
      switch (name) {
        case 'content-length':
          lengths++;
          length = value;
          break;
        case 'transfer-encoding':
          te = te === null ? value : `${te}, ${value}`;
          break;
        case 'connection':
          connection = connection === null ? value : `${connection},${value}`;
          break;
        case 'keep-alive': {
          const t = /(?:^|[,;\s])timeout\s*=\s*(\d+)/i.exec(value);
          if (t) keepAliveTimeoutMs = Number(t[1]) * 1000;
          break;
        }
      }
    }
    // RFC 9112 §6.3 item 5: a list of identical values may be accepted; differing or invalid ones are an error.
    // One field of digits (the usual) is its value; anything else goes by contentLengthOf's rule.
    const contentLength =
      lengths === 0
        ? null
        : lengths === 1 && CONTENT_LENGTH_RE.test(length)
          ? Number(length)
          : contentLengthOf(headers);
    if (contentLength !== null && typeof contentLength === 'object')
      throw new H1ParseError('malformed', contentLength.error);
    const options = connection === null ? 0 : connectionOptions(connection);
    let keepAlive = minor === 1 ? (options & CONN_CLOSE) === 0 : (options & CONN_KEEP_ALIVE) !== 0;
    // RFC 9112 §6.1: both together "ought to be handled as an error" (request smuggling, response splitting):
    // refused whatever the status, as nginx and llhttp do, rather than letting Transfer-Encoding override (§6.3 item
    // 3).
    if (te !== null && contentLength !== null)
      throw new H1ParseError('malformed', 'response with both Content-Length and Transfer-Encoding');
    let framing: H1Head['framing'];
    if (this.#noBody || status === 204 || status === 304) {
      framing = 'none';
    } else if (te !== null) {
      // RFC 9112 §6.1: a recipient that takes Transfer-Encoding away must have decoded what it names. We decode
      // chunked only, so any other coding (`gzip`, `gzip, chunked`) is refused rather than relayed still encoded
      // under no Transfer-Encoding at all (nginx answers such an upstream with 502 too).
      const codings = transferCodings(te);
      if (codings.length !== 1 || codings[0] !== 'chunked')
        throw new H1ParseError(
          'unsupported',
          `response transfer coding ${JSON.stringify(te.slice(0, 60))}: only chunked is decoded`,
        );
      framing = 'chunked';
    } else if (contentLength !== null) {
      framing = contentLength === 0 ? 'none' : 'length';
    } else {
      framing = 'close';
    }
    if (framing === 'close') keepAlive = false;
    const f: Framed = {
      noBody: this.#noBody,
      status,
      reason,
      minor,
      keepAlive,
      keepAliveTimeoutMs,
      framing,
      contentLength,
    };
    this.#fields.keep(f);
    this.#begin(f, headers);
  }

  /** The head is read: tell the handler, and read its body (if any). */
  #begin(f: Framed, headers: HeaderList): void {
    this.#keepAlive = f.keepAlive;
    const { framing, contentLength } = f;
    this.#h.onHead({
      status: f.status,
      reason: f.reason,
      minor: f.minor,
      headers,
      keepAlive: f.keepAlive,
      keepAliveTimeoutMs: f.keepAliveTimeoutMs,
      framing,
      contentLength,
    });
    if (framing === 'none') this.#complete();
    else {
      this.#st = St.Body;
      this.#body.start(framing, contentLength ?? 0);
    }
  }

  get keepAlive(): boolean {
    return this.#keepAlive;
  }

  /**
   * What is left of the current response's body, for a reader that no longer wants it: its byte count
   * (a counted body), `'chunked'` (its end not known yet), or null when no body is under way or it ends
   * only with the connection.
   */
  get bodyLeft(): number | 'chunked' | null {
    if (this.#st !== St.Body || this.#body.untilClose) return null;
    return this.#body.lengthLeft ?? 'chunked';
  }

  #complete(): void {
    this.#st = St.Done;
    this.#h.onComplete();
  }
}
