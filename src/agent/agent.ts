/**
 * The Agent maps origins to pools and owns the request policy (retries and
 * 0-RTT, both pure functions in policy.ts / http/early-data.ts). Users call
 * `agent.request({ url, ... })`; everything below is per origin.
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
import { earlyDataAllowed, type EarlyDataPolicy } from '../http/early-data.js';
import { connectOrigin, type ConnectContext, type LookupFn, type OriginSpec, type ProtocolPolicy } from '../transport/connect.js';
import { DEFAULT_KEEPALIVE } from '../transport/tfo.js';
import { h3Settings, type QpackOptions } from '../transport/h3-common.js';
import type { PooledConnection } from '../http/types.js';
import type { OriginCache, OriginFacts } from '../probe/cache.js';
import { AddressCache, findCandidate } from '../probe/coalesce.js';
import { Selector, type DialContext, type SelectionCounters } from '../probe/selector.js';
import type { Choice, SelectionOptions } from '../probe/state.js';
import { bodyStream, isReplayable } from '../http/body.js';
import { isIdempotentRequest } from '../http/methods.js';
import { endToEnd, isClean, isHopByHop } from '../http/fields.js';
import { publishRequestEnd } from '../pool/diagnostics.js';
import { configError, DEFAULT_POOL_OPTIONS, resolvePoolOptions, type PoolOptions } from '../pool/options.js';
import { Pool, type PoolResult } from '../pool/pool.js';
import { PoolCounters } from '../pool/stats.js';
import { sharedTicker, type TickMember } from '../pool/ticker.js';
import { LruMap } from '../util/lru.js';
import { retryDecision } from './policy.js';
import { dispatchOn, type DispatchHandler, type DispatchOptions } from './dispatcher.js';
import { failSpan, responseSpan, startRequestSpan, withTraceContext } from './tracing.js';
import { splitSimpleUrl } from './target.js';
import type { Context } from '@opentelemetry/api';
import { OriginResponse } from './response.js';
import { DEFAULT_RETRY_BUFFER_BYTES, ReplayBody } from './replay-body.js';
import { MemorySessionStore, type SessionStore } from '../transport/session-store.js';
import { Resolver, type ResolverOptions } from '../transport/resolver.js';
import { AddressBook, type AddressBookOptions } from '../transport/addresses.js';
import { DEFAULT_ATTEMPT_DELAY_MS, MIN_ATTEMPT_DELAY_MS } from '../transport/happy-eyeballs.js';
import { ProxyRotation, type ProxyNode, type ProxyOptions } from '../transport/proxy.js';
import { H2ProxyLinks } from '../transport/h2-tunnel.js';
import { CC_ALGORITHMS, type CcAlgorithm } from '../quic/cc.js';
import type { PoolStats } from '../pool/stats.js';
import type { ConnRequest, HeaderList, Protocol, RequestBody } from '../http/types.js';
import { turnNow } from '../util/clock.js';

export interface TlsOptions {
  /** Extra trusted CA certificate(s), PEM. Default: Node's bundled roots. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Verify the origin's certificate chain and name. Default true. */
  rejectUnauthorized?: boolean;
  /** SNI and certificate name; default the URL host. */
  servername?: string;
}

export interface OriginOverrides {
  protocol?: ProtocolPolicy;
  pool?: Partial<PoolOptions>;
  tls?: TlsOptions;
  tfo?: boolean;
  /** Share this origin's requests with h2/h3 connections of other names (RFC 9113 §9.1.1, RFC 9114 §3.3). Default: the agent's `selection.coalesce`. */
  coalesce?: boolean;
  /** 0-RTT early data on resumed h3 connections: 'never', 'safe' (GET/HEAD/OPTIONS) or 'always'. Default: the agent's `earlyData`. */
  earlyData?: EarlyDataPolicy;
  /** Egress proxies for this origin; null: direct even when the agent has a proxy. Default: the agent's `proxy`. */
  proxy?: ProxyOptions | null;
  /** h3: congestion controller for this origin's connections. Default: the agent's `quicCongestionControl`. */
  quicCongestionControl?: CcAlgorithm;
  /** h3: our QPACK decoder's limits towards this origin. Default: the agent's `quicQpack`. */
  quicQpack?: QpackOptions;
}

export interface AgentOptions {
  /** Protocol policy for every origin unless overridden. Default `auto`. */
  protocol?: ProtocolPolicy;
  /**
   * Which requests may be sent as 0-RTT early data on a resumed h3 connection.
   * Default 'safe' (GET, HEAD, OPTIONS: replay-safe, RFC 8470 §4); a request the
   * server refuses early is resent after the handshake.
   */
  earlyData?: EarlyDataPolicy;
  /** Pool options for every origin (see PoolOptions for the defaults). */
  pool?: Partial<PoolOptions>;
  tls?: TlsOptions;
  /**
   * h3: quiche's congestion controller for what this Agent sends on QUIC (request bodies; the origin's own
   * controller paces downloads). 'reno', 'cubic' or 'bbr'; default the QUIC layer's DEFAULT_CC.
   */
  quicCongestionControl?: CcAlgorithm;
  /**
   * h3: the QPACK dynamic table we let origins use towards us (RFC 9204 §5: `maxTableCapacity` bytes,
   * `blockedStreams`, `ackDelayMs`). Defaults 4096, 16, 25 ms (transport/h3-common.ts h3Settings).
   */
  quicQpack?: QpackOptions;
  /** Retries on top of the first attempt, under the policy above. Default 2. */
  maxRetries?: number;
  /**
   * A streamed request body (a Readable or an iterable) is kept as it is read, up to this many bytes, so
   * that an attempt the origin did not process (refused stream, above GOAWAY's last id, never connected)
   * can be sent again (agent/replay-body.ts); past it the body is not replayed. Held only until the
   * response head arrives. 0: streamed bodies are never replayed. Default 262144 (256 KiB).
   */
  retryBufferBytes?: number;
  /** Store for TLS sessions (and QUIC tickets); default in-memory, 1024 entries. */
  sessionStore?: SessionStore;
  /** Use TCP Fast Open when the native addon is available. Default true. */
  tfo?: boolean;
  /** TCP keepalive probes on pooled sockets; null leaves the OS defaults. Default 300 s / 75 s / 9. */
  keepAliveProbes?: { idleS: number; intervalS: number; count: number } | null;
  /** Per-origin overrides, keyed by `scheme://host:port`. */
  origins?: Record<string, OriginOverrides>;
  /** Per-origin capability facts (Alt-Svc, ALPN, RTT, broken h3); default in-memory, 1024 origins. */
  originCache?: OriginCache;
  /** Racing, broken-h3 backoff and coalescing knobs (see docs/selection.md). */
  selection?: Partial<SelectionOptions>;
  /** Resolve host names (addresses, preferred first) instead of DNS; answers are kept `dns.systemTtlMs`. */
  lookup?: LookupFn;
  /** Name resolution and dialling every address of an origin (see DnsOptions). */
  dns?: DnsOptions;
  /**
   * Egress through forward proxies (http://, https:// CONNECT; socks5://), a
   * list of nodes and a rotation policy. Pools are per origin and node (and
   * credentials); h3 is never attempted through a proxy. Default: direct.
   */
  proxy?: ProxyOptions;
  /**
   * How a TCP-based connection to an origin is opened (the h3 path is always
   * our QUIC connector). Default: TCP (+TLS with ALPN h2/http1.1, TFO when
   * available). A custom connector may add socket options or a tunnel, or be
   * a test double; it must honour `ctx.signal` and the origin's policy.
   */
  connect?: (origin: OriginSpec, ctx: ConnectContext) => Promise<PooledConnection>;
  /**
   * Most origins with state held at once: pools (busy ones are never
   * evicted), selection state, coalescing opt-outs, counters of forgotten
   * pools. Default 1024.
   */
  maxOrigins?: number;
  /** A pool with nothing in flight or queued and no request for this long is closed and forgotten, ms. Default 60000. */
  originIdleTimeoutMs?: number;
}

/**
 * Resolver options (servers, TTL clamps, serve-stale: transport/resolver.ts)
 * plus how addresses are dialled.
 */
export interface DnsOptions extends Partial<Omit<ResolverOptions, 'lookup' | 'now'>> {
  /** RFC 8305 §5 Connection Attempt Delay between Happy Eyeballs attempts, ms (≥ 10). Default 250. */
  attemptDelayMs?: number;
  /** A failed address is skipped for this long, doubling per further failure, ms. Default 1000. */
  addressDownBaseMs?: number;
  /** Cap on an address's down time, ms. Default 60000. */
  addressDownMaxMs?: number;
  /** Share one resolver (and its cache) between agents; the options above except the last three are then ignored. */
  resolver?: Resolver;
}

/** Per egress proxy node: what its pools did (live pools and recently forgotten ones). */
export interface ProxyNodeStats {
  node: string;
  requests: number;
  requestsOnReusedConnections: number;
  connectionsOpened: number;
  connectFailures: number;
  /** 1 − connectionsOpened / requests. */
  reuseRate: number;
  /** `http2` nodes: HTTP/2 connections to the node open now (every tunnel is a stream of one of them); null otherwise. */
  nodeConnections: number | null;
  /** `http2` nodes: connections to the node closed because a PING went unanswered (RFC 9113 §6.7; pool pingIntervalMs / pingTimeoutMs); null otherwise. */
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

interface PoolInfo {
  pool: Pool;
  /** `scheme://host:port` */
  origin: string;
  /** Fast-path keys that point at this pool (removed with it). */
  fastKeys: string[];
  spec: OriginSpec;
  ctx: DialContext;
  policy: ProtocolPolicy;
  tlsId: string;
  earlyData: EarlyDataPolicy;
  coalesce: boolean;
  proxy: ProxyNode | null;
  /** Still this origin's pool (false once forgotten): a per-URL memo of it is stale then. */
  live: boolean;
  /** The origin's host[:port] as its URL writes it: a request's default Host / :authority. */
  authority: string;
  /** Attempts waiting on the coalescing lookup (#coalescing): the pool is busy though it holds nothing. */
  coalescing: number;
}

/** The pool last found for one (cached) origin URL object, with what it was asked with. */
interface UrlMemo { info: PoolInfo; protocol: ProtocolPolicy | undefined; proxy: ProxyNode | null }

/**
 * A request names its target either by `url`, or by `origin` (`https://host:port`)
 * plus `path` — the second form skips parsing a URL per request (as undici's
 * `pool.request({ path })` does) and suits callers that already split them.
 * `origin` may be a list: an ordered failover (the service's URLs of one
 * origin) — a failure that says the origin was unreachable moves to the next.
 */
export type RequestOptions = RequestTarget & RequestCommon;
export type RequestTarget = { url: string | URL; origin?: never; path?: never } | { origin: string | readonly string[]; path: string; url?: never };

export interface RequestCommon {
  method?: string;
  headers?: Record<string, string | string[] | undefined> | HeaderList;
  body?: RequestBody;
  signal?: AbortSignal;
  /** Per-request protocol policy (overrides agent and origin). */
  protocol?: ProtocolPolicy;
  /** Host / :authority to send instead of the URL's (the connection still goes to the URL's origin). */
  authority?: string;
  /** Permit 0-RTT early data for this request (h3; only for requests safe to replay, RFC 8470). */
  allowEarlyData?: boolean;
  /**
   * Response bytes read from the origin ahead of this request's body reader (nginx's proxy_buffering, in
   * memory): a response that fits is read whole, and its connection freed, however slowly it is consumed.
   */
  responseBufferBytes?: number;
  /** Interim (1xx) responses before the final one, e.g. 103 Early Hints: see ConnRequest.onInformational. */
  onInformational?: (status: number, headers: HeaderList) => void;
  /** OpenTelemetry parent context of this request's span (default: the active context). The service passes the incoming request's. */
  traceContext?: Context;
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

/**
 * The option names an Agent and an origin override take: any other is refused (OL_INVALID_CONFIG) rather than
 * ignored, so a misspelt or misplaced option (a pool option at the top level) is not silently a default.
 * The `satisfies` and the checks below keep these lists and the interfaces the same.
 */
const AGENT_KEYS = ['protocol', 'earlyData', 'pool', 'tls', 'quicCongestionControl', 'quicQpack', 'maxRetries', 'retryBufferBytes', 'sessionStore', 'tfo', 'keepAliveProbes', 'origins', 'originCache', 'selection', 'lookup', 'dns', 'proxy', 'connect', 'maxOrigins', 'originIdleTimeoutMs'] as const satisfies ReadonlyArray<keyof AgentOptions>;
const ORIGIN_KEYS = ['protocol', 'pool', 'tls', 'tfo', 'coalesce', 'earlyData', 'proxy', 'quicCongestionControl', 'quicQpack'] as const satisfies ReadonlyArray<keyof OriginOverrides>;
const allAgentKeys: Exclude<keyof AgentOptions, (typeof AGENT_KEYS)[number]> extends never ? true : never = true;
const allOriginKeys: Exclude<keyof OriginOverrides, (typeof ORIGIN_KEYS)[number]> extends never ? true : never = true;
void allAgentKeys;
void allOriginKeys;

/** Refuse an option name `known` does not hold; a pool option in the wrong place is named with its place. */
function checkKeys(o: object, known: readonly string[], where: string): void {
  for (const k of Object.keys(o)) {
    if (known.includes(k)) continue;
    const field = where ? `${where}.${k}` : k;
    throw configError(field, k in DEFAULT_POOL_OPTIONS ? `unknown option (a pool option: ${where ? `${where}.` : ''}pool.${k})` : 'unknown option');
  }
}

export class Agent implements TickMember {
  #opts: AgentOptions;
  /** Pool key → pool and what it was made from. Insertion order = creation order. */
  #pools = new Map<string, PoolInfo>();
  /** (URL scheme + host, per-request policy) → pool; every input of the full key is fixed per agent. */
  #fast = new Map<string, PoolInfo>();
  /** Per origin URL object (the Agent caches one per origin string): the last pool found, so a request builds no key. */
  #byUrl = new WeakMap<URL, UrlMemo>();
  #origins: LruMap<string, URL>;
  #sessions: SessionStore;
  #selector: Selector;
  /** Names (host:port) for which a 421 turned coalescing off. */
  #noCoalesce: LruMap<string, true>;
  /** Counters of forgotten pools, so stats() stays monotonic per origin (bounded). */
  #retired: LruMap<string, { origin: string; counters: PoolCounters; proxy: string | null }>;
  /** The agent's proxy rotation, and per-origin ones (`scheme://host:port` → rotation, or null: direct). */
  #proxy: ProxyRotation | null;
  #originProxy = new Map<string, ProxyRotation | null>();
  /** HTTP/2 connections to `http2` proxy nodes, shared by every pool of this agent. */
  #proxyLinks = new H2ProxyLinks();
  #addresses = new AddressCache();
  #book: AddressBook;
  #attemptDelayMs: number;
  #connect: NonNullable<AgentOptions['connect']>;
  /** The caller's origin cache, if any (flushed on close). */
  #originCacheOpt: unknown;
  #maxRetries: number;
  #retryBufferBytes: number;
  #maxOrigins: number;
  #originIdleMs: number;
  #lastSweep = 0;
  #closed = false;

  constructor(opts: AgentOptions = {}) {
    checkKeys(opts, AGENT_KEYS, '');
    for (const [k, o] of Object.entries(opts.origins ?? {})) checkKeys(o, ORIGIN_KEYS, `origins["${k}"]`);
    this.#maxRetries = opts.maxRetries ?? 2;
    if (!Number.isInteger(this.#maxRetries) || this.#maxRetries < 0) throw configError('maxRetries', 'must be a non-negative integer');
    this.#retryBufferBytes = opts.retryBufferBytes ?? DEFAULT_RETRY_BUFFER_BYTES;
    if (!Number.isInteger(this.#retryBufferBytes) || this.#retryBufferBytes < 0) throw configError('retryBufferBytes', 'must be a non-negative integer');
    this.#maxOrigins = opts.maxOrigins ?? 1024;
    if (!Number.isInteger(this.#maxOrigins) || this.#maxOrigins < 1) throw configError('maxOrigins', 'must be a positive integer');
    this.#originIdleMs = opts.originIdleTimeoutMs ?? 60_000;
    if (!Number.isFinite(this.#originIdleMs) || this.#originIdleMs <= 0) throw configError('originIdleTimeoutMs', 'must be a positive number of ms');
    if (opts.quicCongestionControl !== undefined && !CC_ALGORITHMS.includes(opts.quicCongestionControl)) throw configError('quicCongestionControl', `must be one of ${CC_ALGORITHMS.join(', ')}`);
    if (opts.quicQpack !== undefined) h3Settings('client', opts.quicQpack); // range checks, OL_INVALID_CONFIG
    this.#connect = opts.connect ?? connectOrigin;
    this.#origins = new LruMap(this.#maxOrigins);
    this.#noCoalesce = new LruMap(this.#maxOrigins);
    this.#retired = new LruMap(this.#maxOrigins);
    resolvePoolOptions(opts.pool); // validate early
    for (const [k, o] of Object.entries(opts.origins ?? {})) resolvePoolOptions(o.pool, `origins["${k}"].pool`);
    this.#opts = opts;
    this.#sessions = opts.sessionStore ?? new MemorySessionStore();
    this.#originCacheOpt = opts.originCache;
    const { attemptDelayMs, addressDownBaseMs, addressDownMaxMs, resolver, ...ro } = opts.dns ?? {};
    this.#attemptDelayMs = attemptDelayMs ?? DEFAULT_ATTEMPT_DELAY_MS;
    if (!(this.#attemptDelayMs >= MIN_ATTEMPT_DELAY_MS)) throw configError('dns.attemptDelayMs', `must be ≥ ${MIN_ATTEMPT_DELAY_MS} ms (RFC 8305 §5)`);
    const bookOpts: Partial<AddressBookOptions> = { maxOrigins: this.#maxOrigins };
    if (addressDownBaseMs !== undefined) bookOpts.downBaseMs = addressDownBaseMs;
    if (addressDownMaxMs !== undefined) bookOpts.downMaxMs = addressDownMaxMs;
    this.#book = new AddressBook(resolver ?? new Resolver({ ...ro, lookup: opts.lookup }), bookOpts);
    this.#proxy = opts.proxy ? new ProxyRotation(opts.proxy) : null;
    for (const [k, o] of Object.entries(opts.origins ?? {})) {
      if (o.proxy === undefined) continue;
      const u = new URL(k);
      this.#originProxy.set(`${u.protocol}//${u.hostname}:${u.port || (u.protocol === 'https:' ? 443 : 80)}`, o.proxy ? new ProxyRotation(o.proxy) : null);
    }
    try {
      this.#selector = new Selector(opts.originCache, opts.selection, this.#maxOrigins, this.#connect);
    } catch (e) {
      throw configError('selection', (e as Error).message);
    }
  }

  /** Selection state: facts per origin, racing and backoff (see docs/selection.md). */
  get selector(): Selector { return this.#selector; }

  /** What is known about a URL's origin and which protocol `auto` would pick now. */
  origin(url: string | URL): OriginReport {
    const u = typeof url === 'string' ? new URL(url) : url;
    const scheme = u.protocol === 'https:' ? 'https' : 'http';
    const origin = `${scheme}://${u.hostname}:${u.port || (scheme === 'https' ? 443 : 80)}`;
    const st = this.#selector.state(origin);
    return { origin, facts: st.facts, choice: st.choose('auto', Date.now()), counters: this.#selector.counters(origin) };
  }

  get sessionStore(): SessionStore { return this.#sessions; }

  /** The resolver and per-origin address state (every address, down marks, connection counts). */
  get addresses(): AddressBook { return this.#book; }

  /** The pool for a URL's origin under a protocol policy (created on first use). */
  pool(url: string | URL, protocol?: ProtocolPolicy, proxy?: ProxyNode | null): Pool {
    const u = typeof url === 'string' ? new URL(url) : url;
    return this.#poolInfo(u, protocol, proxy === undefined ? this.#pickProxy(u) : proxy).pool;
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

  /** `owned`: `u` is one of the Agent's cached origin URLs (never a caller's object, which could change). */
  #poolInfo(u: URL, protocol: ProtocolPolicy | undefined, proxy: ProxyNode | null, owned = false): PoolInfo {
    if (this.#closed) throw new OriginlinkError(ErrorCode.POOL_CLOSED, 'local', 'agent is closed');
    if (!owned) return this.#findPool(u, protocol, proxy);
    // Hot path: the same URL object as last time, asked the same way.
    const memo = this.#byUrl.get(u);
    if (memo !== undefined && memo.info.live && memo.protocol === protocol && memo.proxy === proxy) return memo.info;
    const info = this.#findPool(u, protocol, proxy);
    this.#byUrl.set(u, { info, protocol, proxy });
    return info;
  }

  #findPool(u: URL, protocol: ProtocolPolicy | undefined, proxy: ProxyNode | null): PoolInfo {
    // One map lookup once the origin's pool exists.
    const fastKey = `${u.protocol}//${u.host}|${protocol ?? ''}|${proxy?.key ?? ''}`;
    const hit = this.#fast.get(fastKey);
    if (hit) return hit;
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', `unsupported URL scheme ${u.protocol}`);
    const scheme = u.protocol === 'https:' ? 'https' : 'http';
    const port = u.port ? Number(u.port) : scheme === 'https' ? 443 : 80;
    const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
    const originName = `${scheme}://${u.host}`;
    const over = this.#opts.origins?.[originName] ?? this.#opts.origins?.[`${scheme}://${u.hostname}:${port}`] ?? {};
    const policy: ProtocolPolicy = protocol ?? over.protocol ?? this.#opts.protocol ?? 'auto';
    const tlsOpts = { ...this.#opts.tls, ...over.tls };
    const tlsId = `sni=${tlsOpts.servername ?? ''}|verify=${tlsOpts.rejectUnauthorized !== false}|ca=${caId(tlsOpts.ca)}`;
    // The proxy node and a hash of its credentials: a tunnel is never shared across nodes or credentials.
    const key = `${scheme}://${host}:${port}|${policy}|${tlsId}${proxy ? `|proxy=${proxy.key}` : ''}`;
    const known = this.#pools.get(key);
    if (known) {
      known.fastKeys.push(fastKey);
      this.#fast.set(fastKey, known);
      return known;
    }
    const spec: OriginSpec = {
      scheme,
      host,
      port,
      servername: tlsOpts.servername,
      protocol: policy,
      ca: tlsOpts.ca,
      rejectUnauthorized: tlsOpts.rejectUnauthorized !== false,
      tfo: over.tfo ?? this.#opts.tfo ?? true,
      keepAliveProbes: this.#opts.keepAliveProbes === undefined ? DEFAULT_KEEPALIVE : this.#opts.keepAliveProbes,
      addresses: this.#book,
      attemptDelayMs: this.#attemptDelayMs,
      proxy: proxy ?? undefined,
    };
    const poolOpts = resolvePoolOptions({ ...this.#opts.pool, ...over.pool });
    const earlyData = over.earlyData ?? this.#opts.earlyData ?? 'safe';
    const ctx: DialContext = { pool: poolOpts, sessionStore: this.#sessions, sessionKey: key, nextId, earlyData, proxyLinks: this.#proxyLinks };
    const cc = over.quicCongestionControl ?? this.#opts.quicCongestionControl;
    if (cc !== undefined) ctx.congestionControl = cc;
    const qpack = over.quicQpack ?? this.#opts.quicQpack;
    if (qpack !== undefined) ctx.qpack = qpack;
    const origin = `${scheme}://${u.hostname}:${port}`;
    const sel = this.#selector;
    const created: Pool = new Pool(
      key,
      originName,
      poolOpts,
      // Through a proxy, `auto` is ALPN over the tunnel: no QUIC race, no Alt-Svc upgrade (TCP-only proxy).
      policy === 'auto' && proxy
        ? (signal) => this.#connect(spec, { ...ctx, signal })
        : policy === 'auto'
        ? sel.autoDialer(origin, spec, ctx, () => created)
        : (signal) => (policy === 'h3' ? connectOrigin : this.#connect)(spec, { ...ctx, signal }).then((c) => { sel.noteConnection(origin, c); return c; }),
      policy === 'auto' ? null : policy,
      sharedTicker,
      this.#retired.peek(key)?.counters,
    );
    this.#retired.delete(key);
    const info: PoolInfo = { pool: created, origin, fastKeys: [fastKey], spec, ctx, policy, tlsId, earlyData, coalesce: proxy ? false : over.coalesce ?? sel.opts.coalesce, proxy, live: true, authority: u.host, coalescing: 0 };
    this.#pools.set(key, info);
    this.#fast.set(fastKey, info);
    if (this.#pools.size === 1) sharedTicker.add(this);
    // Evict in batches (down to 7/8 of the bound): one scan per maxOrigins/8 new origins, not one per origin.
    // The pool just made is idle too, and with every other pool busy it was the one forgotten: the caller then
    // got a closed pool (OL_POOL_CLOSED, lost 2,760 of 3,000 requests over 200 origins with maxOrigins 16).
    if (this.#pools.size > this.#maxOrigins) this.#evictIdle(this.#pools.size - Math.floor(this.#maxOrigins * 7 / 8), info);
    return info;
  }

  /** Origins whose pools are held now. */
  get poolCount(): number {
    return this.#pools.size;
  }

  /**
   * Shared-ticker hook, at most once a second: close and forget pools idle
   * past originIdleTimeoutMs. Pools keeping connections warm (minWarm, or
   * predictive warmth until its remembered peak is forgotten) stay on
   * purpose and only go when evicted past maxOrigins.
   */
  tick(now: number): void {
    if (now - this.#lastSweep < 1000) return;
    this.#lastSweep = now;
    for (const info of [...this.#pools.values()]) {
      const p = info.pool;
      if (p.warmTarget === 0 && p.idle && now - p.lastActivityAt >= this.#originIdleMs) this.#forget(info);
    }
  }

  /** Past maxOrigins: forget the `n` idle pools used least recently (busy pools stay; the map may then exceed the bound). */
  #evictIdle(n: number, keep: PoolInfo): void {
    const idle: PoolInfo[] = [];
    for (const info of this.#pools.values()) if (info.pool.idle && info !== keep && info.coalescing === 0) idle.push(info);
    idle.sort((a, b) => a.pool.lastActivityAt - b.pool.lastActivityAt);
    for (const info of idle.slice(0, n)) this.#forget(info);
  }

  #forget(info: PoolInfo): void {
    const p = info.pool;
    if (this.#pools.get(p.key) !== info) return;
    this.#pools.delete(p.key);
    info.live = false;
    for (const k of info.fastKeys) if (this.#fast.get(k) === info) this.#fast.delete(k);
    this.#retired.set(p.key, { origin: p.origin, counters: p.counters, proxy: info.proxy?.id ?? null });
    void p.close();
    if (this.#pools.size === 0) sharedTicker.delete(this);
  }

  /**
   * Send a request: one attempt after another (retryDecision, policy.ts) until one answers or none may follow.
   * Not an async function: the request's state is one AgentRequest and each attempt one `.then`, so the
   * common request (one origin, answered at once) allocates no async frame and takes one promise hop here.
   */
  request(o: RequestOptions): Promise<OriginResponse> {
    let st: AgentRequest;
    try {
      st = this.#begin(o);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#attempt(st);
  }

  /** A request's state for its attempts; throws on a bad argument (before any span starts). */
  #begin(o: RequestOptions): AgentRequest {
    const t0 = turnNow();
    let names: string | readonly string[];
    let path: string;
    let url0: URL | null = null;
    const simple = typeof o.url === 'string' ? splitSimpleUrl(o.url) : null;
    if (simple !== null) {
      // The origin parsed once (cached), the request target as written (agent/target.ts says when that is exact).
      url0 = this.#originUrl(simple.origin);
      names = url0.origin;
      path = simple.target;
    } else if (o.url !== undefined) {
      url0 = typeof o.url === 'string' ? new URL(o.url) : o.url;
      names = url0.origin;
      path = `${url0.pathname}${url0.search}`;
    } else {
      names = o.origin;
      if (typeof names !== 'string' && names.length === 0) throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', 'origin list is empty');
      // Every origin of the list parsed now: a bad one is the caller's error before anything is sent.
      if (typeof names === 'string') url0 = this.#originUrl(names);
      else for (const n of names) { const u = this.#originUrl(n); url0 ??= u; }
      path = o.path;
      if (path.charCodeAt(0) !== 0x2f && path !== '*') throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', `path must start with "/" (got ${JSON.stringify(path.slice(0, 40))})`);
    }
    // RFC 9110 §9.1: methods are case-sensitive tokens; a proxied `get` stays `get`.
    const method = o.method ?? 'GET';
    if (!TOKEN_RE.test(method)) throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', `invalid method ${JSON.stringify(method.slice(0, 40))}`);
    const span = startRequestSpan(method, url0 as URL, path, o.traceContext);
    const headers = withTraceContext(span, normalizeHeaders(o.headers));
    const body = o.body ?? null;
    // A streamed body is kept as it leaves, up to retryBufferBytes, for an attempt the origin did not process.
    const replay = !isReplayable(body) && this.#retryBufferBytes > 0 ? new ReplayBody(bodyStream(body), this.#retryBufferBytes) : null;
    return new AgentRequest(o, t0, names, url0 as URL, simple !== null || o.url === undefined, path, method, span, headers, body, replay, replay === null && isReplayable(body), isIdempotentRequest(method, headers));
  }

  /** One attempt of `st` on its current target; on failure, the next one when policy.ts allows it. */
  #attempt(st: AgentRequest): Promise<OriginResponse> {
    let info: PoolInfo;
    let req: ConnRequest;
    let url: URL;
    let r: Promise<PoolResult>;
    try {
      url = st.at === 0 ? st.url0 : this.#originUrl((st.names as readonly string[])[st.at] as string);
      // One node per target for the whole request: a retry never moves to another node (nor identity).
      const node = this.#proxy === null && this.#originProxy.size === 0 ? null : st.node(url, this.#pickProxyFn);
      info = this.#poolInfo(url, st.o.protocol, node, st.ownedUrls);
      const o = st.o;
      req = {
        method: st.method,
        path: st.path,
        authority: o.authority ?? (st.ownedUrls ? info.authority : url.host),
        scheme: info.spec.scheme,
        headers: st.headers,
        body: st.replay ? st.replay.attempt() : st.body,
        signal: o.signal,
        // RFC 8470: the one 0-RTT rule, decided here for every protocol below.
        allowEarlyData: earlyDataAllowed(info.earlyData, st.method, o.allowEarlyData),
        onInformational: o.onInformational,
      };
      if (o.responseBufferBytes !== undefined) req.responseBufferBytes = o.responseBufferBytes;
    } catch (e) {
      // Thrown before an attempt ran (bad origin, closed agent): the span still ends.
      failSpan(st.span, e as Error, st.attempt);
      st.replay?.abandon();
      return Promise.reject(e);
    }
    const pool = info.pool;
    try {
      // Coalescing is tried only where it may apply (an extra async hop costs the hot path).
      r = info.coalesce && info.spec.scheme === 'https' && info.policy !== 'h1' && !this.#noCoalesce.has(url.host) && !pool.hasReady()
        ? this.#coalescing(info, this.#attemptCoalesced(info, url, req, st.replayable))
        : pool.request(req);
    } catch (e) {
      // A throw of the attempt itself is its failure: the retry policy decides, as for a rejection.
      r = Promise.reject(e);
    }
    return r.then((res) => this.#answered(st, info, res), (e) => this.#failed(st, info.pool, e));
  }

  /**
   * A pool whose request waits on the coalescing lookup holds nothing yet (idle to #evictIdle): it is counted
   * busy until that attempt settles, or a new origin past maxOrigins could evict it under its request.
   */
  #coalescing(info: PoolInfo, p: Promise<PoolResult>): Promise<PoolResult> {
    info.coalescing++;
    return p.finally(() => { info.coalescing--; });
  }

  #answered(st: AgentRequest, info: PoolInfo, r: PoolResult): OriginResponse {
    try {
      const pool = info.pool;
      if (!info.proxy) this.#selector.onResponse(info.origin, r.res.headers, info.spec, info.ctx, info.policy === 'auto' ? pool : null);
      const ttfbMs = turnNow() - st.t0;
      publishRequestEnd(pool.origin, st.method, st.path, r.res.status, r.conn.protocol, r.reused, st.attempt, ttfbMs, null);
      const res = new OriginResponse(st.name(), r, st.attempt, ttfbMs);
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
    const d = retryDecision(err, { attempt: st.attempt, maxRetries: this.#maxRetries, replayable: st.replayable || (st.replay !== null && st.replay.replayable), idempotent: st.idempotent, aborted: st.o.signal?.aborted === true, urls: st.count });
    if (!d.retry) {
      const final = err.with({ details: { attempts: st.attempt } });
      publishRequestEnd(pool.origin, st.method, st.path, null, pool.protocol, err.facts?.reused === true, st.attempt, performance.now() - st.t0, final);
      failSpan(st.span, final, st.attempt);
      st.replay?.abandon();
      return Promise.reject(final);
    }
    pool.counters.retries++;
    if (d.failover) st.at = (st.at + 1) % st.count;
    st.attempt++;
    return this.#attempt(st);
  }

  /** One attempt on another name's connection when one may carry it (else, or after a 421, through the origin's own pool). */
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
  #originUrl(origin: string): URL {
    // peek: a parse cache needs no recency bookkeeping on the hot path (LruMap.get re-inserts).
    let u = this.#origins.peek(origin);
    if (!u) {
      u = new URL(origin);
      if (u.pathname !== '/' || u.search !== '') throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', `origin must be scheme://host[:port] (got ${JSON.stringify(origin)})`);
      this.#origins.set(origin, u);
    }
    return u;
  }

  /** Pre-connect `n` connections to an origin. */
  warm(url: string | URL, n = 1, protocol?: ProtocolPolicy): Promise<void> {
    return this.pool(url, protocol).warm(n);
  }

  /** A connection of another pool that may carry `req` for this pool's origin (RFC 9113 §9.1.1, RFC 9114 §3.3), and the request run on it. */
  async #coalesced(info: PoolInfo, req: ConnRequest): Promise<PoolResult | null> {
    // The lookup that decides whether another connection may carry this request is bounded like the pool's own
    // wait (queue and connect deadlines, the caller's signal): past them the request goes its own way. A resolver
    // that never answered held such a request 6–7 s past a 300 ms signal and 500 ms deadlines.
    const budget = Math.min(info.pool.opts.connectTimeoutMs, info.pool.opts.pendingTimeoutMs);
    const resolve = (h: string): Promise<string[]> => bounded(this.#addresses.resolve(h, this.#book.resolver.lookup, Date.now()), budget, req.signal);
    const pools = [...this.#pools.values()].map((x) => x.pool);
    const cand = await findCandidate(pools, info.pool, info.spec.host, info.spec.port, resolve, (p) => {
      const o = this.#pools.get(p.key);
      return o !== undefined && o.tlsId === info.tlsId && info.tlsId.includes('|verify=true|') && info.tlsId.startsWith('sni=|');
    }, COALESCE_ONTO[info.policy]);
    if (!cand) return null;
    return cand.pool.requestOn(cand.conn, req);
  }

  /** Per origin: the live pools, then the counters of recently forgotten ones (so totals never go back). */
  stats(): PoolStats[] {
    const out = [...this.#pools.values()].map((x) => x.pool.stats());
    for (const r of this.#retired.values()) out.push(r.counters.snapshot(r.origin, null, { idle: 0, busy: 0, activeRequests: 0, dialing: 0, pending: 0 }));
    return out;
  }

  /** Per egress proxy node: requests, connections opened, reuse rate, handshake time saved. */
  proxyStats(): ProxyNodeStats[] {
    const by = new Map<string, PoolCounters[]>();
    const links = new Map<string, number>();
    const dead = new Map<string, number>();
    const add = (node: string, c: PoolCounters): void => { const l = by.get(node) ?? []; l.push(c); by.set(node, l); };
    for (const x of this.#pools.values()) {
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
    for (const r of this.#retired.values()) if (r.proxy) add(r.proxy, r.counters);
    return [...by].map(([node, cs]) => {
      const sum = (f: (c: PoolCounters) => number): number => cs.reduce((a, c) => a + f(c), 0);
      const requests = sum((c) => c.requests);
      const opened = sum((c) => c.opened_);
      const mean = opened > 0 ? sum((c) => c.handshakeMs) / opened : null;
      const errors: Record<string, number> = {};
      for (const c of cs) for (const [k, v] of Object.entries(c.errors)) errors[k] = (errors[k] ?? 0) + v;
      return {
        node, requests, requestsOnReusedConnections: sum((c) => c.reusedRequests), connectionsOpened: opened, connectFailures: sum((c) => c.connectFailures), nodeConnections: perNode(links, node), nodeConnectionsDead: perNode(dead, node),
        reuseRate: requests === 0 ? 0 : Math.max(0, 1 - opened / requests), meanHandshakeMs: mean,
        handshakeMsSaved: mean === null ? 0 : Math.max(0, requests - opened) * mean, errors,
      };
    });
  }

  pools(): Pool[] {
    return [...this.#pools.values()].map((x) => x.pool);
  }

  /**
   * undici's Dispatcher interface: `fetch(url, { dispatcher: agent })`, undici's
   * `request(url, { dispatcher })` and any library taking a dispatcher run over
   * these pools (h1, h2 and h3 with 0-RTT). Both handler styles (undici 6 and 7).
   */
  dispatch(opts: DispatchOptions, handler: DispatchHandler): boolean {
    return dispatchOn(this, opts, handler);
  }

  /** Finish in-flight requests, then close every connection. */
  async close(): Promise<void> {
    this.#closed = true;
    sharedTicker.delete(this);
    await Promise.all([...this.#pools.values()].map((x) => x.pool.close()));
    this.#proxyLinks.close();
    // File-backed stores write their changes within 100 ms; once closed, the files say all (a restart reads them).
    for (const store of [this.#sessions, this.#originCacheOpt]) (store as { flush?: () => void } | undefined)?.flush?.();
  }

  /** Abort everything now (returns a promise, as undici's Dispatcher.destroy does). */
  destroy(error?: Error | null): Promise<void> {
    this.#closed = true;
    sharedTicker.delete(this);
    for (const x of this.#pools.values()) x.pool.destroy(error ?? undefined);
    this.#proxyLinks.close();
    return Promise.resolve();
  }
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

/** One request's state across its attempts (Agent.request). */
class AgentRequest {
  /** The target tried now (an index into a failover list) and the attempt's number (1: the first). */
  at = 0;
  attempt = 1;
  /** How many targets: 1, or the failover list's length. */
  readonly count: number;
  /** The proxy node of each target, picked on its first attempt (made only when the agent has proxies). */
  #nodes: Array<ProxyNode | null | undefined> | null = null;

  constructor(
    readonly o: RequestOptions,
    readonly t0: number,
    /** The origin named, or the failover list. */
    readonly names: string | readonly string[],
    /** The first target's URL. */
    readonly url0: URL,
    /** The URLs are the Agent's cached ones (never a caller's object, which could change). */
    readonly ownedUrls: boolean,
    readonly path: string,
    readonly method: string,
    readonly span: ReturnType<typeof startRequestSpan>,
    readonly headers: HeaderList,
    readonly body: RequestBody | null,
    readonly replay: ReplayBody | null,
    readonly replayable: boolean,
    readonly idempotent: boolean,
  ) {
    this.count = typeof names === 'string' ? 1 : names.length;
  }

  /** The origin of the current target, as the request named it. */
  name(): string {
    return typeof this.names === 'string' ? this.names : this.names[this.at] as string;
  }

  node(url: URL, pick: (u: URL) => ProxyNode | null): ProxyNode | null {
    const nodes = (this.#nodes ??= []);
    let n = nodes[this.at];
    if (n === undefined) n = nodes[this.at] = pick(url);
    return n;
  }
}

/** `p`, or a rejection once `ms` pass or `signal` aborts (what `p` would have been is dropped). */
function bounded<T>(p: Promise<T>, ms: number, signal: AbortSignal | undefined): Promise<T> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const done = (): void => { clearTimeout(timer); signal?.removeEventListener('abort', onAbort); };
    const onAbort = (): void => { done(); reject(signal?.reason); };
    const timer = setTimeout(() => { done(); reject(new Error(`no answer within ${ms} ms`)); }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
    p.then((v) => { done(); resolve(v); }, (e: unknown) => { done(); reject(e); });
  });
}
