/**
 * Connection coalescing (RFC 9113 §9.1.1, RFC 9114 §3.3): a request for an origin without a ready connection rides
 * another origin's h2/h3 connection when that connection's certificate covers the name, the name resolves to its
 * peer's address, and both targets trust alike (target.ts sameTrustForCoalescing). A 421 turns it off for the name
 * (RFC 9113 §9.1.2) and the request goes again on its own pool when it may.
 */
import type { ProtocolPolicy } from '../connect/connect.js';
import type { ConnRequest, Protocol } from '../http/types.js';
import type { Resolver } from '../net/resolver.js';
import type { PoolResult } from '../pool/pool.js';
import { findCandidate } from '../probe/coalesce.js';
import type { SignalLike } from '../util/leg-signal.js';
import { LruMap } from '../util/lru.js';
import type { PoolInfo, PoolRegistry } from './registry.js';
import { sameTrustForCoalescing } from './target.js';

/** Protocols of other names' connections a request may coalesce onto, by the origin's policy (h1 never coalesces). */
const COALESCE_ONTO: Record<ProtocolPolicy, ReadonlySet<Protocol>> = {
  auto: new Set<Protocol>(['h2', 'h3']),
  h1: new Set<Protocol>(),
  h2: new Set<Protocol>(['h2']),
  h3: new Set<Protocol>(['h3']),
};

export class Coalescing {
  /** Names (host:port) for which a 421 turned coalescing off. */
  #off: LruMap<string, true>;

  constructor(
    readonly registry: PoolRegistry,
    readonly resolver: Resolver,
    maxOrigins: number,
  ) {
    this.#off = new LruMap(maxOrigins);
  }

  /** Coalescing may apply to this attempt: checked first, for the lookup costs an async hop on the hot path. */
  applies(info: PoolInfo, host: string): boolean {
    const t = info.target;
    return t.coalesce && t.scheme === 'https' && t.policy !== 'h1' && !this.#off.has(host) && !info.pool.hasReady();
  }

  /**
   * One attempt on another name's connection when one may carry it (else, or after a 421, through the origin's own
   * pool). The pool counts busy while the lookup runs, or a new origin past maxOrigins could evict it under this
   * request (registry.ts).
   */
  run(info: PoolInfo, host: string, req: ConnRequest, replayable: boolean): Promise<PoolResult> {
    info.coalescing++;
    return this.#run(info, host, req, replayable).finally(() => {
      info.coalescing--;
    });
  }

  async #run(info: PoolInfo, host: string, req: ConnRequest, replayable: boolean): Promise<PoolResult> {
    const pool = info.pool;
    let r = await this.#onOther(info, req);
    if (r && r.res.status === 421) {
      // RFC 9113 §9.1.2: 421 on a coalesced connection — stop coalescing this name and
      // re-send on its own connection (a non-replayable body gets the 421 itself).
      this.#off.set(host, true);
      if (replayable) {
        r.res.body.resume();
        pool.counters.retries++;
        r = null;
      }
    }
    if (r) pool.counters.coalesced++;
    return r ?? pool.request(req);
  }

  async #onOther(info: PoolInfo, req: ConnRequest): Promise<PoolResult | null> {
    // The lookup that decides whether another connection may carry this request is bounded like the pool's own
    // wait (queue and connect deadlines, the caller's signal): past them the request goes its own way. A resolver
    // that never answered held such a request 6–7 s past a 300 ms signal and 500 ms deadlines.
    const budget = Math.min(info.pool.opts.connectTimeoutMs, info.pool.opts.pendingTimeoutMs);
    const resolve = (h: string): Promise<string[]> => bounded(this.resolver.lookup(h), budget, req.signal);
    const t = info.target;
    const pools = [...this.registry.values()].map((x) => x.pool);
    const cand = await findCandidate(
      pools,
      info.pool,
      t.host,
      t.port,
      resolve,
      (p) => {
        const other = this.registry.get(p.key);
        return other !== undefined && sameTrustForCoalescing(t, other.target);
      },
      COALESCE_ONTO[t.policy],
    );
    if (!cand) return null;
    return cand.pool.requestOn(cand.conn, req);
  }
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
