/**
 * HTTP/2 client connection for the pool: our sans-IO H2Connection (src/h2)
 * over one TCP/TLS socket, on the shared request exchange. Shared
 * reservation up to the peer's SETTINGS_MAX_CONCURRENT_STREAMS, GOAWAY as a
 * graceful drain, PING for liveness (RFC 9113 §6.7).
 *
 * Writes are batched: whatever the state machine produced during one turn
 * leaves in one corked write. Receive flow control follows the reader: a
 * response body's credit goes back to the server as its consumer reads it
 * (a consumer that stops holds at most one stream window in memory).
 */
import { randomBytes, type X509Certificate } from 'node:crypto';
import type net from 'node:net';
import { H2ErrorCode } from '../codec/errors.js';
import { H2Connection } from '../h2/connection.js';
import type { H2Event } from '../h2/types.js';
import { ErrorCode, NOT_SENT, OriginlinkError, socketFailure } from '../errors.js';
import { knownLength } from '../http/body.js';
import { appendRequestFields } from '../http/field-section.js';
import type {
  ConnEvent,
  ConnRequest,
  ConnResponse,
  ConnState,
  ConnectionFacts,
  HeaderList,
  SharedHeaderList,
  PooledConnection,
} from '../http/types.js';
import { Exchange, type ExchangeWire } from './exchange.js';
import { PushBody } from '../wire/body.js';
import { H2Wire, type H2Flow } from '../wire/h2-wire.js';
import { readChunks } from '../net/socket-reads.js';
import { handshakeUnconfirmed } from '../net/tcp.js';
import { turnNow } from '../util/clock.js';
import { IdMap } from '../util/id-map.js';

/** A peer's SETTINGS without SETTINGS_MAX_CONCURRENT_STREAMS (no limit, RFC 9113 §6.5.2): we open at most this many. */
const UNLIMITED_STREAMS = 100;
/**
 * Streams a connection carries before the peer's SETTINGS arrive. Its limit is unknown until then, and streams
 * over it are refused (RFC 9113 §5.1.2): a burst sent into a new connection at an assumed 100 met a limit of 2
 * with 18 REFUSED_STREAMs, and their retries met new connections that refused them the same way. One stream
 * costs nothing in practice: a server's SETTINGS come with its first flight, before the first response.
 */
const STREAMS_BEFORE_SETTINGS = 1;
/** Bytes of a streamed request body queued in the connection before the writer waits for credit. */
const WRITE_HIGH_WATER = 256 * 1024;
/** How long a graceful close may take once no request of ours is open. */
const CLOSE_GRACE_MS = 1_000;

export interface H2Options {
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  /** Our receive window per stream, bytes (the connection's is 4×). */
  windowSize: number;
  maxHeaderListSize: number;
  /** Response fields accepted (ExchangeTimeouts.maxHeaderCount). */
  maxHeaderCount?: number;
}

interface Flow extends H2Flow {
  x: Exchange;
}

export class H2PooledConnection implements PooledConnection {
  readonly id: number;
  readonly protocol = 'h2' as const;
  readonly facts: ConnectionFacts;
  readonly createdAt = performance.now();
  lastActiveAt = this.createdAt;
  /** When bytes last came from the peer (a liveness check needs no PING while they do). */
  lastReadAt = this.createdAt;
  served = 0;
  #state: ConnState = 'ready';
  #socket: net.Socket;
  #h2: H2Connection;
  #io: H2Wire;
  #opts: H2Options;
  #scheme: 'https' | 'http';
  #cert: X509Certificate | null;
  #listeners: Array<(ev: ConnEvent) => void> = [];
  /** The exchanges in flight by stream id (IdMap, not Map: see util/id-map.ts). */
  #flows = new IdMap<Flow>();
  #writers: Array<() => void> = [];
  #pings = new Map<string, { resolve: (ms: number) => void; at: number }>();
  #goawayLast: number | null = null;
  /** The peer's SETTINGS have arrived: `capacity` is its limit. */
  #settings = false;
  /** We closed gracefully: the socket's end is expected. */
  #ending = false;
  /** drain() was called: the pool closes this connection. */
  #closing = false;
  #wire: ExchangeWire = {
    closing: () => this.#closing,
    cancel: (x) => {
      if (x.wireId >= 0) this.#h2.reset(x.wireId, H2ErrorCode.CANCEL);
      this.#io.flush();
    },
    settled: (x) => {
      if (x.wireId >= 0) this.#flows.delete(x.wireId);
      if (x.wireId >= 0 && x.completed && this.#h2.sendOpen(x.wireId)) {
        // A complete answer while our side of the stream is open (its body still leaving, or queued behind a window
        // the origin keeps shut — nginx does after an early 405): the request is over. Left open, the stream would
        // hold a slot of the origin's stream limit (RFC 9113 §5.1.2) for as long as that window stays shut, unseen
        // by the pool; reset it (RFC 9113 §8.1; Fetch encourages RST_STREAM here) and stop the body's pump.
        this.#h2.reset(x.wireId, H2ErrorCode.CANCEL);
        x.stopSending();
        for (const w of this.#writers.splice(0)) w(); // a pump waiting for room sees it stopped
        this.#io.flush();
      }
      this.lastActiveAt = turnNow();
      if (this.#state === 'draining' && this.active === 0) this.#closeGracefully();
      this.#emit({ type: 'capacity' });
    },
  };

  constructor(
    id: number,
    socket: net.Socket,
    facts: ConnectionFacts,
    opts: H2Options,
    scheme: 'https' | 'http' = 'https',
    cert: X509Certificate | null = null,
  ) {
    this.id = id;
    this.#socket = socket;
    this.facts = facts;
    this.#opts = opts;
    this.#scheme = scheme;
    this.#cert = cert;
    this.#h2 = new H2Connection({
      role: 'client',
      windowSize: opts.windowSize,
      connectionWindowSize: 4 * opts.windowSize,
      maxHeaderListSize: opts.maxHeaderListSize,
    });
    this.#io = new H2Wire(this.#h2, socket, () => {
      if (this.#writers.length) for (const w of this.#writers.splice(0)) w();
    });
    this.#h2.on((ev) => this.#onEvent(ev));
    readChunks(socket, (d) => {
      const now = performance.now();
      this.lastReadAt = now;
      this.#h2.receive(d, now);
      this.#io.flush();
      this.#io.checkOutput();
    });
    socket.on('error', (e) => this.destroy(socketFailure(e, handshakeUnconfirmed(socket))));
    socket.on('close', () =>
      this.destroy(
        this.#ending && this.#flows.size === 0
          ? undefined
          : new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'remote', 'connection closed'),
      ),
    );
    this.#io.flush();
  }

  get state(): ConnState {
    return this.#state;
  }
  get active(): number {
    return this.#flows.size;
  }
  get capacity(): number {
    return this.#settings ? (this.facts.peerMaxConcurrentStreams ?? UNLIMITED_STREAMS) : STREAMS_BEFORE_SETTINGS;
  }

  limitPending(): boolean {
    return !this.#settings && this.#state === 'ready';
  }

  on(listener: (ev: ConnEvent) => void): void {
    this.#listeners.push(listener);
  }
  #emit(ev: ConnEvent): void {
    for (const l of this.#listeners) l(ev);
  }

  peerCertificate(): X509Certificate | null {
    return this.#cert;
  }

  unref(): void {
    // A tunnel's stream (an HTTP/2 CONNECT stream) has no handle of its own: its node connection is let go or not.
    (this.#socket as Partial<Pick<net.Socket, 'unref'>>).unref?.();
  }

  isUsable(): boolean {
    return this.#state === 'ready' && !this.#h2.closed && !this.#socket.destroyed && this.#socket.writable;
  }

  ping(timeoutMs: number): Promise<number> {
    if (!this.isUsable() && this.#state !== 'draining') return Promise.reject(this.#gone());
    const data = randomBytes(8);
    const key = data.toString('hex');
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pings.delete(key);
        reject(new OriginlinkError(ErrorCode.PING_TIMEOUT, 'network', `PING not answered within ${timeoutMs} ms`));
      }, timeoutMs);
      // A health PING of an idle connection never holds the process (a request in flight holds its socket).
      timer.unref();
      this.#pings.set(key, {
        at: performance.now(),
        resolve: (ms) => {
          clearTimeout(timer);
          this.facts.rttMs = ms;
          resolve(ms);
        },
      });
      this.#h2.ping(data);
      this.#io.flush();
    });
  }

  request(req: ConnRequest): Promise<ConnResponse> {
    if (!this.isUsable()) return Promise.reject(this.#goawayLast !== null ? this.#goawayErr() : this.#gone());
    const len = knownLength(req.body);
    // RFC 9113 §8.5: CONNECT (a tunnel) carries :method and :authority only.
    const headers: HeaderList =
      req.method === 'CONNECT'
        ? [
            [':method', 'CONNECT'],
            [':authority', req.authority],
          ]
        : [
            [':method', req.method],
            [':scheme', this.#scheme],
            [':authority', req.authority],
            [':path', req.path],
          ];
    const trustedFrom = appendRequestFields(headers, req.headers, len);
    let id: number | null;
    try {
      id = this.#h2.request(headers, len === 0, trustedFrom);
    } catch (e) {
      return Promise.reject(
        new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', (e as Error).message, { facts: NOT_SENT }),
      );
    }
    if (id === null)
      return Promise.reject(
        this.#goawayLast !== null
          ? this.#goawayErr()
          : new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'local', 'no stream available on this connection', {
              retrySafe: true,
              facts: NOT_SENT,
            }),
      );
    const x = new Exchange(req, this.#wire, this.#opts, this.served > 0);
    this.served++;
    this.lastActiveAt = turnNow();
    this.#flows.set(id, { x, owed: 0, paused: false });
    x.wireId = id;
    const sid = id;
    if (len === 0) x.sent();
    else if (len !== null) {
      this.#h2.data(sid, typeof req.body === 'string' ? Buffer.from(req.body) : (req.body as Uint8Array), true);
      x.sent();
    } else {
      void x.pump({
        write: (c) => {
          this.#h2.data(sid, c, false);
          this.#io.flush();
          return this.#h2.pending(sid) < WRITE_HIGH_WATER && !this.#io.congested;
        },
        room: () => new Promise<boolean>((r) => this.#writers.push(() => r(true))),
        end: () => {
          this.#h2.data(sid, new Uint8Array(0), true);
          this.#io.flush();
        },
      });
    }
    this.#io.flush();
    return x.promise;
  }

  drain(): void {
    this.#closing = true;
    if (this.#state !== 'ready') return;
    this.#state = 'draining';
    if (this.active === 0) this.#closeGracefully();
  }

  destroy(error?: Error): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    const err =
      error instanceof OriginlinkError
        ? error
        : new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'local', error?.message ?? 'connection destroyed', {
            cause: error,
          });
    for (const f of [...this.#flows.values()]) f.x.fail(err, false);
    this.#flows.clear();
    for (const w of this.#writers.splice(0)) w();
    this.#socket.destroy();
    this.#emit({ type: 'close', error: error ?? null });
  }

  // ---- internals ----

  #onEvent(ev: H2Event): void {
    switch (ev.type) {
      case 'settings':
        this.#settings = true;
        this.facts.peerMaxConcurrentStreams = ev.maxConcurrentStreams;
        this.#emit({ type: 'capacity' });
        return;
      case 'headers': {
        const f = this.#flows.get(ev.streamId);
        if (!f) return;
        if (ev.trailers) {
          f.x.end(strip(ev.headers));
          return;
        }
        const status = Number(ev.headers.find(([n]) => n === ':status')?.[1] ?? 0);
        const id = ev.streamId;
        const makeBody = (): PushBody =>
          new PushBody(
            () => this.#resume(id),
            () => {
              f.paused = true;
            },
            () => f.x.readerGone(),
            f.x.req.responseBufferBytes,
          );
        f.x.head(
          status,
          strip(ev.headers),
          makeBody,
          f.x.req.method === 'HEAD' || status === 204 || status === 304,
          undefined,
          ev.contentLength,
        );
        if (ev.endStream) f.x.end();
        return;
      }
      case 'interim': {
        const f = this.#flows.get(ev.streamId);
        if (f) f.x.interim(Number(ev.headers.find(([n]) => n === ':status')?.[1] ?? 0), strip(ev.headers));
        return;
      }
      case 'data': {
        const f = this.#flows.get(ev.streamId);
        if (!f) return;
        f.x.data(ev.data);
        // Credit follows the reader: at once while it keeps up, on its next read once it fell behind.
        this.#io.received(ev.streamId, f, ev.data.length);
        if (ev.endStream) f.x.end();
        return;
      }
      case 'reset': {
        const f = this.#flows.get(ev.streamId);
        if (!f) return;
        const started = f.x.body !== null;
        if (ev.connection) {
          // The connection ended under the stream (a connection error of either side, GOAWAY with an error code):
          // RFC 9113 §6.8, a stream at or below GOAWAY's last id may have been processed, whatever the code says —
          // never retry-safe. The origin's ending is a lost connection (an idempotent request on a reused one goes
          // again, as after a reset: policy.ts); ours is its protocol error.
          const why = `connection ${ev.byPeer ? 'ended by the origin' : 'failed'} before the response ${started ? 'ended' : 'began'}: ${ev.message ?? `HTTP/2 error code ${ev.code}`}`;
          f.x.fail(
            new OriginlinkError(ev.byPeer ? ErrorCode.SOCKET_RESET : ErrorCode.PROTOCOL_ERROR, 'remote', why, {
              details: { h2ErrorCode: ev.code, byPeer: ev.byPeer },
            }),
            false,
          );
          return;
        }
        // RFC 9113 §8.7: REFUSED_STREAM, or a stream above GOAWAY's last id, was not processed.
        const unprocessed = !started && ev.code === H2ErrorCode.REFUSED_STREAM;
        const aboveGoaway = unprocessed && this.#goawayLast !== null && ev.streamId > this.#goawayLast;
        const code =
          !ev.byPeer && !unprocessed
            ? ErrorCode.MALFORMED_RESPONSE
            : aboveGoaway
              ? ErrorCode.GOAWAY
              : ErrorCode.STREAM_RESET;
        const why = ev.byPeer
          ? `stream closed before the response ${started ? 'ended' : 'began'} (HTTP/2 error code ${ev.code})`
          : `malformed response: ${ev.message ?? `HTTP/2 error code ${ev.code}`}`;
        f.x.fail(
          new OriginlinkError(code, 'remote', why, { retrySafe: unprocessed, details: { h2ErrorCode: ev.code } }),
          false,
        );
        return;
      }
      case 'goaway':
        // §6.8: the last id may only go down; a later GOAWAY naming a higher one changes nothing.
        this.#goawayLast = Math.min(ev.lastStreamId, this.#goawayLast ?? ev.lastStreamId);
        if (this.#state === 'ready') this.#state = 'draining';
        this.#emit({ type: 'goaway', lastStreamId: ev.lastStreamId });
        // Nothing in flight (an idle connection): no stream's end will close it; it can carry nothing more, so
        // it closes now (our GOAWAY, then FIN), not when the pool next finds it unusable.
        if (this.#state === 'draining' && this.active === 0) this.#closeGracefully();
        return;
      case 'ping-ack': {
        const key = Buffer.from(ev.data).toString('hex');
        const p = this.#pings.get(key);
        if (p) {
          this.#pings.delete(key);
          p.resolve(performance.now() - p.at);
        }
        return;
      }
      case 'writable':
        if (this.#writers.length) for (const w of this.#writers.splice(0)) w();
        return;
      case 'streams-available':
        return;
      case 'closed':
        this.#io.flushNow();
        this.destroy(
          ev.error
            ? new OriginlinkError(
                ev.error.byPeer ? ErrorCode.GOAWAY : ErrorCode.PROTOCOL_ERROR,
                ev.error.byPeer ? 'remote' : 'local',
                ev.error.message,
                { details: { h2ErrorCode: ev.error.code } },
              )
            : undefined,
        );
        return;
    }
  }

  #resume(id: number): void {
    const f = this.#flows.get(id);
    if (f) this.#io.resume(id, f);
  }

  /** GOAWAY, then FIN once it is written; nothing of ours is open. Bounded in case the socket hangs. */
  #closeGracefully(): void {
    this.#h2.shutdown();
    this.#ending = true;
    this.#io.flushNow();
    if (!this.#socket.destroyed) this.#socket.end();
    setTimeout(() => this.destroy(), CLOSE_GRACE_MS).unref();
  }

  #gone(): OriginlinkError {
    return new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'local', 'connection is not available', {
      retrySafe: true,
      facts: NOT_SENT,
    });
  }

  #goawayErr(): OriginlinkError {
    return new OriginlinkError(ErrorCode.GOAWAY, 'remote', 'peer sent GOAWAY; no new requests on this connection', {
      retrySafe: true,
      facts: NOT_SENT,
      details: { lastStreamId: this.#goawayLast },
    });
  }
}

/**
 * The field list without pseudo-headers, as new pairs: the decoder's list is shared by every response with the same head
 * (SharedHeaderList), and this one reaches the application, whose code may write into it — a write must not reach
 * the next response.
 */
function strip(h: SharedHeaderList): HeaderList {
  const out: HeaderList = [];
  for (const f of h) if (f[0].charCodeAt(0) !== 0x3a) out.push([f[0], f[1]]);
  return out;
}
