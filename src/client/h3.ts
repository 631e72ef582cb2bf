/**
 * HTTP/3 client connection for the pool: our sans-IO H3Connection over our
 * QUIC driver, one UDP socket per connection. Shared reservation up to the
 * peer's bidi stream limit; GOAWAY drains; 0-RTT with a stored session when
 * the request allows it. The request lifecycle is exchange.ts; liveness and
 * migration are h3-liveness.ts; dialling is connect/h3.ts.
 *
 * A request waits (no stream yet) until the handshake is done, or until
 * 0-RTT keys exist when it may go early, and while the peer's stream limit
 * is reached. A 0-RTT attempt refused by the server (early data rejected,
 * RFC 9001 §4.6.2, or 425 Too Early, RFC 8470 §5.2) is sent again after the
 * handshake on a new stream, within the same exchange.
 */
import { X509Certificate } from 'node:crypto';
import { ErrorCode, NOT_SENT, OriginlinkError } from '../errors.js';
import { H3ErrorCode } from '../codec/errors.js';
import type { H3Connection, H3Event } from '../h3/connection.js';
import { earlyDataAllowed, earlyReplayAllowed, type EarlyDataPolicy } from '../http/early-data.js';
import { isReplayable, knownLength } from '../http/body.js';
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
import type { QuicConnection } from '../quic/connection.js';
import type { QuicEndpoint } from '../quic/endpoint.js';
import { Exchange, type ExchangeTimeouts, type ExchangeWire, type HeadExtras } from './exchange.js';
import { h3BodySink, queueBody, StreamBody } from '../wire/h3-body.js';
import { H3Liveness } from './h3-liveness.js';
import type { SessionStore } from '../store/session-store.js';
import { turnNow } from '../util/clock.js';
import { IdMap } from '../util/id-map.js';
import type { DialSignal } from '../util/leg-signal.js';

/** RFC 8470 §5.2: 425 Too Early. */
const TOO_EARLY = 425;

export interface H3ConnectionSettings extends ExchangeTimeouts {
  /** Idle keep-alive interval, ms (0 = off). */
  keepAliveMs: number;
  /** Which requests go early when the request does not say (ConnRequest.allowEarlyData). */
  earlyDataPolicy: EarlyDataPolicy;
  /** Consecutive probe timeouts with the path silent before moving to a new local port (0 = never). */
  migrateAfterProbeTimeouts: number;
  sessionStore: SessionStore | undefined;
  sessionKey: string;
}

/** One request's HTTP/3 state beside its exchange. */
interface H3Request {
  x: Exchange;
  /** Stream id, or -1 while waiting for one. */
  id: number;
  /** Sent before the handshake completed (0-RTT). */
  early: boolean;
  /** Why an earlier 0-RTT attempt was refused; such a request never goes early again. */
  earlyRefused: 'rejected' | 'too-early' | null;
}

/** ConnResponse plus why a 0-RTT attempt of this request was refused and resent. */
export type H3Response = ConnResponse;

/** How long a drained connection waits for a session ticket it has not received (see #closeAfterTicket). */
const TICKET_WAIT_RTTS = 3;
const TICKET_WAIT_MIN_MS = 50;
const TICKET_WAIT_MAX_MS = 1000;

export class H3PooledConnection implements PooledConnection {
  readonly id: number;
  readonly protocol = 'h3' as const;
  readonly facts: ConnectionFacts;
  createdAt: number;
  lastActiveAt: number;
  served = 0;
  #state: ConnState = 'ready';
  #ep: QuicEndpoint;
  #quic: QuicConnection;
  #h3: H3Connection;
  #opts: H3ConnectionSettings;
  #listeners: Array<(ev: ConnEvent) => void> = [];
  /**
   * Requests by the exchange's number on this connection (`Exchange.wireId`: `served` when it came), and by stream id
   * once they have one (IdMap: see util/id-map.ts).
   */
  #reqs = new IdMap<H3Request>();
  #streams = new IdMap<H3Request>();
  #waiting: H3Request[] = [];
  #handshake: Promise<void>;
  #handshakeDone!: () => void;
  #handshakeFail!: (e: OriginlinkError) => void;
  #earlyReady: (() => void) | null = null;
  /** yieldToFallback() was called before the handshake: no new requests until it completes. */
  #held = false;
  #goawayId: number | null = null;
  #closeError: OriginlinkError | null = null;
  #sessionSaved = false;
  /** A save of the session is queued for after this turn (#saveSessionSoon). */
  #saveQueued = false;
  /** The drained connection's close has begun (at once, or after waiting for a ticket). */
  #closingDrained = false;
  /** Request streams whose exchange is over (a whole answer) while their body still leaves: wire id → stream id. */
  #sending = new Map<number, number>();
  #live: H3Liveness;
  #peerCert: X509Certificate | null | undefined;
  /** drain() was called: the pool closes this connection. */
  #closing = false;
  #wire: ExchangeWire = {
    closing: () => this.#closing,
    cancel: (x) => {
      const sending = this.#sending.get(x.wireId);
      if (sending !== undefined) {
        // A body that failed after its whole answer (Exchange.pump): the request stream ends here.
        this.#sending.delete(x.wireId);
        if (!this.#h3.closed) this.#h3.resetStream(sending, H3ErrorCode.REQUEST_CANCELLED);
        this.#emit({ type: 'capacity' });
        return;
      }
      const r = this.#reqs.get(x.wireId);
      if (!r) return;
      if (r.id >= 0) {
        // RFC 9114 §4.1.1: cancel with H3_REQUEST_CANCELLED.
        if (!this.#h3.closed) this.#h3.resetStream(r.id, H3ErrorCode.REQUEST_CANCELLED);
      } else {
        const i = this.#waiting.indexOf(r);
        if (i >= 0) this.#waiting.splice(i, 1);
      }
    },
    settled: (x) => {
      const r = this.#reqs.get(x.wireId);
      if (!r) return;
      this.#reqs.delete(x.wireId);
      if (r.id >= 0) this.#streams.delete(r.id);
      // Answered while its body still leaves: the stream stays ours until the pump ends or cancels it.
      if (r.id >= 0 && x.completed && !x.facts.requestSent) this.#sending.set(x.wireId, r.id);
      this.lastActiveAt = turnNow();
      if (!this.#sessionSaved) this.#saveSessionSoon();
      this.#emit({ type: 'capacity' });
      this.#maybeCloseDrained();
    },
  };

  constructor(
    id: number,
    ep: QuicEndpoint,
    quic: QuicConnection,
    h3: H3Connection,
    opts: H3ConnectionSettings,
    started: number,
    ip: string,
    port: number,
    early: boolean,
    signal?: DialSignal,
  ) {
    this.id = id;
    this.#ep = ep;
    this.#quic = quic;
    this.#h3 = h3;
    this.#opts = opts;
    this.createdAt = this.lastActiveAt = started;
    this.facts = {
      protocol: 'h3',
      alpn: null,
      remoteAddress: ip,
      remotePort: port,
      localAddress: ep.address.host,
      localPort: ep.address.port,
      connectMs: 0,
      tlsMs: 0,
      tlsVersion: 'TLSv1.3',
      resumed: false,
      earlyData: false,
      tfo: false,
      keepAliveHintMs: null,
      keepAliveObservedMs: null,
      peerMaxConcurrentStreams: null,
      rttMs: null,
    };
    this.#live = new H3Liveness(quic, ep, () => this.#streams.size);
    this.#handshake = new Promise<void>((res, rej) => {
      this.#handshakeDone = res;
      this.#handshakeFail = rej;
    });
    this.#handshake.catch(() => {});
    h3.on((ev) => this.#onEvent(ev));
    quic.onPathStalled(opts.migrateAfterProbeTimeouts, () => {
      void this.migrate().catch(() => {});
    });
    if (signal) {
      const onAbort = (): void => {
        if (!this.#quic.established)
          this.destroy(new OriginlinkError(ErrorCode.ABORTED, 'local', 'connect aborted', { retrySafe: true }));
      };
      if (signal.aborted) queueMicrotask(onAbort);
      else signal.addEventListener('abort', onAbort, { once: true });
      const off = (): void => signal.removeEventListener('abort', onAbort);
      void this.#handshake.then(off, off);
    }
    quic.on((ev) => {
      // The ticket allows no 0-RTT: requests written early leave after the handshake, as ordinary 1-RTT data.
      if (ev.type === 'early-unavailable') for (const r of this.#streams.values()) r.early = false;
    });
    // With a session, the first request is written before the first flight and
    // rides in the Initial's datagram; the flight leaves on the next turn.
    if (early) quic.openEarly();
    else quic.process();
  }

  /** Resolves at the handshake (or at 0-RTT readiness when `early`). */
  ready(early: boolean): Promise<void> {
    if (!early) return this.#handshake;
    if (this.#quic.inEarlyData || this.#quic.established) return Promise.resolve();
    return new Promise<void>((res, rej) => {
      this.#earlyReady = res;
      this.#handshake.then(res, rej);
    });
  }

  get state(): ConnState {
    return this.#state;
  }
  get active(): number {
    return this.#reqs.size + this.#sending.size;
  }

  unref(): void {
    this.#ep.unref();
  }
  get capacity(): number {
    if (this.#held && this.#quic.establishedAt === null) return 0;
    return this.facts.peerMaxConcurrentStreams ?? 100;
  }

  handshakePending(): Promise<void> | null {
    return this.#quic.establishedAt === null ? this.#handshake : null;
  }

  yieldToFallback(): void {
    if (this.#quic.establishedAt !== null || this.#state === 'closed') return;
    this.#held = true;
    for (const r of this.#waiting.splice(0)) {
      r.x.fail(
        new OriginlinkError(
          ErrorCode.SOCKET_CLOSED,
          'local',
          'HTTP/3 handshake still pending; the request moves to the fallback connection',
          { retrySafe: true, facts: NOT_SENT },
        ),
        false,
      );
    }
    for (const r of [...this.#streams.values()]) {
      const req = r.x.req;
      if (!r.early || r.x.body !== null || !earlyReplayAllowed(req.method, req.headers)) continue;
      if (!this.#h3.closed) this.#h3.resetStream(r.id, H3ErrorCode.REQUEST_CANCELLED);
      this.#streams.delete(r.id);
      r.x.fail(this.#abandoned('the QUIC handshake had not completed when TCP was established'), false);
    }
  }

  /** Move to a new local UDP port (see H3Liveness.migrate). `quicStats().migrations` counts it. */
  async migrate(): Promise<void> {
    this.facts.localPort = await this.#live.migrate(() => this.#gone());
  }

  /**
   * The server's leaf certificate once the handshake is done (for coalescing,
   * RFC 9114 §3.3); null before that, when the peer sent none, or when it does
   * not parse. Read once and kept: a QUIC connection's peer never changes.
   */
  peerCertificate(): X509Certificate | null {
    if (this.#peerCert !== undefined) return this.#peerCert;
    if (!this.#quic.established) return null;
    const der = this.#quic.peerCertChain()?.[0];
    let cert: X509Certificate | null = null;
    if (der) {
      try {
        cert = new X509Certificate(der);
      } catch {
        cert = null;
      }
    }
    this.#peerCert = cert;
    return cert;
  }

  /** Transport counters: RTT, cwnd, loss, retransmissions. */
  quicStats(): ReturnType<QuicConnection['stats']> {
    return this.#quic.stats();
  }

  /** The HTTP/3 layer's counters: streams, GOAWAY, priorities, QPACK tables (H3Connection.stats). */
  h3Stats(): ReturnType<H3Connection['stats']> {
    return this.#h3.stats();
  }

  on(listener: (ev: ConnEvent) => void): void {
    this.#listeners.push(listener);
  }
  #emit(ev: ConnEvent): void {
    for (const l of this.#listeners) l(ev);
  }

  isUsable(): boolean {
    return this.#state === 'ready' && !this.#quic.closed && !this.#h3.closed;
  }

  async ping(timeoutMs: number): Promise<number> {
    const rtt = await this.#live.ping(timeoutMs, () => this.#gone());
    this.facts.rttMs = rtt;
    return rtt;
  }

  request(req: ConnRequest): Promise<ConnResponse> {
    if (!this.isUsable()) return Promise.reject(this.#goawayId !== null ? this.#goawayErr() : this.#gone());
    const x = new Exchange(req, this.#wire, this.#opts, this.served > 0);
    x.wireId = this.served++;
    this.lastActiveAt = turnNow();
    const r: H3Request = { x, id: -1, early: false, earlyRefused: null };
    this.#reqs.set(x.wireId, r);
    this.#waiting.push(r);
    if (this.#quic.established || (this.#mayGoEarly(r) && this.#quic.inEarlyData)) this.#pump();
    else
      void this.#handshake.then(
        () => this.#pump(),
        () => {},
      );
    return x.promise;
  }

  drain(): void {
    this.#closing = true;
    if (this.#state !== 'ready') return;
    this.#state = 'draining';
    this.#maybeCloseDrained();
  }

  destroy(error?: Error): void {
    if (this.#state === 'closed') return;
    const err =
      error instanceof OriginlinkError
        ? error
        : error
          ? new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'local', error.message, { cause: error })
          : null;
    this.#closeError = err;
    this.#quic.destroy(err);
  }

  // ---- internals ----

  #mayGoEarly(r: H3Request): boolean {
    return (
      r.earlyRefused === null && earlyDataAllowed(this.#opts.earlyDataPolicy, r.x.req.method, r.x.req.allowEarlyData)
    );
  }

  /**
   * A 0-RTT attempt was refused: cancel its stream and queue the request
   * again, to leave once the handshake is done. A body we cannot replay
   * fails as EARLY_DATA_REJECTED instead (retry-safe: the server did not
   * process it).
   */
  #resendAfterHandshake(r: H3Request, why: 'rejected' | 'too-early'): void {
    const x = r.x;
    if (x.done) return;
    if (!isReplayable(x.req.body)) {
      const msg = why === 'rejected' ? 'server rejected 0-RTT early data' : 'server answered 425 Too Early';
      x.fail(new OriginlinkError(ErrorCode.EARLY_DATA_REJECTED, 'remote', msg, { retrySafe: true }));
      return;
    }
    if (r.id >= 0) {
      if (!this.#h3.closed) this.#h3.resetStream(r.id, H3ErrorCode.REQUEST_CANCELLED);
      this.#streams.delete(r.id);
    }
    r.id = -1;
    r.early = false;
    r.earlyRefused = why;
    x.restart();
    this.#waiting.unshift(r);
    if (this.#quic.established) this.#pump();
    else
      void this.#handshake.then(
        () => this.#pump(),
        () => {},
      );
  }

  /** Start waiting requests while stream credit lasts. */
  #pump(): void {
    while (this.#waiting.length && !this.#h3.closed) {
      const r = this.#waiting[0]!;
      if (!this.#quic.established && !(this.#mayGoEarly(r) && this.#quic.inEarlyData)) return;
      if (!this.#start(r)) return;
      this.#waiting.shift();
    }
  }

  /** Open the request's stream and send it; false while the peer's stream limit is reached. */
  #start(r: H3Request): boolean {
    const { x } = r;
    const req = x.req;
    const len = knownLength(req.body);
    const headers: HeaderList = [
      [':method', req.method],
      [':scheme', req.scheme],
      [':authority', req.authority],
      [':path', req.path],
    ];
    const trustedFrom = appendRequestFields(headers, req.headers, len);
    let id: number | null;
    try {
      id = this.#h3.openRequest(headers, len === 0, trustedFrom);
    } catch (e) {
      x.fail(
        e instanceof OriginlinkError
          ? e
          : new OriginlinkError(ErrorCode.H3_ERROR, 'local', (e as Error).message, { cause: e }),
        false,
      );
      return true;
    }
    if (id === null) return false;
    r.id = id;
    r.early = !this.#quic.established;
    this.#streams.set(id, r);
    this.#live.startWatchdog();
    if (len === 0) x.sent();
    else if (len !== null) {
      queueBody(this.#h3, id, req.body as string | Uint8Array);
      x.sent();
    } else {
      void x.pump(h3BodySink(this.#h3, this.#quic, id)).then(() => {
        if (!this.#sending.delete(x.wireId)) return;
        this.#emit({ type: 'capacity' });
        this.#maybeCloseDrained();
      });
    }
    return true;
  }

  #onEvent(ev: H3Event): void {
    switch (ev.type) {
      case 'connected':
        if (ev.early) {
          this.#earlyReady?.();
          this.#pump();
          return;
        }
        this.#onHandshake();
        return;
      case 'headers':
        this.#onHeaders(ev.streamId, ev.headers, ev.end);
        return;
      case 'data': {
        const r = this.#streams.get(ev.streamId);
        if (!r) return;
        r.x.data(ev.data);
        if (ev.end) r.x.end();
        return;
      }
      case 'trailers':
        this.#streams.get(ev.streamId)?.x.end(ev.headers.map(([n, v]) => [n, v]));
        return;
      case 'reset': {
        const r = this.#streams.get(ev.streamId);
        if (!r) return;
        const started = r.x.body !== null;
        if (ev.message !== undefined) {
          // Our own refusal of what the origin sent on this stream (MESSAGE_ERROR, EXCESSIVE_LOAD, …).
          r.x.fail(
            new OriginlinkError(ErrorCode.MALFORMED_RESPONSE, 'remote', `malformed response: ${ev.message}`, {
              details: { wireCode: ev.code },
            }),
            false,
          );
          return;
        }
        // RFC 9114 §4.1.1: H3_REQUEST_REJECTED means not processed; so is a stream at or above GOAWAY's id (§5.2).
        const rejected = !started && ev.code === H3ErrorCode.REQUEST_REJECTED;
        const aboveGoaway = !started && this.#goawayId !== null && ev.streamId >= this.#goawayId;
        r.x.fail(
          new OriginlinkError(
            aboveGoaway ? ErrorCode.GOAWAY : ErrorCode.STREAM_RESET,
            'remote',
            `HTTP/3 stream ${ev.streamId} reset before the response ${started ? 'ended' : 'began'} (code 0x${ev.code.toString(16)})`,
            { retrySafe: rejected || aboveGoaway, details: { wireCode: ev.code } },
          ),
          false,
        );
        return;
      }
      case 'goaway':
        this.#goawayId = ev.id;
        if (this.#state === 'ready') this.#state = 'draining';
        this.#emit({ type: 'goaway', lastStreamId: ev.id });
        for (const r of this.#waiting.splice(0)) r.x.fail(this.#goawayErr(), false);
        this.#maybeCloseDrained();
        return;
      case 'settings':
        return;
      case 'streams-available':
        this.#pump();
        return;
      case 'closed':
        this.#onClosed(ev.error);
        return;
    }
  }

  #onHandshake(): void {
    const q = this.#quic;
    this.facts.alpn = q.alpn;
    // From the dial's start (`createdAt`): resolving, binding the endpoint and, for a process's first h3 dial,
    // loading the QUIC module are this connection's cost too, not only the handshake.
    this.facts.connectMs = (q.establishedAt ?? performance.now()) - this.createdAt;
    this.facts.resumed = q.resumed;
    this.facts.peerMaxConcurrentStreams = q.peerMaxStreamsBidi() || null;
    this.facts.rttMs = q.rttMs();
    // RFC 9001 §4.6.2: early data on a connection that did not resume was
    // rejected; those requests are sent again now, in 1-RTT. A server that
    // resumed may still have declined the early data (its 0-RTT off, a
    // changed configuration): quiche then sends the same stream data again in
    // 1-RTT itself, and the request was simply not early (known on our own
    // engine; quiche 0.18 cannot tell).
    const rejected = !q.resumed;
    const declined = !rejected && q.earlyDataDeclined === true;
    for (const r of [...this.#streams.values()]) {
      if (!r.early) continue;
      if (rejected) this.#resendAfterHandshake(r, 'rejected');
      else if (declined) {
        r.early = false;
        r.earlyRefused = 'rejected';
      } else this.facts.earlyData = true;
    }
    this.#live.startKeepAlive(this.#opts.keepAliveMs, () => this.lastActiveAt);
    this.#handshakeDone();
    this.#emit({ type: 'handshake' });
    this.#emit({ type: 'capacity' });
    this.#pump();
  }

  #onHeaders(id: number, headers: SharedHeaderList, end: boolean): void {
    const r = this.#streams.get(id);
    if (!r || r.x.body) return;
    let status = 0;
    const list: HeaderList = [];
    for (const [k, v] of headers) {
      if (k === ':status') status = Number(v);
      else if (k.charCodeAt(0) !== 0x3a) list.push([k, v]);
    }
    if (status >= 100 && status < 200) {
      // Interim (RFC 9114 §4.1, RFC 9110 §15.2): to the request's listener; the final head follows.
      if (status !== 101) r.x.interim(status, list);
      return;
    }
    // RFC 8470 §5.2: a 425 to a request sent in early data is retried after the handshake.
    if (status === TOO_EARLY && r.early) {
      this.#resendAfterHandshake(r, 'too-early');
      return;
    }
    const x = r.x;
    // The consumer dropped the body: the exchange cancels the stream (RFC 9114 §4.1.1).
    const makeBody = (): StreamBody => new StreamBody(this.#quic, id, () => x.readerGone(), x.req.responseBufferBytes);
    const extras: HeadExtras = {
      reprioritize: (priority) => {
        if (!this.#h3.closed) this.#h3.sendPriorityUpdate(id, priority);
      },
    };
    if (r.early) extras.earlyData = true;
    if (r.earlyRefused) {
      extras.earlyData = false;
      extras.earlyDataRefused = r.earlyRefused;
    }
    x.head(status, list, makeBody, x.req.method === 'HEAD' || status === 204 || status === 304, extras);
    if (end) x.end();
  }

  #maybeCloseDrained(): void {
    if (this.#state !== 'draining' || this.active !== 0 || this.#closingDrained) return;
    this.#closingDrained = true;
    // A save queued for after this turn happens now: whether a ticket is in decides how the close goes.
    if (this.#saveQueued && !this.#sessionSaved) this.#saveSession();
    if (!this.#opts.sessionStore || this.#sessionSaved || !this.#quic.established) {
      this.#h3.close(H3ErrorCode.NO_ERROR, 'drained');
      return;
    }
    void this.#closeAfterTicket();
  }

  /**
   * A drained connection that has no session ticket yet waits a little for one before it closes: a server
   * sends its NewSessionTicket just after the handshake (RFC 8446 §4.6.1), so a short-lived process — one
   * request, then Agent.close() — would otherwise often close before it arrived, and its next run could not
   * resume (no 0-RTT). Bounded by TICKET_WAIT_RTTS round trips, within TICKET_WAIT_MIN_MS … TICKET_WAIT_MAX_MS.
   */
  async #closeAfterTicket(): Promise<void> {
    const rtt = this.facts.rttMs ?? TICKET_WAIT_MIN_MS;
    const deadline =
      performance.now() + Math.min(TICKET_WAIT_MAX_MS, Math.max(TICKET_WAIT_MIN_MS, TICKET_WAIT_RTTS * rtt));
    for (
      let left = deadline - performance.now();
      left > 0 && !this.#sessionSaved && this.#state !== 'closed';
      left = deadline - performance.now()
    ) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.#quic.nextPacket(),
        new Promise<void>((r) => {
          timer = setTimeout(r, left);
        }),
      ]);
      clearTimeout(timer);
      this.#saveSession();
    }
    if (this.#state !== 'closed' && !this.#h3.closed) this.#h3.close(H3ErrorCode.NO_ERROR, 'drained');
  }

  /**
   * Save the session once this turn is over: a request settles while its answer is being handed over, and the
   * store's work (the ticket's lifetime read, a shared store's write) waits until its reader has it. A close saves
   * at once (#onClosed); a dial begun in this same turn finds no ticket yet.
   */
  #saveSessionSoon(): void {
    if (this.#saveQueued || !this.#opts.sessionStore) return;
    this.#saveQueued = true;
    setImmediate(() => {
      this.#saveQueued = false;
      if (!this.#sessionSaved && this.#state !== 'closed') this.#saveSession();
    });
  }

  #saveSession(): void {
    const store = this.#opts.sessionStore;
    if (!store) return;
    const s = this.#quic.session();
    if (s && s.length) {
      store.put(this.#opts.sessionKey, s);
      this.#sessionSaved = true;
    }
  }

  #onClosed(error: OriginlinkError | null): void {
    const err = this.#closeError ?? error;
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#live.stop();
    this.#saveSession();
    const gone = err ?? this.#gone();
    this.#handshakeFail(gone);
    const confirmed = this.#quic.establishedAt !== null;
    for (const r of [...this.#reqs.values()]) {
      // A request still waiting for a stream never left: safe to send elsewhere. One with a
      // stream is not proven unprocessed by a closed connection (only GOAWAY or a reset code says so).
      const unsent = r.id < 0;
      if (!unsent && r.early && !confirmed) {
        r.x.fail(this.#abandoned(`the connection closed before its handshake completed: ${gone.message}`, gone), false);
        continue;
      }
      r.x.fail(
        gone.with({ retrySafe: unsent || (gone.retrySafe && this.#goawayId !== null && r.id >= this.#goawayId) }),
        false,
      );
    }
    void this.#ep.close();
    this.#emit({ type: 'close', error: err });
  }

  /** Sent early, neither confirmed nor rejected: maybe processed (agent/policy.ts replays only idempotent requests). */
  #abandoned(why: string, cause?: Error): OriginlinkError {
    return new OriginlinkError(
      ErrorCode.EARLY_DATA_ABANDONED,
      'network',
      `request sent as 0-RTT early data was abandoned: ${why}`,
      { retrySafe: false, ...(cause ? { cause } : {}) },
    );
  }

  #gone(): OriginlinkError {
    return new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'local', 'HTTP/3 connection is closed', {
      retrySafe: true,
      facts: NOT_SENT,
    });
  }

  #goawayErr(): OriginlinkError {
    return new OriginlinkError(ErrorCode.GOAWAY, 'remote', 'peer sent GOAWAY; no new requests on this connection', {
      retrySafe: true,
      facts: NOT_SENT,
      details: { lastStreamId: this.#goawayId },
    });
  }
}
