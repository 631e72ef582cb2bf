/**
 * The Agent's pools, one per origin key (origin, protocol policy, TLS
 * identity, egress proxy node): found with one map lookup on the hot path,
 * made on first use, forgotten when idle past `originIdleTimeoutMs`, and past
 * `maxOrigins` the least recently used idle ones go first (busy pools are
 * never evicted; the map may then exceed the bound). The counters of a
 * forgotten pool are kept (bounded) so stats() totals never go back. One
 * shared ticker drives the idle sweep, as it drives every pool's health
 * checks.
 */
import { closedBeforeSent } from '../errors.js';
import type { ProtocolPolicy, OriginSpec } from '../connect/connect.js';
import type { ProxyNode } from '../net/proxy.js';
import type { Pool } from '../pool/pool.js';
import type { PoolCounters, PoolStats } from '../pool/stats.js';
import { sharedTicker, type TickMember } from '../pool/ticker.js';
import type { DialContext } from '../probe/selector.js';
import { LruMap } from '../util/lru.js';
import type { OriginTarget } from './target.js';

export interface PoolInfo {
  pool: Pool;
  /** What the pool's connections are for (agent/target.ts): its key is the pool's. */
  target: OriginTarget;
  /** Fast-path keys that point at this pool (removed with it). */
  fastKeys: string[];
  /** How the pool dials, and what its connections are given. */
  spec: OriginSpec;
  ctx: DialContext;
  /** Still this origin's pool (false once forgotten): a per-URL memo of it is stale then. */
  live: boolean;
  /** Attempts waiting on the coalescing lookup (agent/coalescing.ts): the pool is busy though it holds nothing. */
  coalescing: number;
}

/** How the Agent turns a URL into a pool: the full key (cheap), and the making of the pool when the key is new. */
export interface OriginPlan {
  key: string;
  /** `retired`: the counters of this key's forgotten pool, to continue from. */
  make(retired: PoolCounters | undefined, fastKey: string): PoolInfo;
}

export type PlanFn = (u: URL, protocol: ProtocolPolicy | undefined, proxy: ProxyNode | null) => OriginPlan;

/** A forgotten pool's counters, with what stats() and proxyStats() name them by. */
export interface RetiredPool {
  origin: string;
  counters: PoolCounters;
  proxy: string | null;
}

/** The pool last found for one (cached) origin URL object, with what it was asked with. */
interface UrlMemo {
  info: PoolInfo;
  protocol: ProtocolPolicy | undefined;
  proxy: ProxyNode | null;
}

/** How often, at most, idle pools are looked for, ms. */
const SWEEP_MS = 1000;

export class PoolRegistry implements TickMember {
  /** Pool key → pool and what it was made from. Insertion order = creation order. */
  #pools = new Map<string, PoolInfo>();
  /** (URL scheme + host, per-request policy, proxy node) → pool; every input of the full key is fixed per agent. */
  #fast = new Map<string, PoolInfo>();
  /**
   * Per origin URL object (the Agent caches one per origin string): the last pool found, so a request builds no key.
   */
  #byUrl = new WeakMap<URL, UrlMemo>();
  /** Counters of forgotten pools, so stats() stays monotonic per origin (bounded). */
  #retired: LruMap<string, RetiredPool>;
  #plan: PlanFn;
  #maxOrigins: number;
  #originIdleMs: number;
  #lastSweep = 0;
  #closed = false;

  constructor(maxOrigins: number, originIdleMs: number, plan: PlanFn) {
    this.#maxOrigins = maxOrigins;
    this.#originIdleMs = originIdleMs;
    this.#plan = plan;
    this.#retired = new LruMap(maxOrigins);
  }

  /** Origins whose pools are held now. */
  get size(): number {
    return this.#pools.size;
  }

  /** The live pools, in creation order. */
  values(): IterableIterator<PoolInfo> {
    return this.#pools.values();
  }

  get(key: string): PoolInfo | undefined {
    return this.#pools.get(key);
  }

  retired(): IterableIterator<RetiredPool> {
    return this.#retired.values();
  }

  /**
   * The pool for `u` under a protocol policy and proxy node, made on first use. `owned`: `u` is one of the
   * Agent's cached origin URLs (never a caller's object, which could change), so the pool found is remembered
   * on it.
   */
  find(u: URL, protocol: ProtocolPolicy | undefined, proxy: ProxyNode | null, owned: boolean): PoolInfo {
    if (this.#closed) throw closedBeforeSent('agent is closed');
    if (!owned) return this.#find(u, protocol, proxy);
    // Hot path: the same URL object as last time, asked the same way.
    const memo = this.#byUrl.get(u);
    if (memo !== undefined && memo.info.live && memo.protocol === protocol && memo.proxy === proxy) return memo.info;
    const info = this.#find(u, protocol, proxy);
    this.#byUrl.set(u, { info, protocol, proxy });
    return info;
  }

  #find(u: URL, protocol: ProtocolPolicy | undefined, proxy: ProxyNode | null): PoolInfo {
    // One map lookup once the origin's pool exists.
    const fastKey = `${u.protocol}//${u.host}|${protocol ?? ''}|${proxy?.key ?? ''}`;
    const hit = this.#fast.get(fastKey);
    if (hit) return hit;
    const plan = this.#plan(u, protocol, proxy);
    const known = this.#pools.get(plan.key);
    if (known) {
      known.fastKeys.push(fastKey);
      this.#fast.set(fastKey, known);
      return known;
    }
    const info = plan.make(this.#retired.peek(plan.key)?.counters, fastKey);
    this.#retired.delete(plan.key);
    this.#pools.set(plan.key, info);
    this.#fast.set(fastKey, info);
    if (this.#pools.size === 1) sharedTicker.add(this);
    // Evict in batches (down to 7/8 of the bound): one scan per maxOrigins/8 new origins, not one per origin.
    // The pool just made is idle too, and with every other pool busy it was the one forgotten: the caller then
    // got a closed pool (OL_POOL_CLOSED, lost 2,760 of 3,000 requests over 200 origins with maxOrigins 16).
    if (this.#pools.size > this.#maxOrigins)
      this.#evictIdle(this.#pools.size - Math.floor((this.#maxOrigins * 7) / 8), info);
    return info;
  }

  /**
   * Shared-ticker hook, at most once a second: close and forget pools idle
   * past originIdleTimeoutMs. Pools keeping connections warm (minWarm, or
   * predictive warmth until its remembered peak is forgotten) stay on
   * purpose and only go when evicted past maxOrigins.
   */
  tick(now: number): void {
    if (now - this.#lastSweep < SWEEP_MS) return;
    this.#lastSweep = now;
    for (const info of [...this.#pools.values()]) {
      const p = info.pool;
      if (p.warmTarget === 0 && p.idle && now - p.lastActivityAt >= this.#originIdleMs) this.#forget(info);
    }
  }

  /**
   * Past maxOrigins: forget the `n` idle pools used least recently (busy pools stay; the map may then exceed the
   * bound).
   */
  #evictIdle(n: number, keep: PoolInfo): void {
    const idle: PoolInfo[] = [];
    for (const info of this.#pools.values())
      if (info.pool.idle && info !== keep && info.coalescing === 0) idle.push(info);
    idle.sort((a, b) => a.pool.lastActivityAt - b.pool.lastActivityAt);
    for (const info of idle.slice(0, n)) this.#forget(info);
  }

  #forget(info: PoolInfo): void {
    const p = info.pool;
    if (this.#pools.get(p.key) !== info) return;
    this.#pools.delete(p.key);
    info.live = false;
    for (const k of info.fastKeys) if (this.#fast.get(k) === info) this.#fast.delete(k);
    this.#retired.set(p.key, { origin: p.origin, counters: p.counters, proxy: info.target.proxy?.id ?? null });
    void p.close();
    if (this.#pools.size === 0) sharedTicker.delete(this);
  }

  /** Per origin: the live pools, then the counters of recently forgotten ones (so totals never go back). */
  stats(): PoolStats[] {
    const out = [...this.#pools.values()].map((x) => x.pool.stats());
    for (const r of this.#retired.values())
      out.push(r.counters.snapshot(r.origin, null, { idle: 0, busy: 0, activeRequests: 0, dialing: 0, pending: 0 }));
    return out;
  }

  /** No new pool; in-flight requests finish, then every connection closes. */
  async close(): Promise<void> {
    this.#closed = true;
    sharedTicker.delete(this);
    await Promise.all([...this.#pools.values()].map((x) => x.pool.close()));
  }

  /** No new pool; everything aborted now. */
  destroy(error?: Error): void {
    this.#closed = true;
    sharedTicker.delete(this);
    for (const x of this.#pools.values()) x.pool.destroy(error);
  }
}
