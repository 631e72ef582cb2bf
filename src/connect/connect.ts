/**
 * Origin connectors: how to get a PooledConnection for an origin. A dial
 * (net/dial.ts) gives a socket; TCP+TLS with ALPN then picks h1 or h2; h3 is
 * the QUIC connector (h3.ts), loaded on first use. Kept apart from the
 * protocols themselves (Pingora's connector/protocol split).
 */
import { ipFamily } from '../util/ip.js';
import type tls from 'node:tls';
import { ErrorCode, OriginlinkError } from '../errors.js';
import type { SessionStore } from '../store/session-store.js';
import type { ConnectionFacts, PooledConnection, Protocol } from '../http/types.js';
import { H1PooledConnection } from '../client/h1.js';
import { h2ClientFor, loadH2Client } from './h2-client.js';
import type { EarlyDataPolicy } from '../http/early-data.js';
import {
  defaultAddressBook,
  dialAddresses,
  dialTcp,
  type Dialled,
  type DialTarget,
  type H2TunnelOpener,
} from '../net/dial.js';
import type { BbrTuning, CcAlgorithm } from '../quic/cc.js';
import type { ClientIdentity } from '../net/tls-context.js';
import type { QpackOptions } from '../wire/h3-settings.js';
import { H2ProxyLinks } from './h2-proxy-links.js';
import { quiche } from '../quic/quiche.js';
import type { DialSignal } from '../util/leg-signal.js';

/** Which protocol(s) to use for an origin. `auto` lets ALPN (and later probes) decide. */
export type ProtocolPolicy = 'auto' | Protocol;

export interface OriginSpec extends DialTarget {
  scheme: 'http' | 'https';
  protocol: ProtocolPolicy;
  ca?: string | Buffer | Array<string | Buffer> | undefined;
  rejectUnauthorized: boolean;
  /** The client certificate shown when the origin asks for one (mutual TLS). */
  identity?: ClientIdentity | null | undefined;
  /** TCP Fast Open when the native addon is available. */
  tfo: boolean;
  keepAliveProbes: { idleS: number; intervalS: number; count: number } | null;
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
  /** Liveness of HTTP/2 connections to proxy nodes (h2-proxy-links.ts), as for pooled connections. */
  pingIntervalMs: number;
  pingTimeoutMs: number;
}

export interface ConnectContext {
  pool: Readonly<ConnectionLimits>;
  sessionStore: SessionStore;
  sessionKey: string;
  nextId: () => number;
  signal: DialSignal;
  /** Which requests may ride in 0-RTT early data (h3). Default 'safe': GET, HEAD, OPTIONS. */
  earlyData?: EarlyDataPolicy | undefined;
  /** Connections to `http2` proxy nodes (one set per Agent); default: one set shared by the process. */
  proxyLinks?: H2ProxyLinks | undefined;
  /** h3: the congestion controller of what we send (request bodies); default the QUIC layer's. */
  congestionControl?: CcAlgorithm | undefined;
  /** h3: our QPACK decoder's limits (dynamic table towards us); default h3Settings'. */
  qpack?: QpackOptions | undefined;
  /**
   * performance.now() when the dial began: an h3 connection's connectMs counts from it (loading the QUIC module,
   * resolving).
   */
  dialStartedAt?: number | undefined;
  /** h3: BBR tuning of what we send; default the QUIC layer's DEFAULT_BBR. */
  bbr?: BbrTuning | undefined;
}

const defaultProxyLinks = new H2ProxyLinks();

/** A connector for a protocol that is not TCP-based (h3). */
export type ExtraConnector = (origin: OriginSpec, ctx: ConnectContext) => Promise<PooledConnection>;

let h3Module: Promise<ExtraConnector> | null = null;
/** The HTTP/3 connector, loaded on first use with the native QUIC binding (loadQuicBinding); call early to preload. */
export function h3Connector(): Promise<ExtraConnector> {
  h3Module ??= import('./h3.js').then((m) => {
    loadQuicBinding();
    return m.h3Connector;
  });
  return h3Module;
}

/**
 * Load the native QUIC binding now, for a client that will dial HTTP/3 (an Agent whose policy is h3, a service with an
 * h3 origin): the dlopen its first dial would make, made before the first request's pool key — whose CA content id
 * is then hashed by the binding (util/digest.ts) rather than by the JavaScript SHA-256, run cold in a fresh process.
 * A binding that does not load is left for that dial to report (OL_UNSUPPORTED_PROTOCOL).
 */
export function loadQuicBinding(): void {
  try {
    quiche();
  } catch {
    // reported by the dial
  }
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
  // The first h3 dial of a process loads the QUIC module and binding: part of what that connection cost.
  const dialStartedAt = ctx.dialStartedAt ?? performance.now();
  const h3 = await h3Connector();
  // QUIC keeps its own address counts and down marks (a UDP path can fail where TCP works).
  const spec = quicSpec.addresses ? { ...quicSpec, addresses: quicSpec.addresses.udp } : quicSpec;
  const r = await dialAddresses(
    spec,
    ctx.signal,
    async (host, servername, signal, lead) => {
      const conn = await h3({ ...spec, host, servername }, { ...ctx, signal, dialStartedAt });
      const pending = lead ? null : (conn.handshakePending?.() ?? null);
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
    },
    (c) => c.destroy(),
  );
  const conn = r.value;
  conn.facts.attempts = r.attempts;
  const book = ipFamily(spec.host) === 0 ? (spec.addresses ?? defaultAddressBook().udp) : null;
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
    throw new OriginlinkError(
      ErrorCode.UNSUPPORTED_PROTOCOL,
      'local',
      `h3 is not attempted through ${spec.proxy.id}: a TCP-only proxy`,
      { retrySafe: false, details: { proxy: spec.proxy.id } },
    );
  }
  if (spec.protocol === 'h3') return dialH3(spec, ctx);
  const origin = spec;
  const tlsOn = origin.scheme === 'https';
  const alpn = origin.protocol === 'h1' ? ['http/1.1'] : origin.protocol === 'h2' ? ['h2'] : ['h2', 'http/1.1'];
  // HTTP/2 possible: its client module loads while the handshake runs (h2-client.ts), the first time.
  if (origin.protocol === 'h2' || (tlsOn && origin.protocol !== 'h1')) loadH2Client().catch(() => {});
  const { t, address, attempts, tunnelHttp2 } = await dialOrigin(origin, ctx, alpn);
  const useH2 = tlsOn ? t.alpn === 'h2' : origin.protocol === 'h2'; // cleartext h2 = prior knowledge (RFC 9113 §3.3)
  if (origin.protocol === 'h2' && !useH2) {
    t.socket.destroy();
    throw new OriginlinkError(
      ErrorCode.UNSUPPORTED_PROTOCOL,
      'remote',
      `${origin.host}:${origin.port} did not negotiate h2 (ALPN ${t.alpn ?? 'none'})`,
      { retrySafe: true },
    );
  }
  const facts: ConnectionFacts = {
    protocol: useH2 ? 'h2' : 'h1',
    alpn: t.alpn,
    // Through a proxy the socket's peer is the proxy; the facts name the origin.
    remoteAddress: origin.proxy ? origin.host : (t.socket.remoteAddress ?? origin.host),
    remotePort: origin.proxy ? origin.port : (t.socket.remotePort ?? origin.port),
    localAddress: t.socket.localAddress ?? '',
    localPort: t.socket.localPort ?? 0,
    connectMs: t.connectMs,
    tlsMs: t.tlsMs,
    tlsVersion: t.tlsVersion,
    resumed: t.resumed,
    earlyData: false,
    tfo: t.tfo,
    keepAliveHintMs: null,
    keepAliveObservedMs: null,
    peerMaxConcurrentStreams: null,
    rttMs: null,
    family: origin.proxy ? null : (address?.family ?? familyOf(t.socket.remoteAddress)),
    attempts,
    proxy: origin.proxy
      ? {
          node: origin.proxy.id,
          kind: origin.proxy.kind,
          http2: tunnelHttp2 === true,
          h3: 'not attempted: TCP-only proxy',
        }
      : null,
  };
  const p = ctx.pool;
  // The verified leaf, for coalescing (RFC 9113 §9.1.1); an unverified one proves nothing.
  const cert =
    tlsOn && origin.rejectUnauthorized ? ((t.socket as tls.TLSSocket).getPeerX509Certificate() ?? null) : null;
  let conn: PooledConnection;
  if (!useH2) {
    conn = new H1PooledConnection(
      ctx.nextId(),
      t.socket,
      facts,
      {
        maxHeaderBytes: p.maxHeaderBytes,
        maxHeaderCount: p.maxHeaderCount,
        headersTimeoutMs: p.headersTimeoutMs,
        bodyTimeoutMs: p.bodyTimeoutMs,
      },
      cert,
    );
  } else {
    const h2opts = {
      headersTimeoutMs: p.headersTimeoutMs,
      bodyTimeoutMs: p.bodyTimeoutMs,
      windowSize: p.windowSize,
      maxHeaderListSize: p.maxHeaderBytes,
      maxHeaderCount: p.maxHeaderCount,
    };
    const { H2PooledConnection } = await h2ClientFor(t.socket);
    conn = new H2PooledConnection(ctx.nextId(), t.socket, facts, h2opts, origin.scheme, cert);
  }
  if (address) (origin.addresses ?? defaultAddressBook()).opened(origin.host, origin.port, address, conn);
  return conn;
}

/**
 * A socket to the origin (TCP, TLS with `alpn` for https), dialled as a pooled connection's is: the
 * resolver, every address raced, TFO, the origin's egress proxy (an `http2` node's tunnels share its
 * connections). Nothing is spoken on it yet. The service's upgrade tunnels take theirs this way too.
 */
export function dialOrigin(spec: OriginSpec, ctx: ConnectContext, alpn: string[]): Promise<Dialled> {
  return dialTcp(
    spec,
    {
      tls: spec.scheme === 'https',
      alpn,
      ca: spec.ca,
      rejectUnauthorized: spec.rejectUnauthorized,
      identity: spec.identity,
      connectTimeoutMs: ctx.pool.connectTimeoutMs,
      sessionStore: ctx.sessionStore,
      sessionKey: ctx.sessionKey,
      tfo: spec.tfo,
      keepAliveProbes: spec.keepAliveProbes,
    },
    ctx.signal,
    h2Tunnels(ctx),
  );
}

/** Tunnels through `http2` proxy nodes: CONNECT streams on the context's node connections, with the pool's limits. */
function h2Tunnels(ctx: ConnectContext): H2TunnelOpener {
  const p = ctx.pool;
  const links = ctx.proxyLinks ?? defaultProxyLinks;
  return (node, host, port, o) =>
    links.open(node, host, port, {
      ...o,
      windowSize: p.windowSize,
      maxHeaderListSize: p.maxHeaderBytes,
      pingIntervalMs: p.pingIntervalMs,
      pingTimeoutMs: p.pingTimeoutMs,
    });
}

function familyOf(ip: string | undefined): 4 | 6 | null {
  const f = ip ? ipFamily(ip) : 0;
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
export async function connectAltH3(
  spec: OriginSpec,
  alt: { host: string; port: number },
  ctx: ConnectContext,
  handshakeTimeoutMs: number,
  early = false,
): Promise<PooledConnection> {
  const name = spec.servername ?? spec.host;
  const conn = await dialH3(
    { ...spec, protocol: 'h3', host: alt.host || spec.host, port: alt.port, servername: name },
    { ...ctx, pool: { ...ctx.pool, connectTimeoutMs: handshakeTimeoutMs } },
  );
  const pending = early ? null : (conn.handshakePending?.() ?? null);
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
