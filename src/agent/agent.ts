/**
 * The Agent maps origins to pools and owns the request policy (retries and
 * 0-RTT, both pure functions in policy.ts / http/early-data.ts). Users call
 * `agent.request({ url, ... })`; everything below is per origin. Its options
 * are options.ts; its pools, their eviction and their counters registry.ts.
 *
 * Bounded for fleets of origins (a crawler meets 100,000): a pool idle for
 * `originIdleTimeoutMs` is closed and forgotten; past `maxOrigins` pools the
 * least recently used idle ones go first; per-origin selection state and the
 * counters of forgotten pools live in LRUs of `maxOrigins`; one shared ticker
 * drives every pool's health checks and this sweep.
 */
import { createHash } from 'node:crypto';
import { ErrorCode, OriginlinkError, toOriginlinkError } from '../errors.js';
import { TOKEN_RE } from '../http/fields.js';
import { earlyDataAllowed } from '../http/early-data.js';
import { connectOrigin, dialOrigin, type ProtocolPolicy, type OriginSpec } from '../connect/connect.js';
import type { Dialled } from '../net/dial.js';
import { DEFAULT_KEEPALIVE } from '../net/tfo.js';
import { h3Settings } from '../wire/h3-settings.js';
import type { OriginFacts } from '../store/origin-cache.js';
import { findCandidate } from '../probe/coalesce.js';
import { Selector, type DialContext, type SelectionCounters } from '../probe/selector.js';
import type { Choice } from '../probe/state.js';
import { bodyStream, isReplayable } from '../http/body.js';
import { isIdempotentRequest } from '../http/methods.js';
import { endToEnd, isClean, isHopByHop } from '../http/fields.js';
import { publishRequestEnd } from '../pool/diagnostics.js';
import { configError, resolvePoolOptions, type PoolOptions } from '../pool/options.js';
import { Pool, type PoolResult } from '../pool/pool.js';
import type { PoolCounters, PoolStats } from '../pool/stats.js';
import { sharedTicker } from '../pool/ticker.js';
import { LruMap } from '../util/lru.js';
import { holdUntil } from '../util/hold.js';
import { replaySafe, retryDecision } from './policy.js';
import { AgentRequest } from './agent-request.js';
import { Collapser, type CollapseHost } from './collapse.js';
import { HedgeRace, type HedgeHost } from './hedge.js';
import type { Endpoint } from '../group/endpoint.js';
import { Group, type GroupStats } from '../group/group.js';
import type { RetryBudget } from '../group/budget.js';
import { GROUP_KEYS, resolveGroupOptions, type GroupOptions } from '../group/options.js';
import { dispatchOn, type DispatchHandler, type DispatchOptions } from './dispatcher.js';
import { failSpan, responseSpan, startRequestSpan, withTraceContext } from './tracing.js';
import { parseUrl, splitSimpleUrl } from './target.js';
import { OriginResponse } from './response.js';
import { DEFAULT_RETRY_BUFFER_BYTES, ReplayBody } from './replay-body.js';
import {
  AGENT_KEYS,
  checkKeys,
  checkOptionValues,
  checkRequest,
  ORIGIN_KEYS,
  type AgentOptions,
  type OriginOverrides,
  type RequestOptions,
  type TlsOptions,
} from './options.js';
import { PoolRegistry, type OriginPlan, type PoolInfo } from './registry.js';
import { MemorySessionStore, type SessionStore } from '../store/session-store.js';
import { Resolver } from '../net/resolver.js';
import { AddressBook, type AddressBookOptions } from '../net/addresses.js';
import { DEFAULT_ATTEMPT_DELAY_MS, MIN_ATTEMPT_DELAY_MS } from '../net/happy-eyeballs.js';
import { ProxyRotation, type ProxyNode } from '../net/proxy.js';
import { H2ProxyLinks } from '../connect/h2-proxy-links.js';
import { bbrTuningError, CC_ALGORITHMS, type BbrTuning } from '../quic/cc.js';
import type { ConnRequest, HeaderList, Protocol } from '../http/types.js';
import { turnNow } from '../util/clock.js';
import type { SignalLike } from '../util/leg-signal.js';

/** Per egress proxy node: what its pools did (live pools and recently forgotten ones). */
export interface ProxyNodeStats {
  node: string;
  requests: number;
  requestsOnReusedConnections: number;
  connectionsOpened: number;
  connectFailures: number;
  /** 1 − connectionsOpened / requests. */
  reuseRate: number;
  /**
   * `http2` nodes: HTTP/2 connections to the node open now (every tunnel is a stream of one of them); null otherwise.
   */
  nodeConnections: number | null;
  /**
   * `http2` nodes: connections to the node closed because a PING went unanswered (RFC 9113 §6.7; pool pingIntervalMs /
   * pingTimeoutMs); null otherwise.
   */
  nodeConnectionsDead: number | null;
  /** Mean TCP + TLS handshake through this node, ms (null before any). */
  meanHandshakeMs: number | null;
  /** Requests that needed no handshake × the mean handshake: time saved by reuse, ms. */
  handshakeMsSaved: number;
  errors: Record<string, number>;
}

/** What the agent knows about one origin and what it would choose now. */
export interface OriginReport {
  origin: string;
  facts: Readonly<OriginFacts>;
  choice: Choice;
  counters: SelectionCounters;
}

/** Protocols of other names' connections a request may coalesce onto, by the origin's policy (h1 never coalesces). */
const COALESCE_ONTO: Record<ProtocolPolicy, ReadonlySet<Protocol>> = {
  auto: new Set<Protocol>(['h2', 'h3']),
  h1: new Set<Protocol>(),
  h2: new Set<Protocol>(['h2']),
  h3: new Set<Protocol>(['h3']),
};

let connectionIds = 0;
const nextId = (): number => ++connectionIds;

export class Agent {
  #opts: AgentOptions;
  /** The pools, one per origin key (registry.ts). */
  #registry: PoolRegistry;
  #origins: LruMap<string, URL>;
  #sessions: SessionStore;
  #selector: Selector;
  /** Names (host:port) for which a 421 turned coalescing off. */
  #noCoalesce: LruMap<string, true>;
  /** The agent's proxy rotation, and per-origin ones (`scheme://host:port` → rotation, or null: direct). */
  #proxy: ProxyRotation | null;
  #originProxy = new Map<string, ProxyRotation | null>();
  /** HTTP/2 connections to `http2` proxy nodes, shared by every pool of this agent. */
  #proxyLinks = new H2ProxyLinks();
  #book: AddressBook;
  #attemptDelayMs: number;
  #connect: NonNullable<AgentOptions['connect']>;
  /** The caller's origin cache, if any (flushed on close). */
  #originCacheOpt: unknown;
  #maxRetries: number;
  #retryBufferBytes: number;
  #maxOrigins: number;
  /** Origin groups by their key's origin (`scheme://host[:port]` as URL.origin writes it), and per cached URL. */
  #groups = new Map<string, Group>();
  /** The named groups (AgentOptions.groups) by name: a request's `group` looked up without making its key. */
  #named = new Map<string, Group>();
  #groupOf = new WeakMap<URL, Group | null>();
  #collapsers = new Map<Group, Collapser<AgentRequest>>();
  /**
   * A group's overrides (protocol, pool, tls…) for each of its endpoints that has none of its own (the first group's).
   */
  #endpointOverrides = new Map<string, OriginOverrides>();
  /** What a hedged request and a collapsed one ask of the Agent (made once, not per request). */
  #hedgeHost: HedgeHost<AgentRequest> = {
    launch: (st, ep, signal) => {
      const p = this.#launch(st, ep, signal);
      return { info: st.info as PoolInfo, p, at: st.attemptAt };
    },
    answered: (st, info, r) => this.#answered(st, info, r),
    failed: (st, pool, e) => this.#failed(st, pool, e),
  };
  #collapseHost: CollapseHost<AgentRequest> = {
    attempt: (st) => this.#attempt(st),
    served: (st, res, err) => {
      if (res !== null) {
        if (st.span.isRecording()) responseSpan(st.span, res);
      } else failSpan(st.span, err as Error, st.attempt);
    },
    // The caller's own options and signal (st.o), never the flight's: the rest is this request's alone.
    ranged: (st, from, ifRange) =>
      this.request({
        ...st.o,
        headers: [...normalizeHeaders(st.o.headers), ['range', `bytes=${from}-`], ['if-range', ifRange]],
      }),
  };

  constructor(opts: AgentOptions = {}) {
    checkKeys(opts, AGENT_KEYS, '');
    for (const [k, o] of Object.entries(opts.origins ?? {})) {
      checkKeys(o, ORIGIN_KEYS, `origins["${k}"]`);
      const u = URL.canParse(k) ? new URL(k) : null;
      if (u === null || (u.protocol !== 'https:' && u.protocol !== 'http:') || u.pathname !== '/' || u.search !== '')
        throw configError(`origins["${k}"]`, 'the key must be an origin, scheme://host:port');
    }
    for (const [name, o] of Object.entries(opts.groups ?? {})) {
      const where = `groups["${name}"]`;
      if (!GROUP_NAME_RE.test(name)) throw configError(where, 'a group name is letters, digits, ".", "_" and "-"');
      checkKeys(o, ORIGIN_KEYS, where);
      if (o === null || typeof o !== 'object' || o.endpoints === undefined)
        throw configError(`${where}.endpoints`, 'a named group needs its endpoints');
    }
    checkOptionValues(opts);
    // Origin groups checked now, before anything is made; made (and their checks started) last.
    for (const [k, o] of Object.entries(opts.origins ?? {}))
      if (isGroup(o)) resolveGroupOptions(groupOptions(k, o), `origins["${k}"]`);
    for (const [name, o] of Object.entries(opts.groups ?? {}))
      resolveGroupOptions(namedGroupOptions(name, o), `groups["${name}"]`);
    this.#maxRetries = opts.maxRetries ?? 2;
    if (!Number.isInteger(this.#maxRetries) || this.#maxRetries < 0)
      throw configError('maxRetries', 'must be a non-negative integer');
    this.#retryBufferBytes = opts.retryBufferBytes ?? DEFAULT_RETRY_BUFFER_BYTES;
    if (!Number.isInteger(this.#retryBufferBytes) || this.#retryBufferBytes < 0)
      throw configError('retryBufferBytes', 'must be a non-negative integer');
    this.#maxOrigins = opts.maxOrigins ?? 1024;
    if (!Number.isInteger(this.#maxOrigins) || this.#maxOrigins < 1)
      throw configError('maxOrigins', 'must be a positive integer');
    const originIdleMs = opts.originIdleTimeoutMs ?? 60_000;
    if (!Number.isFinite(originIdleMs) || originIdleMs <= 0)
      throw configError('originIdleTimeoutMs', 'must be a positive number of ms');
    if (opts.quicCongestionControl !== undefined && !CC_ALGORITHMS.includes(opts.quicCongestionControl))
      throw configError('quicCongestionControl', `must be one of ${CC_ALGORITHMS.join(', ')}`);
    if (opts.quicQpack !== undefined) h3Settings('client', opts.quicQpack); // range checks, OL_INVALID_CONFIG
    for (const [where, b] of [
      ['quicBbr', opts.quicBbr],
      ...Object.entries(opts.origins ?? {}).map(([k, o]) => [`origins["${k}"].quicBbr`, o.quicBbr]),
    ] as Array<[string, BbrTuning | undefined]>) {
      const why = b === undefined ? null : bbrTuningError(b);
      if (why) throw configError(`${where}.${why.field}`, why.reason);
    }
    this.#connect = opts.connect ?? connectOrigin;
    this.#origins = new LruMap(this.#maxOrigins);
    this.#noCoalesce = new LruMap(this.#maxOrigins);
    this.#registry = new PoolRegistry(this.#maxOrigins, originIdleMs, this.#plan);
    resolvePoolOptions(opts.pool); // validate early
    for (const [k, o] of Object.entries(opts.origins ?? {})) resolvePoolOptions(o.pool, `origins["${k}"].pool`);
    this.#opts = opts;
    this.#sessions = opts.sessionStore ?? new MemorySessionStore();
    this.#originCacheOpt = opts.originCache;
    const { attemptDelayMs, addressDownBaseMs, addressDownMaxMs, resolver, ...ro } = opts.dns ?? {};
    this.#attemptDelayMs = attemptDelayMs ?? DEFAULT_ATTEMPT_DELAY_MS;
    if (!(this.#attemptDelayMs >= MIN_ATTEMPT_DELAY_MS))
      throw configError('dns.attemptDelayMs', `must be ≥ ${MIN_ATTEMPT_DELAY_MS} ms (RFC 8305 §5)`);
    const bookOpts: Partial<AddressBookOptions> = { maxOrigins: this.#maxOrigins };
    if (addressDownBaseMs !== undefined) bookOpts.downBaseMs = addressDownBaseMs;
    if (addressDownMaxMs !== undefined) bookOpts.downMaxMs = addressDownMaxMs;
    this.#book = new AddressBook(resolver ?? new Resolver({ ...ro, lookup: opts.lookup }), bookOpts);
    this.#proxy = opts.proxy ? new ProxyRotation(opts.proxy) : null;
    for (const [k, o] of Object.entries(opts.origins ?? {})) {
      if (o.proxy === undefined) continue;
      const u = new URL(k);
      this.#originProxy.set(
        `${u.protocol}//${u.hostname}:${u.port || (u.protocol === 'https:' ? 443 : 80)}`,
        o.proxy ? new ProxyRotation(o.proxy) : null,
      );
    }
    try {
      this.#selector = new Selector(opts.originCache, opts.selection, this.#maxOrigins, this.#connect);
    } catch (e) {
      throw configError('selection', (e as Error).message);
    }
    for (const [k, o] of Object.entries(opts.origins ?? {}))
      if (isGroup(o)) this.#addGroup(new URL(k).origin, groupOptions(k, o), o, `origins["${k}"]`);
    for (const [name, o] of Object.entries(opts.groups ?? {})) {
      this.#addGroup(namedGroupKey(name), namedGroupOptions(name, o), o, `groups["${name}"]`);
      this.#named.set(name, this.#groups.get(namedGroupKey(name)) as Group);
    }
  }

  /**
   * An origin group (an origin's overrides with a group field — `endpoints`, or `collapse`, `retryBudget`… of its
   * own URL alone — or a named group), checked, under `key` (the URL's origin, or namedGroupKey); its active checks
   * start now.
   */
  #addGroup(key: string, def: GroupOptions, o: OriginOverrides, where: string): void {
    const g = new Group(key, resolveGroupOptions(def, where));
    this.#groups.set(key, g);
    for (const e of g.endpoints) if (!this.#endpointOverrides.has(e.origin)) this.#endpointOverrides.set(e.origin, o);
    if (g.opts.collapse !== null) this.#collapsers.set(g, new Collapser(g.opts.collapse, g, this.#collapseHost));
    g.startChecks((ep, path, signal) => this.#check(ep, path, signal));
  }

  /** One active check of a group's endpoint: a GET of `path` on its own pool (its warm connections, its protocol). */
  #check(ep: Endpoint, path: string, signal: SignalLike): Promise<number> {
    const node = this.#proxy === null && this.#originProxy.size === 0 ? null : this.#pickProxy(ep.url);
    const info = this.#registry.find(ep.url, undefined, node, true);
    ep.pool = info.pool;
    const req = connRequest(
      'GET',
      path,
      info.authority,
      info.spec.scheme,
      [['user-agent', 'originlink-health-check']],
      null,
      signal,
      false,
      undefined,
      undefined,
    );
    return info.pool.check(req).then((r) => {
      const whole = r.res.takeComplete?.();
      if (!whole) r.res.body.resume();
      return r.res.status;
    });
  }

  /**
   * Per origin group: its endpoints' standing and counters (health, ejections, EWMA, hedges, retries refused,
   * collapsed).
   */
  groupStats(): GroupStats[] {
    return [...this.#groups.values()].map((g) => g.stats());
  }

  /**
   * Carry the endpoint state of `from`'s groups over to this Agent's groups of the same key, for every
   * endpoint both have (health, ejections, EWMA, counters): what a config reload does when an origin changes.
   * `from` stops checking.
   */
  adoptGroups(from: Agent): void {
    for (const [k, g] of this.#groups) {
      const old = from.#groups.get(k);
      if (old) g.adopt(old);
    }
  }

  /**
   * The endpoint of the origin group at `key` for a connection of its own (a tunnel: service/upgrade.ts), picked
   * as a request's first attempt is — or, once the endpoints in `tried` could not be reached, as its retry — so a
   * tunnel goes only where requests may (healthy, not ejected, by weight). Null when `key` names no group or no
   * endpoint is left untried.
   */
  tunnelEndpoint(key: string, tried: readonly string[]): string | null {
    const g = this.#groups.get(GROUP_NAME_RE.test(key) ? namedGroupKey(key) : new URL(key).origin);
    if (g === undefined) return null;
    const now = performance.now();
    if (tried.length === 0) return g.pick(now).origin;
    const eps = g.endpoints.filter((e) => tried.includes(e.origin));
    const next = eps.length === 0 ? g.pick(now) : g.pickAgain(eps, now);
    return tried.includes(next.origin) ? null : next.origin;
  }

  /** Selection state: facts per origin, racing and backoff (see docs/selection.md). */
  get selector(): Selector {
    return this.#selector;
  }

  /** What is known about a URL's origin and which protocol `auto` would pick now. */
  origin(url: string | URL): OriginReport {
    const u = typeof url === 'string' ? parseUrl(url, 'url') : url;
    const scheme = u.protocol === 'https:' ? 'https' : 'http';
    const origin = `${scheme}://${u.hostname}:${u.port || (scheme === 'https' ? 443 : 80)}`;
    const st = this.#selector.state(origin);
    return {
      origin,
      facts: st.facts,
      choice: st.choose('auto', Date.now()),
      counters: this.#selector.counters(origin),
    };
  }

  get sessionStore(): SessionStore {
    return this.#sessions;
  }

  /** The resolver and per-origin address state (every address, down marks, connection counts). */
  get addresses(): AddressBook {
    return this.#book;
  }

  /** The pool for a URL's origin under a protocol policy (created on first use). */
  pool(url: string | URL, protocol?: ProtocolPolicy, proxy?: ProxyNode | null): Pool {
    const u = typeof url === 'string' ? parseUrl(url, 'url') : url;
    return this.#registry.find(u, protocol, proxy === undefined ? this.#pickProxy(u) : proxy, false).pool;
  }

  #pickProxyFn = (u: URL): ProxyNode | null => this.#pickProxy(u);

  /** The proxy node for a request to `u` now (null: direct). */
  #pickProxy(u: URL): ProxyNode | null {
    let rot = this.#proxy;
    if (this.#originProxy.size > 0) {
      const k = `${u.protocol}//${u.hostname}:${u.port || (u.protocol === 'https:' ? 443 : 80)}`;
      if (this.#originProxy.has(k)) rot = this.#originProxy.get(k) ?? null;
    }
    return rot ? rot.pick(`${u.protocol}//${u.host}`, Date.now()) : null;
  }

  /**
   * What this Agent's options say of a URL's origin under a protocol policy and proxy node (throws on a bad scheme).
   */
  #describe(u: URL, protocol: ProtocolPolicy | undefined, proxy: ProxyNode | null): OriginDescription {
    if (u.protocol !== 'https:' && u.protocol !== 'http:')
      throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', `unsupported URL scheme ${u.protocol}`);
    const scheme = u.protocol === 'https:' ? 'https' : 'http';
    const port = u.port ? Number(u.port) : scheme === 'https' ? 443 : 80;
    const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
    // An endpoint of a group takes the group's overrides unless it has its own.
    const over =
      this.#opts.origins?.[`${scheme}://${u.host}`] ??
      this.#opts.origins?.[`${scheme}://${u.hostname}:${port}`] ??
      this.#endpointOverrides.get(u.origin) ??
      {};
    const policy: ProtocolPolicy = protocol ?? over.protocol ?? this.#opts.protocol ?? 'auto';
    // RFC 9114 §3.1: HTTP/3 is for https origins only (QUIC always carries TLS); refused now, not after a QUIC timeout.
    if (policy === 'h3' && scheme === 'http')
      throw new OriginlinkError(
        ErrorCode.UNSUPPORTED_PROTOCOL,
        'local',
        `protocol h3 needs an https:// URL (HTTP/3 runs over QUIC, always TLS): got http://${u.host}`,
        { details: { origin: `http://${u.host}` } },
      );
    const tlsOpts = { ...this.#opts.tls, ...over.tls };
    const tlsId = `sni=${tlsOpts.servername ?? ''}|verify=${tlsOpts.rejectUnauthorized !== false}|ca=${caId(tlsOpts.ca)}`;
    // The proxy node and a hash of its credentials: a tunnel is never shared across nodes or credentials.
    const key = `${scheme}://${host}:${port}|${policy}|${tlsId}${proxy ? `|proxy=${proxy.key}` : ''}`;
    return { scheme, host, port, over, policy, tlsOpts, tlsId, key, proxy };
  }

  /** How an origin is dialled (its spec) and what its connections are given (its context). */
  #dialSetup(d: OriginDescription): { spec: OriginSpec; ctx: DialContext; poolOpts: PoolOptions } {
    const { over } = d;
    const spec: OriginSpec = {
      scheme: d.scheme,
      host: d.host,
      port: d.port,
      servername: d.tlsOpts.servername,
      protocol: d.policy,
      ca: d.tlsOpts.ca,
      rejectUnauthorized: d.tlsOpts.rejectUnauthorized !== false,
      tfo: over.tfo ?? this.#opts.tfo ?? true,
      keepAliveProbes: this.#opts.keepAliveProbes === undefined ? DEFAULT_KEEPALIVE : this.#opts.keepAliveProbes,
      addresses: this.#book,
      attemptDelayMs: this.#attemptDelayMs,
      proxy: d.proxy ?? undefined,
    };
    const poolOpts = resolvePoolOptions({ ...this.#opts.pool, ...over.pool });
    const earlyData = over.earlyData ?? this.#opts.earlyData ?? 'safe';
    const ctx: DialContext = {
      pool: poolOpts,
      sessionStore: this.#sessions,
      sessionKey: d.key,
      nextId,
      earlyData,
      proxyLinks: this.#proxyLinks,
    };
    const cc = over.quicCongestionControl ?? this.#opts.quicCongestionControl;
    if (cc !== undefined) ctx.congestionControl = cc;
    const qpack = over.quicQpack ?? this.#opts.quicQpack;
    if (qpack !== undefined) ctx.qpack = qpack;
    const bbr = over.quicBbr ?? this.#opts.quicBbr;
    if (bbr !== undefined) ctx.bbr = bbr;
    return { spec, ctx, poolOpts };
  }

  /** How a URL becomes a pool (PoolRegistry asks on a fast-path miss): its key, and the pool when the key is new. */
  #plan = (u: URL, protocol: ProtocolPolicy | undefined, proxy: ProxyNode | null): OriginPlan => {
    const d = this.#describe(u, protocol, proxy);
    return {
      key: d.key,
      make: (retired, fastKey) => {
        const { spec, ctx, poolOpts } = this.#dialSetup(d);
        const { policy, over } = d;
        const origin = `${d.scheme}://${u.hostname}:${d.port}`;
        const sel = this.#selector;
        const created: Pool = new Pool(
          d.key,
          `${d.scheme}://${u.host}`,
          poolOpts,
          // Through a proxy, `auto` is ALPN over the tunnel: no QUIC race, no Alt-Svc upgrade (TCP-only proxy).
          policy === 'auto' && proxy
            ? (signal) => this.#connect(spec, { ...ctx, signal })
            : policy === 'auto'
              ? sel.autoDialer(origin, spec, ctx, () => created)
              : (signal) =>
                  (policy === 'h3' ? connectOrigin : this.#connect)(spec, { ...ctx, signal }).then((c) => {
                    sel.noteConnection(origin, c);
                    return c;
                  }),
          policy === 'auto' ? null : policy,
          sharedTicker,
          retired,
        );
        return {
          pool: created,
          origin,
          fastKeys: [fastKey],
          spec,
          ctx,
          policy,
          tlsId: d.tlsId,
          earlyData: ctx.earlyData ?? 'safe',
          coalesce: proxy ? false : (over.coalesce ?? sel.opts.coalesce),
          proxy,
          live: true,
          authority: u.host,
          coalescing: 0,
        };
      },
    };
  };

  /**
   * A socket to `origin` (`scheme://host[:port]`), dialled as this Agent's connections to it are — its
   * resolver, every address raced (Happy Eyeballs), TFO, its egress proxy node, its TLS settings with
   * ALPN `alpn` — and nothing spoken on it yet. For tunnels that leave the pools (the service's WebSocket
   * and Upgrade tunnels); `connectTimeoutMs` defaults to the origin's pool setting.
   */
  dialSocket(
    origin: string,
    o: { alpn?: string[]; signal?: AbortSignal; connectTimeoutMs?: number } = {},
  ): Promise<Dialled> {
    try {
      const u = this.#originUrl(origin);
      const proxy = this.#proxy === null && this.#originProxy.size === 0 ? null : this.#pickProxy(u);
      const { spec, ctx } = this.#dialSetup(this.#describe(u, 'h1', proxy));
      const pool = o.connectTimeoutMs === undefined ? ctx.pool : { ...ctx.pool, connectTimeoutMs: o.connectTimeoutMs };
      return dialOrigin(
        spec,
        { ...ctx, pool, signal: o.signal ?? new AbortController().signal },
        o.alpn ?? ['http/1.1'],
      );
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Origins whose pools are held now. */
  get poolCount(): number {
    return this.#registry.size;
  }

  /**
   * Send a request: one attempt after another (retryDecision, policy.ts) until one answers or none may follow.
   * Not an async function: the request's state is one AgentRequest and each attempt one `.then`, so the
   * common request (one origin, answered at once) allocates no async frame and takes one promise hop here.
   * To an origin group: its endpoint picked per attempt, hedged and collapsed as the group says.
   */
  request(o: RequestOptions): Promise<OriginResponse> {
    let st: AgentRequest;
    try {
      st = this.#begin(o);
    } catch (e) {
      return Promise.reject(e);
    }
    const g = st.group;
    if (g !== null && g.opts.collapse !== null) {
      const c = this.#collapsers.get(g) as Collapser<AgentRequest>;
      const key = c.key(st);
      if (key !== null) return c.join(st, key);
    }
    return this.#attempt(st);
  }

  /** A request's state for its attempts; throws on a bad argument (before any span starts). */
  #begin(o: RequestOptions): AgentRequest {
    // The real time now: the turn's first reading (turnNow) can be older than this request by all the work the turn
    // did before it, and its ttfbMs then exceeded the wall time (3.37 ms reported for 1.03 ms).
    const t0 = performance.now();
    checkRequest(o);
    let names: string | readonly string[];
    let path: string;
    let url0: URL | null = null;
    let named: Group | null = null;
    const simple = typeof o.url === 'string' ? splitSimpleUrl(o.url) : null;
    if (o.group !== undefined) {
      named = this.#named.get(o.group) ?? null;
      if (named === null)
        throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', `no group named ${JSON.stringify(o.group)}`, {
          details: { field: 'group' },
        });
      names = named.origins;
      // The group's first endpoint stands for it where one URL is needed (the request span's).
      url0 = (named.endpoints[0] as Endpoint).url;
      path = checkPath(o.path);
    } else if (simple !== null) {
      // The origin parsed once (cached), the request target as written (agent/target.ts says when that is exact).
      url0 = this.#originUrl(simple.origin, 'url');
      names = url0.origin;
      path = simple.target;
    } else if (o.url !== undefined) {
      url0 = typeof o.url === 'string' ? parseUrl(o.url, 'url') : o.url;
      if (!(url0 instanceof URL))
        throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', 'url: must be a string or a URL', {
          details: { field: 'url' },
        });
      names = url0.origin;
      path = `${url0.pathname}${url0.search}`;
    } else {
      names = o.origin as string | readonly string[];
      if (typeof names !== 'string' && !Array.isArray(names))
        throw new OriginlinkError(
          ErrorCode.INVALID_ARGUMENT,
          'local',
          'a request needs url, origin and path, or group and path',
          {
            details: { field: 'url' },
          },
        );
      if (typeof names !== 'string' && names.length === 0)
        throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', 'origin list is empty');
      // Every origin of the list parsed now: a bad one is the caller's error before anything is sent.
      if (typeof names === 'string') url0 = this.#originUrl(names);
      else
        for (const n of names) {
          const u = this.#originUrl(n);
          url0 ??= u;
        }
      path = checkPath(o.path);
    }
    // RFC 9110 §9.1: methods are case-sensitive tokens; a proxied `get` stays `get`.
    const method = o.method ?? 'GET';
    if (!TOKEN_RE.test(method))
      throw new OriginlinkError(
        ErrorCode.INVALID_ARGUMENT,
        'local',
        `invalid method ${JSON.stringify(method.slice(0, 40))}`,
      );
    // An origin group is looked for only when the agent has some (a plain origin pays nothing), never for a failover
    // list.
    const owned = simple !== null || o.url === undefined;
    const group =
      named ?? (this.#groups.size === 0 || typeof names !== 'string' ? null : this.#groupFor(url0 as URL, owned));
    if (group !== null) names = group.origins;
    const span = startRequestSpan(method, url0 as URL, path, o.traceContext);
    const headers = withTraceContext(span, normalizeHeaders(o.headers));
    const body = o.body ?? null;
    // A streamed body is kept as it leaves, up to retryBufferBytes, for an attempt the origin did not process.
    const replay =
      !isReplayable(body) && this.#retryBufferBytes > 0
        ? new ReplayBody(bodyStream(body), this.#retryBufferBytes)
        : null;
    return new AgentRequest(
      o,
      t0,
      names,
      url0 as URL,
      owned,
      path,
      method,
      span,
      headers,
      body,
      replay,
      replay === null && isReplayable(body),
      isIdempotentRequest(method, headers),
      group,
    );
  }

  /** The group a URL's origin names, or null (remembered on the Agent's own URL objects). */
  #groupFor(u: URL, owned: boolean): Group | null {
    if (!owned) return this.#groups.get(u.origin) ?? null;
    let g = this.#groupOf.get(u);
    if (g === undefined) {
      g = this.#groups.get(u.origin) ?? null;
      this.#groupOf.set(u, g);
    }
    return g;
  }

  /**
   * One attempt of `st` on its current target (hedged when its group says so); on failure, the next one when policy.ts
   * allows it.
   */
  #attempt(st: AgentRequest): Promise<OriginResponse> {
    let ep = st.ep;
    if (ep === null && st.group !== null) {
      // Picked when it is sent: a request collapsed onto another's sends nothing, so it takes no turn of the
      // balancer and no share of the retry budget (group/budget.ts counts first attempts).
      ep = st.ep = st.group.pick(turnNow());
      st.at = ep.index;
    }
    if (ep !== null && st.attempt === 1 && st.replay === null && replaySafe(st)) {
      const delay = (st.group as Group).hedgeDelay();
      if (delay >= 0) {
        try {
          return new HedgeRace(this.#hedgeHost, st, ep, delay).promise;
        } catch (e) {
          return this.#notSent(st, e);
        }
      }
    }
    let r: Promise<PoolResult>;
    try {
      r = this.#launch(st, ep, st.signal);
    } catch (e) {
      return this.#notSent(st, e);
    }
    const info = st.info as PoolInfo;
    if (ep === null)
      return r.then(
        (res) => this.#answered(st, info, res),
        (e) => this.#failed(st, info.pool, e),
      );
    return r.then(
      (res) => this.#groupAnswered(st, ep, info, res),
      (e) => this.#groupFailed(st, ep, info.pool, e),
    );
  }

  /** Thrown before an attempt ran (bad origin, closed agent): no retry; the span still ends. */
  #notSent(st: AgentRequest, e: unknown): Promise<OriginResponse> {
    failSpan(st.span, e as Error, st.attempt);
    st.replay?.abandon();
    return Promise.reject(e);
  }

  /**
   * Start one attempt of `st` (to `ep`, or its current target) through `signal`: its pool's promise, with the
   * pool's info left in `st.info`. Throws when nothing could be sent; a failure of the send itself is the promise's.
   */
  #launch(st: AgentRequest, ep: Endpoint | null, signal: SignalLike | undefined): Promise<PoolResult> {
    const url =
      ep !== null ? ep.url : st.at === 0 ? st.url0 : this.#originUrl((st.names as readonly string[])[st.at] as string);
    // One node per target for the whole request: a retry never moves to another node (nor identity).
    const node = this.#proxy === null && this.#originProxy.size === 0 ? null : st.node(url, this.#pickProxyFn);
    // An endpoint's URL is its group's own object (never a caller's): its pool is remembered on it.
    const info = this.#registry.find(url, st.o.protocol, node, st.ownedUrls || ep !== null);
    st.info = info;
    const o = st.o;
    const req = connRequest(
      st.method,
      st.path,
      o.authority ?? (st.ownedUrls || ep !== null ? info.authority : url.host),
      info.spec.scheme,
      st.headers,
      st.replay ? st.replay.attempt() : st.body,
      signal,
      // RFC 8470: the one 0-RTT rule, decided here for every protocol below.
      earlyDataAllowed(info.earlyData, st.method, o.allowEarlyData),
      o.responseBufferBytes,
      o.onInformational,
    );
    const pool = info.pool;
    if (ep !== null) {
      ep.pool = pool;
      (st.group as Group).sent(ep);
      // The turn's clock (util/clock.ts): a latency sample to a few ms, without a clock read per attempt.
      st.attemptAt = turnNow();
    }
    try {
      // Coalescing is tried only where it may apply (an extra async hop costs the hot path).
      return info.coalesce &&
        info.spec.scheme === 'https' &&
        info.policy !== 'h1' &&
        !this.#noCoalesce.has(url.host) &&
        !pool.hasReady()
        ? this.#coalescing(info, this.#attemptCoalesced(info, url, req, st.replayable))
        : pool.request(req);
    } catch (e) {
      // A throw of the attempt itself is its failure: the retry policy decides, as for a rejection.
      return Promise.reject(e);
    }
  }

  /** The answer of an attempt to a group's endpoint: its outcome told to the group first. */
  #groupAnswered(st: AgentRequest, ep: Endpoint, info: PoolInfo, r: PoolResult): OriginResponse {
    const now = turnNow();
    (st.group as Group).answered(ep, r.res.status, now - st.attemptAt, now);
    return this.#answered(st, info, r);
  }

  #groupFailed(st: AgentRequest, ep: Endpoint, pool: Pool, e: unknown): Promise<OriginResponse> {
    const now = turnNow();
    (st.group as Group).failed(ep, toOriginlinkError(e), now - st.attemptAt, now);
    return this.#failed(st, pool, e);
  }

  /**
   * A pool whose request waits on the coalescing lookup holds nothing yet (idle to #evictIdle): it is counted
   * busy until that attempt settles, or a new origin past maxOrigins could evict it under its request.
   */
  #coalescing(info: PoolInfo, p: Promise<PoolResult>): Promise<PoolResult> {
    info.coalescing++;
    return p.finally(() => {
      info.coalescing--;
    });
  }

  #answered(st: AgentRequest, info: PoolInfo, r: PoolResult): OriginResponse {
    try {
      const pool = info.pool;
      if (!info.proxy)
        this.#selector.onResponse(
          info.origin,
          r.res.headers,
          info.spec,
          info.ctx,
          info.policy === 'auto' ? pool : null,
        );
      // The answer's turn's reading: never later than the real time, so ttfbMs never exceeds the wall time.
      const ttfbMs = Math.max(0, turnNow() - st.t0);
      publishRequestEnd(
        pool.origin,
        st.method,
        st.path,
        r.res.status,
        r.conn.protocol,
        r.reused,
        st.attempt,
        ttfbMs,
        null,
      );
      const res = new OriginResponse(st.name(), r, st.attempt, ttfbMs, st.hedged);
      if (st.span.isRecording()) responseSpan(st.span, res);
      st.replay?.settle();
      return res;
    } catch (e) {
      // Not the origin's doing (a bug of ours after the answer): no retry; the span and a kept body still end.
      failSpan(st.span, e as Error, st.attempt);
      st.replay?.abandon();
      throw e;
    }
  }

  #failed(st: AgentRequest, pool: Pool, e: unknown): Promise<OriginResponse> {
    const err = toOriginlinkError(e);
    const ep = st.ep;
    // A group's endpoint not tried yet: the retry goes to another server (group.ts pickAgain takes those first).
    const otherServer =
      ep !== null && (st.group as Group).endpoints.some((x) => x !== ep && !(st.triedEps?.includes(x) ?? false));
    const d = retryDecision(err, {
      attempt: st.attempt,
      maxRetries: this.#maxRetries,
      replayable: st.replayable || (st.replay !== null && st.replay.replayable),
      idempotent: st.idempotent,
      aborted: st.signal?.aborted === true,
      urls: st.count,
      untried: st.count - st.tried,
      otherServer,
      requeues: st.requeues,
    });
    if (d.retry && d.requeue) {
      // Refused unprocessed: back to the same target's queue, no retry spent (policy.ts MAX_REQUEUES).
      st.requeues++;
      st.attempt++;
      return this.#attempt(st);
    }
    // A group's retry spends its budget: past it the failure is the answer (counted on the endpoint that failed).
    const refused =
      d.retry &&
      ep !== null &&
      (st.group as Group).budget !== null &&
      !((st.group as Group).budget as RetryBudget).take(performance.now());
    if (!d.retry || refused) {
      if (refused) (ep as Endpoint).state.retriesRefused++;
      const final = err.with({
        details: refused
          ? { attempts: st.attempt, retryBudget: 'exhausted', endpoint: (ep as Endpoint).origin }
          : ep !== null
            ? { attempts: st.attempt, endpoint: ep.origin }
            : { attempts: st.attempt },
      });
      publishRequestEnd(
        pool.origin,
        st.method,
        st.path,
        null,
        pool.protocol,
        err.facts?.reused === true,
        st.attempt,
        performance.now() - st.t0,
        final,
      );
      failSpan(st.span, final, st.attempt);
      st.replay?.abandon();
      return Promise.reject(final);
    }
    pool.counters.retries++;
    if (ep !== null) {
      // Another endpoint than the one that failed: one not tried yet where any is (group.ts pickAgain).
      const tried = (st.triedEps ??= [ep]);
      const next = (st.group as Group).pickAgain(tried, performance.now());
      if (!tried.includes(next)) {
        tried.push(next);
        st.tried++;
      }
      st.ep = next;
      st.at = next.index;
    } else if (d.failover) {
      st.at = (st.at + 1) % st.count;
      st.tried++;
    }
    st.attempt++;
    return this.#attempt(st);
  }

  /**
   * One attempt on another name's connection when one may carry it (else, or after a 421, through the origin's own
   * pool).
   */
  async #attemptCoalesced(info: PoolInfo, url: URL, req: ConnRequest, replayable: boolean): Promise<PoolResult> {
    const pool = info.pool;
    let r = await this.#coalesced(info, req);
    if (r && r.res.status === 421) {
      // RFC 9113 §9.1.2: 421 on a coalesced connection — stop coalescing this name and
      // re-send on its own connection (a non-replayable body gets the 421 itself).
      this.#noCoalesce.set(url.host, true);
      if (replayable) {
        r.res.body.resume();
        pool.counters.retries++;
        r = null;
      }
    }
    if (r) pool.counters.coalesced++;
    return r ?? pool.request(req);
  }

  /** Parsed origin URLs, so the `{ origin, path }` form parses each origin once (bounded). */
  #originUrl(origin: string, field = 'origin'): URL {
    // peek: a parse cache needs no recency bookkeeping on the hot path (LruMap.get re-inserts).
    let u = this.#origins.peek(origin);
    if (!u) {
      u = parseUrl(origin, field);
      if (u.pathname !== '/' || u.search !== '')
        throw new OriginlinkError(
          ErrorCode.INVALID_ARGUMENT,
          'local',
          `origin must be scheme://host[:port] (got ${JSON.stringify(origin)})`,
        );
      this.#origins.set(origin, u);
    }
    return u;
  }

  /** Pre-connect `n` connections to an origin. */
  warm(url: string | URL, n = 1, protocol?: ProtocolPolicy): Promise<void> {
    return this.pool(url, protocol).warm(n);
  }

  /**
   * A connection of another pool that may carry `req` for this pool's origin (RFC 9113 §9.1.1, RFC 9114 §3.3), and the
   * request run on it.
   */
  async #coalesced(info: PoolInfo, req: ConnRequest): Promise<PoolResult | null> {
    // The lookup that decides whether another connection may carry this request is bounded like the pool's own
    // wait (queue and connect deadlines, the caller's signal): past them the request goes its own way. A resolver
    // that never answered held such a request 6–7 s past a 300 ms signal and 500 ms deadlines.
    const budget = Math.min(info.pool.opts.connectTimeoutMs, info.pool.opts.pendingTimeoutMs);
    const resolve = (h: string): Promise<string[]> => bounded(this.#book.resolver.lookup(h), budget, req.signal);
    const pools = [...this.#registry.values()].map((x) => x.pool);
    const cand = await findCandidate(
      pools,
      info.pool,
      info.spec.host,
      info.spec.port,
      resolve,
      (p) => {
        const o = this.#registry.get(p.key);
        return (
          o !== undefined &&
          o.tlsId === info.tlsId &&
          info.tlsId.includes('|verify=true|') &&
          info.tlsId.startsWith('sni=|')
        );
      },
      COALESCE_ONTO[info.policy],
    );
    if (!cand) return null;
    return cand.pool.requestOn(cand.conn, req);
  }

  /** Per origin: the live pools, then the counters of recently forgotten ones (so totals never go back). */
  stats(): PoolStats[] {
    return this.#registry.stats();
  }

  /** Per egress proxy node: requests, connections opened, reuse rate, handshake time saved. */
  proxyStats(): ProxyNodeStats[] {
    const by = new Map<string, PoolCounters[]>();
    const links = new Map<string, number>();
    const dead = new Map<string, number>();
    const add = (node: string, c: PoolCounters): void => {
      const l = by.get(node) ?? [];
      l.push(c);
      by.set(node, l);
    };
    for (const x of this.#registry.values()) {
      if (!x.proxy) continue;
      add(x.proxy.id, x.pool.counters);
      if (x.proxy.http2) {
        links.set(x.proxy.key, this.#proxyLinks.connections(x.proxy).filter((c) => c.state !== 'closed').length);
        dead.set(x.proxy.key, this.#proxyLinks.deadConnections(x.proxy));
      }
    }
    const perNode = (m: Map<string, number>, id: string): number | null => {
      let n: number | null = null;
      for (const [k, c] of m) if (k.startsWith(`${id}#`)) n = (n ?? 0) + c;
      return n;
    };
    for (const r of this.#registry.retired()) if (r.proxy) add(r.proxy, r.counters);
    return [...by].map(([node, cs]) => {
      const sum = (f: (c: PoolCounters) => number): number => cs.reduce((a, c) => a + f(c), 0);
      const requests = sum((c) => c.requests);
      const opened = sum((c) => c.opened_);
      const mean = opened > 0 ? sum((c) => c.handshakeMs) / opened : null;
      const errors: Record<string, number> = {};
      for (const c of cs) for (const [k, v] of Object.entries(c.errors)) errors[k] = (errors[k] ?? 0) + v;
      return {
        node,
        requests,
        requestsOnReusedConnections: sum((c) => c.reusedRequests),
        connectionsOpened: opened,
        connectFailures: sum((c) => c.connectFailures),
        nodeConnections: perNode(links, node),
        nodeConnectionsDead: perNode(dead, node),
        reuseRate: requests === 0 ? 0 : Math.max(0, 1 - opened / requests),
        meanHandshakeMs: mean,
        handshakeMsSaved: mean === null ? 0 : Math.max(0, requests - opened) * mean,
        errors,
      };
    });
  }

  pools(): Pool[] {
    return [...this.#registry.values()].map((x) => x.pool);
  }

  /**
   * undici's Dispatcher interface: `fetch(url, { dispatcher: agent })`, undici's
   * `request(url, { dispatcher })` and any library taking a dispatcher run over
   * these pools (h1, h2 and h3 with 0-RTT). Both handler styles (undici 6 and 7).
   */
  dispatch(opts: DispatchOptions, handler: DispatchHandler): boolean {
    return dispatchOn(this, opts, handler);
  }

  /** Finish in-flight requests, then close every connection. The process is held until it settles (util/hold.ts). */
  close(): Promise<void> {
    return holdUntil(this.#close());
  }

  async #close(): Promise<void> {
    for (const g of this.#groups.values()) g.close();
    await this.#registry.close();
    this.#proxyLinks.close();
    // File-backed stores write their changes within 100 ms; once closed, the files say all (a restart reads them).
    for (const store of [this.#sessions, this.#originCacheOpt])
      (store as { flush?: () => void } | undefined)?.flush?.();
  }

  /** Abort everything now (returns a promise, as undici's Dispatcher.destroy does). */
  destroy(error?: Error | null): Promise<void> {
    for (const g of this.#groups.values()) g.close();
    this.#registry.destroy(error ?? undefined);
    this.#proxyLinks.close();
    return Promise.resolve();
  }
}

/**
 * A request for a connection, every field present and in this order: the service's requests and the health checks
 * beside them are then objects of one shape, and the property reads along the connections' path (the h1 request
 * head, the exchange, the pool) see one map where two made them polymorphic (V8's `--log-ic`, RESULTS.md groups).
 */
function connRequest(
  method: string,
  path: string,
  authority: string,
  scheme: ConnRequest['scheme'],
  headers: HeaderList,
  body: ConnRequest['body'],
  signal: SignalLike | undefined,
  allowEarlyData: boolean,
  responseBufferBytes: number | undefined,
  onInformational: ConnRequest['onInformational'],
): ConnRequest {
  return {
    method,
    path,
    authority,
    scheme,
    headers,
    body,
    signal,
    allowEarlyData,
    responseBufferBytes,
    onInformational,
  };
}

/** An origin's overrides define a group: they hold a group field (its name alone does not). */
function isGroup(o: OriginOverrides): boolean {
  return GROUP_KEYS.some((f) => f !== 'name' && o[f] !== undefined);
}

/** What AgentOptions.groups may name a group: letters, digits, `.`, `_`, `-` (never a URL). */
const GROUP_NAME_RE = /^[A-Za-z0-9._-]+$/;

/** A named group's key among the Agent's groups (a URL's origin never takes this form). */
function namedGroupKey(name: string): string {
  return `group:${name}`;
}

/** A named group's definition: its group fields and endpoints, named by its name unless it names itself. */
function namedGroupOptions(name: string, o: OriginOverrides): GroupOptions {
  return { ...groupFields(o), endpoints: o.endpoints ?? [], name: o.name ?? name };
}

/** The group fields of an origin's overrides. */
function groupFields(o: OriginOverrides): Partial<GroupOptions> {
  const out: Record<string, unknown> = {};
  for (const f of GROUP_KEYS) if (o[f] !== undefined) out[f] = o[f];
  return out as Partial<GroupOptions>;
}

/** A request path: `/…`, or `*` (OPTIONS); else OL_INVALID_ARGUMENT. */
function checkPath(path: unknown): string {
  if (typeof path !== 'string')
    throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', 'path: must be a string starting with "/"', {
      details: { field: 'path' },
    });
  if (path.charCodeAt(0) !== 0x2f && path !== '*')
    throw new OriginlinkError(
      ErrorCode.INVALID_ARGUMENT,
      'local',
      `path must start with "/" (got ${JSON.stringify(path.slice(0, 40))})`,
    );
  return path;
}

/** The group an origin's overrides define: its group fields, its endpoints (or its own URL alone), named by its key. */
function groupOptions(key: string, o: OriginOverrides): GroupOptions {
  const origin = new URL(key).origin;
  return { ...groupFields(o), endpoints: o.endpoints ?? [{ url: origin }], name: o.name ?? origin };
}

/** Lower-case names, end-to-end fields only (RFC 9110 §7.6.1, one rule with the service: http/fields.ts). */
function normalizeHeaders(h: RequestOptions['headers']): HeaderList {
  // A list our own code built from checked fields (the service's forwarder) is sent as it is.
  if (Array.isArray(h) && isClean(h)) return h;
  const out: HeaderList = [];
  if (!h) return out;
  // The copy is filtered by endToEnd only when a field may need it (a forwarder's list, already end-to-end,
  // is copied once, not twice).
  let filter = false;
  if (Array.isArray(h)) {
    for (const f of h) {
      const name = f[0].toLowerCase();
      if (!filter && isHopByHop(name)) filter = true;
      out.push(name === f[0] ? f : [name, f[1]]); // a pair already lower-case is shared, not copied
    }
  } else {
    for (const [n, v] of Object.entries(h)) {
      if (v === undefined) continue;
      const name = n.toLowerCase();
      if (!filter && isHopByHop(name)) filter = true;
      if (Array.isArray(v)) for (const x of v) out.push([name, x]);
      else out.push([name, v]);
    }
  }
  return filter ? endToEnd(out) : out;
}

/** An origin as this Agent's options describe it (Agent #describe). */
interface OriginDescription {
  scheme: 'http' | 'https';
  host: string;
  port: number;
  over: OriginOverrides;
  policy: ProtocolPolicy;
  tlsOpts: TlsOptions;
  tlsId: string;
  /** The pool key: origin, policy, TLS identity, proxy node. */
  key: string;
  proxy: ProxyNode | null;
}

/**
 * Identity of the trusted CAs in a pool key: a SHA-256 of every PEM byte, so
 * two different CAs never share a pool or coalescing eligibility. Objects are
 * hashed once (Buffers and arrays are treated as immutable once given).
 */
const caIds = new WeakMap<object, string>();
function caId(ca: TlsOptions['ca']): string {
  if (ca === undefined) return '-';
  if (typeof ca === 'string') return hashCa([ca]);
  let id = caIds.get(ca as object);
  if (id === undefined) {
    id = hashCa(Array.isArray(ca) ? ca : [ca]);
    caIds.set(ca as object, id);
  }
  return id;
}

function hashCa(parts: ReadonlyArray<string | Buffer>): string {
  const h = createHash('sha256');
  for (const p of parts) {
    h.update(String(p.length));
    h.update(':');
    h.update(p);
  }
  return h.digest('base64url');
}

/** `p`, or a rejection once `ms` pass or `signal` aborts (what `p` would have been is dropped). */
function bounded<T>(p: Promise<T>, ms: number, signal: SignalLike | undefined): Promise<T> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      done();
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`no answer within ${ms} ms`));
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        done();
        resolve(v);
      },
      (e: unknown) => {
        done();
        reject(e);
      },
    );
  });
}
