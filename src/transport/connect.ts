/**
 * Connectors: how to get a PooledConnection for an origin. TCP+TLS with ALPN
 * picks h1 or h2; h3 is registered by the QUIC transport. Kept apart from
 * the protocols themselves (Pingora's connector/protocol split).
 */
import { isIP } from 'node:net';
import tls from 'node:tls';
import { ErrorCode, OriginlinkError } from '../errors.js';
import type { SessionStore } from './session-store.js';
import type { ConnectionFacts, PooledConnection, Protocol } from '../http/types.js';
import { H1Connection } from './h1.js';
import { H2PooledConnection } from './h2.js';
import type { EarlyDataPolicy } from '../http/early-data.js';
import { connectTcp, type TcpConnected, type TcpConnectOptions } from './tcp.js';
import type { AddressBook } from './addresses.js';
import { DEFAULT_ATTEMPT_DELAY_MS, raceAddresses } from './happy-eyeballs.js';
import type { ResolvedAddress } from './resolver.js';
import type { ProxyNode } from './proxy.js';
import { openTunnel } from './tunnel.js';
import type { CcAlgorithm } from '../quic/cc.js';
import type { QpackOptions } from './h3-common.js';
import { H2ProxyLinks } from './h2-tunnel.js';

/** Which protocol(s) to use for an origin. `auto` lets ALPN (and later probes) decide. */
export type ProtocolPolicy = 'auto' | Protocol;

export interface OriginSpec {
  scheme: 'http' | 'https';
  host: string;
  port: number;
  /** SNI / certificate name override. */
  servername?: string | undefined;
  protocol: ProtocolPolicy;
  ca?: string | Buffer | Array<string | Buffer> | undefined;
  rejectUnauthorized: boolean;
  /** TCP Fast Open when the native addon is available. */
  tfo: boolean;
  keepAliveProbes: { idleS: number; intervalS: number; count: number } | null;
  /** Resolve `host` to addresses (first one is dialled); default: the system resolver inside the socket layer. Ignored when `addresses` is set. */
  lookup?: LookupFn | undefined;
  /** Every address of the origin: TCP dials race them (Happy Eyeballs), spread over them, skip down ones. */
  addresses?: AddressBook | undefined;
  /** RFC 8305 §5 Connection Attempt Delay, ms. Default 250. */
  attemptDelayMs?: number | undefined;
  /** Egress proxy node: the connection is a tunnel through it (the proxy resolves the name); TCP only. */
  proxy?: ProxyNode | undefined;
}

/** A name resolver: addresses for a host name, preferred first. */
export type LookupFn = (hostname: string) => Promise<string[]>;


/** The origin with `host` replaced by a resolved address (the name kept as SNI) when a lookup is configured. */
async function resolved(origin: OriginSpec): Promise<OriginSpec> {
  if ((!origin.lookup && !origin.addresses) || isIP(origin.host) !== 0) return origin;
  const addrs = origin.addresses
    ? (await origin.addresses.plan(origin.host, origin.port)).map((a) => a.address)
    : await (origin.lookup as LookupFn)(origin.host);
  const first = addrs[0];
  if (first === undefined) throw new OriginlinkError(ErrorCode.CONNECT_FAILED, 'network', `no address for ${origin.host}`, { retrySafe: true });
  return { ...origin, host: first, servername: origin.servername ?? origin.host };
}

/**
 * What a connector needs of the pool's options (PoolOptions is a superset;
 * each field is documented there).
 */
export interface ConnectionLimits {
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  maxHeaderBytes: number;
  maxHeaderCount: number;
  windowSize: number;
  migrateAfterProbeTimeouts: number;
  /** Liveness of HTTP/2 connections to proxy nodes (h2-tunnel.ts), as for pooled connections. */
  pingIntervalMs: number;
  pingTimeoutMs: number;
}

export interface ConnectContext {
  pool: Readonly<ConnectionLimits>;
  sessionStore: SessionStore;
  sessionKey: string;
  nextId: () => number;
  signal: AbortSignal;
  /** Which requests may ride in 0-RTT early data (h3). Default 'safe': GET, HEAD, OPTIONS. */
  earlyData?: EarlyDataPolicy | undefined;
  /** Connections to `http2` proxy nodes (one set per Agent); default: one set shared by the process. */
  proxyLinks?: H2ProxyLinks | undefined;
  /** h3: the congestion controller of what we send (request bodies); default the QUIC layer's. */
  congestionControl?: CcAlgorithm | undefined;
  /** h3: our QPACK decoder's limits (dynamic table towards us); default h3Settings'. */
  qpack?: QpackOptions | undefined;
}

const defaultProxyLinks = new H2ProxyLinks();

/** A connector for a protocol that is not TCP-based (h3). */
export type ExtraConnector = (origin: OriginSpec, ctx: ConnectContext) => Promise<PooledConnection>;

let h3Module: Promise<ExtraConnector> | null = null;
/** The HTTP/3 connector, loaded on first use (it loads the native QUIC binding); call early to preload. */
export function h3Connector(): Promise<ExtraConnector> {
  h3Module ??= import('./h3-connect.js').then((m) => m.h3Connector);
  return h3Module;
}

interface Dialled {
  t: TcpConnected;
  /** The address that won, when the name was resolved here. */
  address: ResolvedAddress | null;
  attempts: number;
  /** Through an `http2` node: the tunnel is an HTTP/2 CONNECT stream (false when the node fell back to HTTP/1.1). */
  tunnelHttp2?: boolean;
}

/**
 * TCP (+TLS) to an origin. A host name with an address book: resolve, race
 * the addresses (RFC 8305), dial IPs — so TFO applies to names too — with the
 * name kept for SNI and the certificate check.
 */
async function dialTcp(origin: OriginSpec, base: TcpConnectOptions, ctx: ConnectContext): Promise<Dialled> {
  if (origin.proxy) {
    // The name goes to the proxy unresolved; TLS to the origin (SNI, certificate by name) runs inside the tunnel.
    const t0 = performance.now();
    const to = { signal: ctx.signal, timeoutMs: ctx.pool.connectTimeoutMs, ca: origin.ca, rejectUnauthorized: origin.rejectUnauthorized };
    const tunnel = origin.proxy.http2
      ? await (ctx.proxyLinks ?? defaultProxyLinks).open(origin.proxy, origin.host, origin.port, { ...to, windowSize: ctx.pool.windowSize, maxHeaderListSize: ctx.pool.maxHeaderBytes, pingIntervalMs: ctx.pool.pingIntervalMs, pingTimeoutMs: ctx.pool.pingTimeoutMs })
      : { socket: await openTunnel(origin.proxy, origin.host, origin.port, to), http2: false };
    const tunnelMs = performance.now() - t0;
    const t = await connectTcp({ ...base, socket: tunnel.socket });
    // The tunnel is this connection's transport setup: per-node handshake time counts it.
    return { t: { ...t, connectMs: tunnelMs + t.connectMs }, address: null, attempts: 1, tunnelHttp2: tunnel.http2 };
  }
  const r = await dialAddresses(origin, ctx, (host, servername, signal) => connectTcp({ ...base, host, servername, signal }), (t) => t.socket.destroy());
  return { t: r.value, address: r.address, attempts: r.attempts };
}

/**
 * Dial an origin by address, for TCP and QUIC alike. A host name with an
 * address book: resolve, race the addresses (RFC 8305: families interleaved,
 * §4; a new attempt every attempt delay or at once when one fails, §5), the
 * name kept for SNI and the certificate; a failed or outrun address is marked
 * down in the book. An IP literal, or no book: one dial (a `lookup`'s first
 * address).
 */
async function dialAddresses<T>(
  origin: OriginSpec,
  ctx: ConnectContext,
  /** `lead`: the only attempt, or the race's first one to an address not marked down. */
  dial: (host: string, servername: string | undefined, signal: AbortSignal, lead: boolean) => Promise<T>,
  dispose: (value: T) => void,
): Promise<{ value: T; address: ResolvedAddress | null; attempts: number }> {
  const book = origin.addresses;
  if (!book || isIP(origin.host) !== 0) {
    const r = await resolved(origin);
    const value = await dial(r.host, r.servername, ctx.signal, true);
    const fam = isIP(r.host);
    return { value, address: fam === 0 ? null : { address: r.host, family: fam as 4 | 6 }, attempts: 1 };
  }
  const resolution = await book.resolver.resolve(origin.host);
  // order() and the first attempt run in one turn: the next concurrent dial sees this one counted.
  const candidates = book.order(origin.host, origin.port, resolution);
  const servername = origin.servername ?? origin.host;
  const attempt = (a: ResolvedAddress, signal: AbortSignal): Promise<T> => {
    const release = book.attempt(origin.host, origin.port, a);
    const lead = a === candidates[0] && !book.isDown(origin.host, origin.port, a);
    return dial(a.address, servername, AbortSignal.any([ctx.signal, signal]), lead).finally(release);
  };
  const r = await raceAddresses(candidates, attempt, {
    attemptDelayMs: origin.attemptDelayMs ?? DEFAULT_ATTEMPT_DELAY_MS,
    signal: ctx.signal,
    dispose,
    onFail: (a) => book.failed(origin.host, origin.port, a),
    // Outrun by a later attempt: treated as failed, so the next dials do not wait on it again.
    onOutrun: (a) => book.failed(origin.host, origin.port, a),
  });
  return { value: r.value, address: r.address, attempts: r.attempts };
}

/**
 * HTTP/3 to `spec` (its host and port: the origin, or an alternative service
 * with the origin's name as servername), over every address of the name
 * (Happy Eyeballs as for TCP, RFC 8305 §5). A connection ready for 0-RTT has
 * heard nothing from its address yet, so only the lead attempt (the first
 * address, not marked down) may win at 0-RTT readiness — the early requests
 * leave at once, as with a single address; a later attempt wins only on a
 * completed handshake. (A ticket for a dead first address therefore costs the
 * handshake timeout once; the address is then marked down and skipped.)
 */
async function dialH3(quicSpec: OriginSpec, ctx: ConnectContext): Promise<PooledConnection> {
  const h3 = await h3Connector();
  // QUIC keeps its own address counts and down marks (a UDP path can fail where TCP works).
  const spec = quicSpec.addresses ? { ...quicSpec, addresses: quicSpec.addresses.udp } : quicSpec;
  const r = await dialAddresses(spec, ctx, async (host, servername, signal, lead) => {
    const conn = await h3({ ...spec, host, servername }, { ...ctx, signal });
    const pending = lead ? null : conn.handshakePending?.() ?? null;
    if (pending) {
      const onAbort = (): void => conn.destroy(); // outrun by another address
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        await pending;
      } catch (e) {
        conn.destroy();
        throw e;
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    }
    return conn;
  }, (c) => c.destroy());
  const conn = r.value;
  conn.facts.attempts = r.attempts;
  const book = spec.addresses && isIP(spec.host) === 0 ? spec.addresses : null;
  if (r.address) {
    conn.facts.family = r.address.family;
    if (book) {
      book.opened(spec.host, spec.port, r.address, conn);
      // Won at 0-RTT readiness: a handshake that fails later marks the address down, so the next dial skips it.
      const address = r.address;
      conn.handshakePending?.()?.catch(() => book.failed(spec.host, spec.port, address));
    }
  }
  return conn;
}

export async function connectOrigin(spec: OriginSpec, ctx: ConnectContext): Promise<PooledConnection> {
  if (spec.protocol === 'h3' && spec.proxy) {
    throw new OriginlinkError(ErrorCode.UNSUPPORTED_PROTOCOL, 'local', `h3 is not attempted through ${spec.proxy.id}: a TCP-only proxy`, { retrySafe: false, details: { proxy: spec.proxy.id } });
  }
  if (spec.protocol === 'h3') return dialH3(spec, ctx);
  const origin = spec;
  const tlsOn = origin.scheme === 'https';
  const alpn = origin.protocol === 'h1' ? ['http/1.1'] : origin.protocol === 'h2' ? ['h2'] : ['h2', 'http/1.1'];
  const { t, address, attempts, tunnelHttp2 } = await dialTcp(origin, {
    host: origin.host,
    port: origin.port,
    tls: tlsOn,
    servername: origin.servername,
    alpn,
    ca: origin.ca,
    rejectUnauthorized: origin.rejectUnauthorized,
    connectTimeoutMs: ctx.pool.connectTimeoutMs,
    sessionStore: ctx.sessionStore,
    sessionKey: ctx.sessionKey,
    tfo: origin.tfo,
    keepAliveProbes: origin.keepAliveProbes,
    signal: ctx.signal,
  }, ctx);
  const useH2 = tlsOn ? t.alpn === 'h2' : origin.protocol === 'h2'; // cleartext h2 = prior knowledge (RFC 9113 §3.3)
  if (origin.protocol === 'h2' && !useH2) {
    t.socket.destroy();
    throw new OriginlinkError(ErrorCode.UNSUPPORTED_PROTOCOL, 'remote', `${origin.host}:${origin.port} did not negotiate h2 (ALPN ${t.alpn ?? 'none'})`, { retrySafe: true });
  }
  const facts: ConnectionFacts = {
    protocol: useH2 ? 'h2' : 'h1',
    alpn: t.alpn,
    // Through a proxy the socket's peer is the proxy; the facts name the origin.
    remoteAddress: origin.proxy ? origin.host : t.socket.remoteAddress ?? origin.host,
    remotePort: origin.proxy ? origin.port : t.socket.remotePort ?? origin.port,
    localAddress: t.socket.localAddress ?? '',
    localPort: t.socket.localPort ?? 0,
    connectMs: t.connectMs,
    tlsMs: t.tlsMs,
    tlsVersion: t.tlsVersion,
    resumed: t.resumed,
    earlyData: false,
    tfo: t.tfo,
    keepAliveHintMs: null,
    peerMaxConcurrentStreams: null,
    rttMs: null,
    family: origin.proxy ? null : address?.family ?? familyOf(t.socket.remoteAddress),
    attempts,
    proxy: origin.proxy ? { node: origin.proxy.id, kind: origin.proxy.kind, http2: tunnelHttp2 === true, h3: 'not attempted: TCP-only proxy' } : null,
  };
  const p = ctx.pool;
  // The verified leaf, for coalescing (RFC 9113 §9.1.1); an unverified one proves nothing.
  const cert = tlsOn && origin.rejectUnauthorized ? (t.socket as tls.TLSSocket).getPeerX509Certificate() ?? null : null;
  let conn: PooledConnection;
  if (!useH2) {
    conn = new H1Connection(ctx.nextId(), t.socket, facts, {
      maxHeaderBytes: p.maxHeaderBytes,
      maxHeaderCount: p.maxHeaderCount,
      headersTimeoutMs: p.headersTimeoutMs,
      bodyTimeoutMs: p.bodyTimeoutMs,
    }, cert);
  } else {
    const h2opts = { headersTimeoutMs: p.headersTimeoutMs, bodyTimeoutMs: p.bodyTimeoutMs, windowSize: p.windowSize, maxHeaderListSize: p.maxHeaderBytes, maxHeaderCount: p.maxHeaderCount };
    conn = new H2PooledConnection(ctx.nextId(), t.socket, facts, h2opts, origin.scheme, cert);
  }
  if (address && origin.addresses) origin.addresses.opened(origin.host, origin.port, address, conn);
  return conn;
}

function familyOf(ip: string | undefined): 4 | 6 | null {
  const f = ip ? isIP(ip) : 0;
  return f === 4 || f === 6 ? f : null;
}

/**
 * HTTP/3 to an origin's alternative service (RFC 7838: the certificate must
 * still be valid for the origin's name). Resolves once the handshake is
 * complete, so a race is never won by a path that has not answered — except
 * with `early`: resuming a stored ticket, it resolves at 0-RTT readiness,
 * the handshake pending (`handshakePending()`), for the caller to send early
 * data at once while TCP stays in the race (probe/race.ts).
 */
export async function connectAltH3(spec: OriginSpec, alt: { host: string; port: number }, ctx: ConnectContext, handshakeTimeoutMs: number, early = false): Promise<PooledConnection> {
  const name = spec.servername ?? spec.host;
  const conn = await dialH3({ ...spec, protocol: 'h3', host: alt.host || spec.host, port: alt.port, servername: name }, { ...ctx, pool: { ...ctx.pool, connectTimeoutMs: handshakeTimeoutMs } });
  const pending = early ? null : conn.handshakePending?.() ?? null;
  if (pending) {
    try {
      await pending;
    } catch (e) {
      conn.destroy();
      throw e;
    }
  }
  return conn;
}
