/**
 * First-contact race: QUIC first, TCP after a delay (or at once when QUIC
 * fails first). The first connection established wins; the other is closed.
 * A QUIC attempt that loses keeps running to its own deadline only so that
 * its outcome (works / broken) is learned; `onQuic` reports it exactly once.
 *
 * Early start (as Chromium does with a known-good alternative and a cached
 * ticket): a QUIC connection that comes back at 0-RTT readiness, its
 * handshake still pending (`handshakePending()`), wins the race at once so
 * the first request leaves as early data; TCP still starts after the delay.
 * If TCP is established before that handshake completes, `onFallback` gets
 * it (the caller pools it and has the QUIC connection yield); a handshake
 * that completes first aborts TCP.
 *
 * Invariant: TCP is always part of a race, so a blackholed QUIC path costs
 * at most `delayMs` plus one TCP handshake before a connection that has
 * answered serves the origin.
 */
import { ErrorCode, OriginlinkError, toOriginlinkError } from '../errors.js';
import type { PooledConnection } from '../http/types.js';
import { type DialSignal, LegSignal } from '../util/leg-signal.js';

/** `early`: the connection was handed out by the race at 0-RTT readiness (the caller holds it already). */
export type QuicOutcome =
  | { ok: true; conn: PooledConnection; late: boolean; early: boolean }
  | { ok: false; error: OriginlinkError }
  | { ok: 'aborted' };

export interface RaceOptions {
  /** Resolves at the handshake, or at 0-RTT readiness with `handshakePending()` non-null (early start). */
  quic: (signal: DialSignal) => Promise<PooledConnection>;
  tcp: (signal: DialSignal) => Promise<PooledConnection>;
  delayMs: number;
  /** Hard bound on the QUIC attempt (the connector has its own; this is the backstop). */
  quicTimeoutMs: number;
  /**
   * Called once when the QUIC attempt settles, also after the race was
   * decided. For a late success, returning true takes the connection over
   * (e.g. into the pool); otherwise it is closed (never an early one: the
   * caller has it).
   */
  onQuic: (o: QuicOutcome) => boolean | void;
  /**
   * Early start only: TCP was established while the early QUIC connection's
   * handshake was still pending. The callee owns `tcp` from here on.
   * Without it, such a TCP connection is closed.
   */
  onFallback?: (tcp: PooledConnection, quic: PooledConnection) => void;
  signal: DialSignal;
}

export function raceDial(o: RaceOptions): Promise<PooledConnection> {
  return new Promise<PooledConnection>((resolve, reject) => {
    const quicLeg = new LegSignal(null);
    const tcpLeg = new LegSignal(null);
    let decided = false;
    let tcpStarted = false;
    let tcpError: OriginlinkError | null = null;
    let quicError: OriginlinkError | null = null;
    let quicDone = false;
    /** The QUIC connection that won early; its handshake is what TCP still races. */
    let early: PooledConnection | null = null;
    /** TCP was handed to onFallback while the early connection's handshake was pending. */
    let fellBack = false;
    let delayTimer: NodeJS.Timeout | null = null;

    // Also after an early win, until the handshake settles: the pool going away stops the TCP leg.
    const onOuterAbort = (): void => {
      stopDelay();
      quicLeg.abort();
      tcpLeg.abort();
      fail(new OriginlinkError(ErrorCode.ABORTED, 'local', 'connect aborted', { retrySafe: true }));
    };
    if (o.signal.aborted) {
      onOuterAbort();
      return;
    }
    o.signal.addEventListener('abort', onOuterAbort, { once: true });

    function stopDelay(): void {
      if (delayTimer) {
        clearTimeout(delayTimer);
        delayTimer = null;
      }
    }
    /** `keepTcp`: an early win, TCP still races the handshake. */
    function win(c: PooledConnection, keepTcp = false): void {
      if (decided) {
        c.destroy();
        return;
      }
      decided = true;
      if (!keepTcp) {
        stopDelay();
        o.signal.removeEventListener('abort', onOuterAbort);
      }
      resolve(c);
    }
    function fail(e: OriginlinkError): void {
      if (decided) return;
      decided = true;
      stopDelay();
      o.signal.removeEventListener('abort', onOuterAbort);
      reject(e);
    }
    function startTcp(): void {
      if (tcpStarted || (decided && !early) || (early && quicDone)) return;
      tcpStarted = true;
      stopDelay();
      o.tcp(tcpLeg).then(
        (c) => {
          if (!early) {
            win(c);
            return;
          }
          // Early start: TCP is the fallback unless the QUIC handshake completed meanwhile.
          if (quicDone && !quicError) {
            c.destroy();
            return;
          }
          fellBack = true;
          if (o.onFallback) o.onFallback(c, early);
          else c.destroy();
        },
        (e: unknown) => {
          tcpError = toOriginlinkError(e, ErrorCode.CONNECT_FAILED);
          if (quicDone) fail(quicError ?? tcpError);
          // else: QUIC may still win.
        },
      );
    }

    const quicTimer = setTimeout(() => quicLeg.abort(), o.quicTimeoutMs);
    o.quic(quicLeg)
      .then(async (c) => {
        const pending = c.handshakePending?.() ?? null;
        if (pending === null) return c;
        if (!decided) {
          early = c;
          win(c, true);
          // The first flight (with the 0-RTT request) leaves now: TCP's delay counts from here, so
          // local set-up (binding a socket, loading the QUIC module) is not taken as a silent path.
          if (!tcpStarted) {
            stopDelay();
            delayTimer = setTimeout(
              () => {
                delayTimer = null;
                startTcp();
              },
              Math.max(0, o.delayMs),
            );
          }
        }
        try {
          await pending;
        } catch (e) {
          c.destroy();
          throw e;
        }
        return c;
      })
      .then(
        (c) => {
          clearTimeout(quicTimer);
          quicDone = true;
          if (early === c) {
            // The handshake completed: TCP (if still connecting) is not needed.
            o.signal.removeEventListener('abort', onOuterAbort);
            stopDelay();
            tcpLeg.abort();
            o.onQuic({ ok: true, conn: c, late: fellBack, early: true });
            return;
          }
          const late = decided;
          const taken = o.onQuic({ ok: true, conn: c, late, early: false }) === true;
          if (late) {
            if (!taken) c.destroy();
            return;
          }
          tcpLeg.abort();
          win(c);
        },
        (e: unknown) => {
          clearTimeout(quicTimer);
          quicDone = true;
          const err = toOriginlinkError(e, ErrorCode.QUIC_FAILED);
          quicError = err;
          const timedOut = quicLeg.aborted && !o.signal.aborted;
          if (o.signal.aborted) o.onQuic({ ok: 'aborted' });
          else if (timedOut)
            o.onQuic({
              ok: false,
              error: new OriginlinkError(
                ErrorCode.CONNECT_TIMEOUT,
                'network',
                `QUIC handshake did not complete within ${o.quicTimeoutMs} ms`,
                { retrySafe: true, cause: e },
              ),
            });
          else o.onQuic({ ok: false, error: err });
          // An early winner's requests fail with its connection and go to whatever the pool dials next.
          if (early) {
            o.signal.removeEventListener('abort', onOuterAbort);
            stopDelay();
            return;
          }
          if (decided) return;
          if (!tcpStarted) startTcp();
          else if (tcpError) fail(tcpError);
        },
      );
    delayTimer = setTimeout(
      () => {
        delayTimer = null;
        startTcp();
      },
      Math.max(0, o.delayMs),
    );
  });
}
