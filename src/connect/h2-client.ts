/**
 * Our HTTP/2 client (client/h2.ts and the ~20 modules under it: framing, HPACK, flow control), loaded at the first
 * HTTP/2 connection of the process — to an origin, or to an `http2` proxy node — not at the package's import: a user
 * of HTTP/1.1 (or the CLI's `fetch` of an h1 URL) never loads it (issue 58, bench `startup`).
 */
import type { Duplex } from 'node:stream';
import { ErrorCode, NOT_SENT, OriginlinkError, socketFailure } from '../errors.js';

type H2Module = typeof import('../client/h2.js');

let loading: Promise<H2Module> | null = null;
let loaded: H2Module | null = null;

/** Start loading it (a dial that may end in HTTP/2 calls this as it begins, so the load overlaps the handshake). */
export function loadH2Client(): Promise<H2Module> {
  loading ??= import('../client/h2.js').then((m) => {
    loaded = m;
    return m;
  });
  return loading;
}

/**
 * The module for a connection whose handshake chose h2 on `socket`: at once once loaded; the first time, after the
 * load, with the socket's errors held meanwhile (no listener of the dial's is left on it) — a socket that failed or
 * closed while the module loaded is a failed connection, never an uncaught error.
 */
export async function h2ClientFor(socket: Duplex): Promise<H2Module> {
  if (loaded !== null) return loaded;
  let err: unknown = null;
  const hold = (e: unknown): void => {
    err ??= e;
  };
  socket.on('error', hold);
  try {
    const m = await loadH2Client();
    if (err !== null || socket.destroyed) {
      socket.destroy();
      throw err !== null
        ? socketFailure(err)
        : new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'network', 'connection closed before HTTP/2 began', {
            retrySafe: true,
            facts: NOT_SENT,
          });
    }
    return m;
  } finally {
    socket.removeListener('error', hold);
  }
}
