/**
 * Dialling HTTP/3: resolve (net/resolver.ts), bind a UDP endpoint, start the QUIC handshake
 * (with a stored ticket: 0-RTT), put our HTTP/3 state machine on it.
 */
import { ipFamily } from '../util/ip.js';
import { H3ErrorCode } from '../codec/errors.js';
import { H3Connection } from '../h3/connection.js';
import type { EarlyDataPolicy } from '../http/early-data.js';
import { clientConfig, DEFAULT_UDP_PAYLOAD, isLoopback, loopbackPayload, type QuicOptions } from '../quic/config.js';
import { DEFAULT_CC } from '../quic/cc.js';
import type { QuicConnection } from '../quic/connection.js';
import { QuicEndpoint } from '../quic/endpoint.js';
import type { ConnectContext, OriginSpec } from './connect.js';
import { h3Settings, type QpackOptions } from '../wire/h3-settings.js';
import { defaultResolver, type Resolver } from '../net/resolver.js';
import { H3PooledConnection, type H3ConnectionSettings } from '../client/h3.js';
import type { SessionStore } from '../store/session-store.js';
import type { DialSignal } from '../util/leg-signal.js';

export interface H3ConnectOptions {
  /**
   * An IP literal, or a name resolved by `resolver` (its first address; the pool's connector races them all:
   * connect.ts).
   */
  host: string;
  /** Default: the process's shared resolver (net/resolver.ts defaultResolver). */
  resolver?: Resolver | undefined;
  port: number;
  /** Certificate name / SNI; default `host`. IP literals are checked against IP SANs and not sent as SNI. */
  servername?: string | undefined;
  /** Trusted CAs: PEM file path or PEM text/bytes. */
  ca?: string | Uint8Array | undefined;
  /** Verify the server certificate. Default true. */
  rejectUnauthorized?: boolean;
  /** A client certificate and key (PEM) shown when the server asks for one (mutual TLS). */
  identity?: { cert: Uint8Array; key: Uint8Array } | null | undefined;
  /** QUIC handshake deadline, ms. Default 10000. */
  connectTimeoutMs?: number;
  /** No response head within this, ms. Default 30000. */
  headersTimeoutMs?: number;
  /** No body data within this, ms (0 = off). Default 30000. */
  bodyTimeoutMs?: number;
  /** Send an ack-eliciting packet after this much silence, ms (0 = off). Default 10000. */
  keepAliveMs?: number;
  /** Where QUIC sessions are kept for resumption and 0-RTT. */
  sessionStore?: SessionStore | undefined;
  sessionKey?: string;
  /** Resolve at 0-RTT key availability when a session is stored. Default true. */
  earlyData?: boolean;
  /**
   * Which requests may travel as 0-RTT early data when the request does not
   * say (`ConnRequest.allowEarlyData`): 'safe' = safe methods (RFC 9110
   * §9.2.1, RFC 8470 §4), 'always', 'never'. Default 'safe'.
   */
  earlyDataPolicy?: EarlyDataPolicy;
  /**
   * Move to a new local UDP socket (port migration, RFC 9000 §9) after this
   * many consecutive loss-probe timeouts with nothing heard from the server
   * on the current path. 0 = never. Default 3.
   */
  migrateAfterProbeTimeouts?: number;
  id?: number;
  signal?: DialSignal | undefined;
  quic?: QuicOptions;
  /** Pace what we send at 1.25 × cwnd / RTT (quic/pacer.ts). Default true. */
  pacing?: boolean;
  /** Our QPACK decoder's limits towards this server (dynamic table; defaults in h3Settings: 4096 bytes). */
  qpack?: QpackOptions | undefined;
  /** Largest response field section (our SETTINGS_MAX_FIELD_SECTION_SIZE, RFC 9114 §4.2.2), bytes. Default 65536. */
  maxHeaderBytes?: number;
  /** Most response fields accepted. Default: no count. */
  maxHeaderCount?: number;
  /** performance.now() when the dial began (connectMs counts from it); default: now. */
  startedAt?: number | undefined;
}

let nextId = 1;

export async function connectH3(opts: H3ConnectOptions): Promise<H3PooledConnection> {
  const started = opts.startedAt ?? performance.now();
  const ip = (await (opts.resolver ?? defaultResolver()).resolve(opts.host)).addresses[0]?.address as string; // a resolution has an address or rejects
  const name = opts.servername ?? opts.host;
  const verify = opts.rejectUnauthorized ?? true;
  // Loopback peers get datagrams up to the lo MTU unless the caller chose a size.
  const big = opts.quic?.maxUdpPayload === undefined && isLoopback(ip) ? loopbackPayload() : null;
  const config = clientConfig({
    ...opts.quic,
    verifyPeer: verify,
    ...(opts.ca !== undefined ? { caFile: opts.ca } : {}),
    ...(opts.identity ? { cert: opts.identity.cert, key: opts.identity.key } : {}),
    ...(big !== null ? { maxUdpPayload: big } : {}),
  });
  // One server: the endpoint's sockets are connected to it (cheaper sends; an ICMP unreachable refuses the handshake at
  // once).
  const ep = await QuicEndpoint.bind({
    ipv6: ipFamily(ip) === 6,
    appNoError: H3ErrorCode.NO_ERROR,
    peer: { host: ip, port: opts.port },
    ...(opts.pacing === false ? { pacing: false } : {}),
  });
  const key = opts.sessionKey ?? `h3:${name}:${opts.port}`;
  // RFC 8446 §C.4 / RFC 9001 §4.5: a ticket is for one connection; concurrent dials each take their own.
  const session = opts.sessionStore?.take(key) ?? null;
  let quic: QuicConnection;
  try {
    quic = ep.connect({
      config,
      host: ip,
      port: opts.port,
      serverName: ipFamily(name) ? null : name,
      expectedHost: verify ? name : null,
      clientCert: Boolean(opts.identity),
      session,
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
      maxPacket: big ?? opts.quic?.maxUdpPayload ?? DEFAULT_UDP_PAYLOAD,
    });
  } catch (e) {
    await ep.close();
    throw e;
  }
  const h3 = new H3Connection(quic, h3Settings('client', opts.qpack, opts.maxHeaderBytes));
  quic.setHandler(h3);
  const early = session !== null && (opts.earlyData ?? true);
  const settings: H3ConnectionSettings = {
    headersTimeoutMs: opts.headersTimeoutMs ?? 30_000,
    bodyTimeoutMs: opts.bodyTimeoutMs ?? 30_000,
    ...(opts.maxHeaderCount !== undefined ? { maxHeaderCount: opts.maxHeaderCount } : {}),
    keepAliveMs: opts.keepAliveMs ?? 10_000,
    earlyDataPolicy: opts.earlyDataPolicy ?? 'safe',
    migrateAfterProbeTimeouts: opts.migrateAfterProbeTimeouts ?? 3,
    sessionStore: opts.sessionStore,
    sessionKey: key,
  };
  const conn = new H3PooledConnection(
    opts.id ?? nextId++,
    ep,
    quic,
    h3,
    settings,
    started,
    ip,
    opts.port,
    early,
    opts.signal,
  );
  conn.facts.congestionControl = opts.quic?.cc ?? DEFAULT_CC;
  await conn.ready(early);
  return conn;
}

/** One PEM bundle per CA list (quicCa). */
const bundles = new WeakMap<ReadonlyArray<string | Buffer>, Buffer>();
const NEWLINE = Buffer.from('\n');

/**
 * A TLS `ca` option as a QUIC config takes it (QuicOptions.caFile): a path or PEM text as it is, the bytes as they
 * are, a list as one PEM bundle made once per list. The same object for the same option matters: the config cache's
 * key names the CA by its content id, which util/digest.ts remembers per object — a copy per dial hashed the CA
 * again for every new connection.
 */
export function quicCa(ca: OriginSpec['ca']): string | Uint8Array | undefined {
  if (!Array.isArray(ca)) return ca;
  let bundle = bundles.get(ca);
  if (bundle === undefined) {
    // A newline after each: PEM blocks run together otherwise where one lacks its final newline.
    bundle = Buffer.concat(ca.flatMap((c) => [typeof c === 'string' ? Buffer.from(c) : c, NEWLINE]));
    bundles.set(ca, bundle);
  }
  return bundle;
}

/** The pool's connector for h3 (connect.ts loads this module on first use: the QUIC binding is native). */
export async function h3Connector(origin: OriginSpec, ctx: ConnectContext): Promise<H3PooledConnection> {
  return connectH3({
    host: origin.host,
    port: origin.port,
    servername: origin.servername,
    ca: quicCa(origin.ca),
    rejectUnauthorized: origin.rejectUnauthorized,
    identity: origin.identity,
    connectTimeoutMs: ctx.pool.connectTimeoutMs,
    headersTimeoutMs: ctx.pool.headersTimeoutMs,
    bodyTimeoutMs: ctx.pool.bodyTimeoutMs,
    maxHeaderBytes: ctx.pool.maxHeaderBytes,
    maxHeaderCount: ctx.pool.maxHeaderCount,
    migrateAfterProbeTimeouts: ctx.pool.migrateAfterProbeTimeouts,
    // The pool's receive window: per stream, and 4× for the connection (as for h2).
    quic: {
      maxStreamData: ctx.pool.windowSize,
      maxData: 4 * ctx.pool.windowSize,
      ...(ctx.congestionControl ? { cc: ctx.congestionControl } : {}),
      ...(ctx.bbr ? { bbr: ctx.bbr } : {}),
    },
    sessionStore: ctx.sessionStore,
    sessionKey: `h3:${ctx.sessionKey}`,
    ...(ctx.qpack ? { qpack: ctx.qpack } : {}),
    ...(ctx.earlyData !== undefined ? { earlyDataPolicy: ctx.earlyData } : {}),
    id: ctx.nextId(),
    signal: ctx.signal,
    startedAt: ctx.dialStartedAt,
  });
}
