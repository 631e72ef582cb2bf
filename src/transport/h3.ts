/**
 * HTTP/3 client connection for the pool: our sans-IO H3Connection over our
 * QUIC driver, one UDP socket per connection. Shared reservation up to the
 * peer's bidi stream limit; GOAWAY drains; idle keep-alive with
 * ack-eliciting packets; 0-RTT with a stored session when allowed.
 */
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { ErrorCode, OriginlinkError } from '../errors.js';
import { H3Connection, type H3Event } from '../h3/connection.js';
import { QuicEndpoint } from '../quic/endpoint.js';
import { clientConfig, DEFAULT_UDP_PAYLOAD, isLoopback, loopbackPayload, type QuicOptions } from '../quic/config.js';
import type { QuicConnection } from '../quic/connection.js';
import type { SessionStore } from './session-store.js';
import type { ConnEvent, ConnRequest, ConnResponse, ConnState, ConnectionFacts, HeaderList, PooledConnection } from '../http/types.js';
import { abortBody } from '../util/body.js';
import { knownLength } from '../http/body.js';
import { isSafeMethod } from '../http/methods.js';
import { h3Settings, H3_NO_ERROR, H3_REQUEST_CANCELLED, H3_REQUEST_REJECTED, resolveHost, StreamBody, writeBody } from './h3-common.js';

export interface H3ConnectOptions {
  host: string;
  port: number;
  /** Certificate name / SNI; default `host`. IP literals are checked against IP SANs and not sent as SNI. */
  servername?: string | undefined;
  /** Trusted CAs: PEM file path or PEM text/bytes. */
  ca?: string | Uint8Array | undefined;
  /** Verify the server certificate. Default true. */
  rejectUnauthorized?: boolean;
  /** QUIC handshake deadline, ms. Default 10000. */
  connectTimeoutMs?: number;
  /** No response head within this, ms. Default 30000. */
  headersTimeoutMs?: number;
  /** No body data within this, ms (0 = off). Default 30000. */
  bodyTimeoutMs?: number;
  /** Send an ack-eliciting packet after this much silence, ms (0 = off). Default 10000. */
  keepAliveMs?: number;
  /** Where QUIC sessions are kept for resumption and 0-RTT. */
  sessionStore?: SessionStore | undefined;
  sessionKey?: string;
  /** Resolve at 0-RTT key availability when a session is stored. Default true. */
  earlyData?: boolean;
  /**
   * Which requests may travel as 0-RTT early data when the request does not
   * say (`ConnRequest.allowEarlyData`): 'safe' = GET, HEAD, OPTIONS (RFC 8470
   * §2.1: replayable, no side effects), 'always', 'never'. Default 'safe'.
   */
  earlyDataPolicy?: EarlyDataPolicy;
  /**
   * Move to a new local UDP socket (port migration, RFC 9000 §9) after this
   * many consecutive loss-probe timeouts with nothing heard from the server
   * on the current path. 0 = never. Default 3.
   */
  migrateAfterProbeTimeouts?: number;
  id?: number;
  signal?: AbortSignal | undefined;
  quic?: QuicOptions;
}

let nextId = 1;

export type EarlyDataPolicy = 'never' | 'safe' | 'always';
/** RFC 8470 §5.2: 425 Too Early. */
const TOO_EARLY = 425;

/** May this request be sent before the handshake completes? */
export function earlyDataAllowed(req: ConnRequest, policy: EarlyDataPolicy = 'safe'): boolean {
  if (req.allowEarlyData !== undefined) return req.allowEarlyData;
  if (policy === 'always') return true;
  return policy === 'safe' && isSafeMethod(req.method);
}

function replayable(body: ConnRequest['body']): boolean {
  return body === null || typeof body === 'string' || body instanceof Uint8Array;
}

export async function connectH3(opts: H3ConnectOptions): Promise<H3PooledConnection> {
  const started = performance.now();
  const ip = await resolveHost(opts.host);
  const name = opts.servername ?? opts.host;
  const verify = opts.rejectUnauthorized ?? true;
  // Loopback peers get datagrams up to the lo MTU unless the caller chose a size.
  const big = opts.quic?.maxUdpPayload === undefined && isLoopback(ip) ? loopbackPayload() : null;
  const config = clientConfig({
    ...opts.quic,
    verifyPeer: verify,
    ...(opts.ca !== undefined ? { caFile: opts.ca } : {}),
    ...(big !== null ? { maxUdpPayload: big } : {}),
  });
  const ep = await QuicEndpoint.bind({ ipv6: isIP(ip) === 6 });
  const key = opts.sessionKey ?? `h3:${name}:${opts.port}`;
  const session = opts.sessionStore?.get(key) ?? null;
  let quic: QuicConnection;
  try {
    quic = ep.connect({
      config,
      host: ip,
      port: opts.port,
      serverName: isIP(name) ? null : name,
      expectedHost: verify ? name : null,
      session,
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
      maxPacket: big ?? opts.quic?.maxUdpPayload ?? DEFAULT_UDP_PAYLOAD,
    });
  } catch (e) {
    await ep.close();
    throw e;
  }
  const h3 = new H3Connection(quic, h3Settings('client'));
  quic.setHandler(h3);
  const early = session !== null && (opts.earlyData ?? true);
  const conn = new H3PooledConnection(opts.id ?? nextId++, ep, quic, h3, opts, started, ip, key, early);
  await conn.ready(early);
  return conn;
}

interface Pending {
  req: ConnRequest;
  resolve: (r: ConnResponse) => void;
  reject: (e: OriginlinkError) => void;
  /** Set when a 0-RTT attempt was refused; the resend never goes early again. */
  earlyRefused?: 'rejected' | 'too-early';
}

interface Exchange {
  id: number;
  req: ConnRequest;
  resolve: (r: ConnResponse) => void;
  reject: (e: OriginlinkError) => void;
  body: StreamBody | null;
  trailers: (t: HeaderList) => void;
  timer: NodeJS.Timeout | null;
  done: boolean;
  early: boolean;
  earlyRefused: 'rejected' | 'too-early' | null;
  onAbort: (() => void) | null;
}

/** ConnResponse plus why a 0-RTT attempt of this request was refused and resent. */
export type H3Response = ConnResponse & { earlyDataRefused?: 'rejected' | 'too-early' };

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
  #opts: H3ConnectOptions;
  #listeners: Array<(ev: ConnEvent) => void> = [];
  #ex = new Map<number, Exchange>();
  #waiting: Pending[] = [];
  #handshake: Promise<void>;
  #handshakeDone!: () => void;
  #handshakeFail!: (e: OriginlinkError) => void;
  #earlyReady: (() => void) | null = null;
  #goawayId: number | null = null;
  #keepAlive: NodeJS.Timeout | null = null;
  #sessionKey: string;
  #closeError: OriginlinkError | null = null;
  #sessionSaved = false;
  #migrating: Promise<void> | null = null;
  #watchdog: NodeJS.Timeout | null = null;
  #peerCert: X509Certificate | null | undefined;

  constructor(id: number, ep: QuicEndpoint, quic: QuicConnection, h3: H3Connection, opts: H3ConnectOptions, started: number, ip: string, sessionKey: string, early = false) {
    this.id = id;
    this.#ep = ep;
    this.#quic = quic;
    this.#h3 = h3;
    this.#opts = opts;
    this.#sessionKey = sessionKey;
    this.createdAt = this.lastActiveAt = started;
    this.facts = {
      protocol: 'h3',
      alpn: null,
      remoteAddress: ip,
      remotePort: opts.port,
      localAddress: ep.address.host,
      localPort: ep.address.port,
      connectMs: 0,
      tlsMs: 0,
      tlsVersion: 'TLSv1.3',
      resumed: false,
      earlyData: false,
      tfo: false,
      keepAliveHintMs: null,
      peerMaxConcurrentStreams: null,
      rttMs: null,
    };
    this.#handshake = new Promise<void>((res, rej) => {
      this.#handshakeDone = res;
      this.#handshakeFail = rej;
    });
    this.#handshake.catch(() => {});
    h3.on((ev) => this.#onEvent(ev));
    const stallAfter = opts.migrateAfterProbeTimeouts ?? 3;
    quic.onPathStalled(stallAfter, () => {
      void this.migrate().catch(() => {});
    });
    const signal = opts.signal;
    if (signal) {
      const onAbort = (): void => {
        if (!this.#quic.established) this.destroy(new OriginlinkError(ErrorCode.ABORTED, 'local', 'connect aborted', { retrySafe: true }));
      };
      if (signal.aborted) queueMicrotask(onAbort);
      else signal.addEventListener('abort', onAbort, { once: true });
      void this.#handshake.then(
        () => signal.removeEventListener('abort', onAbort),
        () => signal.removeEventListener('abort', onAbort),
      );
    }
    quic.on((ev) => {
      // The ticket allows no 0-RTT: requests written early leave after the handshake, as ordinary 1-RTT data.
      if (ev.type === 'early-unavailable') for (const x of this.#ex.values()) x.early = false;
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
    return this.#ex.size + this.#waiting.length;
  }
  get capacity(): number {
    return this.facts.peerMaxConcurrentStreams ?? 100;
  }
  /**
   * Active migration: bind a new local UDP port and move the connection
   * there (the server validates the new path; requests in flight continue).
   * Resolves once the server has moved too and the old path has gone quiet
   * (QuicConnection.migrateTo): only then may the old path go away without
   * losing what was in flight on it. `quicStats().migrations` counts it.
   */
  migrate(): Promise<void> {
    if (this.#migrating) return this.#migrating;
    const run = async (): Promise<void> => {
      if (!this.#quic.established || this.#quic.closed) throw this.#gone();
      // RFC 9000 §9.5: a new path needs an unused connection id from the peer; they arrive just after the handshake.
      for (let i = 0; i < 50 && this.#quic.stats().spareDcids === 0 && !this.#quic.closed; i++) {
        await Promise.race([this.#quic.nextPacket(), new Promise((r) => setTimeout(r, 20))]);
      }
      const local = await this.#ep.addSocket();
      const settled = this.#quic.migrateTo(local);
      this.facts.localPort = local.port;
      await settled;
    };
    this.#migrating = run().finally(() => {
      this.#migrating = null;
    });
    return this.#migrating;
  }

  /**
   * Path liveness while requests wait: a receiver has nothing in flight, so
   * quiche arms no probe timer for it. When requests are open and the peer
   * has been silent for a while, send an ack-eliciting PING; if the path is
   * dead its loss-probe timeouts then count towards migration. The PINGs
   * also give a server that saw our address change (NAT rebinding) bytes to
   * answer under its anti-amplification limit (RFC 9000 §8.1) while it
   * validates the new path; a pure receiver's small ACKs alone can stall it.
   */
  #startWatchdog(): void {
    if (this.#watchdog) return;
    const every = 250;
    this.#watchdog = setInterval(() => {
      const q = this.#quic;
      if (this.#ex.size === 0 || q.closed) {
        // Runs only while requests are open.
        if (this.#watchdog) clearInterval(this.#watchdog);
        this.#watchdog = null;
        return;
      }
      if (!q.established) return;
      const rtt = q.stats().rttMs ?? 10;
      if (performance.now() - q.lastPacketAt >= Math.max(every, 4 * rtt)) q.ping();
    }, every);
    this.#watchdog.unref();
  }

  /**
   * The server's leaf certificate once the handshake is done (for coalescing,
   * RFC 9114 §3.3); null before that, when the peer sent none, or when it does
   * not parse. Read from the binding once and kept: a QUIC connection's peer
   * never changes.
   */
  peerCertificate(): X509Certificate | null {
    if (this.#peerCert !== undefined) return this.#peerCert;
    if (!this.#quic.established) return null;
    const der = this.#quic.raw.peerCertChain()?.[0];
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

  on(listener: (ev: ConnEvent) => void): void {
    this.#listeners.push(listener);
  }

  isUsable(): boolean {
    return this.#state === 'ready' && !this.#quic.closed && !this.#h3.closed;
  }

  async ping(timeoutMs: number): Promise<number> {
    if (this.#quic.closed) throw this.#gone();
    const t0 = performance.now();
    const packet = this.#quic.nextPacket();
    this.#quic.ping();
    let timer: NodeJS.Timeout | null = null;
    const timeout = new Promise<never>((_, rej) => {
      timer = setTimeout(() => rej(new OriginlinkError(ErrorCode.HEADERS_TIMEOUT, 'network', `QUIC PING not acknowledged within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([packet, timeout]);
    } finally {
      if (timer) clearTimeout(timer);
    }
    if (this.#quic.closed) throw this.#gone();
    const rtt = this.#quic.stats().rttMs;
    this.facts.rttMs = rtt;
    return rtt ?? performance.now() - t0;
  }

  request(req: ConnRequest): Promise<ConnResponse> {
    if (!this.isUsable()) {
      const e = this.#goawayId !== null ? this.#goawayErr() : this.#gone();
      return Promise.reject(e);
    }
    this.served++;
    this.lastActiveAt = performance.now();
    return new Promise<ConnResponse>((resolve, reject) => {
      const p: Pending = { req, resolve, reject };
      if (!this.#quic.established && !(this.#mayGoEarly(p) && this.#quic.inEarlyData)) {
        this.#waiting.push(p);
        void this.#handshake.then(
          () => this.#pump(),
          () => {},
        );
        return;
      }
      this.#waiting.push(p);
      this.#pump();
    });
  }

  drain(): void {
    if (this.#state !== 'ready') return;
    this.#state = 'draining';
    this.#maybeCloseDrained();
  }

  destroy(error?: Error): void {
    if (this.#state === 'closed') return;
    const err = error instanceof OriginlinkError ? error : error ? new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'local', error.message, { cause: error }) : null;
    this.#closeError = err;
    this.#quic.destroy(err);
  }

  // ---- internals ----

  #mayGoEarly(p: Pending): boolean {
    return p.earlyRefused === undefined && earlyDataAllowed(p.req, this.#opts.earlyDataPolicy);
  }

  /**
   * A 0-RTT attempt was refused (early data rejected, or 425 Too Early):
   * cancel its stream and send the request again once the handshake is
   * done. A body we cannot replay fails as EARLY_DATA_REJECTED instead.
   */
  #resendAfterHandshake(x: Exchange, why: 'rejected' | 'too-early'): void {
    if (x.done) return;
    if (!replayable(x.req.body)) {
      const msg = why === 'rejected' ? 'server rejected 0-RTT early data' : 'server answered 425 Too Early';
      this.#fail(x, new OriginlinkError(ErrorCode.EARLY_DATA_REJECTED, 'remote', msg, { retrySafe: true }));
      return;
    }
    const p: Pending = { req: x.req, resolve: x.resolve, reject: x.reject, earlyRefused: why };
    // Detach the callbacks so cancelling the old stream does not settle the request.
    x.resolve = () => {};
    x.reject = () => {};
    if (x.body) x.body.destroy();
    this.#fail(x, new OriginlinkError(ErrorCode.EARLY_DATA_REJECTED, 'remote', 'resent after the handshake', { retrySafe: true }));
    this.#waiting.unshift(p);
    if (this.#quic.established) this.#pump();
    else void this.#handshake.then(() => this.#pump(), () => {});
  }

  /** Start waiting requests while stream credit lasts. */
  #pump(): void {
    while (this.#waiting.length && !this.#h3.closed) {
      const p = this.#waiting[0]!;
      if (!this.#quic.established && !(this.#mayGoEarly(p) && this.#quic.inEarlyData)) return;
      const r = this.#start(p);
      if (r === 'blocked') return;
      this.#waiting.shift();
    }
  }

  #start(p: Pending): 'started' | 'blocked' | 'failed' {
    const { req } = p;
    if (req.signal?.aborted) {
      p.reject(new OriginlinkError(ErrorCode.ABORTED, 'local', 'request aborted', { retrySafe: true, details: { responseStarted: false } }));
      return 'failed';
    }
    const len = knownLength(req.body);
    const headers: HeaderList = [
      [':method', req.method],
      [':scheme', req.scheme],
      [':authority', req.authority],
      [':path', req.path],
    ];
    for (const [k, v] of req.headers) headers.push([k.toLowerCase(), v]);
    if (len !== null && len > 0 && !req.headers.some(([k]) => k.toLowerCase() === 'content-length')) headers.push(['content-length', String(len)]);
    let id: number | null;
    try {
      id = this.#h3.openRequest(headers, len === 0);
    } catch (e) {
      const err = e instanceof OriginlinkError ? e : new OriginlinkError(ErrorCode.H3_ERROR, 'local', (e as Error).message, { cause: e });
      err.details['responseStarted'] = false;
      p.reject(err);
      return 'failed';
    }
    if (id === null) return 'blocked';
    const x: Exchange = {
      id,
      req,
      resolve: p.resolve,
      reject: p.reject,
      body: null,
      trailers: () => {},
      timer: null,
      done: false,
      early: !this.#quic.established,
      earlyRefused: p.earlyRefused ?? null,
      onAbort: null,
    };
    const trailers = new Promise<HeaderList>((r) => (x.trailers = r));
    (x as Exchange & { trailersP: Promise<HeaderList> }).trailersP = trailers;
    this.#ex.set(id, x);
    this.#startWatchdog();
    const ht = this.#opts.headersTimeoutMs ?? 30_000;
    x.timer = setTimeout(() => this.#fail(x, new OriginlinkError(ErrorCode.HEADERS_TIMEOUT, 'remote', `no HTTP/3 response head within ${ht} ms`)), ht);
    if (req.signal) {
      x.onAbort = (): void => this.#fail(x, new OriginlinkError(ErrorCode.ABORTED, 'local', 'request aborted'));
      req.signal.addEventListener('abort', x.onAbort, { once: true });
    }
    if (len !== 0) {
      writeBody(this.#h3, this.#quic, id, req.body, () => x.done || this.#h3.closed).catch((e: unknown) => {
        this.#fail(x, new OriginlinkError(ErrorCode.ABORTED, 'local', `request body failed: ${(e as Error).message}`, { cause: e }));
      });
    }
    return 'started';
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
        const x = this.#ex.get(ev.streamId);
        if (!x?.body) return;
        x.timer?.refresh();
        x.body.deliver(ev.data, ev.end);
        if (ev.end) this.#finish(x);
        return;
      }
      case 'trailers': {
        const x = this.#ex.get(ev.streamId);
        if (!x) return;
        x.trailers(ev.headers);
        x.body?.deliver(new Uint8Array(0), true);
        this.#finish(x);
        return;
      }
      case 'reset': {
        const x = this.#ex.get(ev.streamId);
        if (!x) return;
        const started = x.body !== null;
        const rejected = !started && ev.code === H3_REQUEST_REJECTED;
        const aboveGoaway = !started && this.#goawayId !== null && ev.streamId >= this.#goawayId;
        const err = new OriginlinkError(
          aboveGoaway ? ErrorCode.GOAWAY : ErrorCode.STREAM_RESET,
          'remote',
          `HTTP/3 stream ${ev.streamId} reset before the response ${started ? 'ended' : 'began'} (code 0x${ev.code.toString(16)})`,
          { retrySafe: rejected || aboveGoaway, details: { wireCode: ev.code } },
        );
        this.#fail(x, err, false);
        return;
      }
      case 'goaway':
        this.#goawayId = ev.id;
        if (this.#state === 'ready') this.#state = 'draining';
        this.#emit({ type: 'goaway', lastStreamId: ev.id });
        for (const p of this.#waiting.splice(0)) p.reject(this.#goawayErr());
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
    this.facts.connectMs = (q.establishedAt ?? performance.now()) - q.startedAt;
    this.facts.resumed = q.resumed;
    const peer = q.raw.stats();
    this.facts.peerMaxConcurrentStreams = peer.peerInitialMaxStreamsBidi || null;
    this.facts.rttMs = q.stats().rttMs;
    // RFC 9001 §4.6.2: early data on a connection that did not resume was
    // rejected; those requests are sent again now, in 1-RTT.
    const rejected = !q.resumed;
    for (const x of [...this.#ex.values()]) {
      if (!x.early) continue;
      if (rejected) this.#resendAfterHandshake(x, 'rejected');
      else this.facts.earlyData = true;
    }
    this.#armKeepAlive();
    this.#handshakeDone();
    this.#emit({ type: 'capacity' });
    this.#pump();
  }

  #onHeaders(id: number, headers: HeaderList, end: boolean): void {
    const x = this.#ex.get(id);
    if (!x || x.body) return;
    let status = 0;
    const list: HeaderList = [];
    for (const [k, v] of headers) {
      if (k === ':status') status = Number(v);
      else if (k.charCodeAt(0) !== 0x3a) list.push([k, v]);
    }
    if (status >= 100 && status < 200) return; // interim; the final head follows
    // RFC 8470 §5.2: a 425 to a request sent in early data is retried after the handshake.
    if (status === TOO_EARLY && x.early) {
      this.#resendAfterHandshake(x, 'too-early');
      return;
    }
    x.body = new StreamBody(this.#quic, id, (err) => {
      if (!x.done) {
        // The consumer dropped the body: cancel the stream (RFC 9114 §4.1.1).
        this.#h3.resetStream(id, H3_REQUEST_CANCELLED);
        this.#finish(x);
        void err;
      }
    });
    if (x.timer) clearTimeout(x.timer);
    const bt = this.#opts.bodyTimeoutMs ?? 30_000;
    x.timer = bt > 0 ? setTimeout(() => this.#fail(x, new OriginlinkError(ErrorCode.BODY_TIMEOUT, 'remote', `no HTTP/3 body data within ${bt} ms`)), bt) : null;
    const trailers = (x as Exchange & { trailersP: Promise<HeaderList> }).trailersP;
    const res: H3Response = { status, headers: list, body: x.body, trailers };
    if (x.early) res.earlyData = true;
    if (x.earlyRefused) {
      res.earlyData = false;
      res.earlyDataRefused = x.earlyRefused;
    }
    x.resolve(res);
    if (end) {
      x.body.deliver(new Uint8Array(0), true);
      this.#finish(x);
    }
  }

  #fail(x: Exchange, err: OriginlinkError, reset = true): void {
    if (x.done) return;
    err.details['responseStarted'] = x.body !== null;
    if (reset && !this.#h3.closed) this.#h3.resetStream(x.id, H3_REQUEST_CANCELLED);
    if (x.body) abortBody(x.body, err);
    else x.reject(err);
    this.#finish(x);
  }

  #finish(x: Exchange): void {
    if (x.done) return;
    x.done = true;
    if (x.timer) clearTimeout(x.timer);
    x.timer = null;
    if (x.onAbort) x.req.signal?.removeEventListener('abort', x.onAbort);
    x.trailers([]);
    this.#ex.delete(x.id);
    this.lastActiveAt = performance.now();
    if (!this.#sessionSaved) this.#saveSession();
    this.#emit({ type: 'capacity' });
    this.#maybeCloseDrained();
  }

  #maybeCloseDrained(): void {
    if (this.#state === 'draining' && this.#ex.size === 0 && this.#waiting.length === 0) this.#h3.close(H3_NO_ERROR, 'drained');
  }

  #armKeepAlive(): void {
    const every = this.#opts.keepAliveMs ?? 10_000;
    if (every <= 0) return;
    this.#keepAlive = setInterval(() => {
      if (performance.now() - this.lastActiveAt >= every) this.#quic.ping();
    }, every);
    this.#keepAlive.unref();
  }

  #saveSession(): void {
    const store = this.#opts.sessionStore;
    if (!store) return;
    const s = this.#quic.session();
    if (s && s.length) {
      store.put(this.#sessionKey, s);
      this.#sessionSaved = true;
    }
  }

  #onClosed(error: OriginlinkError | null): void {
    const err = this.#closeError ?? error;
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    if (this.#keepAlive) clearInterval(this.#keepAlive);
    if (this.#watchdog) clearInterval(this.#watchdog);
    this.#saveSession();
    const gone = err ?? this.#gone();
    this.#handshakeFail(gone);
    for (const x of [...this.#ex.values()]) {
      const e = new OriginlinkError(gone.code, gone.side, gone.message, { cause: gone, retrySafe: gone.retrySafe && x.body === null, details: { ...gone.details } });
      this.#fail(x, e, false);
    }
    for (const p of this.#waiting.splice(0)) p.reject(new OriginlinkError(gone.code, gone.side, gone.message, { cause: gone, retrySafe: true, details: { responseStarted: false } }));
    void this.#ep.close();
    this.#emit({ type: 'close', error: err });
  }

  #gone(): OriginlinkError {
    return new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'local', 'HTTP/3 connection is closed', { retrySafe: true, details: { responseStarted: false } });
  }

  #goawayErr(): OriginlinkError {
    return new OriginlinkError(ErrorCode.GOAWAY, 'remote', 'peer sent GOAWAY; no new requests on this connection', {
      retrySafe: true,
      details: { responseStarted: false, lastStreamId: this.#goawayId },
    });
  }

  #emit(ev: ConnEvent): void {
    for (const l of this.#listeners) l(ev);
  }
}

/**
 * The pool's connector for h3 (register with
 * `registerConnector('h3', h3Connector)` from src/transport/connect.ts).
 */
export async function h3Connector(
  origin: { host: string; port: number; servername?: string | undefined; ca?: string | Buffer | Array<string | Buffer> | undefined; rejectUnauthorized: boolean },
  ctx: {
    pool: { connectTimeoutMs: number; headersTimeoutMs: number; bodyTimeoutMs: number; windowSize: number; migrateAfterProbeTimeouts: number };
    sessionStore: SessionStore;
    sessionKey: string;
    nextId: () => number;
    signal: AbortSignal;
    /** Per-origin 0-RTT policy, when the agent passes one. Default 'safe'. */
    earlyData?: EarlyDataPolicy | undefined;
  },
): Promise<H3PooledConnection> {
  const ca = Array.isArray(origin.ca) ? Buffer.concat(origin.ca.map((c) => (typeof c === 'string' ? Buffer.from(c) : c))) : origin.ca;
  return connectH3({
    host: origin.host,
    port: origin.port,
    servername: origin.servername,
    ca: typeof ca === 'string' || ca === undefined ? ca : new Uint8Array(ca),
    rejectUnauthorized: origin.rejectUnauthorized,
    connectTimeoutMs: ctx.pool.connectTimeoutMs,
    headersTimeoutMs: ctx.pool.headersTimeoutMs,
    bodyTimeoutMs: ctx.pool.bodyTimeoutMs,
    migrateAfterProbeTimeouts: ctx.pool.migrateAfterProbeTimeouts,
    // The pool's receive window: per stream, and 4× for the connection (as for h2).
    quic: { maxStreamData: ctx.pool.windowSize, maxData: 4 * ctx.pool.windowSize },
    sessionStore: ctx.sessionStore,
    sessionKey: `h3:${ctx.sessionKey}`,
    ...(ctx.earlyData !== undefined ? { earlyDataPolicy: ctx.earlyData } : {}),
    id: ctx.nextId(),
    signal: ctx.signal,
  });
}
