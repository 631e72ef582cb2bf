/**
 * Liveness of one HTTP/3 client connection: idle keep-alive, the watchdog
 * that probes a silent path while requests wait, PING with a deadline, and
 * active migration to a new local UDP port (RFC 9000 §9).
 */
import { ErrorCode, OriginlinkError } from '../errors.js';
import type { QuicConnection } from '../quic/connection.js';
import type { QuicEndpoint } from '../quic/endpoint.js';

/** How often the watchdog looks at a path while requests are open, ms. */
const WATCHDOG_MS = 250;

export class H3Liveness {
  #quic: QuicConnection;
  #ep: QuicEndpoint;
  #keepAlive: NodeJS.Timeout | null = null;
  #watchdog: NodeJS.Timeout | null = null;
  #migrating: Promise<void> | null = null;
  /** Requests open on the connection now (the watchdog runs only while some are). */
  #open: () => number;

  constructor(quic: QuicConnection, ep: QuicEndpoint, open: () => number) {
    this.#quic = quic;
    this.#ep = ep;
    this.#open = open;
  }

  /**
   * After the handshake: send an ack-eliciting packet when the connection
   * has been idle `everyMs` (0 = off), so NATs and the peer's idle timer
   * keep it (RFC 9000 §10.1.2).
   */
  startKeepAlive(everyMs: number, lastActiveAt: () => number): void {
    if (everyMs <= 0 || this.#keepAlive) return;
    this.#keepAlive = setInterval(() => {
      if (performance.now() - lastActiveAt() >= everyMs) this.#quic.ping();
    }, everyMs);
    this.#keepAlive.unref();
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
  startWatchdog(): void {
    if (this.#watchdog) return;
    this.#watchdog = setInterval(() => {
      const q = this.#quic;
      if (this.#open() === 0 || q.closed) {
        if (this.#watchdog) clearInterval(this.#watchdog);
        this.#watchdog = null;
        return;
      }
      if (!q.established) return;
      const rtt = q.rttMs() ?? 10;
      if (performance.now() - q.lastPacketAt >= Math.max(WATCHDOG_MS, 4 * rtt)) q.ping();
    }, WATCHDOG_MS);
    this.#watchdog.unref();
  }

  /** PING and wait for the next packet from the peer; resolves with the RTT estimate, ms. */
  async ping(timeoutMs: number, gone: () => OriginlinkError): Promise<number> {
    if (this.#quic.closed) throw gone();
    const t0 = performance.now();
    const packet = this.#quic.nextPacket();
    this.#quic.ping();
    let timer: NodeJS.Timeout | null = null;
    const timeout = new Promise<never>((_, rej) => {
      timer = setTimeout(
        () =>
          rej(
            new OriginlinkError(ErrorCode.PING_TIMEOUT, 'network', `QUIC PING not acknowledged within ${timeoutMs} ms`),
          ),
        timeoutMs,
      );
      timer.unref(); // as the h2 PING's: an idle connection's probe never holds the process
    });
    try {
      await Promise.race([packet, timeout]);
    } finally {
      if (timer) clearTimeout(timer);
    }
    if (this.#quic.closed) throw gone();
    return this.#quic.rttMs() ?? performance.now() - t0;
  }

  /**
   * Active migration: bind a new local UDP port and move the connection
   * there (the server validates the new path; requests in flight continue).
   * Resolves once the server has moved too and the old path has gone quiet
   * (QuicConnection.migrateTo): only then may the old path go away without
   * losing what was in flight on it. Resolves with the new local port.
   */
  migrate(gone: () => OriginlinkError): Promise<number> {
    if (this.#migrating) return this.#migrating.then(() => this.#ep.address.port);
    const run = async (): Promise<number> => {
      const q = this.#quic;
      if (!q.established || q.closed) throw gone();
      // RFC 9000 §9.5: a new path needs an unused connection id from the peer; they arrive just after the handshake.
      for (let i = 0; i < 50 && q.stats().spareDcids === 0 && !q.closed; i++) {
        await Promise.race([q.nextPacket(), new Promise((r) => setTimeout(r, 20))]);
      }
      // No spare connection id: no new path can be used — no socket is bound for it (each one that could not be
      // used stayed open, with its receiver, until the connection closed: nine per connection to a dead path).
      if (q.stats().spareDcids === 0)
        throw new OriginlinkError(
          ErrorCode.QUIC_FAILED,
          'local',
          'no spare connection id from the peer: cannot migrate',
        );
      const local = await this.#ep.addSocket();
      try {
        await q.migrateTo(local);
      } catch (e) {
        this.#ep.dropSocket(local);
        throw e;
      }
      return local.port;
    };
    const p = run();
    this.#migrating = p
      .then(
        () => {},
        () => {},
      )
      .finally(() => {
        this.#migrating = null;
      });
    return p;
  }

  stop(): void {
    if (this.#keepAlive) clearInterval(this.#keepAlive);
    if (this.#watchdog) clearInterval(this.#watchdog);
    this.#keepAlive = this.#watchdog = null;
  }
}
