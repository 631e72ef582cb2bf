/**
 * diagnostics_channel publication. Subscribers (the service's metrics, the
 * benchmarks, users) all read the same events; nothing is built when no one listens.
 *
 * Channels:
 *  - `originlink:connection:open`  { origin, id, protocol, facts }
 *  - `originlink:connection:close` { origin, id, protocol, served, error }
 *  - `originlink:request:end`      { origin, method, path, status, protocol, reused, attempts, ttfbMs, error }
 */
import diagnostics from 'node:diagnostics_channel';
import type { PooledConnection } from '../http/types.js';

export const channels = {
  connectionOpen: diagnostics.channel('originlink:connection:open'),
  connectionClose: diagnostics.channel('originlink:connection:close'),
  requestEnd: diagnostics.channel('originlink:request:end'),
} as const;

export function publishConnection(
  kind: 'open' | 'close',
  origin: string,
  conn: PooledConnection,
  error?: Error | null,
): void {
  if (kind === 'open') {
    if (channels.connectionOpen.hasSubscribers)
      channels.connectionOpen.publish({ origin, id: conn.id, protocol: conn.protocol, facts: conn.facts });
  } else if (channels.connectionClose.hasSubscribers) {
    channels.connectionClose.publish({
      origin,
      id: conn.id,
      protocol: conn.protocol,
      served: conn.served,
      error: error ?? null,
    });
  }
}

export interface RequestEndMessage {
  origin: string;
  method: string;
  path: string;
  status: number | null;
  protocol: string | null;
  reused: boolean;
  attempts: number;
  ttfbMs: number;
  error: Error | null;
}

/**
 * The message is made only when someone listens (the arguments are its fields, in order): this runs for every request.
 */
export function publishRequestEnd(
  origin: string,
  method: string,
  path: string,
  status: number | null,
  protocol: string | null,
  reused: boolean,
  attempts: number,
  ttfbMs: number,
  error: Error | null,
): void {
  if (!channels.requestEnd.hasSubscribers) return;
  const msg: RequestEndMessage = { origin, method, path, status, protocol, reused, attempts, ttfbMs, error };
  channels.requestEnd.publish(msg);
}
