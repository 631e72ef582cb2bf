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

export class H1ParseError extends Error {
  readonly kind: 'malformed' | 'too-large';
  constructor(kind: 'malformed' | 'too-large', message: string) {
    super(message);
    this.name = 'H1ParseError';
    this.kind = kind;
  }
}

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

const enum St { Idle, Head, Body, ChunkSize, ChunkData, ChunkDataEnd, Trailers, UntilClose, Done }

const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');
// RFC 9110 §5.6.2 tchar
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// RFC 9110 §5.5: field values may not contain CR, LF or NUL.
const BAD_VALUE = /[\r\n\0]/;

export class H1ResponseParser {
  #h: H1ParserHandler;
  #limits: H1ParserLimits;
  #st: St = St.Idle;
  #noBody = false;
  #buf: Buffer | null = null;
  #remaining = 0;
  #keepAlive = true;

  constructor(handler: H1ParserHandler, limits: H1ParserLimits) {
    this.#h = handler;
    this.#limits = limits;
  }

  /** True between `expect()` and the end of the final response. */
  get busy(): boolean {
    return this.#st !== St.Idle && this.#st !== St.Done;
  }

  /** True when bytes were received for the current message (any part of it). */
  receivedAny = false;

  /** Prepare for the response to a request with this method. */
  expect(method: string): void {
    this.#st = St.Head;
    this.#noBody = method === 'HEAD';
    this.#buf = null;
    this.receivedAny = false;
  }

  /** Feed bytes. Throws H1ParseError on malformed input. Returns bytes left unconsumed after completion. */
  execute(data: Buffer): Buffer | null {
    if (data.length > 0) this.receivedAny = true;
    let chunk: Buffer | null = this.#buf ? Buffer.concat([this.#buf, data]) : data;
    this.#buf = null;
    while (chunk && chunk.length > 0) {
      switch (this.#st) {
        case St.Idle:
        case St.Done:
          return chunk; // bytes beyond the message: the caller decides (unsolicited data)
        case St.Head:
          chunk = this.#parseHead(chunk);
          break;
        case St.Body:
          chunk = this.#counted(chunk);
          if (this.#remaining === 0) this.#complete();
          break;
        case St.UntilClose:
          this.#h.onBody(chunk);
          chunk = null;
          break;
        case St.ChunkSize:
          chunk = this.#parseChunkSize(chunk);
          break;
        case St.ChunkData:
          chunk = this.#counted(chunk);
          if (this.#remaining === 0) this.#st = St.ChunkDataEnd;
          break;
        case St.ChunkDataEnd:
          if (chunk.length < 2) { this.#buf = chunk; return null; }
          if (chunk[0] !== 0x0d || chunk[1] !== 0x0a) throw new H1ParseError('malformed', 'chunk data not followed by CRLF');
          chunk = chunk.subarray(2);
          this.#st = St.ChunkSize;
          break;
        case St.Trailers:
          chunk = this.#parseTrailers(chunk);
          break;
      }
    }
    return null;
  }

  /** Deliver up to `#remaining` body bytes (a Content-Length body or one chunk); returns the rest. */
  #counted(chunk: Buffer): Buffer | null {
    const n = Math.min(this.#remaining, chunk.length);
    this.#remaining -= n;
    if (n === chunk.length) {
      this.#h.onBody(chunk);
      return null;
    }
    this.#h.onBody(chunk.subarray(0, n));
    return chunk.subarray(n);
  }

  /**
   * The peer closed its side. Completes a read-until-close body; anything
   * else mid-message is an error (`truncated`).
   */
  eof(): 'complete' | 'idle' | 'truncated' {
    if (this.#st === St.UntilClose) { this.#complete(); return 'complete'; }
    if (this.#st === St.Idle || this.#st === St.Done) return 'idle';
    return 'truncated';
  }

  #parseHead(chunk: Buffer): Buffer | null {
    const end = chunk.indexOf(HEADER_END);
    if (end < 0) {
      if (chunk.length > this.#limits.maxHeaderBytes) throw new H1ParseError('too-large', `response header section exceeds ${this.#limits.maxHeaderBytes} bytes`);
      this.#buf = chunk;
      return null;
    }
    if (end + 4 > this.#limits.maxHeaderBytes) throw new H1ParseError('too-large', `response header section exceeds ${this.#limits.maxHeaderBytes} bytes`);
    const text = chunk.toString('latin1', 0, end);
    const rest = chunk.subarray(end + 4);
    const lines = text.split('\r\n');
    const statusLine = lines[0] ?? '';
    // RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
    const m = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: ([^\r\n]*))?$/.exec(statusLine);
    if (!m) throw new H1ParseError('malformed', `malformed status line: ${JSON.stringify(statusLine.slice(0, 80))}`);
    const minor = Number(m[1]);
    const status = Number(m[2]);
    if (lines.length - 1 > this.#limits.maxHeaderCount) throw new H1ParseError('too-large', `more than ${this.#limits.maxHeaderCount} response header fields`);
    const headers = parseFields(lines, 1);
    if (status < 200) {
      // 1xx interim responses carry no body; 101 would switch protocols, which we never ask for.
      if (status === 101) throw new H1ParseError('malformed', 'unexpected 101 Switching Protocols');
      return rest;
    }
    this.#startBody(status, m[3] ?? '', minor, headers);
    return rest;
  }

  #startBody(status: number, reason: string, minor: number, headers: HeaderList): void {
    let contentLength: number | null = null;
    let te: string | null = null;
    let connection = '';
    let keepAliveTimeoutMs: number | null = null;
    for (const [name, value] of headers) {
      switch (name) {
        case 'content-length': {
          // RFC 9112 §6.3 item 5: a list of identical values may be accepted; differing ones are an error.
          for (const part of value.split(',')) {
            const v = part.trim();
            if (!/^\d{1,15}$/.test(v)) throw new H1ParseError('malformed', `invalid Content-Length ${JSON.stringify(value)}`);
            const n = Number(v);
            if (contentLength !== null && contentLength !== n) throw new H1ParseError('malformed', 'conflicting Content-Length values');
            contentLength = n;
          }
          break;
        }
        case 'transfer-encoding':
          te = te === null ? value : `${te}, ${value}`;
          break;
        case 'connection':
          connection += `${value.toLowerCase()},`;
          break;
        case 'keep-alive': {
          const t = /(?:^|[,;\s])timeout\s*=\s*(\d+)/i.exec(value);
          if (t) keepAliveTimeoutMs = Number(t[1]) * 1000;
          break;
        }
      }
    }
    const tokens = connection.split(',').map((s) => s.trim());
    let keepAlive = minor === 1 ? !tokens.includes('close') : tokens.includes('keep-alive');
    let framing: H1Head['framing'];
    if (this.#noBody || status === 204 || status === 304) {
      framing = 'none';
    } else if (te !== null) {
      const codings = te.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
      // RFC 9112 §6.3 item 3: Transfer-Encoding overrides Content-Length, and the connection must close after.
      if (codings[codings.length - 1] === 'chunked') framing = 'chunked';
      else framing = 'close';
      if (contentLength !== null) keepAlive = false;
      contentLength = null;
    } else if (contentLength !== null) {
      framing = contentLength === 0 ? 'none' : 'length';
    } else {
      framing = 'close';
    }
    if (framing === 'close') keepAlive = false;
    this.#keepAlive = keepAlive;
    this.#h.onHead({ status, reason, minor, headers, keepAlive, keepAliveTimeoutMs, framing, contentLength });
    switch (framing) {
      case 'none': this.#complete(); break;
      case 'length': this.#st = St.Body; this.#remaining = contentLength ?? 0; break;
      case 'chunked': this.#st = St.ChunkSize; break;
      case 'close': this.#st = St.UntilClose; break;
    }
  }

  get keepAlive(): boolean { return this.#keepAlive; }

  #parseChunkSize(chunk: Buffer): Buffer | null {
    const eol = chunk.indexOf(CRLF);
    if (eol < 0) {
      if (chunk.length > 1024) throw new H1ParseError('malformed', 'chunk size line too long');
      this.#buf = chunk;
      return null;
    }
    const line = chunk.toString('latin1', 0, eol);
    const semi = line.indexOf(';'); // chunk extensions are ignored (RFC 9112 §7.1.1)
    const hex = (semi < 0 ? line : line.slice(0, semi)).trim();
    if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) throw new H1ParseError('malformed', `invalid chunk size ${JSON.stringify(line.slice(0, 40))}`);
    const size = parseInt(hex, 16);
    const rest = chunk.subarray(eol + 2);
    if (size === 0) {
      this.#st = St.Trailers;
    } else {
      this.#st = St.ChunkData;
      this.#remaining = size;
    }
    return rest;
  }

  #parseTrailers(chunk: Buffer): Buffer | null {
    if (chunk.length >= 2 && chunk[0] === 0x0d && chunk[1] === 0x0a) {
      this.#complete();
      return chunk.subarray(2);
    }
    const end = chunk.indexOf(HEADER_END);
    if (end < 0) {
      if (chunk.length > this.#limits.maxHeaderBytes) throw new H1ParseError('too-large', 'trailer section too large');
      this.#buf = chunk;
      return null;
    }
    const lines = chunk.toString('latin1', 0, end).split('\r\n');
    this.#h.onTrailers(parseFields(lines, 0));
    this.#complete();
    return chunk.subarray(end + 4);
  }

  #complete(): void {
    this.#st = St.Done;
    this.#h.onComplete();
  }
}

function parseFields(lines: string[], from: number): HeaderList {
  const out: HeaderList = [];
  for (let i = from; i < lines.length; i++) {
    const line = lines[i] as string;
    // RFC 9112 §5.2: obs-fold is rejected in responses we cannot repair safely.
    if (line.length > 0 && (line.charCodeAt(0) === 0x20 || line.charCodeAt(0) === 0x09)) {
      throw new H1ParseError('malformed', 'obsolete line folding in header section');
    }
    const colon = line.indexOf(':');
    if (colon <= 0) throw new H1ParseError('malformed', `malformed header line ${JSON.stringify(line.slice(0, 60))}`);
    const name = line.slice(0, colon);
    // RFC 9112 §5.1: no whitespace between field name and colon.
    if (!TOKEN.test(name)) throw new H1ParseError('malformed', `invalid header name ${JSON.stringify(name.slice(0, 60))}`);
    const value = line.slice(colon + 1).trim();
    if (BAD_VALUE.test(value)) throw new H1ParseError('malformed', `invalid header value for ${name}`);
    out.push([name.toLowerCase(), value]);
  }
  return out;
}
