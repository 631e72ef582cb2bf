/**
 * HTTP/1.1 over one TCP/TLS socket: one request at a time (exclusive
 * reservation), keep-alive between them. The wire format lives in src/h1;
 * this file owns the socket, the timers and the request lifecycle.
 */
import type net from 'node:net';
import { Readable } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { ErrorCode, OriginlinkError, toOriginlinkError } from '../errors.js';
import { H1ParseError, H1ResponseParser, type H1Head } from '../h1/parser.js';
import { serializeRequestHead } from '../h1/request.js';
import type { ConnEvent, ConnRequest, ConnResponse, ConnState, ConnectionFacts, HeaderList, PooledConnection } from '../http/types.js';
import { abortBody, waitDrain } from '../util/body.js';
import { bodyChunks, knownLength } from '../http/body.js';
import { chunkedFrame, CHUNKED_END } from '../h1/chunked.js';

export interface H1Options {
  maxHeaderBytes: number;
  maxHeaderCount: number;
  /** Time allowed from the end of the request to the response head. */
  headersTimeoutMs: number;
  /** Longest silence allowed while a response body is arriving. */
  bodyTimeoutMs: number;
}

interface InFlight {
  req: ConnRequest;
  resolve: (r: ConnResponse) => void;
  reject: (e: Error) => void;
  body: Readable | null;
  trailers: HeaderList;
  resolveTrailers: (t: HeaderList) => void;
  trailersP: Promise<HeaderList>;
  requestSent: boolean;
  onAbort: (() => void) | null;
}

export class H1Connection implements PooledConnection {
  readonly id: number;
  readonly protocol = 'h1' as const;
  readonly facts: ConnectionFacts;
  readonly createdAt = performance.now();
  lastActiveAt = this.createdAt;
  served = 0;
  #state: ConnState = 'ready';
  #socket: net.Socket;
  #parser: H1ResponseParser;
  #opts: H1Options;
  #cur: InFlight | null = null;
  #listeners: Array<(ev: ConnEvent) => void> = [];
  /** Peer closed or sent bytes while idle: never reuse. */
  #tainted = false;
  #armed: 'headers' | 'body' | null = null;
  #headersTimer: NodeJS.Timeout | null = null;
  #bodyTimer: NodeJS.Timeout | null = null;

  constructor(id: number, socket: net.Socket, facts: ConnectionFacts, opts: H1Options) {
    this.id = id;
    this.#socket = socket;
    this.facts = facts;
    this.#opts = opts;
    this.#parser = new H1ResponseParser(
      {
        onHead: (h) => this.#onHead(h),
        onBody: (b) => this.#onBody(b),
        onTrailers: (t) => { if (this.#cur) this.#cur.trailers = t; },
        onComplete: () => this.#onComplete(),
      },
      { maxHeaderBytes: opts.maxHeaderBytes, maxHeaderCount: opts.maxHeaderCount },
    );
    socket.on('data', (d: Buffer) => this.#onData(d));
    socket.on('end', () => this.#onEnd());
    socket.on('error', (e) => this.#fail(toOriginlinkError(e)));
    socket.on('close', () => this.#onClose());
  }

  get state(): ConnState { return this.#state; }
  get capacity(): number { return 1; }
  get active(): number { return this.#cur ? 1 : 0; }

  on(listener: (ev: ConnEvent) => void): void { this.#listeners.push(listener); }
  #emit(ev: ConnEvent): void { for (const l of this.#listeners) l(ev); }

  isUsable(): boolean {
    const s = this.#socket;
    return this.#state === 'ready' && !this.#tainted && !s.destroyed && !s.readableEnded && s.writable;
  }

  request(req: ConnRequest): Promise<ConnResponse> {
    if (this.#cur || !this.isUsable()) {
      return Promise.reject(new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'local', 'connection is not available', { retrySafe: true, details: { responseStarted: false } }));
    }
    let head: ReturnType<typeof serializeRequestHead>;
    try {
      head = serializeRequestHead(req);
    } catch (e) {
      return Promise.reject(new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', (e as Error).message, { details: { responseStarted: false } }));
    }
    return new Promise<ConnResponse>((resolve, reject) => {
      let resolveTrailers!: (t: HeaderList) => void;
      const trailersP = new Promise<HeaderList>((r) => { resolveTrailers = r; });
      const cur: InFlight = { req, resolve, reject, body: null, trailers: [], resolveTrailers, trailersP, requestSent: false, onAbort: null };
      this.#cur = cur;
      this.served++;
      this.lastActiveAt = performance.now();
      this.#parser.expect(req.method);
      if (req.signal) {
        if (req.signal.aborted) return this.#abort(cur);
        cur.onAbort = () => this.#abort(cur);
        req.signal.addEventListener('abort', cur.onAbort, { once: true });
      }
      this.#arm('headers');
      this.#write(cur, head.head, head.framing);
    });
  }

  #write(cur: InFlight, head: string, framing: 'none' | 'length' | 'chunked'): void {
    const s = this.#socket;
    const body = cur.req.body;
    const len = knownLength(body);
    if (len !== null) {
      // Replayable body: one write, head and body together.
      // Header bytes are latin1, as in node:http and undici (a one-byte string is written without transcoding).
      if (len === 0) s.write(head, 'latin1');
      else {
        s.cork();
        s.write(head, 'latin1');
        s.write(typeof body === 'string' ? body : (body as Uint8Array));
        s.uncork();
      }
      cur.requestSent = true;
      return;
    }
    s.write(head, 'latin1');
    void (async () => {
      try {
        for await (const chunk of bodyChunks(body)) {
          if (this.#cur !== cur) return;
          const ok = s.write(framing === 'chunked' ? chunkedFrame(chunk) : chunk);
          if (!ok) await waitDrain(s);
        }
        if (this.#cur !== cur) return;
        if (framing === 'chunked') s.write(CHUNKED_END);
        cur.requestSent = true;
        // The response may already be complete (early response): only now may we reuse.
        if (this.#parser.busy === false && this.#cur === cur && cur.body?.readableEnded) this.#finish(cur);
      } catch (e) {
        if (this.#cur === cur) this.#fail(new OriginlinkError(ErrorCode.ABORTED, 'local', `request body failed: ${(e as Error).message}`, { cause: e }));
      }
    })();
  }

  /**
   * Request timers: two long-lived timers per connection, re-armed with
   * refresh() instead of a new setTimeout per request (this is the hot path).
   * A timer that fires while not armed for its kind does nothing.
   */
  #arm(kind: 'headers' | 'body' | null): void {
    this.#armed = kind;
    if (kind === null) return;
    const ms = kind === 'headers' ? this.#opts.headersTimeoutMs : this.#opts.bodyTimeoutMs;
    if (ms <= 0) { this.#armed = null; return; }
    const existing = kind === 'headers' ? this.#headersTimer : this.#bodyTimer;
    if (existing) { existing.refresh(); return; }
    const t = setTimeout(() => this.#onTimer(kind, ms), ms);
    t.unref();
    if (kind === 'headers') this.#headersTimer = t;
    else this.#bodyTimer = t;
  }

  #onTimer(kind: 'headers' | 'body', ms: number): void {
    if (this.#armed !== kind || !this.#cur) return;
    const code = kind === 'headers' ? ErrorCode.HEADERS_TIMEOUT : ErrorCode.BODY_TIMEOUT;
    this.#fail(new OriginlinkError(code, 'remote', `no ${kind === 'headers' ? 'response head' : 'response body data'} within ${ms} ms`));
  }

  #onData(d: Buffer): void {
    const cur = this.#cur;
    if (!cur) {
      // RFC 9112 §9.3: a server has no reason to send while idle; such a connection is not reusable.
      this.#tainted = true;
      this.destroy();
      return;
    }
    try {
      const extra = this.#parser.execute(d);
      if (extra && extra.length > 0) {
        this.#tainted = true;
        this.destroy();
      }
    } catch (e) {
      const pe = e as H1ParseError;
      const code = pe.kind === 'too-large' ? ErrorCode.HEADERS_TOO_LARGE : ErrorCode.MALFORMED_RESPONSE;
      this.#fail(new OriginlinkError(code, 'remote', pe.message ?? String(e), { cause: e }));
    }
  }

  #onHead(h: H1Head): void {
    const cur = this.#cur;
    if (!cur) return;
    if (h.keepAliveTimeoutMs !== null) {
      this.facts.keepAliveHintMs = h.keepAliveTimeoutMs;
      this.#emit({ type: 'keepalive-hint', timeoutMs: h.keepAliveTimeoutMs });
    }
    if (!h.keepAlive && this.#state === 'ready') {
      this.#state = 'draining';
      this.#emit({ type: 'goaway', lastStreamId: null });
    }
    const sock = this.#socket;
    const body = new Readable({ read: () => { sock.resume(); } });
    cur.body = body;
    this.#arm('body');
    cur.resolve({
      status: h.status,
      headers: h.headers,
      body,
      trailers: cur.trailersP,
    });
  }

  #onBody(chunk: Buffer): void {
    const cur = this.#cur;
    if (!cur?.body) return;
    if (this.#armed === 'body') this.#bodyTimer?.refresh();
    if (!cur.body.push(chunk)) this.#socket.pause();
  }

  #onComplete(): void {
    const cur = this.#cur;
    if (!cur?.body) return;
    cur.body.push(null);
    cur.resolveTrailers(cur.trailers);
    if (cur.requestSent) this.#finish(cur);
  }

  #finish(cur: InFlight): void {
    if (this.#cur !== cur) return;
    this.#clear(cur);
    this.#cur = null;
    this.lastActiveAt = performance.now();
    if (this.#state === 'ready' && this.#parser.keepAlive) {
      this.#emit({ type: 'capacity' });
    } else {
      this.#state = 'draining';
      this.destroy();
    }
  }

  #clear(cur: InFlight): void {
    this.#armed = null;
    if (cur.onAbort) cur.req.signal?.removeEventListener('abort', cur.onAbort);
  }

  #abort(cur: InFlight): void {
    // HTTP/1.1 has no way to cancel one request: the connection goes with it.
    this.#fail(new OriginlinkError(ErrorCode.ABORTED, 'local', 'request aborted'));
  }

  #onEnd(): void {
    const res = this.#parser.eof();
    if (res === 'complete') return; // read-until-close body ended; #onComplete ran
    if (this.#cur) {
      this.#fail(new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'remote', res === 'truncated' ? 'connection closed in the middle of the response' : 'connection closed before the response'));
    } else {
      this.#tainted = true;
    }
    this.#socket.end();
  }

  #fail(err: OriginlinkError): void {
    const cur = this.#cur;
    if (cur) {
      this.#cur = null;
      this.#clear(cur);
      const started = this.#parser.receivedAny || cur.body !== null;
      err.details['responseStarted'] = started;
      if (cur.body) abortBody(cur.body, err);
      else cur.reject(err);
    }
    this.destroy(err);
  }

  #onClose(): void {
    if (this.#cur) {
      this.#fail(new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'remote', 'connection closed'));
      return;
    }
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#emit({ type: 'close', error: null });
  }

  drain(): void {
    if (this.#state !== 'ready') return;
    this.#state = 'draining';
    if (!this.#cur) this.destroy();
  }

  destroy(error?: Error): void {
    if (this.#cur) {
      this.#fail(error instanceof OriginlinkError ? error : new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'local', error?.message ?? 'connection destroyed', { cause: error }));
      return;
    }
    const wasClosed = this.#state === 'closed';
    this.#state = 'closed';
    if (this.#headersTimer) clearTimeout(this.#headersTimer);
    if (this.#bodyTimer) clearTimeout(this.#bodyTimer);
    this.#socket.destroy();
    if (!wasClosed) this.#emit({ type: 'close', error: error ?? null });
  }
}
