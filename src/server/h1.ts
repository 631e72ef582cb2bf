/**
 * Our HTTP/1.1 server: the sans-IO request parser (src/h1/request-parser.ts)
 * over a TCP or TLS socket, calling the same RequestHandler as our HTTP/2
 * and HTTP/3 servers (request.ts). Used by the service's `http` front,
 * the HTTP/1.1 side of its `https` front, and the demo origins.
 *
 * - Pipelining (RFC 9112 §9.3.2): handlers of safe requests (GET, HEAD, …)
 *   run as they arrive while every request before them is safe too; an
 *   unsafe one (a POST), and whatever follows it, waits until the responses
 *   before it are out. Responses leave in request order; at most MAX_PIPELINE
 *   requests wait for their turn, then the parser pauses (and so does the
 *   socket). After a response that closes the connection (§9.6) the requests
 *   behind it are aborted, unanswered; a graceful close answers those in
 *   flight, the last with `connection: close`.
 * - A client's FIN is its leaving, as nginx takes it (`proxy_ignore_client_abort
 *   off`, its default): our side ends too, and the requests still in flight
 *   are aborted when the socket closes (499 in the service's log). HAProxy
 *   serves a half-closed client; nginx does not, and frees the origin sooner.
 * - Request bodies stream to the handler with backpressure: a reader that
 *   falls behind pauses the socket.
 * - Responses: a known-length body leaves with its head in one write; a
 *   streamed one with Content-Length when the handler gave one, else chunked
 *   (HTTP/1.1, with trailers) or until close (HTTP/1.0); what arrives of it
 *   in one event-loop turn leaves in one write, with the head (#relay).
 * - A request answered before its body is in (an origin's early 405) has the
 *   rest still read, up to DISCARD_MAX_BYTES: to the handler's reader if it is
 *   still at it, else dropped; the connection serves again. A longer rest
 *   closes it after the answer.
 * - A refused request (a framing error, a limit) gets its 400/414/431/501/505
 *   after the responses before it, then the connection closes (§6.3: the
 *   framing of what follows is unknown). A body that breaks its framing after
 *   its head was handed over: the refusal replaces the handler's answer if
 *   none went out yet, else the connection just closes (one response per
 *   request). A handler that throws before its head gives a 500.
 * - `Expect: 100-continue` (RFC 9110 §10.1.1): the 100 goes out when the
 *   request is the one being answered — at once, or when it reaches the
 *   front of the pipeline.
 * - Upgrade (RFC 9110 §7.8): a 101 from the handler with `tunnel` hands the
 *   socket over, bytes already read first.
 * - Timeouts: the head of a request must arrive within `headersTimeoutMs`
 *   of the connection (or of the previous response); an idle keep-alive
 *   connection closes after `keepAliveTimeoutMs`.
 */
import { verifiedClientCertificate, type ClientCertificate } from './client-certificate.js';
import type net from 'node:net';
import { Readable } from 'node:stream';
import { ErrorCode, OriginlinkError } from '../errors.js';
import { H1ParseError } from '../h1/fields.js';
import { H1RequestParser, type H1RequestHead } from '../h1/request-parser.js';
import { bodilessLength, connectionLine, ResponseHeadWriter, trailerBlock } from '../h1/response.js';
import { CHUNKED_END } from '../h1/chunked.js';
import { bodyBytes } from '../http/body.js';
import { CONTENT_LENGTH_RE } from '../http/fields.js';
import { isSafeMethod } from '../http/methods.js';
import { reasonPhrase } from '../http/status.js';
import type { HeaderList } from '../http/types.js';
import { abortBody, bufferedWhole, hasReader, isBufferedWhole, relayBody } from '../util/body.js';
import { LazyTimer } from '../util/lazy-timer.js';
import { atTurnEnd, type TurnEnd } from '../util/turn-end.js';
import { endedBody, PushBody } from '../wire/body.js';
import { listenSessions, type ListenOptions, type SessionServer } from './listen.js';
import { readChunks, type SocketReads } from '../net/socket-reads.js';
import {
  clientClosed,
  DISCARD_MAX_BYTES,
  RequestAbort,
  ServedRequest,
  type RequestHandler,
  type ServerRequest,
  type ServerResponse,
} from './request.js';

/** Requests that may wait for their turn to answer (pipelining) before we stop reading. */
const MAX_PIPELINE = 16;

const EMPTY = Buffer.alloc(0);
const CRLF = '\r\n';
/** The most a relayed body queues in one event-loop turn before it waits for that turn's write (see #relay). */
const TURN_MAX_BYTES = 128 * 1024;
const NEVER_GONE = (): boolean => false;

/** The answer to a head that did not arrive within limits.requestHeaderTimeoutMs. */
const REQUEST_TIMEOUT =
  'HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nx-originlink-error: request_timeout\r\n' +
  'connection: close\r\ncontent-length: 59\r\n\r\n408 Request Timeout: the request head did not come in time\n';

/** `x-originlink-error` of the parser's refusals, by status. */
const REFUSAL_CODES: Readonly<Record<number, string>> = {
  400: 'bad_request',
  414: 'uri_too_long',
  431: 'headers_too_large',
  501: 'not_implemented',
  505: 'version_not_supported',
};

export interface H1SessionOptions {
  handler: RequestHandler;
  /** Request line plus header section, bytes (431 past it). Default 16 KiB. */
  maxHeaderBytes?: number;
  /** Field lines per request (431 past it). Default 100. */
  maxHeaderCount?: number;
  /** The head of a request must arrive within this, ms. Default 10000. */
  headersTimeoutMs?: number;
  /** An idle keep-alive connection closes after this, ms. Default 5000. */
  keepAliveTimeoutMs?: number;
  /**
   * A response write that makes no progress for this long (the client reads nothing) cuts the connection, ms (0 =
   * never). Default 60000.
   */
  sendTimeoutMs?: number;
  onError?: (err: unknown) => void;
}

interface Pending {
  head: H1RequestHead;
  req: ServerRequest | null;
  /** Null for a request without a body until a handler asks for it (most GETs never do: no stream per request). */
  body: PushBody | null;
  /** The handler's answer (or the refusal we answer with). */
  res: ServerResponse | null;
  failed: boolean;
  ready: boolean;
  /** Its handler was called (a pipelined unsafe request waits for the responses before it). */
  started: boolean;
  /** Refused after its head was handed over (its body broke framing): our refusal is its answer, not the handler's. */
  refused: boolean;
  abort: RequestAbort;
  /** The request body was read to its end. */
  bodyDone: boolean;
  /** Close the connection after this response. */
  close: boolean;
  /** Body bytes read so far. */
  received: number;
  /** The client may be sending the body: no `Expect: 100-continue`, or our 100 went out. */
  continued: boolean;
  /** The handler asked for the body (its first read): a 100 Continue it waits for is due once this is in front. */
  bodyWanted: boolean;
  /**
   * Answered before its body was in: the body bytes still allowed (DISCARD_MAX_BYTES), given to a reader still at
   * it or dropped; -1: not answered yet.
   */
  afterLeft: number;
}

/** One HTTP/1.1 connection on `socket` (cleartext or TLS with ALPN http/1.1). */
export class H1ServerSession {
  readonly socket: net.Socket;
  /** The client certificate its TLS handshake verified, read on first ask (undefined: not yet). */
  #clientCert: ClientCertificate | null | undefined = undefined;

  clientCertificate(): ClientCertificate | null {
    if (this.#clientCert === undefined) this.#clientCert = verifiedClientCertificate(this.socket);
    return this.#clientCert;
  }
  #opts: H1SessionOptions;
  #scheme: 'http' | 'https';
  #parser: H1RequestParser;
  #queue: Pending[] = [];
  /** The request whose body is being read. */
  #reading: Pending | null = null;
  /** Writes our response heads (h1/response.ts); its `declared` is read right after each head. */
  readonly #heads = new ResponseHeadWriter();
  /** How the socket is read (net/socket-reads.ts); released when an upgrade hands the socket over. */
  readonly #reads: SocketReads;
  /** The client's address and port, read once (each read of the socket's getters is a call into the binding). */
  readonly #peerAddress: string;
  readonly #peerPort: number;
  /** Bytes read but not parsed (the parser paused, or an upgrade's first bytes). */
  #held: Buffer | null = null;
  #writing = false;
  #closed = false;
  /** No more requests are read (a refusal, Connection: close, shutdown). */
  #noMore = false;
  #draining = false;
  /** An upgrade request waits for its answer: bytes after its head are the tunnel's. */
  #upgrading = false;
  #bodyPaused = false;
  /**
   * Head and keep-alive deadlines: no request in the queue when it passes → the connection closes. A head begun and
   * not finished gets 408 first (RFC 9110 §15.5.9, with `close`), as docs/config.md says; an idle keep-alive
   * connection closes silently (nothing was asked).
   */
  #timer = new LazyTimer(() => {
    if (this.#queue.length !== 0) return;
    if (this.#parser.idle || this.#closed) {
      this.destroy();
      return;
    }
    this.#noMore = true;
    this.#releaseText();
    this.socket.end(REQUEST_TIMEOUT);
  });
  #onClose: (() => void) | null = null;
  #seq = 0;
  /** Inside the parser's execute (its callbacks run now). */
  #parsing = false;
  /**
   * What this session writes waits for the turn's end: a response written whole leaves with every other session's,
   * after the poll phase's reads — the client side's rule too (client/h1.ts, docs/architecture.md). The usual case,
   * responses each written as one string, is held here (#holdText); any other write corks the socket until then
   * (#holdWrites), and every write that does neither lets the held text go first (#releaseText).
   */
  #text: string | null = null;
  #corked = false;
  #uncorker: TurnEnd = { turnEnd: () => this.#uncork() };

  constructor(socket: net.Socket, opts: H1SessionOptions, scheme: 'http' | 'https') {
    this.socket = socket;
    this.#opts = opts;
    this.#scheme = scheme;
    this.#parser = new H1RequestParser(
      {
        onHead: (h) => this.#onHead(h),
        onBody: (c) => this.#onBody(c),
        onTrailers: () => {
          /* request trailers are not passed on (RFC 9110 §6.5: may be discarded) */
        },
        onComplete: () => this.#onComplete(),
      },
      { maxHeaderBytes: opts.maxHeaderBytes ?? 16 * 1024, maxHeaderCount: opts.maxHeaderCount ?? 100 },
    );
    socket.setNoDelay(true);
    this.#peerAddress = socket.remoteAddress ?? '';
    this.#peerPort = socket.remotePort ?? 0;
    this.#reads = readChunks(socket, this.#onData);
    // Before Node's own listener, which ends our side at the client's FIN (allowHalfOpen is off) and refuses writes
    // from then on: a response held this turn leaves before that end, as a corked one does.
    socket.prependListener('end', () => this.#releaseText());
    socket.on('end', () => this.#onEnd());
    socket.on('error', () => {
      /* 'close' follows */
    });
    socket.on('close', () => this.#gone(clientClosed));
    this.#arm(opts.headersTimeoutMs ?? 10_000);
  }

  get closed(): boolean {
    return this.#closed;
  }
  get active(): number {
    return this.#queue.length;
  }
  onClose(fn: () => void): void {
    this.#onClose = fn;
  }

  /**
   * Graceful close: requests in flight are answered (the last with Connection: close); an idle connection closes now.
   */
  close(): void {
    this.#draining = true;
    this.#noMore = true;
    this.#parser.pauseAfterMessage(); // a body being read is read to its end; no request after it
    if (this.#queue.length === 0 && !this.#closed) this.#end();
  }

  destroy(): void {
    this.#uncork(); // a response written whole this turn still leaves
    this.socket.destroy();
  }

  /** Our side ends, after what this turn wrote. */
  #end(): void {
    this.#releaseText();
    this.socket.end();
  }

  /**
   * An interim response (InterimSender): only for the request being answered, before any of its answer, and never
   * to an HTTP/1.0 client (RFC 9110 §15.2).
   */
  interim(streamId: number, status: number, headers: HeaderList, reason: string): boolean {
    const p = this.#queue[0];
    if (
      !p ||
      p.req === null ||
      p.req.streamId !== streamId ||
      p.ready ||
      this.#writing ||
      this.#closed ||
      p.head.minor === 0
    )
      return false;
    this.#releaseText();
    this.socket.write(this.#heads.interim(status, headers, reason), 'latin1');
    return true;
  }

  // ---- reading ----

  #onData = (d: Buffer): void => {
    // Nothing more is read after a refusal or Connection: close; after an upgrade's head the bytes are held for the
    // tunnel.
    if (this.#noMore && !this.#reading && !this.#upgrading) return;
    let rest: Buffer | null;
    this.#parsing = true;
    try {
      rest = this.#parser.execute(d);
    } catch (e) {
      this.#refuse(e);
      return;
    } finally {
      this.#parsing = false;
    }
    if (rest && rest.length) {
      this.#held = this.#held ? Buffer.concat([this.#held, rest]) : rest;
      this.socket.pause();
    }
  };

  #onHead(head: H1RequestHead): void {
    this.#clearTimer();
    const id = ++this.#seq;
    const p: Pending = {
      head,
      req: null,
      body: null,
      res: null,
      failed: false,
      ready: false,
      started: false,
      refused: false,
      abort: new RequestAbort(),
      bodyDone: head.framing === 'none',
      close: !head.keepAlive || this.#draining,
      received: 0,
      continued: !head.expectContinue,
      bodyWanted: false,
      afterLeft: -1,
    };
    if (head.framing !== 'none') {
      p.body = new PushBody(
        () => this.#resumeBody(),
        () => this.#pauseBody(),
      );
      // RFC 9110 §10.1.1: 100 Continue when the body is wanted — not before the request is routed and its limits
      // checked: a 413 or 404 went out after our 100, and the client sent the body for nothing (nginx waits too).
      if (head.expectContinue) p.body.onFirstRead = () => this.#continue(p);
    }
    this.#queue.push(p);
    this.#reading = head.framing === 'none' ? null : p;
    if (p.close) this.#noMore = true;
    if (head.upgrade !== null) {
      this.#noMore = true; // what follows belongs to the new protocol, or the connection closes
      this.#upgrading = true;
    }
    if (this.#queue.length >= MAX_PIPELINE) this.#parser.pauseAfterMessage();
    let path = head.target;
    if (head.form === 'absolute') {
      const i = path.indexOf('/', path.indexOf('//') + 2);
      path = i < 0 ? '/' : path.slice(i);
    }
    // A request without a body: an empty, ended stream made only when a handler asks for it (nothing of the
    // connection's to abort in it later, so it is not kept here: no closure per request).
    const body = p.body ?? endedBody;
    const req = new ServedRequest(
      head.method,
      path,
      head.authority,
      this.#scheme,
      head.headers,
      body,
      id,
      this.#peerAddress,
      this.#peerPort,
      head.minor === 0 ? '1.0' : '1.1',
      this,
      head.framing === 'none' ? 0 : head.contentLength,
      head.upgrade,
      p.abort,
    );
    p.req = req;
    if (this.#queue.length === 1 || this.#mayStart(this.#queue.length - 1)) this.#start(p);
  }

  /**
   * RFC 9112 §9.3.2: pipelined requests may be processed in parallel only if they all have safe methods. The
   * request at `i` (not the first) starts now when it is safe and every one before it is safe and started.
   */
  #mayStart(i: number): boolean {
    const q = this.#queue;
    if (!isSafeMethod(q[i]!.head.method)) return false;
    for (let j = 0; j < i; j++) if (!q[j]!.started || q[j]!.close || !isSafeMethod(q[j]!.head.method)) return false;
    return true;
  }

  /** Call the handler of a queued request. */
  #start(p: Pending): void {
    p.started = true;
    let r: ServerResponse | Promise<ServerResponse>;
    try {
      r = this.#opts.handler(p.req as ServerRequest);
    } catch (e) {
      this.#answered(p, null, e);
      return;
    }
    if (r instanceof Promise)
      r.then(
        (res) => this.#answered(p, res, null),
        (e) => this.#answered(p, null, e),
      );
    else this.#answered(p, r, null);
  }

  /** The handler of `p` wants its body: the 100 Continue its client waits for, once `p` is the one being answered. */
  #continue(p: Pending): void {
    p.bodyWanted = true;
    if (p.continued || p.ready || p.bodyDone || this.#queue[0] !== p) return;
    this.#releaseText();
    this.socket.write('HTTP/1.1 100 Continue\r\n\r\n');
    p.continued = true;
  }

  /** The front of the queue moved on: start the requests that waited for it; the first one's 100 Continue is due. */
  #startWaiting(): void {
    const q = this.#queue;
    const first = q[0];
    if (!first) return;
    if (first.bodyWanted) this.#continue(first);
    for (let i = 0; i < q.length; i++) {
      if (q[i]!.started) continue;
      if (i > 0 && !this.#mayStart(i)) return;
      this.#start(q[i]!);
    }
  }

  #onBody(c: Buffer): void {
    const p = this.#reading;
    if (!p) return;
    p.received += c.length;
    if (p.afterLeft < 0) {
      p.body?.deliver(c, false);
      return;
    }
    if ((p.afterLeft -= c.length) < 0) {
      this.#noMore = true; // more than the bound after the answer: stop here (the response goes out first)
      this.destroy();
      return;
    }
    // After the answer: to a reader still at it (an origin request finishing its body), else dropped.
    if (p.body && !p.body.destroyed) p.body.deliver(c, false);
  }

  #onComplete(): void {
    const p = this.#reading;
    if (p) {
      p.bodyDone = true;
      p.body?.deliver(EMPTY, true);
      this.#reading = null;
      // The rest of an answered request's body is in: the connection waits for the next request.
      if (p.afterLeft >= 0 && this.#queue.length === 0) this.#arm(this.#opts.keepAliveTimeoutMs ?? 5000);
    }
    // A body that ended while its reader held the socket paused never asks to resume (an ended Readable is not
    // read again): the bytes after it are the next request's, which was never read — a keep-alive connection
    // hung after its first large upload.
    this.#resumeBody();
  }

  #pauseBody(): void {
    this.#bodyPaused = true;
    this.socket.pause();
  }

  #resumeBody(): void {
    if (!this.#bodyPaused) return;
    this.#bodyPaused = false;
    if (!this.#held) this.socket.resume();
  }

  /** The pipeline has room again: parse what was held, then read on. */
  #resumeParsing(): void {
    if (this.#noMore || this.#closed || this.#queue.length >= MAX_PIPELINE) return;
    this.#parser.resume();
    const held = this.#held;
    this.#held = null;
    if (held) this.#onData(held);
    if (!this.#held && !this.#bodyPaused) this.socket.resume();
  }

  #onEnd(): void {
    // The client's FIN (see the file's note): Node ends our side now (allowHalfOpen is off), and the socket's
    // 'close' aborts what is in flight. A body cut short is failed here already, with why.
    if (this.#parser.eof() === 'truncated' && this.#reading) {
      const err = new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'remote', 'client closed mid-request');
      this.#reading.abort.abort(err);
      if (this.#reading.body) abortBody(this.#reading.body, err);
    }
    this.#noMore = true;
  }

  #refuse(e: unknown): void {
    const pe = e instanceof H1ParseError ? e : new H1ParseError('malformed', String(e));
    const status =
      pe.kind === 'too-large'
        ? 431
        : pe.kind === 'target-too-long'
          ? 414
          : pe.kind === 'unsupported'
            ? 501
            : pe.kind === 'version'
              ? 505
              : 400;
    this.#noMore = true;
    this.#clearTimer();
    // The parser's refusal, counted and logged by the listener, whether or not a handler had the request's head:
    // a body that breaks its framing is a smuggling shape as much as a head that does.
    this.#opts.onError?.(pe);
    const refusal: ServerResponse = {
      status,
      // The typed error every refusal of the connector carries (docs/config.md, "Errors sent by the connector").
      headers: [
        ['content-type', 'text/plain; charset=utf-8'],
        ['x-originlink-error', REFUSAL_CODES[status] ?? 'bad_request'],
      ],
      body: `${status} ${reasonPhrase(status)}: ${pe.message}\n`,
    };
    const r = this.#reading;
    if (r) {
      // The body being read broke its framing, after its head went to a handler: that request gets one answer
      // (RFC 9112 §9.3.2 — a second would be taken for the next request's), and the connection ends after it.
      this.#reading = null;
      // Its handler hears why (the forwarder logs the 400 the client gets, not a client that went away).
      const err = new OriginlinkError(ErrorCode.MALFORMED_RESPONSE, 'remote', `malformed request body: ${pe.message}`, {
        details: { status, malformedBody: true },
      });
      r.abort.abort(err);
      if (r.body) abortBody(r.body, err);
      r.close = true;
      const at = this.#queue.indexOf(r);
      if (at < 0) {
        // Answered already (the rest of its body was being read): nothing more to say.
        if (this.#queue.length === 0 && !this.#closed) this.#end();
        return;
      }
      if (at === 0 && this.#writing) return; // its answer is leaving: the connection ends after it
      // Not answered yet, or waiting its turn: the refusal is its answer, whatever its handler gives.
      if (r.res && r.res.body instanceof Readable) r.res.body.destroy();
      r.refused = true;
      r.started = true;
      r.res = refusal;
      r.ready = true;
      if (at === 0) this.#pump();
      return;
    }
    const head = { method: 'GET', minor: 1 } as H1RequestHead;
    this.#queue.push({
      head,
      req: null,
      body: null,
      failed: false,
      ready: true,
      started: true,
      refused: true,
      abort: new RequestAbort(),
      bodyDone: true,
      close: true,
      received: 0,
      continued: true,
      bodyWanted: false,
      afterLeft: -1,
      res: refusal,
    });
    this.#pump();
  }

  // ---- writing ----

  #answered(p: Pending, res: ServerResponse | null, err: unknown): void {
    if (p.refused) {
      // Refused meanwhile (see #refuse): the handler's answer goes nowhere.
      if (res && res.body instanceof Readable) res.body.destroy();
      return;
    }
    if (err !== null) {
      this.#opts.onError?.(err);
      p.failed = true;
      res = { status: 500, headers: [], body: '' };
    }
    p.res = res;
    p.ready = true;
    if (res?.close === true && !p.close) {
      // RFC 9112 §9.6: no request after one whose response closes the connection is processed — not even a safe one
      // pipelined behind it in the same read, which would otherwise start before this answer is written.
      p.close = true;
      this.#noMore = true;
      this.#parser.pauseAfterMessage();
    }
    if (p === this.#queue[0]) this.#pump();
  }

  /** Write the responses at the front of the queue that are ready, in order. */
  #pump(): void {
    while (!this.#writing && !this.#closed) {
      const p = this.#queue[0];
      if (!p || !p.ready) return;
      this.#writing = true;
      let r: boolean | Promise<boolean>;
      try {
        r = this.#write(p);
      } catch (e) {
        this.#opts.onError?.(e);
        this.#finished(p, false);
        return;
      }
      // #finished pumps the next response itself. A handler that answered while its head was being parsed
      // is finished after the parser's turn (the rest of the read — its body, the next heads — parsed first).
      if (typeof r === 'boolean') {
        if (this.#parsing) queueMicrotask(() => this.#finished(p, r));
        else this.#finished(p, r);
      } else
        r.then(
          (keep) => this.#finished(p, keep),
          (e) => {
            this.#opts.onError?.(e);
            this.#finished(p, false);
          },
        );
      return;
    }
  }

  #finished(p: Pending, keep: boolean): void {
    this.#writing = false;
    this.#queue.shift();
    if (!p.bodyDone && this.#reading === p) {
      // Answered before its body was read. A bounded rest the client is sending is still read (the parser frames
      // it, so none of it is taken for a request): to the handler's reader if it is still at it — a forwarded
      // request whose HTTP/1.1 origin needs the whole body to keep its connection — else dropped. Else the
      // connection ends.
      const left = p.head.framing === 'length' ? (p.head.contentLength ?? 0) - p.received : DISCARD_MAX_BYTES;
      if (keep && !p.close && !this.#draining && p.continued && left <= DISCARD_MAX_BYTES) {
        p.afterLeft = left;
        if (p.body && !hasReader(p.body)) abortBody(p.body);
        // A reader that lets go later may leave the socket paused behind it: the rest is then dropped.
        else p.body?.once('close', () => this.#resumeBody());
        this.#resumeBody(); // a reader that was behind may have paused the socket
      } else {
        keep = false;
        if (p.body) abortBody(p.body);
      }
    }
    if (!keep || p.close || (this.#draining && this.#queue.length === 0)) {
      // RFC 9112 §9.6: no request after one whose response closes the connection is processed; those already
      // handed to a handler (safe ones, pipelined) are aborted, unanswered.
      this.#noMore = true;
      this.#abortQueued(
        () =>
          new OriginlinkError(
            ErrorCode.SOCKET_CLOSED,
            'local',
            'connection closed before this pipelined request was answered',
          ),
      );
      if (!this.#closed) this.#end();
      return;
    }
    if (this.#queue.length === 0)
      this.#arm(this.#parser.idle ? (this.#opts.keepAliveTimeoutMs ?? 5000) : (this.#opts.headersTimeoutMs ?? 10_000));
    else this.#startWaiting();
    this.#resumeParsing();
    this.#pump();
  }

  /**
   * Write one response: whether the connection can carry another — at once
   * for a body given whole (the common case: no promise per response), or
   * once a streamed one is over.
   */
  #write(p: Pending): boolean | Promise<boolean> {
    const res = p.res as ServerResponse;
    const head = p.head;
    const status = res.status;
    const noBody = head.method === 'HEAD' || status < 200 || status === 204 || status === 304;
    if (status === 101) return this.#upgrade(p, res);
    // Draining: the last response in the queue says the connection closes after it.
    const close =
      p.close || head.upgrade !== null || res.close === true || (this.#draining && this.#queue.length === 1);
    const text = this.#heads.head(status, res.headers, res.checked === true);
    const declared = this.#heads.declared;
    const body = res.body ?? null;
    if (body instanceof Readable) return this.#writeStreamed(p, res, text, body, noBody, declared, close);
    this.#writeWhole(
      head.minor,
      res.trailers ?? null,
      text,
      bodyBytes(body as string | Uint8Array | null),
      noBody ? status : 0,
      declared,
      close,
    );
    return !close;
  }

  /**
   * A response whose body is all here: its head and bytes in one write where they fit. `bodiless`: the status of a
   * response that has no body (HEAD, 1xx, 204, 304), else 0.
   */
  #writeWhole(
    minor: number,
    trailers: HeaderList | null,
    text: string,
    bytes: Buffer,
    bodiless: number,
    declared: string | null,
    close: boolean,
  ): void {
    const s = this.socket;
    text += connectionLine(minor, close);
    if (trailers && trailers.length && minor === 1 && bodiless === 0) {
      this.#holdWrites();
      // RFC 9112 §7.1.2: trailers travel only in the chunked coding: the bytes as one chunk, then the trailer section.
      s.write(`${text}transfer-encoding: chunked${CRLF}${CRLF}`, 'latin1');
      if (bytes.length) {
        s.write(`${bytes.length.toString(16)}${CRLF}`, 'latin1');
        s.write(bytes);
        s.write(CRLF, 'latin1');
      }
      s.write(trailerBlock(trailers));
      return;
    }
    text +=
      bodiless !== 0
        ? `${bodilessLength(bodiless, declared, bytes.length)}${CRLF}`
        : `content-length: ${bytes.length}${CRLF}${CRLF}`;
    if (bodiless !== 0 || bytes.length === 0) this.#holdText(text);
    else if (text.length + bytes.length <= ONE_WRITE_MAX) {
      // Head and a small body in one write, as one latin1 string (each byte one character, so the bytes leave as they
      // are): Node writes a string of up to 16 KiB from a buffer on its native stack, so the response costs no Buffer
      // of ours (a pooled slice and the copy of the head into it cost more than the body's string).
      this.#holdText(text + bytes.toString('latin1'));
    } else {
      this.#holdWrites();
      s.write(text, 'latin1');
      s.write(bytes);
    }
  }

  /**
   * `text` (latin1) leaves at the turn's end, with the session's other responses of the turn in one write
   * (util/turn-end.ts): the responses answered in one poll phase leave together after its reads, the client woken once
   * for them. Held as a string of ours, not behind Node's cork, which costs a buffered entry and its array a write.
   */
  #holdText(text: string): void {
    if (this.#corked) {
      this.socket.write(text, 'latin1'); // in order behind the turn's corked writes
      return;
    }
    if (this.#text === null) {
      this.#text = text;
      atTurnEnd(this.#uncorker);
    } else this.#text += text;
  }

  /** The text held this turn leaves now: a write that comes after it and is not held goes behind it. */
  #releaseText(): void {
    const t = this.#text;
    if (t === null) return;
    this.#text = null;
    if (this.socket.writable) this.socket.write(t, 'latin1');
  }

  /**
   * What this session writes from now until the turn's end waits for it behind Node's cork, which keeps every write in
   * order behind it (an interim response, a relayed body, `end()`, which uncorks); the text held before it goes first.
   */
  #holdWrites(): void {
    if (this.#corked) return;
    const asked = this.#text !== null; // the turn's end is asked for already
    this.#releaseText();
    this.#corked = true;
    this.socket.cork();
    if (!asked) atTurnEnd(this.#uncorker);
  }

  /** The turn's end (or an end before it): what was held leaves. */
  #uncork(): void {
    this.#releaseText();
    if (!this.#corked) return;
    this.#corked = false;
    this.socket.uncork();
  }

  /** A response with a body stream: relayed with backpressure (or, when it already arrived whole, written as bytes). */
  async #writeStreamed(
    p: Pending,
    res: ServerResponse,
    text: string,
    body: Readable,
    noBody: boolean,
    declared: string | null,
    close: boolean,
  ): Promise<boolean> {
    const head = p.head;
    const s = this.socket;
    if (!noBody) {
      // A relayed body that already arrived whole (a small response): one write with its length, no chunking.
      const whole = await wholeBody(body, res.trailersLater);
      if (whole) {
        this.#writeWhole(head.minor, null, text, whole, 0, declared, close);
        return !close;
      }
    }
    if (noBody) {
      this.#releaseText();
      s.write(`${text}${connectionLine(head.minor, close)}${bodilessLength(res.status, declared, 0)}${CRLF}`, 'latin1');
      body.destroy();
      return !close;
    }
    const length = declared !== null && CONTENT_LENGTH_RE.test(declared) ? Number(declared) : null;
    const chunked = length === null && head.minor === 1;
    // HTTP/1.0 without a length: the body ends with the connection, which says so.
    text += connectionLine(head.minor, close || (length === null && !chunked));
    if (length !== null) text += `content-length: ${length}${CRLF}`;
    else if (chunked) text += `transfer-encoding: chunked${CRLF}`;
    const sent = await this.#relay(`${text}${CRLF}`, body, chunked);
    if (sent === null) return false; // the body failed or the client went: the response is cut short, the connection ends
    if (length !== null && sent !== length) return false; // the body did not match its declared length
    if (chunked) {
      const trailers = res.trailersLater ? await res.trailersLater.catch(() => null) : (res.trailers ?? null);
      if (this.#closed) return false;
      this.#releaseText();
      s.write(trailers && trailers.length ? trailerBlock(trailers) : CHUNKED_END);
    }
    // HTTP/1.0 without a length: the body ends with the connection.
    return !close && (length !== null || chunked);
  }

  /**
   * Stream a body to the socket with backpressure; resolves the bytes sent, or null when it failed.
   * What arrives in one event-loop turn leaves in one write at its end (a writev, no copy): an origin
   * read of 64 KiB holds several TLS records and, over h2, several DATA frames (nginx sends 8 KiB
   * ones), which were a write each — 19 per 100 KiB response, ~7 now. The head goes with the
   * turn's first bytes.
   */
  async #relay(head: string, body: Readable, chunked: boolean): Promise<number | null> {
    const s = this.socket;
    const sendTimeout = this.#opts.sendTimeoutMs ?? 60_000;
    let queued: Buffer[] = [];
    let queuedBytes = 0;
    let sent = 0;
    let scheduled = false;
    let headOut = false;
    /** The relay waits for room: resolved after this turn's write, or at 'drain' when the socket is past its mark. */
    let waiting: ((ok: boolean) => void) | null = null;
    let stall: NodeJS.Timeout | null = null;
    const blocked = (): boolean => s.writableLength >= s.writableHighWaterMark;
    const wake = (ok: boolean): void => {
      if (stall) {
        clearTimeout(stall);
        stall = null;
      }
      const w = waiting;
      waiting = null;
      w?.(ok);
    };
    const write = (): void => {
      scheduled = false;
      if (s.destroyed) return;
      const n = queued.length;
      if (n > 0 || !headOut) {
        this.#releaseText();
        s.cork();
        if (!headOut) {
          headOut = true;
          s.write(head, 'latin1');
        }
        if (n > 0) {
          if (chunked) s.write(`${queuedBytes.toString(16)}\r\n`, 'latin1');
          for (let i = 0; i < n; i++) s.write(queued[i]!);
          if (chunked) s.write(CRLF, 'latin1');
          queued = [];
          queuedBytes = 0;
        }
        s.uncork();
      }
      // What the kernel did not take waits in the socket: past its mark the relay waits for 'drain'.
      if (waiting) {
        if (!blocked()) wake(true);
        else armStall();
      }
    };
    // The client reads nothing: after sendTimeoutMs it is cut, which ends the origin's body too (nginx's send_timeout;
    // the socket's 'close' aborts the request first, so the log says the client went: 499).
    const armStall = (): void => {
      if (sendTimeout > 0) stall ??= setTimeout(() => s.destroy(), sendTimeout);
    };
    const onDrain = (): void => {
      if (waiting) wake(true);
    };
    const onSocketClose = (): void => {
      wake(false);
      body.destroy();
    };
    scheduled = true;
    setImmediate(write);
    s.on('drain', onDrain);
    s.on('close', onSocketClose);
    try {
      const how = await relayBody(
        body,
        {
          write: (b) => {
            if (b.length === 0) return true;
            sent += b.length;
            queued.push(b);
            queuedBytes += b.length;
            if (!scheduled) {
              scheduled = true;
              setImmediate(write);
            }
            // A body that gives more in one turn than a turn's write holds (a local stream reads ahead at once) waits
            // for that write.
            return queuedBytes < TURN_MAX_BYTES && !blocked();
          },
          room: () =>
            new Promise<boolean>((resolve) => {
              waiting = resolve;
              if (blocked()) armStall();
            }),
        },
        NEVER_GONE,
      );
      return how === 'end' ? sent : null;
    } catch {
      return null;
    } finally {
      // What arrived leaves now, before what follows it (the last chunk, the next response, the end).
      write();
      wake(false);
      s.off('drain', onDrain);
      s.off('close', onSocketClose);
    }
  }

  /** 101: the head, then the socket belongs to the tunnel (bytes read past the request head first). */
  async #upgrade(p: Pending, res: ServerResponse): Promise<boolean> {
    if (p.head.upgrade === null || !res.tunnel) throw new TypeError('101 without an upgrade request and a tunnel');
    const s = this.socket;
    this.#releaseText();
    s.write(this.#heads.switching(res.headers), 'latin1');
    // Hand over: our listeners go, the bytes we hold go back in front.
    this.#timer.stop();
    this.#reads.release();
    s.removeAllListeners('end');
    const held = this.#held;
    this.#held = null;
    this.#closed = true;
    this.#queue.length = 0;
    if (held) s.unshift(held);
    res.tunnel(s);
    s.resume();
    this.#onClose?.();
    return false;
  }

  // ---- lifetime ----

  #arm(ms: number): void {
    if (ms <= 0 || this.#closed) this.#timer.clear();
    else this.#timer.set(ms);
  }

  #clearTimer(): void {
    this.#timer.clear();
  }

  /**
   * The connection is over: requests still open are aborted with `why()` (made only when there is one: an error's stack
   * costs ~15 µs).
   */
  #gone(why: () => Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#timer.stop();
    const err = this.#abortQueued(why);
    // An answered request whose body a reader was still taking: that body cannot end now.
    const r = this.#reading;
    if (r && r.afterLeft >= 0 && r.body) abortBody(r.body, err ?? why());
    this.#onClose?.();
  }

  /**
   * The requests still queued get no answer: each is aborted with `why()` (made only when there is one: an error's
   * stack costs ~15 µs).
   */
  #abortQueued(why: () => Error): Error | null {
    let err: Error | null = null;
    for (const p of this.#queue) {
      err ??= why();
      p.abort.abort(err);
      if (p.body) abortBody(p.body, err);
      if (this.#reading === p) this.#reading = null;
    }
    this.#queue.length = 0;
    return err;
  }
}

/**
 * A response up to this size (head and body) leaves in one write of one string (Node's stack buffer for a string
 * write is 16 KiB: src/stream_base.cc); a larger body as a second chunk of one writev.
 */
const ONE_WRITE_MAX = 16 * 1024;

/**
 * A streamed body already whole (util/body.ts `bufferedWhole`) with no trailers to follow: its bytes; else null, the
 * body untouched.
 */
async function wholeBody(
  body: Readable,
  trailersLater: Promise<HeaderList | null> | undefined,
): Promise<Buffer | null> {
  if (!isBufferedWhole(body)) return null;
  if (trailersLater) {
    const t = await trailersLater.catch(() => null);
    if (t && t.length) return null;
  }
  return bufferedWhole(body);
}

export interface H1ServerOptions extends H1SessionOptions, ListenOptions {}
export type H1Server = SessionServer;

/** Our HTTP/1.1 server on a port (TLS with ALPN http/1.1 when given a certificate). */
export function startH1Server(opts: H1ServerOptions): Promise<H1Server> {
  return listenSessions(opts, ['http/1.1'], (socket, scheme) => new H1ServerSession(socket, opts, scheme));
}
