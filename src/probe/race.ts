/**
 * First-contact race: QUIC first, TCP after a delay (or at once when QUIC
 * fails first). The first connection established wins; the other is closed.
 * A QUIC attempt that loses keeps running to its own deadline only so that
 * its outcome (works / broken) is learned; `onQuic` reports it exactly once.
 *
 * Invariant: TCP is always part of a race, so a blackholed QUIC path costs
 * at most `delayMs` plus one TCP handshake.
 */
import { ErrorCode, OriginlinkError, toOriginlinkError } from '../errors.js';
import type { PooledConnection } from '../http/types.js';

export type QuicOutcome = { ok: true; conn: PooledConnection; late: boolean } | { ok: false; error: OriginlinkError } | { ok: 'aborted' };

export interface RaceOptions {
  quic: (signal: AbortSignal) => Promise<PooledConnection>;
  tcp: (signal: AbortSignal) => Promise<PooledConnection>;
  delayMs: number;
  /** Hard bound on the QUIC attempt (the connector has its own; this is the backstop). */
  quicTimeoutMs: number;
  /**
   * Called once when the QUIC attempt settles, also after the race was
   * decided. For a late success, returning true takes the connection over
   * (e.g. into the pool); otherwise it is closed.
   */
  onQuic: (o: QuicOutcome) => boolean | void;
  signal: AbortSignal;
}

export function raceDial(o: RaceOptions): Promise<PooledConnection> {
  return new Promise<PooledConnection>((resolve, reject) => {
    const quicCtl = new AbortController();
    const tcpCtl = new AbortController();
    let decided = false;
    let tcpStarted = false;
    let tcpError: OriginlinkError | null = null;
    let quicError: OriginlinkError | null = null;
    let quicDone = false;
    let delayTimer: NodeJS.Timeout | null = null;

    const onOuterAbort = (): void => {
      quicCtl.abort();
      tcpCtl.abort();
      fail(new OriginlinkError(ErrorCode.ABORTED, 'local', 'connect aborted', { retrySafe: true }));
    };
    if (o.signal.aborted) { onOuterAbort(); return; }
    o.signal.addEventListener('abort', onOuterAbort, { once: true });

    function win(c: PooledConnection): void {
      if (decided) { c.destroy(); return; }
      decided = true;
      if (delayTimer) clearTimeout(delayTimer);
      o.signal.removeEventListener('abort', onOuterAbort);
      resolve(c);
    }
    function fail(e: OriginlinkError): void {
      if (decided) return;
      decided = true;
      if (delayTimer) clearTimeout(delayTimer);
      o.signal.removeEventListener('abort', onOuterAbort);
      reject(e);
    }
    function startTcp(): void {
      if (tcpStarted || decided) return;
      tcpStarted = true;
      if (delayTimer) { clearTimeout(delayTimer); delayTimer = null; }
      o.tcp(tcpCtl.signal).then(
        (c) => win(c),
        (e: unknown) => {
          tcpError = toOriginlinkError(e, ErrorCode.CONNECT_FAILED);
          if (quicDone) fail(quicError ?? tcpError);
          // else: QUIC may still win.
        },
      );
    }

    const quicTimer = setTimeout(() => quicCtl.abort(), o.quicTimeoutMs);
    o.quic(quicCtl.signal).then(
      (c) => {
        clearTimeout(quicTimer);
        quicDone = true;
        const late = decided;
        const taken = o.onQuic({ ok: true, conn: c, late }) === true;
        if (late) {
          if (!taken) c.destroy();
          return;
        }
        tcpCtl.abort();
        win(c);
      },
      (e: unknown) => {
        clearTimeout(quicTimer);
        quicDone = true;
        const err = toOriginlinkError(e, ErrorCode.QUIC_FAILED);
        quicError = err;
        const timedOut = quicCtl.signal.aborted && !o.signal.aborted;
        if (o.signal.aborted) o.onQuic({ ok: 'aborted' });
        else if (timedOut) o.onQuic({ ok: false, error: new OriginlinkError(ErrorCode.CONNECT_TIMEOUT, 'network', `QUIC handshake did not complete within ${o.quicTimeoutMs} ms`, { retrySafe: true, cause: e }) });
        else o.onQuic({ ok: false, error: err });
        if (decided) return;
        if (!tcpStarted) startTcp();
        else if (tcpError) fail(tcpError);
      },
    );
    delayTimer = setTimeout(() => { delayTimer = null; startTcp(); }, Math.max(0, o.delayMs));
  });
}
