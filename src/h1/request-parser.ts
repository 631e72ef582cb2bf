/**
 * Sans-IO HTTP/1.1 request parser for the server side (RFC 9112). Bytes in,
 * callbacks out, messages one after another (pipelining); no sockets, no
 * clock. Every framing rule a smuggling attack leans on is a refusal
 * (H1ParseError → 400/431/501/505, then the connection closes):
 *
 *  - §6.1, §6.3 item 3: Transfer-Encoding together with Content-Length;
 *  - §6.3 item 4: a Transfer-Encoding whose final coding is not `chunked`,
 *    or `chunked` twice; a coding other than chunked is 501 (§6.1);
 *    Transfer-Encoding in an HTTP/1.0 request;
 *  - §6.3 item 5 / RFC 9110 §8.6: a Content-Length that is not one decimal
 *    number, or that appears twice;
 *  - §7.1: a chunk size that is not hex or would overflow (body.ts);
 *  - §5.2: obs-fold; §5.1: whitespace before the colon; §2.2: a bare CR or
 *    LF (fields.ts); CR, LF or NUL in a value;
 *  - §3.2: no Host, or more than one, in HTTP/1.1;
 *  - §3.2.1–§3.2.4: request-target forms (origin, absolute, authority for
 *    CONNECT only, asterisk for OPTIONS only); no whitespace or control
 *    characters in the target;
 *  - header section size and field count (431);
 *  - §9.6: nothing after a request that closes the connection is parsed
 *    (`execute` returns those bytes; the server discards them).
 */
import type { HeaderList } from '../http/types.js';
import { H1BodyDecoder } from './body.js';
import { CONTENT_LENGTH_RE, isAuthority, TARGET_RE } from '../http/fields.js';
import { KNOWN_METHODS } from '../http/methods.js';
import {
  CONN_CLOSE,
  CONN_KEEP_ALIVE,
  CONN_UPGRADE,
  connectionOptions,
  FieldMemory,
  firstLine,
  H1ParseError,
  HeldBytes,
  parseFieldLines,
  splitHead,
  TOKEN_RE,
  transferCodings,
} from './fields.js';

export interface H1RequestHead {
  method: string;
  /** The request-target as sent. */
  target: string;
  form: 'origin' | 'absolute' | 'authority' | 'asterisk';
  /** HTTP/1.x minor version (0 or 1). */
  minor: number;
  /** Field lines, lower-case names, wire order. */
  headers: HeaderList;
  /** Host, or the authority of an absolute-form or authority-form target (§3.2.2, §7.2 of RFC 9110). */
  authority: string;
  /** The connection may carry another request after this one (§9.3). */
  keepAlive: boolean;
  framing: 'none' | 'length' | 'chunked';
  contentLength: number | null;
  /** `Expect: 100-continue` in an HTTP/1.1 request (RFC 9110 §10.1.1). */
  expectContinue: boolean;
  /** The protocol asked for by `Upgrade` with `Connection: upgrade` (RFC 9110 §7.8), or null. */
  upgrade: string | null;
}

export interface H1RequestHandler {
  onHead(head: H1RequestHead): void;
  onBody(chunk: Buffer): void;
  onTrailers(trailers: HeaderList): void;
  onComplete(): void;
}

export interface H1RequestLimits {
  /** Request line plus header section, bytes (431 past it). */
  maxHeaderBytes: number;
  /** Field lines (431 past it). */
  maxHeaderCount: number;
}

const enum St {
  Head,
  Body,
  Stopped,
}

/** The field list of a head kept for its other parts (FieldMemory.made): never handed out. */
const NO_FIELDS: HeaderList = [];

/** RFC 9112 §3: method SP request-target SP HTTP-version. */
const REQUEST_LINE_RE = /^([^ ]+) ([^ ]+) HTTP\/(\d)\.(\d)$/;
/** Empty lines tolerated before a request line (RFC 9112 §2.2: at least one SHOULD be ignored). */
const MAX_LEADING_CRLF = 8;

/**
 * The method `text[0..sp)` when it is a token: a constant for the known ones (http/methods.ts); '' when it is not a
 * token.
 */
function knownMethod(text: string, sp: number): string {
  for (const m of KNOWN_METHODS) if (m.length === sp && text.startsWith(m)) return m;
  const method = text.slice(0, sp);
  return TOKEN_RE.test(method) ? method : '';
}

/** An Upgrade list that names h2c (RFC 9113 §3.1). */
const H2C_RE = /(?:^|,)[ \t]*h2c[ \t]*(?:,|$)/i;

export class H1RequestParser {
  #h: H1RequestHandler;
  #limits: H1RequestLimits;
  #st: St = St.Head;
  readonly #held = new HeldBytes();
  #body: H1BodyDecoder;
  /** Stop after the current message (the session holds the rest until `resume()`). */
  #pauseAfter = false;
  /** Nothing after the current message is HTTP/1.1 of this connection: an upgrade, or a message that closes it. */
  #final = false;
  /** This connection's last field lines (a client repeats most of them from one request to the next). */
  readonly #fields = new FieldMemory<H1RequestHead>();

  constructor(handler: H1RequestHandler, limits: H1RequestLimits) {
    this.#h = handler;
    this.#limits = limits;
    this.#body = new H1BodyDecoder(handler, limits.maxHeaderBytes, true);
  }

  /** Between messages: nothing of a next request has been read. */
  get idle(): boolean {
    return this.#st === St.Head && !this.#held.held;
  }
  /** A message head arrived and its body (if any) is being read. */
  get inBody(): boolean {
    return this.#st === St.Body;
  }

  /** Ask the parser to stop at the end of the current message (bounded pipelining). */
  pauseAfterMessage(): void {
    this.#pauseAfter = true;
  }

  /**
   * Feed bytes. Returns the bytes not parsed because the parser stopped
   * (after `pauseAfterMessage()`; after an upgrade request's head: what
   * follows belongs to the new protocol; after a message that closes the
   * connection: what follows is never a request), else null. Throws H1ParseError.
   */
  execute(data: Buffer): Buffer | null {
    if (this.#st === St.Stopped) return data;
    let chunk: Buffer | null = data;
    if (this.#held.held) {
      chunk = this.#held.take(data, this.#limits.maxHeaderBytes);
      if (chunk === null) return null;
    }
    while (chunk && chunk.length > 0) {
      if ((this.#st as St) === St.Stopped) return chunk; // paused or upgraded by a callback
      if (this.#st === St.Head) {
        chunk = this.#head(chunk);
      } else {
        chunk = this.#body.feed(chunk);
        if (this.#body.done) this.#complete();
      }
    }
    return null;
  }

  /** Continue after a pause; feed it the bytes `execute` returned. */
  resume(): void {
    if (this.#final) return;
    this.#pauseAfter = false;
    if (this.#st === St.Stopped) this.#st = St.Head;
  }

  /** The client closed its side: where that leaves the message being read. */
  eof(): 'idle' | 'truncated' {
    return this.#st === St.Body || (this.#st === St.Head && this.#held.held) ? 'truncated' : 'idle';
  }

  #head(chunk: Buffer): Buffer | null {
    // §2.2: empty lines before the request line are ignored (bounded).
    let skip = 0;
    while (skip + 1 < chunk.length && chunk[skip] === 0x0d && chunk[skip + 1] === 0x0a && skip < 2 * MAX_LEADING_CRLF)
      skip += 2;
    if (skip > 0) chunk = chunk.subarray(skip);
    if (chunk.length === 0) return null;
    const h = splitHead(chunk, this.#limits.maxHeaderBytes, 'request', this.#fields);
    if (!h) {
      this.#held.hold(chunk, true);
      return null;
    }
    const { text, rest } = h;
    const head = this.#parseHead(text);
    this.#h.onHead(head);
    if (head.upgrade !== null || head.method === 'CONNECT') {
      // RFC 9110 §7.8 (Upgrade), §9.3.6 (CONNECT): after this head the bytes are the new protocol's or the
      // tunnel's (or, for a refused upgrade, the request's body): never parsed as HTTP/1.1 here.
      this.#final = true;
      this.#st = St.Stopped;
      return rest;
    }
    // RFC 9112 §9.6: after a request that closes the connection (HTTP/1.1 `close`, HTTP/1.0 without
    // keep-alive) no further request is processed: the parser stops after its message.
    if (!head.keepAlive) this.#final = true;
    if (head.framing === 'none') this.#complete();
    else {
      this.#st = St.Body;
      this.#body.start(head.framing, head.contentLength ?? 0);
      if (this.#body.done) this.#complete();
    }
    return rest;
  }

  #parseHead(text: string): H1RequestHead {
    // The connection's last request again (FieldMemory): what its text made, with new field pairs.
    const made = this.#fields.made;
    if (made !== null) {
      const headers = this.#fields.again(text, this.#limits.maxHeaderCount);
      if (headers !== null) return { ...made, headers };
    }
    const head = this.#readHead(text);
    this.#fields.keep({ ...head, headers: NO_FIELDS });
    return head;
  }

  #readHead(text: string): H1RequestHead {
    let method: string;
    let target: string;
    let minor: number;
    let fieldsFrom: number;
    // The usual line, `<method> <target> HTTP/1.1`, read in place (no line string, match array or regexp); any
    // other, or one that fails a check here, is read by the regexp below, which has the final word and the errors.
    const eol = text.indexOf('\r\n');
    const end = eol < 0 ? text.length : eol;
    const sp = text.indexOf(' ');
    if (
      sp > 0 &&
      sp < end - 10 &&
      text.startsWith(' HTTP/1.1', end - 9) &&
      (method = knownMethod(text, sp)) !== '' &&
      TARGET_RE.test((target = text.slice(sp + 1, end - 9)))
    ) {
      minor = 1;
      fieldsFrom = eol < 0 ? text.length : eol + 2;
    } else {
      const [line, from] = firstLine(text);
      fieldsFrom = from;
      const m = REQUEST_LINE_RE.exec(line);
      if (!m) {
        if (/^[^ ]+ [^ ]+ HTTP\/\d+\.\d+$/.test(line))
          throw new H1ParseError('version', `unsupported HTTP version in ${JSON.stringify(line.slice(-12))}`);
        throw new H1ParseError('malformed', `malformed request line ${JSON.stringify(line.slice(0, 80))}`);
      }
      method = m[1] as string;
      target = m[2] as string;
      // §2.3: a major version other than 1 gets 505; a higher 1.x minor is served as 1.1.
      if (m[3] !== '1') throw new H1ParseError('version', `HTTP/${m[3]}.${m[4]} is not served over HTTP/1.1 framing`);
      minor = Math.min(1, Number(m[4]));
      if (!TOKEN_RE.test(method))
        throw new H1ParseError('malformed', `invalid method ${JSON.stringify(method.slice(0, 40))}`);
      if (!TARGET_RE.test(target)) throw new H1ParseError('malformed', 'invalid character in the request target');
    }
    const max = this.#limits.maxHeaderCount;
    const headers = parseFieldLines(text, fieldsFrom, max, 'header', this.#fields);

    let cl: string | null = null;
    let te: string | null = null;
    let host: string | null = null;
    let hosts = 0;
    let connection: string | null = null;
    let expect = '';
    let upgrade: string | null = null;
    for (const [name, value] of headers) {
      switch (name) {
        case 'content-length':
          if (cl !== null) throw new H1ParseError('malformed', 'more than one Content-Length');
          cl = value;
          break;
        case 'transfer-encoding':
          te = te === null ? value : `${te},${value}`;
          break;
        case 'host':
          hosts++;
          host = value;
          break;
        case 'connection':
          connection = connection === null ? value : `${connection},${value}`;
          break;
        case 'expect':
          expect = value.toLowerCase();
          break;
        case 'upgrade':
          upgrade = value;
          break;
      }
    }

    // Request-target forms (§3.2).
    let form: H1RequestHead['form'];
    let authority = host ?? '';
    if (target.charCodeAt(0) === 0x2f) form = 'origin';
    else if (method === 'CONNECT') {
      // §3.2.3: authority-form, for CONNECT only: host and port.
      if (!isAuthority(target) || !/:\d{1,5}$/.test(target))
        throw new H1ParseError('malformed', 'CONNECT needs host:port as its target');
      form = 'authority';
      authority = target;
    } else if (target === '*') {
      if (method !== 'OPTIONS') throw new H1ParseError('malformed', 'asterisk-form is for OPTIONS only');
      form = 'asterisk';
    } else if (/^https?:\/\//i.test(target)) {
      // §3.2.2: absolute-form; its authority replaces Host (§3.2.2, RFC 9110 §7.2).
      form = 'absolute';
      const slash = target.indexOf('/', target.indexOf('//') + 2);
      authority = target.slice(target.indexOf('//') + 2, slash < 0 ? undefined : slash);
      if (!authority) throw new H1ParseError('malformed', 'absolute-form target without an authority');
    } else {
      throw new H1ParseError('malformed', 'unsupported request-target form');
    }
    if (method === 'CONNECT' && form !== 'authority')
      throw new H1ParseError('malformed', 'CONNECT needs an authority-form target');

    // §3.2: exactly one Host in HTTP/1.1 (an absolute-form target still needs one).
    if (minor === 1 && hosts !== 1)
      throw new H1ParseError('malformed', hosts === 0 ? 'missing Host' : 'more than one Host');
    if (hosts > 1) throw new H1ParseError('malformed', 'more than one Host');
    if (authority && !isAuthority(authority)) throw new H1ParseError('malformed', 'invalid Host');

    // Framing (§6.1, §6.3).
    let framing: H1RequestHead['framing'] = 'none';
    let contentLength: number | null = null;
    if (te !== null) {
      if (cl !== null) throw new H1ParseError('malformed', 'both Content-Length and Transfer-Encoding');
      if (minor === 0) throw new H1ParseError('malformed', 'Transfer-Encoding in an HTTP/1.0 request');
      const codings = transferCodings(te);
      if (codings.length === 0 || codings[codings.length - 1] !== 'chunked')
        throw new H1ParseError('malformed', 'Transfer-Encoding whose final coding is not chunked');
      if (codings.indexOf('chunked') !== codings.length - 1)
        throw new H1ParseError('malformed', 'chunked applied more than once');
      if (codings.length > 1) throw new H1ParseError('unsupported', `transfer coding ${codings[0]} not implemented`);
      framing = 'chunked';
    } else if (cl !== null) {
      if (!CONTENT_LENGTH_RE.test(cl))
        throw new H1ParseError('malformed', `invalid Content-Length ${JSON.stringify(cl.slice(0, 20))}`);
      contentLength = Number(cl);
      framing = contentLength > 0 ? 'length' : 'none';
    }

    // RFC 9110 §9.3.6: a CONNECT request has no content; what follows its head belongs to the tunnel.
    if (method === 'CONNECT') {
      framing = 'none';
      contentLength = null;
    }

    const options = connection === null ? 0 : connectionOptions(connection);
    const keepAlive = minor === 1 ? (options & CONN_CLOSE) === 0 : (options & CONN_KEEP_ALIVE) !== 0;
    // RFC 9110 §7.8: Upgrade counts only when Connection names it (and never in HTTP/1.0). One naming h2c is ignored,
    // as a server may (§7.8): RFC 9113 §3.1 deprecated that upgrade, no server of ours speaks it, and a proxy that
    // tunnels it lets a client talk HTTP/2 straight to an origin past its routes ("h2c smuggling"). `curl --http2`
    // on an http URL sends it: the request is answered as the ordinary HTTP/1.1 request it also is.
    // A request with content is not upgraded either (§7.8 again): its content would have to go first, in HTTP/1.1,
    // while we hand the bytes after the head to the new protocol. A WebSocket opening (RFC 6455 §4.1) has none.
    const wantsUpgrade =
      minor === 1 && upgrade !== null && (options & CONN_UPGRADE) !== 0 && framing === 'none' && !H2C_RE.test(upgrade)
        ? upgrade
        : null;
    return {
      method,
      target,
      form,
      minor,
      headers,
      authority,
      keepAlive,
      framing,
      contentLength,
      expectContinue: minor === 1 && expect === '100-continue' && framing !== 'none',
      upgrade: wantsUpgrade,
    };
  }

  #complete(): void {
    this.#st = this.#pauseAfter || this.#final ? St.Stopped : St.Head;
    this.#h.onComplete();
    if ((this.#pauseAfter || this.#final) && this.#st === St.Head) this.#st = St.Stopped;
  }
}
