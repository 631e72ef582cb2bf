/**
 * The public client: `agent.request({ url, ... })` (or `{ origin, path }`, `{ group, path }`), pools per target, and
 * what an operator reads of them. The Agent is a composition; each layer around the pools is a module of its own:
 *
 *   begin.ts        options checked → the request's state (agent-request.ts): its target, fields, kept body
 *   groups.ts       origin groups: the group a request names; collapse.ts shares one flight among equal requests
 *   attempts.ts     the attempts on that target: endpoint picks, retries (policy.ts) within a group's budget,
 *                   hedging (hedge.ts), coalescing (coalescing.ts), the request span (tracing.ts)
 *   registry.ts     target → pool (bounded, idle pools forgotten), keyed by the typed target (target.ts)
 *   origin-dialer.ts the target's dial: proxy node, spec, connection context, the pool and its dialer
 *
 * Bounded for fleets of origins (a crawler meets 100,000): a pool idle for `originIdleTimeoutMs` is closed and
 * forgotten; past `maxOrigins` pools the least recently used idle ones go first; per-origin selection state and the
 * counters of forgotten pools live in LRUs of `maxOrigins`; one shared ticker drives every pool's health checks and
 * this sweep.
 */
import { loadQuicBinding, type ProtocolPolicy } from '../connect/connect.js';
import type { Endpoint } from '../group/endpoint.js';
import type { GroupStats } from '../group/group.js';
import { AddressBook, type AddressBookOptions } from '../net/addresses.js';
import type { Switched } from '../client/h1.js';
import type { ConnRequest, ConnResponse, HeaderList } from '../http/types.js';
import type { ProxyNode } from '../net/proxy.js';
import { Resolver } from '../net/resolver.js';
import { configError } from '../pool/options.js';
import type { Pool } from '../pool/pool.js';
import type { PoolStats } from '../pool/stats.js';
import { Selector, type SelectionCounters } from '../probe/selector.js';
import type { Choice } from '../probe/state.js';
import type { OriginFacts } from '../store/origin-cache.js';
import { MemorySessionStore, type SessionStore } from '../store/session-store.js';
import { holdUntil } from '../util/hold.js';
import type { SignalLike } from '../util/leg-signal.js';
import { connRequest, type AgentRequest } from './agent-request.js';
import { Attempts } from './attempts.js';
import { beginRequest, normalizeHeaders } from './begin.js';
import { Coalescing } from './coalescing.js';
import { dispatchOn, type DispatchHandler, type DispatchOptions } from './dispatcher.js';
import { AgentGroups } from './groups.js';
import { resolveAgentOptions, type AgentOptions, type RequestOptions } from './options.js';
import { OriginDialer, type UpgradeOptions } from './origin-dialer.js';
import { proxyStats, type ProxyNodeStats } from './proxy-stats.js';
import { PoolRegistry } from './registry.js';
import type { OriginResponse } from './response.js';
import { OriginUrls, parseUrl } from './url.js';

export type { ProxyNodeStats } from './proxy-stats.js';
export type { UpgradeOptions } from './origin-dialer.js';

/** What an upgrade request got: the switched connection, or the origin's other answer. */
export type UpgradeAnswer = Switched | { switched: false; response: ConnResponse };

/** What the agent knows about one origin and what it would choose now. */
export interface OriginReport {
  origin: string;
  facts: Readonly<OriginFacts>;
  choice: Choice;
  counters: SelectionCounters;
}

export class Agent {
  #registry: PoolRegistry;
  #urls: OriginUrls;
  #groups = new AgentGroups();
  #dialer: OriginDialer;
  #attempts: Attempts;
  #retryBufferBytes: number;
  /** The caller's origin cache, if any (flushed on close). */
  #originCacheOpt: unknown;

  constructor(opts: AgentOptions = {}) {
    const r = resolveAgentOptions(opts);
    AgentGroups.check(opts);
    this.#retryBufferBytes = r.retryBufferBytes;
    this.#urls = new OriginUrls(r.maxOrigins);
    this.#originCacheOpt = opts.originCache;
    const { addressDownBaseMs, addressDownMaxMs, resolver, attemptDelayMs: _, ...ro } = opts.dns ?? {};
    const bookOpts: Partial<AddressBookOptions> = { maxOrigins: r.maxOrigins };
    if (addressDownBaseMs !== undefined) bookOpts.downBaseMs = addressDownBaseMs;
    if (addressDownMaxMs !== undefined) bookOpts.downMaxMs = addressDownMaxMs;
    const book = new AddressBook(resolver ?? new Resolver({ ...ro, lookup: opts.lookup }), bookOpts);
    let selector: Selector;
    try {
      selector = new Selector(opts.originCache, opts.selection, r.maxOrigins, opts.connect);
    } catch (e) {
      throw configError('selection', (e as Error).message);
    }
    const sessions = opts.sessionStore ?? new MemorySessionStore();
    this.#dialer = new OriginDialer(opts, book, sessions, selector, r.attemptDelayMs, this.#groups.endpointOverrides);
    this.#registry = new PoolRegistry(r.maxOrigins, r.originIdleMs, this.#dialer.plan);
    const coalescing = new Coalescing(this.#registry, book.resolver, r.maxOrigins);
    // A collapsed request that fell behind gets the rest as a request of its own: the caller's options and signal,
    // never the flight's (RFC 9110 §14.2 Range, §13.1.5 If-Range).
    const ranged = (st: AgentRequest, from: number, ifRange: string): Promise<OriginResponse> =>
      this.request({
        ...st.o,
        headers: [...normalizeHeaders(st.o.headers), ['range', `bytes=${from}-`], ['if-range', ifRange]],
      });
    this.#attempts = new Attempts(this.#registry, this.#dialer, coalescing, this.#urls, r.maxRetries, ranged);
    this.#groups.start(opts, this.#attempts.collapseHost, (ep, path, signal) => this.#check(ep, path, signal));
    // HTTP/3 by policy: its first dial's binding, loaded before the first request computes its pool key.
    if (opts.protocol === 'h3' || Object.values(opts.origins ?? {}).some((o) => o.protocol === 'h3')) loadQuicBinding();
  }

  /**
   * Send a request: its attempts until one answers or none may follow (attempts.ts). To an origin group: its
   * endpoint picked per attempt, hedged and collapsed as the group says.
   */
  request(o: RequestOptions): Promise<OriginResponse> {
    let st: AgentRequest;
    try {
      st = beginRequest(o, this.#urls, this.#groups, this.#retryBufferBytes);
    } catch (e) {
      return Promise.reject(e);
    }
    const g = st.group;
    if (g !== null && g.opts.collapse !== null) {
      const c = this.#groups.collapser(g);
      const key = c?.key(st) ?? null;
      if (c !== undefined && key !== null) return c.join(st, key);
    }
    return this.#attempts.run(st);
  }

  /** One active check of a group's endpoint: a GET of `path` on its own pool (its warm connections, its protocol). */
  #check(ep: Endpoint, path: string, signal: SignalLike): Promise<number> {
    return this.#checkOn(ep.url, path, [['user-agent', 'originlink-health-check']], signal, ep).then((r) => r.status);
  }

  /**
   * One health check of `origin`: a GET of `path` with `headers` on the origin's own pool (its warm connections, its
   * protocol) by Pool.check — it dials even while the pool's connects back off, and never waits behind live requests —
   * outside the request path: no retries, no diagnostics events. Its status and fields, or its failure. An origin
   * group's active checks, and the fleet's heartbeats on its member links (service/fleet.ts).
   */
  check(
    origin: string | URL,
    path: string,
    headers: HeaderList,
    signal: SignalLike,
  ): Promise<{ status: number; headers: HeaderList }> {
    return this.#checkOn(typeof origin === 'string' ? new URL(origin) : origin, path, headers, signal, null);
  }

  /**
   * A PING on a ready connection of `origin`'s pool (Pool.ping): its round trip in ms; null when the pool has no
   * connection that takes one (then `check` dials). The fleet's heartbeats on an idle member link.
   */
  ping(origin: string | URL, timeoutMs: number): Promise<number> | null {
    const url = typeof origin === 'string' ? new URL(origin) : origin;
    return this.#registry
      .find(url, undefined, this.#dialer.proxied ? this.#dialer.pickProxy(url) : null, true)
      .pool.ping(timeoutMs);
  }

  #checkOn(
    url: URL,
    path: string,
    headers: HeaderList,
    signal: SignalLike,
    ep: Endpoint | null,
  ): Promise<{ status: number; headers: HeaderList }> {
    const info = this.#registry.find(url, undefined, this.#dialer.proxied ? this.#dialer.pickProxy(url) : null, true);
    if (ep !== null) ep.pool = info.pool;
    const t = info.target;
    const req = connRequest('GET', path, t.authority, t.scheme, headers, null, signal, false, undefined, undefined);
    return info.pool.check(req).then((r) => {
      if (!r.res.takeComplete?.()) r.res.body.resume();
      return { status: r.res.status, headers: r.res.headers };
    });
  }

  /** Per origin group: its endpoints' standing and counters (health, ejections, EWMA, hedges, retries refused…). */
  groupStats(): GroupStats[] {
    return this.#groups.stats();
  }

  /**
   * Carry the endpoint state of `from`'s groups over to this Agent's groups of the same key, for every endpoint both
   * have (health, ejections, EWMA, counters): what a config reload does when an origin changes. `from` stops checking.
   */
  adoptGroups(from: Agent): void {
    this.#groups.adopt(from.#groups);
  }

  /**
   * The endpoint of the origin group `key` (a group's name, or an origin whose overrides make it a group) for a
   * connection of its own (a tunnel: service/upgrade.ts), picked as a request's first attempt is — or, once the
   * endpoints in `tried` could not be reached, as its retry. Null when `key` names no group or none is left untried.
   */
  tunnelEndpoint(key: string, tried: readonly string[]): string | null {
    return this.#groups.tunnelEndpoint(key, tried);
  }

  /** Selection state: facts per origin, racing and backoff (see docs/selection.md). */
  get selector(): Selector {
    return this.#dialer.selector;
  }

  /** What is known about a URL's origin and which protocol `auto` would pick now. */
  origin(url: string | URL): OriginReport {
    const u = typeof url === 'string' ? parseUrl(url, 'url') : url;
    const scheme = u.protocol === 'https:' ? 'https' : 'http';
    const origin = `${scheme}://${u.hostname}:${u.port || (scheme === 'https' ? 443 : 80)}`;
    const sel = this.#dialer.selector;
    const st = sel.state(origin);
    return { origin, facts: st.facts, choice: st.choose('auto', Date.now()), counters: sel.counters(origin) };
  }

  get sessionStore(): SessionStore {
    return this.#dialer.sessions;
  }

  /** The resolver and per-origin address state (every address, down marks, connection counts). */
  get addresses(): AddressBook {
    return this.#dialer.book;
  }

  /** The pool for a URL's origin under a protocol policy (created on first use). */
  pool(url: string | URL, protocol?: ProtocolPolicy, proxy?: ProxyNode | null): Pool {
    const u = typeof url === 'string' ? parseUrl(url, 'url') : url;
    return this.#registry.find(u, protocol, proxy === undefined ? this.#dialer.pickProxy(u) : proxy, false).pool;
  }

  /** Pre-connect `n` connections to an origin. */
  warm(url: string | URL, n = 1, protocol?: ProtocolPolicy): Promise<void> {
    return this.pool(url, protocol).warm(n);
  }

  /**
   * One request asking to switch protocols (RFC 9110 §7.8) to `origin` (`scheme://host[:port]`), on an HTTP/1.1
   * connection of its own dialled as this Agent's connections to it are (resolver, Happy Eyeballs, TFO, egress proxy,
   * TLS settings). `req` carries its `Upgrade` and `Connection: upgrade` fields. A 101 hands the socket over
   * (`switched: true`, with the new protocol's first bytes); any other answer is the response, after which that
   * connection closes. For the service's WebSocket and Upgrade tunnels; the deadlines default to the origin's pool's.
   */
  async upgrade(origin: string, req: ConnRequest, o: UpgradeOptions = {}): Promise<UpgradeAnswer> {
    const conn = await this.#dialer.connectH1(this.#urls.get(origin), o);
    return conn.upgrade(req);
  }

  /** Origins whose pools are held now. */
  get poolCount(): number {
    return this.#registry.size;
  }

  /** Per origin: the live pools, then the counters of recently forgotten ones (so totals never go back). */
  stats(): PoolStats[] {
    return this.#registry.stats();
  }

  /** Per egress proxy node: requests, connections opened, reuse rate, handshake time saved. */
  proxyStats(): ProxyNodeStats[] {
    return proxyStats(this.#registry, this.#dialer.proxyLinks);
  }

  pools(): Pool[] {
    return [...this.#registry.values()].map((x) => x.pool);
  }

  /**
   * undici's Dispatcher interface: `fetch(url, { dispatcher: agent })`, undici's `request(url, { dispatcher })` and
   * any library taking a dispatcher run over these pools (h1, h2 and h3 with 0-RTT). Both handler styles (undici 6
   * and 7).
   */
  dispatch(opts: DispatchOptions, handler: DispatchHandler): boolean {
    return dispatchOn(this, opts, handler);
  }

  /** Finish in-flight requests, then close every connection. The process is held until it settles (util/hold.ts). */
  close(): Promise<void> {
    return holdUntil(this.#close());
  }

  async #close(): Promise<void> {
    this.#groups.close();
    await this.#registry.close();
    this.#dialer.proxyLinks.close();
    // File-backed stores write their changes within 100 ms; once closed, the files say all (a restart reads them).
    for (const store of [this.#dialer.sessions, this.#originCacheOpt])
      (store as { flush?: () => void } | undefined)?.flush?.();
  }

  /** Abort everything now (returns a promise, as undici's Dispatcher.destroy does). */
  destroy(error?: Error | null): Promise<void> {
    this.#groups.close();
    this.#registry.destroy(error ?? undefined);
    this.#dialer.proxyLinks.close();
    return Promise.resolve();
  }
}
