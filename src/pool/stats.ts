/** Per-origin counters and the `stats()` snapshot shape shared by the CLI, service and benchmarks. */
import type { ConnectionFacts, Protocol } from '../http/types.js';

export interface PoolStats {
  origin: string;
  protocol: Protocol | null;
  /** Requests handed to a connection. */
  requests: number;
  /** Of those, on a connection that had served a request before. */
  requestsOnReusedConnections: number;
  connectionsOpened: number;
  connectionsClosed: number;
  connectFailures: number;
  /** 1 − connectionsOpened / requests (0 when no request yet). */
  reuseRate: number;
  /** Requests that needed no handshake of their own: requests − connectionsOpened, at least 0. */
  handshakesAvoided: number;
  /** Handshakes that resumed a TLS/QUIC session, used 0-RTT, or carried data in the SYN. */
  resumedHandshakes: number;
  earlyDataHandshakes: number;
  tfoHandshakes: number;
  /** Requests sent again by the retry policy. */
  retries: number;
  /** Requests carried on another origin's connection (coalescing). */
  coalesced: number;
  errors: Record<string, number>;
  open: number;
  idle: number;
  busy: number;
  activeRequests: number;
  dialing: number;
  pending: number;
  /**
   * How long the origin lets a connection sit idle, as the pool saw it close idle ones (two closes agreeing; absent
   * until then, and when it says so itself: `Keep-Alive: timeout`): its connections go idle for that less
   * `pool.keepAliveMarginMs`.
   */
  idleObservedMs?: number;
}

export class PoolCounters {
  requests = 0;
  reusedRequests = 0;
  opened_ = 0;
  closed_ = 0;
  connectFailures = 0;
  resumed = 0;
  earlyData = 0;
  tfo = 0;
  retries = 0;
  coalesced = 0;
  dials = 0;
  /** Sum of connectMs + tlsMs over opened connections (the handshake time one new connection costs here). */
  handshakeMs = 0;
  errors: Record<string, number> = {};

  request(reused: boolean): void {
    this.requests++;
    if (reused) this.reusedRequests++;
  }
  dialStarted(): void {
    this.dials++;
  }
  opened(f: ConnectionFacts): void {
    this.opened_++;
    this.handshakeMs += f.connectMs + f.tlsMs;
    if (f.resumed) this.resumed++;
    if (f.earlyData) this.earlyData++;
    if (f.tfo) this.tfo++;
  }
  /** A handshake that completed after the connection was counted as opened (h3 0-RTT). */
  handshake(f: ConnectionFacts): void {
    if (f.resumed) this.resumed++;
    if (f.earlyData) this.earlyData++;
  }
  closed(): void {
    this.closed_++;
  }
  connectFailed(code: string): void {
    this.connectFailures++;
    this.error(code);
  }
  error(code: string): void {
    this.errors[code] = (this.errors[code] ?? 0) + 1;
  }

  snapshot(
    origin: string,
    protocol: Protocol | null,
    now: {
      idle: number;
      busy: number;
      activeRequests: number;
      dialing: number;
      pending: number;
      idleObservedMs?: number | null;
    },
  ): PoolStats {
    const { idleObservedMs, ...live } = now;
    return {
      origin,
      protocol,
      requests: this.requests,
      requestsOnReusedConnections: this.reusedRequests,
      connectionsOpened: this.opened_,
      connectionsClosed: this.closed_,
      connectFailures: this.connectFailures,
      reuseRate: this.requests === 0 ? 0 : Math.max(0, 1 - this.opened_ / this.requests),
      handshakesAvoided: Math.max(0, this.requests - this.opened_),
      resumedHandshakes: this.resumed,
      earlyDataHandshakes: this.earlyData,
      tfoHandshakes: this.tfo,
      retries: this.retries,
      coalesced: this.coalesced,
      errors: { ...this.errors },
      open: now.idle + now.busy,
      ...live,
      ...(idleObservedMs == null ? {} : { idleObservedMs }),
    };
  }
}
