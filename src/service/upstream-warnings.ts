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
import { LruMap } from '../util/lru.js';

const WARN_INTERVAL_MS = 60_000;

/** Starts watching; returns the function that stops it. */
export function warnUnsolicited(log: Logger, intervalMs = WARN_INTERVAL_MS): () => void {
  const last = new LruMap<string, { at: number; suppressed: number }>(1024);
  const onClose = (m: unknown): void => {
    const { origin, error } = m as { origin: string; error: OriginlinkError | null };
    if (error?.code !== ErrorCode.UNSOLICITED_RESPONSE) return;
    const now = Date.now();
    const seen = last.get(origin);
    if (seen && now - seen.at < intervalMs) {
      seen.suppressed++;
      return;
    }
    log.warn({ upstream: origin, code: error.code, since: seen?.suppressed ?? 0, err: error.message }, 'origin sent a response nobody asked for; connection closed, not reused (more of these from it within the interval are counted, not logged)');
    last.set(origin, { at: now, suppressed: 0 });
  };
  diagnostics.subscribe(channels.connectionClose.name, onClose);
  return () => diagnostics.unsubscribe(channels.connectionClose.name, onClose);
}
