/**
 * Our HTTP/2 server: the sans-IO H2Connection (server role) over a TCP or
 * TLS socket, calling a handler per request (request.ts, the same
 * shape as our HTTP/3 server). Used by the demo origins and the service's
 * `https` (ALPN h2) and `h2c` fronts; the flood protections are the
 * connection's (src/h2/floods.ts).
 *
 * Per turn, what the state machine produced leaves in one corked write.
 * Request bodies hold at most one stream window: credit goes back as the
 * handler reads. Response bodies wait for send credit (backpressure from
 * the client's window) without buffering more than WRITE_HIGH_WATER.
 */
import { verifiedClientCertificate, type ClientCertificate } from './client-certificate.js';
import type net from 'node:net';
import { H2ErrorCode } from '../codec/errors.js';
import { H2Connection } from '../h2/connection.js';
import type { H2Event } from '../h2/types.js';
import type { FloodLimits } from '../http/floods.js';
import { ErrorCode, OriginlinkError } from '../errors.js';
import { bodyBytes, bodyStream, knownLength } from '../http/body.js';
import type { HeaderList, SharedHeaderList } from '../http/types.js';
import { abortBody, hasReader, relayBody, bufferedWhole } from '../util/body.js';
import { endedBody, PushBody } from '../wire/body.js';
import { H2Wire, type H2Flow } from '../wire/h2-wire.js';
import { listenSessions, type ListenOptions, type SessionServer } from './listen.js';
import { readChunks } from '../net/socket-reads.js';
import {
  AFTER_ANSWER_MS,
  bodilessResponse,
  CONTINUE_HEAD,
  DISCARD_MAX_BYTES,
  HANDLER_FAILED_HEAD,
  muxResponseHead,
  readRequestFields,
  wantsContinue,
  clientClosed,
  RequestAbort,
  ServedRequest,
  type RequestHandler,
  type ServerRequest,
  type ServerResponse,
} from './request.js';
import { Duplex, Readable, Writable } from 'node:stream';
import { IdMap } from '../util/id-map.js';

const WRITE_HIGH_WATER = 256 * 1024;
const EMPTY = new Uint8Array(0);

export interface H2SessionOptions {
  handler: RequestHandler;
  /** SETTINGS_MAX_CONCURRENT_STREAMS. Default 100. */
  maxConcurrentStreams?: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE (HPACK cap). Default 64 KiB. */
  maxHeaderListSize?: number;
  /** Receive window per stream. Default 1 MiB. */
  windowSize?: number;
  /** SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441). Default false. */
  enableConnectProtocol?: boolean;
  limits?: Partial<FloodLimits>;
  /** The first request must arrive within this, ms (slowloris guard; 0 = none). Default 10000. */
  firstRequestTimeoutMs?: number;
  /** Close a connection with no open stream for this long, ms (0 = never). Default 120000. */
  idleTimeoutMs?: number;
  /**
   * A response that cannot send for this long (the client reads nothing, or keeps its window shut) is reset, ms (0 =
   * never). Default 60000.
   */
  sendTimeoutMs?: number;
  onError?: (err: unknown) => void;
}

interface Incoming extends H2Flow {
  /** null for a request that ended with its HEADERS (a GET): its handler gets an ended body made when first read. */
  body: PushBody | null;
  abort: RequestAbort;
  responding: boolean;
  /**
   * Answered while its body still came, to a reader still at it: the bytes still allowed (DISCARD_MAX_BYTES); -1: not
   * that.
   */
  afterLeft: number;
}

/** One HTTP/2 connection served on `socket` (TLS with ALPN h2, or cleartext with prior knowledge). */
export class H2ServerSession {
  readonly socket: net.Socket;
  /** The client certificate its TLS handshake verified, read on first ask (undefined: not yet). */
  #clientCert: ClientCertificate | null | undefined = undefined;

  clientCertificate(): ClientCertificate | null {
    if (this.#clientCert === undefined) this.#clientCert = verifiedClientCertificate(this.socket);
    return this.#clientCert;
  }
  #h2: H2Connection;
  #io: H2Wire;
  #opts: H2SessionOptions;
  #scheme: 'https' | 'http';
  /** Requests in flight by stream id (IdMap, not Map: see util/id-map.ts). */
  #streams = new IdMap<Incoming>();
  /** Requests whose head arrived in the read being processed (see #dispatch). */
  #arrived: Array<[number, Incoming, ServerRequest]> = [];
  #writers: Array<() => void> = [];
  #closed = false;
  #onClose: (() => void) | null = null;
  #firstTimer: NodeJS.Timeout | null = null;
  #idleTimer: NodeJS.Timeout | null = null;

  constructor(socket: net.Socket, opts: H2SessionOptions, scheme: 'https' | 'http') {
    this.socket = socket;
    this.#opts = opts;
    this.#scheme = scheme;
    this.#h2 = new H2Connection({
      role: 'server',
      maxConcurrentStreams: opts.maxConcurrentStreams ?? 100,
      maxHeaderListSize: opts.maxHeaderListSize ?? 64 * 1024,
      windowSize: opts.windowSize ?? 1024 * 1024,
      ...(opts.enableConnectProtocol ? { enableConnectProtocol: true } : {}),
      ...(opts.limits ? { limits: opts.limits } : {}),
    });
    this.#io = new H2Wire(this.#h2, socket, () => {
      if (this.#writers.length) for (const w of this.#writers.splice(0)) w();
    });
    this.#h2.on((ev) => this.#onEvent(ev));
    socket.setNoDelay(true);
    readChunks(socket, (d) => {
      this.#h2.receive(d, performance.now());
      this.#dispatch();
      this.#io.flush();
      this.#io.checkOutput();
    });
    socket.on('error', () => {
      /* 'close' follows */
    });
    socket.on('close', () => this.#gone(clientClosed));
    const first = opts.firstRequestTimeoutMs ?? 10_000;
    if (first > 0) {
      this.#firstTimer = setTimeout(() => this.destroy(), first);
      this.#firstTimer.unref();
    }
    this.#io.flush();
  }

  get closed(): boolean {
    return this.#closed;
  }
  get active(): number {
    return this.#streams.size;
  }
  onClose(fn: () => void): void {
    this.#onClose = fn;
  }

  /** Graceful close (RFC 9113 §6.8, two GOAWAYs): open streams finish, then the connection ends. */
  close(): void {
    if (this.#closed) return;
    this.#h2.shutdown();
    this.#io.flush();
  }

  destroy(): void {
    this.#io.flushNow();
    this.socket.destroy();
  }

  #onEvent(ev: H2Event): void {
    switch (ev.type) {
      case 'headers':
        if (ev.trailers) {
          this.#streams.get(ev.streamId)?.body?.deliver(EMPTY, true);
          return;
        }
        this.#request(ev.streamId, ev.headers, ev.endStream, ev.contentLength);
        return;
      case 'data': {
        const s = this.#streams.get(ev.streamId);
        if (!s?.body) return; // DATA after END_STREAM is the connection's error (RFC 9113 §5.1, half-closed remote)
        if (s.afterLeft >= 0 && (s.afterLeft -= ev.data.length) < 0) {
          abortBody(s.body); // past the bound after the answer: the stream ends (#afterAnswer)
          return;
        }
        s.body.deliver(ev.data, ev.endStream);
        this.#io.received(ev.streamId, s, ev.data.length);
        return;
      }
      case 'reset': {
        const s = this.#streams.get(ev.streamId);
        if (!s) return;
        this.#streams.delete(ev.streamId);
        const err = new OriginlinkError(
          ErrorCode.STREAM_RESET,
          'remote',
          `client reset stream ${ev.streamId} (HTTP/2 error code ${ev.code})`,
        );
        s.abort.abort(err);
        if (s.body) abortBody(s.body, err);
        this.#armIdle();
        return;
      }
      case 'writable':
        if (this.#writers.length) for (const w of this.#writers.splice(0)) w();
        return;
      case 'closed':
        // The GOAWAY (and any stream's last frames) leave, then the connection ends.
        this.#io.flushNow();
        if (!this.socket.destroyed) this.socket.end();
        this.#gone(
          () => new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'local', ev.error?.message ?? 'connection closed'),
        );
        return;
      default:
        return;
    }
  }

  #request(id: number, headers: SharedHeaderList, endStream: boolean, declared: number | null): void {
    if (this.#firstTimer) {
      clearTimeout(this.#firstTimer);
      this.#firstTimer = null;
    }
    if (this.#idleTimer) {
      clearTimeout(this.#idleTimer);
      this.#idleTimer = null;
    }
    const { method, path, authority, scheme, protocol, fields } = readRequestFields(headers, this.#scheme);
    const s: Incoming = {
      body: endStream
        ? null
        : new PushBody(
            () => this.#resume(id),
            () => {
              s.paused = true;
            },
          ),
      abort: new RequestAbort(),
      owed: 0,
      paused: false,
      responding: false,
      afterLeft: -1,
    };
    this.#streams.set(id, s);
    // RFC 9110 §10.1.1: 100 Continue once the handler wants the body, not before it routed and checked the request
    // (a refusal needs none; the client sent its body for nothing after our 100). Not once the answer started.
    if (s.body && wantsContinue(fields)) {
      s.body.onFirstRead = () => {
        if (s.responding || this.#streams.get(id) !== s) return;
        this.#h2.respond(id, CONTINUE_HEAD, false);
        this.#io.flush();
      };
    }
    const req = new ServedRequest(
      method,
      path,
      authority,
      scheme,
      fields,
      s.body ?? endedBody,
      id,
      this.socket.remoteAddress ?? '',
      this.socket.remotePort ?? 0,
      '2',
      this,
      endStream ? 0 : declared,
      protocol,
      s.abort,
    );
    this.#arrived.push([id, s, req]);
  }

  /**
   * Handlers run once the bytes of a read are processed, not at each HEADERS:
   * a stream opened and reset in the same read (rapid reset, CVE-2023-44487)
   * never reaches the handler, so it costs the origin nothing.
   */
  #dispatch(): void {
    if (this.#arrived.length === 0) return;
    const list = this.#arrived;
    this.#arrived = [];
    for (const [id, s, req] of list) if (this.#streams.get(id) === s) void this.#respond(id, s, req);
  }

  /** An interim response (InterimSender) on a stream whose answer has not started. */
  interim(id: number, status: number, headers: HeaderList): boolean {
    const s = this.#streams.get(id);
    if (!s || s.responding || this.#closed) return false;
    try {
      this.#h2.respond(id, [[':status', String(status)], ...headers], false);
    } catch {
      return false; // a field HTTP/2 forbids (RFC 9113 §8.2.2)
    }
    this.#io.flush();
    return true;
  }

  async #respond(id: number, s: Incoming, req: ServerRequest): Promise<void> {
    const gone = (): boolean => this.#closed || this.#streams.get(id) !== s;
    try {
      const res: ServerResponse = await this.#opts.handler(req);
      if (gone()) return;
      s.responding = true;
      if (res.tunnel && req.protocol !== null && res.status >= 200 && res.status < 300)
        return await this.#tunnel(id, s, res);
      const head = muxResponseHead(res.status, res.headers);
      const body = bodilessResponse(req.method, res.status) ? null : (res.body ?? null);
      const trailers = res.trailers && res.trailers.length ? res.trailers : null;
      const len = body instanceof Readable ? null : knownLength(body);
      if (len === 0 && !trailers) {
        this.#h2.respond(id, head, true);
      } else {
        this.#h2.respond(id, head, false);
        if (len !== null) {
          this.#h2.data(id, bodyBytes(body as string | Uint8Array | null), !trailers);
        } else {
          // A relayed body already whole goes out as one DATA frame, without iterating the stream.
          const whole = body instanceof Readable ? bufferedWhole(body) : null;
          if (whole !== null && whole.length > 0) this.#h2.data(id, whole, false);
          if (whole === null) {
            const how = await this.#relay(id, bodyStream(body), gone);
            if (how === 'stalled') return this.#stalled(id, s);
            if (how === 'gone') return;
          }
          if (gone()) return;
          const later = res.trailersLater ? await res.trailersLater : null;
          if (gone()) return;
          if (later && later.length) this.#h2.trailers(id, later);
          else if (!trailers) this.#h2.data(id, EMPTY, true);
        }
        if (trailers) this.#h2.trailers(id, trailers);
      }
      this.#io.flush();
      this.#done(id, s);
    } catch (e) {
      this.#opts.onError?.(e);
      if (gone()) {
        /* the stream or connection went first */
      } else if (!s.responding) this.#h2.respond(id, HANDLER_FAILED_HEAD, true);
      else this.#h2.reset(id, H2ErrorCode.CANCEL);
      this.#io.flush();
      this.#done(id, s);
    }
  }

  /** The client took nothing for sendTimeoutMs: its stream ends, and with it the origin's body. */
  #stalled(id: number, s: Incoming): void {
    this.#h2.reset(id, H2ErrorCode.CANCEL);
    this.#io.flush();
    s.abort.abort(
      new OriginlinkError(
        ErrorCode.BODY_TIMEOUT,
        'remote',
        `client took no response bytes for ${this.#opts.sendTimeoutMs ?? 60_000} ms`,
      ),
    );
    this.#done(id, s);
  }

  /**
   * Relay a body stream as DATA: each chunk framed as it comes (the frames of a turn leave in the
   * turn's one write, H2Wire), the stream paused while more than WRITE_HIGH_WATER waits for the
   * client's window or the socket.
   */
  #relay(id: number, body: Readable, gone: () => boolean): Promise<'end' | 'gone' | 'stalled'> {
    return relayBody(
      body,
      {
        write: (c) => {
          this.#h2.data(id, c, false);
          this.#io.flush();
          return this.#h2.pending(id) <= WRITE_HIGH_WATER && !this.#io.congested;
        },
        room: () => this.#sendable(id, gone),
      },
      gone,
    );
  }

  /** Wait until the stream's queued bytes fall below the high-water mark; false when none left for sendTimeoutMs. */
  async #sendable(id: number, gone: () => boolean): Promise<boolean> {
    const limit = this.#opts.sendTimeoutMs ?? 60_000;
    let since = performance.now();
    let last = this.#h2.pending(id);
    let drains = this.#io.drains;
    while (!gone() && (this.#h2.pending(id) > WRITE_HIGH_WATER || this.#io.congested)) {
      const timer =
        limit > 0
          ? setTimeout(
              () => {
                for (const w of this.#writers.splice(0)) w();
              },
              Math.max(1, limit - (performance.now() - since)),
            )
          : null;
      await new Promise<void>((r) => this.#writers.push(r));
      if (timer) clearTimeout(timer);
      // Progress: the stream's queue shrank, or — while the socket, not this stream's window, held it back — the
      // socket took what it held. (A stream whose own window stays shut makes no progress however much other
      // streams drain the socket: sendTimeoutMs still ends it.)
      const now = this.#h2.pending(id);
      if (now < last || (this.#io.drains !== drains && now <= WRITE_HIGH_WATER)) {
        since = performance.now();
        last = now;
      }
      drains = this.#io.drains;
      if (limit > 0 && performance.now() - since >= limit) return false;
    }
    return true;
  }

  /**
   * Extended CONNECT (RFC 8441 §4): after a 2xx head the stream carries the
   * tunnel's bytes both ways until either side ends it; DATA in, DATA out,
   * flow control as for any stream.
   */
  async #tunnel(id: number, s: Incoming, res: ServerResponse): Promise<void> {
    const head: HeaderList = [[':status', String(res.status)]];
    for (const [n, v] of res.headers ?? []) head.push([n.toLowerCase(), v]);
    this.#h2.respond(id, head, false);
    this.#io.flush();
    const gone = (): boolean => this.#closed || this.#streams.get(id) !== s;
    const out = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        if (gone()) return cb(new OriginlinkError(ErrorCode.STREAM_RESET, 'remote', 'tunnel stream closed'));
        this.#h2.data(id, chunk, false);
        this.#io.flush();
        if (this.#h2.pending(id) > WRITE_HIGH_WATER || this.#io.congested) this.#writers.push(() => cb());
        else cb();
      },
      final: (cb) => {
        if (!gone()) {
          this.#h2.data(id, EMPTY, true);
          this.#io.flush();
        }
        cb();
      },
      destroy: (err, cb) => {
        if (err && !gone()) {
          this.#h2.reset(id, H2ErrorCode.CANCEL);
          this.#io.flush();
        }
        cb(err);
      },
    });
    const duplex = Duplex.from({ readable: s.body ?? endedBody(), writable: out });
    await new Promise<void>((resolve) => {
      duplex.on('close', () => resolve());
      duplex.on('error', () => {
        /* ends in 'close' */
      });
      s.abort.onAbort(() => duplex.destroy());
      res.tunnel!(duplex);
    });
    this.#done(id, s);
  }

  #done(id: number, s: Incoming): void {
    if (this.#streams.get(id) !== s) return;
    const b = s.body;
    if (b && hasReader(b) && s.afterLeft < 0) {
      this.#afterAnswer(id, s, b);
      return;
    }
    this.#streams.delete(id);
    // Unread request body: the stream is over for us; its credit went back with the stream (h2/connection.ts).
    if (s.body && !s.body.readableEnded) abortBody(s.body);
    // A complete response before the request's end (an early 401/405/413): once it has left, RST_STREAM(NO_ERROR)
    // asks the client to stop sending the rest (RFC 9113 §8.1; nginx does the same).
    this.#h2.stopReading(id);
    this.#io.flush();
    this.#armIdle();
  }

  /**
   * Answered while the request body still comes, and a reader is still at it — a forwarded request whose
   * HTTP/1.1 origin needs the whole body to keep its connection (HTTP/1.1 cannot cancel one request): the rest goes
   * to it, up to DISCARD_MAX_BYTES and AFTER_ANSWER_MS, and the stream ends with the body. A reader that lets go
   * (or a bound passed) ends it as #done does: RST_STREAM(NO_ERROR) once the answer has left.
   */
  #afterAnswer(id: number, s: Incoming, body: PushBody): void {
    s.afterLeft = DISCARD_MAX_BYTES;
    const timer = setTimeout(() => abortBody(body), AFTER_ANSWER_MS);
    timer.unref();
    const over = (): void => {
      clearTimeout(timer);
      body.off('end', over);
      body.off('close', over);
      this.#done(id, s);
    };
    body.once('end', over);
    body.once('close', over);
  }

  #armIdle(): void {
    const ms = this.#opts.idleTimeoutMs ?? 120_000;
    if (ms <= 0 || this.#streams.size > 0 || this.#closed) return;
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => this.close(), ms);
    this.#idleTimer.unref();
  }

  #resume(id: number): void {
    const s = this.#streams.get(id);
    if (!s) return;
    s.paused = false;
    if (s.owed > 0) {
      this.#h2.consumed(id, s.owed);
      s.owed = 0;
      this.#io.flush();
    }
  }

  /**
   * The connection is over: requests still open are aborted with `why()` (made only when there is one: an error's stack
   * costs ~15 µs).
   */
  #gone(why: () => Error): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#firstTimer) clearTimeout(this.#firstTimer);
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    let err: Error | null = null;
    for (const s of this.#streams.values()) {
      err ??= why();
      s.abort.abort(err);
      if (s.body) abortBody(s.body, err);
    }
    this.#streams.clear();
    for (const w of this.#writers.splice(0)) w();
    this.#io.flushNow();
    this.#onClose?.();
  }
}

export interface H2ServerOptions extends H2SessionOptions, ListenOptions {}
export type H2Server = SessionServer;

/**
 * Our HTTP/2 server on a port: TLS with ALPN h2 when given a certificate, else cleartext with prior knowledge (h2c).
 */
export function startH2Server(opts: H2ServerOptions): Promise<H2Server> {
  return listenSessions(opts, ['h2'], (socket, scheme) => new H2ServerSession(socket, opts, scheme));
}
