/**
 * One liveness probe of a connection (RFC 9113 §6.7 PING, RFC 9000 §19.2):
 * no answer within `timeoutMs` destroys the connection with the error
 * `onDead` returns. `slot.pinging` keeps one PING out per connection; when to
 * probe (idle, a draining peer, a stream timeout) is the caller's. Used by
 * the pool's health checks and by the HTTP/2 connections to proxy nodes.
 */
import { socketFailure, type OriginlinkError } from '../errors.js';
import type { PooledConnection } from '../http/types.js';

export function pingOrClose(
  slot: { pinging: boolean },
  conn: Pick<PooledConnection, 'ping' | 'destroy' | 'state'>,
  timeoutMs: number,
  onDead: (err: OriginlinkError) => OriginlinkError,
): void {
  if (slot.pinging || !conn.ping) return;
  slot.pinging = true;
  conn.ping(timeoutMs).then(
    () => {
      slot.pinging = false;
    },
    (e: unknown) => {
      slot.pinging = false;
      if (conn.state === 'closed') return;
      conn.destroy(onDead(socketFailure(e)));
    },
  );
}
