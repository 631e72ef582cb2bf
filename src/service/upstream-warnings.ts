/**
 * Warnings about origins that misbehave on their own connections, from the pools' diagnostics events: an
 * HTTP/1.1 origin that sends bytes with no request outstanding (OL_UNSOLICITED_RESPONSE: the connection is
 * closed and counted in `originlink_upstream_errors_total`). One line per origin per interval, with how many
 * such closes the interval saw, so a broken origin cannot flood the log. Bounded: at most 1024 origins held.
 */
import diagnostics from 'node:diagnostics_channel';
import type { Logger } from 'pino';
import { ErrorCode, type OriginlinkError } from '../errors.js';
import { channels } from '../pool/diagnostics.js';
import { IntervalGate } from '../util/interval-gate.js';

const WARN_INTERVAL_MS = 60_000;

/** Starts watching; returns the function that stops it. */
export function warnUnsolicited(log: Logger, intervalMs = WARN_INTERVAL_MS): () => void {
  const gate = new IntervalGate(intervalMs);
  const onClose = (m: unknown): void => {
    const { origin, error } = m as { origin: string; error: OriginlinkError | null };
    if (error?.code !== ErrorCode.UNSOLICITED_RESPONSE) return;
    const pass = gate.pass(origin);
    if (pass === null) return;
    log.warn(
      { upstream: origin, code: error.code, since: pass.since, err: error.message },
      'origin sent a response nobody asked for; connection closed, not reused (more of these from it within the interval are counted, not logged)',
    );
  };
  diagnostics.subscribe(channels.connectionClose.name, onClose);
  return () => diagnostics.unsubscribe(channels.connectionClose.name, onClose);
}
