/**
 * The Agent maps origins to pools and owns the retry policy. Users call
 * `agent.request({ url, ... })`; everything below is per origin.
 *
 * Retry policy (never a silent replay of anything else):
 *  - the body is replayable (absent, string or bytes), and
 *  - either the failure proves the origin did not process the request
 *    (connect failure, refused stream, above GOAWAY's last id), or the method
 *    is idempotent (RFC 9110 §9.2.2) or carries `Idempotency-Key`, the
 *    connection was reused, and no response byte had arrived (the stale
 *    keep-alive race).
 */
import { performance } from 'node:perf_hooks';
import { ErrorCode, OriginlinkError, toOriginlinkError } from '../errors.js';
import type { EarlyDataPolicy } from '../transport/h3.js';
import { connectOrigin, type LookupFn, type OriginSpec, type ProtocolPolicy } from '../transport/connect.js';
import type { OriginCache, OriginFacts } from '../probe/cache.js';
import { AddressCache, findCandidate } from '../probe/coalesce.js';
import { Selector, type DialContext, type SelectionCounters } from '../probe/selector.js';
import type { Choice, SelectionOptions } from '../probe/state.js';
import { isReplayable } from '../http/body.js';
import { isIdempotentRequest } from '../http/methods.js';
import { endToEnd } from '../http/fields.js';
import { publishRequestEnd } from '../pool/diagnostics.js';
import { configError, resolvePoolOptions, type PoolOptions } from '../pool/options.js';
import { Pool } from '../pool/pool.js';
import { OriginResponse } from './response.js';
import { MemorySessionStore, type SessionStore } from '../transport/session-store.js';
import type { PoolStats } from '../pool/stats.js';
import type { ConnRequest, HeaderList, Protocol, RequestBody } from '../http/types.js';

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
  /** Retries on top of the first attempt, under the policy above. Default 2. */
  maxRetries?: number;
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
  /** Resolve host names (addresses, preferred first); default the system resolver. */
  lookup?: LookupFn;
}

/** What the agent knows about one origin and what it would choose now. */
export interface OriginReport {
  origin: string;
  facts: Readonly<OriginFacts>;
  choice: Choice;
  counters: SelectionCounters;
}

interface PoolInfo {
  /** `scheme://host:port` */
  origin: string;
  spec: OriginSpec;
  ctx: DialContext;
  policy: ProtocolPolicy;
  tlsId: string;
  coalesce: boolean;
}

/**
 * A request names its target either by `url`, or by `origin` (`https://host:port`)
 * plus `path` — the second form skips parsing a URL per request (as undici's
 * `pool.request({ path })` does) and suits callers that already split them.
 */
export type RequestOptions = RequestTarget & RequestCommon;
export type RequestTarget = { url: string | URL; origin?: never; path?: never } | { origin: string; path: string; url?: never };

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
  #pools = new Map<string, Pool>();
  /** (URL scheme + host, per-request policy) → pool; every input of the full key is fixed per agent. */
  #fast = new Map<string, Pool>();
  #origins = new Map<string, URL>();
  #sessions: SessionStore;
  #selector: Selector;
  #info = new Map<Pool, PoolInfo>();
  /** Names (host:port) for which a 421 turned coalescing off. */
  #noCoalesce = new Set<string>();
  #addresses = new AddressCache();
  #maxRetries: number;
  #closed = false;

  constructor(opts: AgentOptions = {}) {
    this.#maxRetries = opts.maxRetries ?? 2;
    if (!Number.isInteger(this.#maxRetries) || this.#maxRetries < 0) throw configError('maxRetries', 'must be a non-negative integer');
    resolvePoolOptions(opts.pool); // validate early
    for (const [k, o] of Object.entries(opts.origins ?? {})) resolvePoolOptions(o.pool, `origins["${k}"].pool`);
    this.#opts = opts;
    this.#sessions = opts.sessionStore ?? new MemorySessionStore();
    try {
      this.#selector = new Selector(opts.originCache, opts.selection);
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

  /** The pool for a URL's origin under a protocol policy (created on first use). */
  pool(url: string | URL, protocol?: ProtocolPolicy): Pool {
    if (this.#closed) throw new OriginlinkError(ErrorCode.POOL_CLOSED, 'local', 'agent is closed');
    const u = typeof url === 'string' ? new URL(url) : url;
    // Hot path: one map lookup per request once the origin's pool exists.
    const fastKey = `${u.protocol}//${u.host}|${protocol ?? ''}`;
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
    const key = `${scheme}://${host}:${port}|${policy}|${tlsId}`;
    const pool = this.#pools.get(key);
    if (pool) { this.#fast.set(fastKey, pool); return pool; }
    const spec: OriginSpec = {
      scheme,
      host,
      port,
      servername: tlsOpts.servername,
      protocol: policy,
      ca: tlsOpts.ca,
      rejectUnauthorized: tlsOpts.rejectUnauthorized !== false,
      tfo: over.tfo ?? this.#opts.tfo ?? true,
      keepAliveProbes: this.#opts.keepAliveProbes === undefined ? { idleS: 300, intervalS: 75, count: 9 } : this.#opts.keepAliveProbes,
      lookup: this.#opts.lookup,
    };
    const poolOpts = resolvePoolOptions({ ...this.#opts.pool, ...over.pool });
    const ctx: DialContext = { pool: poolOpts, sessionStore: this.#sessions, sessionKey: key, nextId, earlyData: over.earlyData ?? this.#opts.earlyData };
    const origin = `${scheme}://${u.hostname}:${port}`;
    const sel = this.#selector;
    const created: Pool = new Pool(
      key,
      originName,
      poolOpts,
      policy === 'auto'
        ? sel.autoDialer(origin, spec, ctx, () => created)
        : (signal) => connectOrigin(spec, { ...ctx, signal }).then((c) => { sel.noteConnection(origin, c); return c; }),
      policy === 'auto' ? null : policy,
    );
    this.#pools.set(key, created);
    this.#fast.set(fastKey, created);
    this.#info.set(created, { origin, spec, ctx, policy, tlsId, coalesce: over.coalesce ?? sel.opts.coalesce });
    return created;
  }

  async request(o: RequestOptions): Promise<OriginResponse> {
    const t0 = performance.now();
    let url: URL;
    let path: string;
    if (o.url !== undefined) {
      url = typeof o.url === 'string' ? new URL(o.url) : o.url;
      path = `${url.pathname}${url.search}`;
    } else {
      url = this.#originUrl(o.origin);
      path = o.path;
      if (path.charCodeAt(0) !== 0x2f && path !== '*') throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', `path must start with "/" (got ${JSON.stringify(path.slice(0, 40))})`);
    }
    const method = (o.method ?? 'GET').toUpperCase();
    const headers = normalizeHeaders(o.headers);
    const body = o.body ?? null;
    const pool = this.pool(url, o.protocol);
    const req: ConnRequest = {
      method,
      path,
      authority: o.authority ?? url.host,
      scheme: url.protocol === 'https:' ? 'https' : 'http',
      headers,
      body,
      signal: o.signal,
    };
    if (o.allowEarlyData !== undefined) req.allowEarlyData = o.allowEarlyData; // false also forbids 0-RTT for safe methods
    const replayable = isReplayable(body);
    const idempotent = isIdempotentRequest(method, headers);
    const info = this.#info.get(pool);
    let coalesced = info !== undefined && info.coalesce && info.spec.scheme === 'https' && info.policy !== 'h1' && !this.#noCoalesce.has(url.host);
    for (let attempt = 1; ; attempt++) {
      try {
        let r: Awaited<ReturnType<Pool['request']>> | null = null;
        if (coalesced) {
          coalesced = false;
          if (!pool.hasReady()) r = await this.#coalesced(pool, info!, req);
        }
        if (r && r.res.status === 421) {
          // RFC 9113 §9.1.2: 421 on a coalesced connection — stop coalescing this name and
          // re-send on its own connection (a non-replayable body gets the 421 itself).
          this.#noCoalesce.add(url.host);
          if (replayable) {
            r.res.body.resume();
            pool.counters.retries++;
            r = null;
          }
        }
        if (r) pool.counters.coalesced++;
        r ??= await pool.request(req);
        if (info) this.#selector.onResponse(info.origin, r.res.headers, info.spec, info.ctx, info.policy === 'auto' ? pool : null);
        const ttfbMs = performance.now() - t0;
        publishRequestEnd({ origin: pool.origin, method, path: req.path, status: r.res.status, protocol: r.conn.protocol, reused: r.reused, attempts: attempt, ttfbMs, error: null });
        return new OriginResponse({
          status: r.res.status,
          headers: r.res.headers,
          body: r.res.body,
          trailers: r.res.trailers,
          protocol: r.conn.protocol,
          reused: r.reused,
          attempts: attempt,
          earlyData: r.res.earlyData ?? false,
          earlyDataRefused: (r.res as { earlyDataRefused?: 'rejected' | 'too-early' }).earlyDataRefused ?? null,
          connectionId: r.conn.id,
          connection: r.conn.facts,
          timings: { queueMs: r.queueMs, ttfbMs },
        });
      } catch (e) {
        const err = toOriginlinkError(e);
        const retry = attempt <= this.#maxRetries && replayable && !o.signal?.aborted && err.code !== ErrorCode.ABORTED &&
          (err.retrySafe || (idempotent && err.details['reused'] === true && err.details['responseStarted'] === false));
        if (!retry) {
          err.details['attempts'] = attempt;
          publishRequestEnd({ origin: pool.origin, method, path: req.path, status: null, protocol: pool.protocol, reused: err.details['reused'] === true, attempts: attempt, ttfbMs: performance.now() - t0, error: err });
          throw err;
        }
        pool.counters.retries++;
      }
    }
  }

  /** Parsed origin URLs, so the `{ origin, path }` form parses each origin once (bounded). */
  #originUrl(origin: string): URL {
    let u = this.#origins.get(origin);
    if (!u) {
      u = new URL(origin);
      if (u.pathname !== '/' || u.search !== '') throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', `origin must be scheme://host[:port] (got ${JSON.stringify(origin)})`);
      if (this.#origins.size >= 1024) this.#origins.clear();
      this.#origins.set(origin, u);
    }
    return u;
  }

  /** Pre-connect `n` connections to an origin. */
  warm(url: string | URL, n = 1, protocol?: ProtocolPolicy): Promise<void> {
    return this.pool(url, protocol).warm(n);
  }

  /** A connection of another pool that may carry `req` for this pool's origin (RFC 9113 §9.1.1, RFC 9114 §3.3), and the request run on it. */
  async #coalesced(pool: Pool, info: PoolInfo, req: ConnRequest): Promise<Awaited<ReturnType<Pool['request']>> | null> {
    const resolve = (h: string): Promise<string[]> => this.#addresses.resolve(h, this.#opts.lookup, Date.now());
    const cand = await findCandidate(this.#pools.values(), pool, info.spec.host, info.spec.port, resolve, (p) => {
      const o = this.#info.get(p);
      return o !== undefined && o.tlsId === info.tlsId && info.tlsId.includes('|verify=true|') && info.tlsId.startsWith('sni=|');
    }, COALESCE_ONTO[info.policy]);
    if (!cand) return null;
    return cand.pool.requestOn(cand.conn, req);
  }

  stats(): PoolStats[] {
    return [...this.#pools.values()].map((p) => p.stats());
  }

  pools(): Pool[] {
    return [...this.#pools.values()];
  }

  /** Finish in-flight requests, then close every connection. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#pools.values()].map((p) => p.close()));
  }

  destroy(error?: Error): void {
    this.#closed = true;
    for (const p of this.#pools.values()) p.destroy(error);
  }
}

/** Lower-case names, end-to-end fields only (RFC 9110 §7.6.1, one rule with the service: http/fields.ts). */
function normalizeHeaders(h: RequestOptions['headers']): HeaderList {
  const out: HeaderList = [];
  if (!h) return out;
  if (Array.isArray(h)) {
    for (const [n, v] of h) out.push([n.toLowerCase(), v]);
  } else {
    for (const [n, v] of Object.entries(h)) {
      if (v === undefined) continue;
      const name = n.toLowerCase();
      if (Array.isArray(v)) for (const x of v) out.push([name, x]);
      else out.push([name, v]);
    }
  }
  return endToEnd(out);
}

const caIds = new WeakMap<object, number>();
let caCounter = 0;
function caId(ca: TlsOptions['ca']): string {
  if (ca === undefined) return '-';
  if (typeof ca === 'string') return `s${ca.length}:${ca.slice(-32)}`;
  let id = caIds.get(ca as object);
  if (id === undefined) { id = ++caCounter; caIds.set(ca as object, id); }
  return `o${id}`;
}
