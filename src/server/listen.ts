/**
 * Listening for our servers (HTTP/1.1 and HTTP/2): a TCP or TLS listener
 * that gives each accepted socket a session, and the one graceful close of
 * every server (`finishWithin`: the h3 server and the service's fronts use
 * it too) that lets sessions finish what is in flight, up to a grace period.
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';

export interface ServedSession {
  /** Requests (streams) in flight. */
  readonly active: number;
  onClose(fn: () => void): void;
  /** Graceful: no new requests; those in flight finish. */
  close(): void;
  destroy(): void;
}

export interface ListenOptions {
  /** Bind address. Default '127.0.0.1'. */
  host?: string;
  /** Port. Default 0 (ephemeral). */
  port?: number;
  /**
   * A unix-domain stream socket to listen on instead of `host`/`port` (a stale socket file left there is replaced;
   * the socket is made mode 0600: its directory's permissions are the access control).
   */
  path?: string;
  /** PEM certificate and key: TLS with ALPN. Without them: cleartext. */
  cert?: string | Uint8Array;
  key?: string | Uint8Array;
  /**
   * With `cert`/`key`: the CAs a client's certificate must chain to (mutual TLS). A client without one that does is
   * not served: node:tls ends its handshake.
   */
  clientCa?: Uint8Array;
  /**
   * This process's own socket even in a node:cluster worker (whose listen() otherwise shares one socket of the
   * primary among every worker, each connection handed to any of them). Default false.
   */
  exclusive?: boolean;
}

export interface SessionServer {
  readonly address: { host: string; port: number };
  readonly connections: number;
  /** Stop accepting; sessions close gracefully; wait up to `graceMs` for what is in flight, then cut. */
  close(graceMs?: number): Promise<void>;
}

export async function listenSessions(
  opts: ListenOptions,
  alpn: string[],
  make: (socket: net.Socket, scheme: 'http' | 'https') => ServedSession,
): Promise<SessionServer> {
  const sessions = new Set<ServedSession>();
  const serve = (socket: net.Socket, scheme: 'http' | 'https'): void => {
    const s = make(socket, scheme);
    sessions.add(s);
    s.onClose(() => sessions.delete(s));
  };
  const server: net.Server =
    opts.cert && opts.key
      ? tls.createServer(
          {
            cert: Buffer.from(opts.cert),
            key: Buffer.from(opts.key),
            ALPNProtocols: alpn,
            ...(opts.clientCa ? { ca: Buffer.from(opts.clientCa), requestCert: true, rejectUnauthorized: true } : {}),
          },
          (s) => serve(s, 'https'),
        )
      : net.createServer((s) => serve(s, 'http'));
  const path = opts.path;
  if (path !== undefined && lstatSync(path, { throwIfNoEntry: false })?.isSocket()) unlinkSync(path);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const exclusive = opts.exclusive === true;
    server.listen(
      path !== undefined ? { path, exclusive } : { port: opts.port ?? 0, host: opts.host ?? '127.0.0.1', exclusive },
      () => resolve(),
    );
  });
  if (path !== undefined) chmodSync(path, 0o600);
  const a = path !== undefined ? { address: path, port: 0 } : (server.address() as net.AddressInfo);
  return {
    address: { host: a.address, port: a.port },
    get connections() {
      return sessions.size;
    },
    async close(graceMs = 1000) {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sessions) s.close();
      await finishWithin(sessions, (s) => s.active > 0, graceMs);
      for (const s of sessions) s.destroy();
      await closed;
    },
  };
}

/** How often a graceful close looks again whether its sessions are done, ms. */
const FINISH_POLL_MS = 20;

/**
 * Wait until no session is `busy` or `graceMs` have passed, looking every 20 ms (a session that
 * finishes is seen within that; the caller has already told each to finish: GOAWAY, or `close` on
 * the last answer). `atLeastOnce`: wait one period even when none is busy now (frames a close just
 * queued leave first). The caller cuts what is left.
 */
export async function finishWithin<S>(
  sessions: Iterable<S>,
  busy: (s: S) => boolean,
  graceMs: number,
  atLeastOnce = false,
): Promise<void> {
  const end = Date.now() + graceMs;
  const anyBusy = (): boolean => {
    for (const s of sessions) if (busy(s)) return true;
    return false;
  };
  if (atLeastOnce) await new Promise((r) => setTimeout(r, FINISH_POLL_MS));
  while (anyBusy() && Date.now() < end) await new Promise((r) => setTimeout(r, FINISH_POLL_MS));
}
