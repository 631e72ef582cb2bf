/**
 * How the Agent reaches an origin: the egress proxy node picked for it, its target (target.ts), the dial spec and
 * connection context a pool of it is given, and the pool itself with its dialer (the selector's racing one under
 * `auto`). Owns what every pool of an Agent shares for dialling: the address book and resolver, the session store,
 * the HTTP/2 links to proxy nodes.
 */
import { connectOrigin, type OriginSpec, type ProtocolPolicy } from '../connect/connect.js';
import { H2ProxyLinks } from '../connect/h2-proxy-links.js';
import type { H1PooledConnection } from '../client/h1.js';
import { DEFAULT_KEEPALIVE } from '../net/tfo.js';
import { type AddressBook } from '../net/addresses.js';
import { ProxyRotation, type ProxyNode } from '../net/proxy.js';
import { resolvePoolOptions, type PoolOptions } from '../pool/options.js';
import { Pool } from '../pool/pool.js';
import { sharedTicker } from '../pool/ticker.js';
import type { DialContext, Selector } from '../probe/selector.js';
import type { SessionStore } from '../store/session-store.js';
import type { AgentOptions, OriginOverrides } from './options.js';
import type { OriginPlan } from './registry.js';
import { resolveTarget, type OriginTarget } from './target.js';
import { LegSignal } from '../util/leg-signal.js';

let connectionIds = 0;
const nextId = (): number => ++connectionIds;

export class OriginDialer {
  readonly proxyLinks = new H2ProxyLinks();
  /** The agent's proxy rotation, and per-origin ones (`scheme://host:port` → rotation, or null: direct). */
  #proxy: ProxyRotation | null;
  #originProxy = new Map<string, ProxyRotation | null>();
  /** Some request may go through a proxy: when false, no node is looked for. */
  readonly proxied: boolean;
  readonly #connect: NonNullable<AgentOptions['connect']>;

  constructor(
    readonly opts: AgentOptions,
    readonly book: AddressBook,
    readonly sessions: SessionStore,
    readonly selector: Selector,
    readonly attemptDelayMs: number,
    /** A group's overrides for each of its endpoints that has none of its own (groups.ts fills it). */
    readonly endpointOverrides: ReadonlyMap<string, OriginOverrides>,
  ) {
    this.#connect = opts.connect ?? connectOrigin;
    this.#proxy = opts.proxy ? new ProxyRotation(opts.proxy) : null;
    for (const [k, o] of Object.entries(opts.origins ?? {})) {
      // An origin over a unix socket is dialled directly, whatever proxy the Agent has.
      if (o.proxy === undefined && o.socketPath === undefined) continue;
      const u = new URL(k);
      this.#originProxy.set(originKey(u), o.proxy && o.socketPath === undefined ? new ProxyRotation(o.proxy) : null);
    }
    this.proxied = this.#proxy !== null || this.#originProxy.size > 0;
  }

  /** The proxy node for a request to `u` now (null: direct). */
  pickProxy = (u: URL): ProxyNode | null => {
    let rot = this.#proxy;
    if (this.#originProxy.size > 0) {
      const k = originKey(u);
      if (this.#originProxy.has(k)) rot = this.#originProxy.get(k) ?? null;
    }
    return rot ? rot.pick(`${u.protocol}//${u.host}`, Date.now()) : null;
  };

  target(u: URL, protocol: ProtocolPolicy | undefined, proxy: ProxyNode | null): OriginTarget {
    return resolveTarget(u, protocol, proxy, this.opts, this.endpointOverrides, this.selector.opts.coalesce);
  }

  /** How a target is dialled (its spec) and what its connections are given (its context). */
  dialSetup(t: OriginTarget): { spec: OriginSpec; ctx: DialContext; poolOpts: PoolOptions } {
    const over = t.overrides;
    const opts = this.opts;
    const spec: OriginSpec = {
      scheme: t.scheme,
      host: t.host,
      port: t.port,
      servername: t.tls.servername,
      protocol: t.policy,
      ca: t.tls.ca,
      rejectUnauthorized: t.tls.verify,
      identity: t.tls.identity,
      tfo: over.tfo ?? opts.tfo ?? true,
      keepAliveProbes: opts.keepAliveProbes === undefined ? DEFAULT_KEEPALIVE : opts.keepAliveProbes,
      addresses: this.book,
      attemptDelayMs: this.attemptDelayMs,
      proxy: t.proxy ?? undefined,
      socketPath: over.socketPath,
    };
    const poolOpts = resolvePoolOptions({ ...opts.pool, ...over.pool });
    const ctx: DialContext = {
      pool: poolOpts,
      sessionStore: this.sessions,
      sessionKey: t.key,
      nextId,
      earlyData: t.earlyData,
      proxyLinks: this.proxyLinks,
    };
    const cc = over.quicCongestionControl ?? opts.quicCongestionControl;
    if (cc !== undefined) ctx.congestionControl = cc;
    const qpack = over.quicQpack ?? opts.quicQpack;
    if (qpack !== undefined) ctx.qpack = qpack;
    const bbr = over.quicBbr ?? opts.quicBbr;
    if (bbr !== undefined) ctx.bbr = bbr;
    return { spec, ctx, poolOpts };
  }

  /** How a URL becomes a pool (PoolRegistry asks on a fast-path miss): its key, and the pool when the key is new. */
  plan = (u: URL, protocol: ProtocolPolicy | undefined, proxy: ProxyNode | null): OriginPlan => {
    const target = this.target(u, protocol, proxy);
    return {
      key: target.key,
      make: (retired, fastKey) => {
        const { spec, ctx, poolOpts } = this.dialSetup(target);
        const { policy, origin } = target;
        const sel = this.selector;
        const connect = this.#connect;
        const pool: Pool = new Pool(
          target.key,
          `${target.scheme}://${u.host}`,
          poolOpts,
          // Through a proxy or over a unix socket, `auto` is ALPN on the stream: no QUIC race, no Alt-Svc upgrade.
          policy === 'auto' && (proxy || spec.socketPath !== undefined)
            ? (signal) => connect(spec, { ...ctx, signal })
            : policy === 'auto'
              ? sel.autoDialer(origin, spec, ctx, () => pool)
              : (signal) =>
                  (policy === 'h3' ? connectOrigin : connect)(spec, { ...ctx, signal }).then((c) => {
                    sel.noteConnection(origin, c);
                    return c;
                  }),
          policy === 'auto' ? null : policy,
          sharedTicker,
          retired,
        );
        return { pool, target, fastKeys: [fastKey], spec, ctx, live: true, coalescing: 0 };
      },
    };
  };

  /**
   * An HTTP/1.1 connection of its own to `u`'s origin, dialled as its pooled ones are (Agent.upgrade), with the
   * given deadlines in place of the pool's.
   */
  async connectH1(u: URL, o: UpgradeOptions): Promise<H1PooledConnection> {
    const { spec, ctx } = this.dialSetup(this.target(u, 'h1', this.proxied ? this.pickProxy(u) : null));
    const pool = { ...ctx.pool };
    if (o.connectTimeoutMs !== undefined) pool.connectTimeoutMs = o.connectTimeoutMs;
    if (o.headersTimeoutMs !== undefined) pool.headersTimeoutMs = o.headersTimeoutMs;
    if (o.bodyTimeoutMs !== undefined) pool.bodyTimeoutMs = o.bodyTimeoutMs;
    const conn = await connectOrigin(spec, { ...ctx, pool, signal: o.signal ?? new LegSignal(null) });
    return conn as H1PooledConnection;
  }
}

/** Deadlines of a connection made for one upgrade (Agent.upgrade), ms; each defaults to the origin's pool's. */
export interface UpgradeOptions {
  signal?: AbortSignal;
  connectTimeoutMs?: number;
  headersTimeoutMs?: number;
  bodyTimeoutMs?: number;
}

/** `scheme://host:port`, the port always written: how per-origin proxy settings are looked up. */
function originKey(u: URL): string {
  return `${u.protocol}//${u.hostname}:${u.port || (u.protocol === 'https:' ? 443 : 80)}`;
}
