/**
 * HTTP/2 over one TLS socket via node:http2: shared reservation up to the
 * peer's SETTINGS_MAX_CONCURRENT_STREAMS, GOAWAY as a graceful drain, PING
 * for liveness (RFC 9113 §6.7).
 */
import type { X509Certificate } from 'node:crypto';
import http2 from 'node:http2';
import type net from 'node:net';
import { ErrorCode, NOT_SENT, OriginlinkError, toOriginlinkError } from '../errors.js';
import type { ConnEvent, ConnRequest, ConnResponse, ConnState, ConnectionFacts, HeaderList, PooledConnection } from '../http/types.js';
import { waitDrain } from '../util/body.js';
import { knownLength } from '../http/body.js';
import { Exchange, PushBody, type ExchangeWire } from './exchange.js';

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL, NGHTTP2_NO_ERROR } = http2.constants;

/** Before the peer's SETTINGS arrive we assume this many streams (RFC 9113 §6.5.2 recommends ≥ 100). */
const ASSUMED_STREAMS = 100;
/** How long a graceful session close may take once no request of ours is open. */
const CLOSE_GRACE_MS = 1_000;

export interface H2Options {
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  /** Our receive window per stream and for the connection, bytes. */
  windowSize: number;
  maxHeaderListSize: number;
}

export function openH2Session(socket: net.Socket, authority: string, opts: H2Options): http2.ClientHttp2Session {
  const session = http2.connect(`https://${authority}`, {
    createConnection: () => socket,
    settings: { enablePush: false, initialWindowSize: opts.windowSize, maxHeaderListSize: opts.maxHeaderListSize },
    maxSessionMemory: 64,
  });
  // Connection-level window (the SETTINGS above cover streams only).
  session.on('connect', () => {
    try { session.setLocalWindowSize(opts.windowSize * 4); } catch { /* closing */ }
  });
  return session;
}

export class H2Connection implements PooledConnection {
  readonly id: number;
  readonly protocol = 'h2' as const;
  readonly facts: ConnectionFacts;
  readonly createdAt = performance.now();
  lastActiveAt = this.createdAt;
  served = 0;
  active = 0;
  #state: ConnState = 'ready';
  #session: http2.ClientHttp2Session;
  #opts: H2Options;
  #scheme: 'https' | 'http';
  #listeners: Array<(ev: ConnEvent) => void> = [];
  #goawayLast = -1;
  #cert: X509Certificate | null;
  #streams = new Map<Exchange, http2.ClientHttp2Stream>();
  #wire: ExchangeWire = {
    cancel: (x) => {
      const st = this.#streams.get(x);
      if (st && !st.destroyed) st.close(NGHTTP2_CANCEL);
    },
    settled: (x) => {
      this.#streams.delete(x);
      this.active--;
      this.lastActiveAt = performance.now();
      if (this.#state === 'draining' && this.active === 0) this.#closeSession();
      this.#emit({ type: 'capacity' });
    },
  };

  constructor(id: number, session: http2.ClientHttp2Session, facts: ConnectionFacts, opts: H2Options, scheme: 'https' | 'http' = 'https', cert: X509Certificate | null = null) {
    this.id = id;
    this.#cert = cert;
    this.#session = session;
    this.facts = facts;
    this.#opts = opts;
    this.#scheme = scheme;
    session.on('remoteSettings', (s) => {
      this.facts.peerMaxConcurrentStreams = s.maxConcurrentStreams ?? null;
      this.#emit({ type: 'capacity' });
    });
    session.on('goaway', (_code: number, lastStreamID: number) => {
      this.#goawayLast = lastStreamID;
      if (this.#state === 'ready') this.#state = 'draining';
      this.#emit({ type: 'goaway', lastStreamId: lastStreamID });
    });
    session.on('error', () => { /* surfaced per stream and via close */ });
    session.on('close', () => this.#markClosed(null));
  }

  get state(): ConnState { return this.#state; }
  get capacity(): number {
    const n = this.#session.remoteSettings?.maxConcurrentStreams;
    return typeof n === 'number' && n > 0 && n < 2 ** 31 ? n : ASSUMED_STREAMS;
  }

  on(listener: (ev: ConnEvent) => void): void { this.#listeners.push(listener); }
  #emit(ev: ConnEvent): void { for (const l of this.#listeners) l(ev); }

  peerCertificate(): X509Certificate | null { return this.#cert; }

  isUsable(): boolean {
    const s = this.#session;
    return this.#state === 'ready' && !s.destroyed && !s.closed && !(s.socket?.destroyed ?? true);
  }

  ping(timeoutMs: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new OriginlinkError(ErrorCode.PING_TIMEOUT, 'network', `PING not answered within ${timeoutMs} ms`)), timeoutMs);
      try {
        this.#session.ping((err, ms) => {
          clearTimeout(timer);
          if (err) reject(toOriginlinkError(err));
          else {
            this.facts.rttMs = ms;
            resolve(ms);
          }
        });
      } catch (e) {
        clearTimeout(timer);
        reject(toOriginlinkError(e));
      }
    });
  }

  request(req: ConnRequest): Promise<ConnResponse> {
    if (!this.isUsable()) {
      return Promise.reject(new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'local', 'connection is not available', { retrySafe: true, facts: NOT_SENT }));
    }
    const headers: http2.OutgoingHttpHeaders = {
      ':method': req.method,
      ':path': req.path,
      ':scheme': this.#scheme,
      ':authority': req.authority,
    };
    for (const [name, value] of req.headers) {
      const prev = headers[name];
      if (prev === undefined) headers[name] = value;
      else if (Array.isArray(prev)) prev.push(value);
      else headers[name] = [String(prev), value];
    }
    const len = knownLength(req.body);
    if (len !== null && len > 0 && headers['content-length'] === undefined) headers['content-length'] = String(len);
    let stream: http2.ClientHttp2Stream;
    try {
      stream = this.#session.request(headers, { endStream: len === 0 });
    } catch (e) {
      // Nothing left our side.
      return Promise.reject(toOriginlinkError(e).with({ retrySafe: true, facts: NOT_SENT }));
    }
    const x = new Exchange(req, this.#wire, this.#opts, this.served > 0);
    this.#streams.set(x, stream);
    this.active++;
    this.served++;
    this.lastActiveAt = performance.now();
    let ended = false;
    stream.on('response', (h, _flags, raw?: string[]) => {
      const status = Number(h[':status']);
      const body = new PushBody(
        () => stream.resume(),
        () => stream.pause(),
        () => { if (!stream.destroyed) stream.close(NGHTTP2_CANCEL); },
      );
      x.head(status, toHeaderList(h, raw), body, req.method === 'HEAD' || status === 204 || status === 304);
      // Only now start the flow: node:http2 emits 'response' a tick after the
      // DATA that came with the HEADERS, so an earlier 'data' listener would
      // see (and drop) body bytes before there is a body to put them in.
      stream.on('data', (chunk: Buffer) => x.data(chunk));
    });
    stream.on('trailers', (h, _flags, raw?: string[]) => { x.trailers = toHeaderList(h, raw); });
    stream.on('end', () => {
      // The readable side can end without a response when the session dies
      // (socket EOF): that is a failure, never a silent hang.
      if (!x.body) {
        x.fail(new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'remote', 'stream ended before a response', { details: { h2ErrorCode: stream.rstCode ?? null } }));
        return;
      }
      // A peer RST_STREAM also ends the readable side, and its code is only
      // known at 'close': the body ends there, so a reset is never taken for the end.
      ended = true;
    });
    stream.on('error', () => { /* reported through 'close' with rstCode */ });
    stream.on('close', () => {
      if (x.done) return;
      const code = stream.rstCode ?? NGHTTP2_NO_ERROR;
      if (ended && x.body && code === NGHTTP2_NO_ERROR) {
        x.end();
        return;
      }
      // RFC 9113 §8.7: REFUSED_STREAM, or a stream above GOAWAY's last id, was not processed.
      const unprocessed = x.body === null && (code === NGHTTP2_REFUSED_STREAM || (this.#goawayLast >= 0 && (stream.id ?? 0) > this.#goawayLast));
      x.fail(new OriginlinkError(
        unprocessed && this.#goawayLast >= 0 ? ErrorCode.GOAWAY : ErrorCode.STREAM_RESET,
        'remote',
        `stream closed before the response ${x.body ? 'ended' : 'began'} (HTTP/2 error code ${code})`,
        { retrySafe: unprocessed, details: { h2ErrorCode: code } },
      ), false);
    });
    if (len === 0) x.sent();
    else if (len !== null) {
      stream.end(typeof req.body === 'string' ? req.body : (req.body as Uint8Array));
      x.sent();
    } else {
      void x.pump({ write: (c) => stream.write(c), drain: () => waitDrain(stream), end: () => { if (!stream.destroyed) stream.end(); } });
    }
    return x.promise;
  }

  drain(): void {
    if (this.#state !== 'ready') return;
    this.#state = 'draining';
    if (this.active === 0) this.#closeSession();
  }

  /**
   * Graceful close with a bound: node:http2 waits for every stream it still
   * tracks (a cancelled one may linger), so nothing we care about is left
   * once our own count is zero — destroy if the close has not finished soon.
   */
  #closeSession(): void {
    const s = this.#session;
    if (s.destroyed) { this.#markClosed(null); return; }
    // node:http2 may already have called close() itself (GOAWAY received): still bound it.
    if (!s.closed) s.close();
    setTimeout(() => this.destroy(), CLOSE_GRACE_MS).unref();
  }

  /** Close now. The pool learns of it here, not from node:http2's 'close' event, which can lag or never come. */
  destroy(error?: Error): void {
    if (this.#state === 'closed') return;
    if (!this.#session.destroyed) this.#session.destroy(error);
    this.#markClosed(error ?? null);
  }

  #markClosed(error: Error | null): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#emit({ type: 'close', error });
  }
}

/** Header list without pseudo-headers; from node:http2's raw [name, value, ...] array when given (no object walk). */
function toHeaderList(h: http2.IncomingHttpHeaders, raw?: string[]): HeaderList {
  const out: HeaderList = [];
  if (Array.isArray(raw)) {
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const k = raw[i] as string;
      if (k.charCodeAt(0) !== 0x3a) out.push([k, raw[i + 1] as string]); // pseudo-headers
    }
    return out;
  }
  for (const k in h) {
    const v = h[k];
    if (k.charCodeAt(0) === 0x3a || v === undefined) continue; // pseudo-headers
    if (Array.isArray(v)) for (const x of v) out.push([k, x]);
    else out.push([k, String(v)]);
  }
  return out;
}
