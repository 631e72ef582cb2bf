/**
 * Dialling an origin: name → addresses (the one resolver, resolver.ts) →
 * every address raced (Happy Eyeballs, RFC 8305) → a connected socket; or a
 * tunnel through an egress proxy, which resolves the name itself. A dial
 * returns a socket and what it took; what speaks HTTP on it is the caller's
 * (connect/ for pooled connections, the service's upgrade tunnels).
 *
 * `dialAddresses` is the part TCP and QUIC share: the race over a name's
 * addresses with their down marks (the caller's `dial` opens one attempt).
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { AddressBook } from './addresses.js';
import { DEFAULT_ATTEMPT_DELAY_MS, raceAddresses } from './happy-eyeballs.js';
import type { ProxyNode } from './proxy.js';
import { defaultResolver, type ResolvedAddress } from './resolver.js';
import { connectTcp, type TcpConnected, type TcpConnectOptions } from './tcp.js';
import { openTunnel, type TunnelOptions } from './tunnel.js';
import { ipFamily } from '../util/ip.js';
import { abortSignalOf, type DialSignal } from '../util/leg-signal.js';

/** Where a dial goes: a name (or IP literal) and port, and how its addresses are chosen. */
export interface DialTarget {
  host: string;
  port: number;
  /** SNI / certificate name; default `host` (none for an IP literal). */
  servername?: string | undefined;
  /** The origin's addresses and their down marks; default the process's shared book over the default resolver. */
  addresses?: AddressBook | undefined;
  /** RFC 8305 §5 Connection Attempt Delay, ms. Default 250. */
  attemptDelayMs?: number | undefined;
  /** Egress proxy node: the connection is a tunnel through it (the proxy resolves the name); TCP only. */
  proxy?: ProxyNode | undefined;
  /** A unix-domain stream socket to connect to instead (`host` stays the name TLS checks); never with `proxy`. */
  socketPath?: string | undefined;
}

/**
 * Opens a tunnel through an `http2` proxy node: a CONNECT stream on a shared connection (connect/h2-proxy-links.ts).
 */
export type H2TunnelOpener = (
  node: ProxyNode,
  host: string,
  port: number,
  o: TunnelOptions,
) => Promise<{ socket: Duplex; http2: boolean }>;

export interface Dialled {
  t: TcpConnected;
  /** The address that won, when the name was resolved here (null through a proxy). */
  address: ResolvedAddress | null;
  /** Happy Eyeballs attempts, one per address tried. */
  attempts: number;
  /** Through an `http2` node: the tunnel is an HTTP/2 CONNECT stream (false when the node fell back to HTTP/1.1). */
  tunnelHttp2?: boolean;
}

let sharedBook: AddressBook | null = null;
/** The book of a dial that names none: one per process, over the default resolver (bounded like any book). */
export function defaultAddressBook(): AddressBook {
  sharedBook ??= new AddressBook(defaultResolver());
  return sharedBook;
}

/**
 * TCP (+TLS) to an origin: `base` says how (TLS, ALPN, trust, TFO, session
 * store); the target where. A host name: resolve, race the addresses, dial
 * IPs — so TFO applies to names too — the name kept for SNI and the
 * certificate check. Through a proxy: a tunnel, TLS inside it.
 */
export async function dialTcp(
  target: DialTarget,
  base: Omit<TcpConnectOptions, 'host' | 'port' | 'servername' | 'signal'>,
  signal: DialSignal,
  h2Tunnels?: H2TunnelOpener,
): Promise<Dialled> {
  const o = { ...base, port: target.port };
  if (target.socketPath !== undefined) {
    const t0 = performance.now();
    const socket = await connectUnix(target.socketPath, signal, base.connectTimeoutMs);
    const t = await connectTcp({ ...o, tfo: false, host: target.host, servername: target.servername, signal, socket });
    return { t: { ...t, connectMs: performance.now() - t0 }, address: null, attempts: 1 };
  }
  if (target.proxy) {
    // The name goes to the proxy unresolved; TLS to the origin (SNI, certificate by name) runs inside the tunnel.
    const t0 = performance.now();
    const to = {
      signal,
      timeoutMs: base.connectTimeoutMs,
      ca: base.ca,
      rejectUnauthorized: base.rejectUnauthorized !== false,
    };
    const tunnel =
      target.proxy.http2 && h2Tunnels
        ? await h2Tunnels(target.proxy, target.host, target.port, to)
        : { socket: await openTunnel(target.proxy, target.host, target.port, to), http2: false };
    const tunnelMs = performance.now() - t0;
    const t = await connectTcp({
      ...o,
      host: target.host,
      servername: target.servername,
      signal,
      socket: tunnel.socket,
    });
    // The tunnel is this connection's transport setup: per-node handshake time counts it.
    return { t: { ...t, connectMs: tunnelMs + t.connectMs }, address: null, attempts: 1, tunnelHttp2: tunnel.http2 };
  }
  const r = await dialAddresses(
    target,
    signal,
    (host, servername, sig) => connectTcp({ ...o, host, servername, signal: sig }),
    (t) => t.socket.destroy(),
  );
  return { t: r.value, address: r.address, attempts: r.attempts };
}

/**
 * A connected unix-domain stream socket at `path`: refused (ECONNREFUSED: nothing listens; ENOENT: no such socket)
 * and timed out as a TCP connect is, so the pool's dial errors and backoff apply unchanged.
 */
function connectUnix(path: string, signal: DialSignal, timeoutMs: number | undefined): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ path });
    const fail = (e: Error): void => {
      cleanup();
      s.destroy();
      reject(e);
    };
    const onAbort = (): void => fail(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    const timer =
      timeoutMs !== undefined && timeoutMs > 0
        ? setTimeout(
            () => fail(Object.assign(new Error(`connect ETIMEDOUT ${path}`), { code: 'ETIMEDOUT' })),
            timeoutMs,
          )
        : null;
    const cleanup = (): void => {
      if (timer !== null) clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      s.off('error', fail);
    };
    s.once('error', fail);
    s.once('connect', () => {
      cleanup();
      resolve(s);
    });
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Dial an origin by address, for TCP and QUIC alike. A host name: resolve,
 * race the addresses (RFC 8305: families interleaved, §4; a new attempt every
 * attempt delay or at once when one fails, §5), the name kept for SNI and the
 * certificate; a failed or outrun address is marked down in the book. An IP
 * literal: one dial.
 */
export async function dialAddresses<T>(
  target: DialTarget,
  signal: DialSignal,
  /** `lead`: the only attempt, or the race's first one to an address not marked down. */
  dial: (host: string, servername: string | undefined, signal: DialSignal, lead: boolean) => Promise<T>,
  dispose: (value: T) => void,
): Promise<{ value: T; address: ResolvedAddress | null; attempts: number }> {
  const host = target.host.startsWith('[') && target.host.endsWith(']') ? target.host.slice(1, -1) : target.host;
  const fam = ipFamily(host);
  if (fam !== 0) {
    const value = await dial(host, target.servername, signal, true);
    return { value, address: { address: host, family: fam as 4 | 6 }, attempts: 1 };
  }
  const book = target.addresses ?? defaultAddressBook();
  const resolution = await book.resolver.resolve(host);
  // order() and the first attempt run in one turn: the next concurrent dial sees this one counted.
  const candidates = book.order(host, target.port, resolution);
  const servername = target.servername ?? host;
  const attempt = (a: ResolvedAddress, sig: AbortSignal): Promise<T> => {
    const release = book.attempt(host, target.port, a);
    const lead = a === candidates[0] && !book.isDown(host, target.port, a);
    return dial(a.address, servername, AbortSignal.any([abortSignalOf(signal), sig]), lead).finally(release);
  };
  const r = await raceAddresses(candidates, attempt, {
    attemptDelayMs: target.attemptDelayMs ?? DEFAULT_ATTEMPT_DELAY_MS,
    signal,
    dispose,
    onFail: (a) => book.failed(host, target.port, a),
    // Outrun by a later attempt: treated as failed, so the next dials do not wait on it again.
    onOutrun: (a) => book.failed(host, target.port, a),
  });
  return { value: r.value, address: r.address, attempts: r.attempts };
}
