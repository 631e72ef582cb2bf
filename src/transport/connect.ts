/**
 * Connectors: how to get a PooledConnection for an origin. TCP+TLS with ALPN
 * picks h1 or h2; h3 is registered by the QUIC transport. Kept apart from
 * the protocols themselves (Pingora's connector/protocol split).
 */
import { ErrorCode, OriginlinkError } from '../errors.js';
import type { PoolOptions } from '../pool/options.js';
import type { SessionStore } from '../pool/session-store.js';
import type { ConnectionFacts, PooledConnection, Protocol } from '../pool/types.js';
import { H1Connection } from './h1.js';
import { H2Connection, openH2Session } from './h2.js';
import { h3Connector } from './h3.js';
import { connectTcp } from './tcp.js';

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
}

export interface ConnectContext {
  pool: Readonly<PoolOptions>;
  sessionStore: SessionStore;
  sessionKey: string;
  nextId: () => number;
  signal: AbortSignal;
}

/** A connector for a protocol that is not TCP-based (h3). */
export type ExtraConnector = (origin: OriginSpec, ctx: ConnectContext) => Promise<PooledConnection>;
const extra = new Map<Protocol, ExtraConnector>([['h3', h3Connector]]);
export function registerConnector(protocol: Protocol, c: ExtraConnector): void {
  extra.set(protocol, c);
}

export async function connectOrigin(origin: OriginSpec, ctx: ConnectContext): Promise<PooledConnection> {
  if (origin.protocol === 'h3') {
    const c = extra.get('h3');
    if (!c) throw new OriginlinkError(ErrorCode.UNSUPPORTED_PROTOCOL, 'local', 'HTTP/3 transport is not available in this build');
    return c(origin, ctx);
  }
  const tlsOn = origin.scheme === 'https';
  const alpn = origin.protocol === 'h1' ? ['http/1.1'] : origin.protocol === 'h2' ? ['h2'] : ['h2', 'http/1.1'];
  const t = await connectTcp({
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
  });
  const useH2 = tlsOn ? t.alpn === 'h2' : origin.protocol === 'h2'; // cleartext h2 = prior knowledge (RFC 9113 §3.3)
  if (origin.protocol === 'h2' && !useH2) {
    t.socket.destroy();
    throw new OriginlinkError(ErrorCode.UNSUPPORTED_PROTOCOL, 'remote', `${origin.host}:${origin.port} did not negotiate h2 (ALPN ${t.alpn ?? 'none'})`, { retrySafe: true });
  }
  const facts: ConnectionFacts = {
    protocol: useH2 ? 'h2' : 'h1',
    alpn: t.alpn,
    remoteAddress: t.socket.remoteAddress ?? origin.host,
    remotePort: t.socket.remotePort ?? origin.port,
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
  };
  const p = ctx.pool;
  if (!useH2) {
    return new H1Connection(ctx.nextId(), t.socket, facts, {
      maxHeaderBytes: p.maxHeaderBytes,
      maxHeaderCount: p.maxHeaderCount,
      headersTimeoutMs: p.headersTimeoutMs,
      bodyTimeoutMs: p.bodyTimeoutMs,
    });
  }
  const authority = `${origin.servername ?? origin.host}:${origin.port}`;
  const h2opts = { headersTimeoutMs: p.headersTimeoutMs, bodyTimeoutMs: p.bodyTimeoutMs, windowSize: p.windowSize, maxHeaderListSize: p.maxHeaderBytes };
  const session = openH2Session(t.socket, authority, h2opts);
  return new H2Connection(ctx.nextId(), session, facts, h2opts, origin.scheme);
}
