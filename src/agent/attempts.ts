/**
 * A request's attempts: one after another on its target until one answers or the retry policy (policy.ts, with a
 * group's retry budget) allows none more. A group's endpoint is picked when an attempt is sent, its outcome told to
 * the group; a first attempt the group hedges goes through hedge.ts; an attempt may ride another origin's
 * connection (coalescing.ts). Not async functions: each attempt is one `.then`, so the common request (one origin,
 * answered at once) allocates no async frame and takes one promise hop here.
 */
import { toOriginlinkError } from '../errors.js';
import type { Endpoint } from '../group/endpoint.js';
import type { Group } from '../group/group.js';
import { earlyDataAllowed } from '../http/early-data.js';
import { publishRequestEnd } from '../pool/diagnostics.js';
import type { Pool, PoolResult } from '../pool/pool.js';
import { turnNow } from '../util/clock.js';
import type { SignalLike } from '../util/leg-signal.js';
import { connRequest, type AgentRequest } from './agent-request.js';
import type { Coalescing } from './coalescing.js';
import type { CollapseHost } from './collapse.js';
import { HedgeRace, type HedgeHost } from './hedge.js';
import type { OriginDialer } from './origin-dialer.js';
import { replaySafe, retryDecision } from './policy.js';
import type { PoolInfo, PoolRegistry } from './registry.js';
import { OriginResponse } from './response.js';
import { failSpan, responseSpan } from './tracing.js';
import type { OriginUrls } from './url.js';

export class Attempts {
  /** What a hedged request asks of its attempts (made once, not per request). */
  readonly hedgeHost: HedgeHost<AgentRequest> = {
    launch: (st, ep, signal) => {
      const p = this.#launch(st, ep, signal);
      return { info: st.info as PoolInfo, p, at: st.attemptAt };
    },
    answered: (st, info, r) => this.#answered(st, info, r),
    failed: (st, pool, e) => this.#failed(st, pool, e),
  };
  /** What a collapsed request asks (`ranged`: the caller's own request, from a byte on: the Agent's `request`). */
  readonly collapseHost: CollapseHost<AgentRequest>;

  constructor(
    readonly registry: PoolRegistry,
    readonly dialer: OriginDialer,
    readonly coalescing: Coalescing,
    readonly urls: OriginUrls,
    readonly maxRetries: number,
    ranged: CollapseHost<AgentRequest>['ranged'],
  ) {
    this.collapseHost = {
      attempt: (st) => this.run(st),
      served: (st, res, err) => {
        if (res !== null) {
          if (st.span.isRecording()) responseSpan(st.span, res);
        } else failSpan(st.span, err as Error, st.attempt);
      },
      ranged,
    };
  }

  /** One attempt of `st` on its current target (hedged when its group says so); on failure, the next when allowed. */
  run(st: AgentRequest): Promise<OriginResponse> {
    let ep = st.ep;
    const group = st.group;
    if (ep === null && group !== null) {
      // Picked when it is sent: a request collapsed onto another's sends nothing, so it takes no turn of the
      // balancer and no share of the retry budget (group/budget.ts counts first attempts).
      ep = st.ep = group.pick(turnNow());
      st.at = ep.index;
    }
    if (group !== null && st.attempt === 1 && st.replay === null && replaySafe(st)) {
      const delay = group.hedgeDelay();
      if (delay >= 0) {
        try {
          return new HedgeRace(this.hedgeHost, st, ep as Endpoint, delay).promise;
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
    if (group === null)
      return r.then(
        (res) => this.#answered(st, info, res),
        (e) => this.#failed(st, info.pool, e),
      );
    const at = ep as Endpoint;
    return r.then(
      (res) => {
        const now = turnNow();
        group.answered(at, res.res.status, now - st.attemptAt, now);
        return this.#answered(st, info, res);
      },
      (e) => {
        const now = turnNow();
        group.failed(at, toOriginlinkError(e), now - st.attemptAt, now);
        return this.#failed(st, info.pool, e);
      },
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
      ep !== null ? ep.url : st.at === 0 ? st.url0 : this.urls.get((st.names as readonly string[])[st.at] as string);
    // One node per target for the whole request: a retry never moves to another node (nor identity).
    const node = this.dialer.proxied ? st.node(url, this.dialer.pickProxy) : null;
    // An endpoint's URL is its group's own object (never a caller's): its pool is remembered on it.
    const owned = st.ownedUrls || ep !== null;
    const info = this.registry.find(url, st.o.protocol, node, owned);
    st.info = info;
    const o = st.o;
    const t = info.target;
    const req = connRequest(
      st.method,
      st.path,
      o.authority ?? (owned ? t.authority : url.host),
      t.scheme,
      st.headers,
      st.replay ? st.replay.attempt() : st.body,
      signal,
      // RFC 8470: the one 0-RTT rule, decided here for every protocol below.
      earlyDataAllowed(t.earlyData, st.method, o.allowEarlyData),
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
      return this.coalescing.applies(info, url.host)
        ? this.coalescing.run(info, url.host, req, st.replayable)
        : pool.request(req);
    } catch (e) {
      // A throw of the attempt itself is its failure: the retry policy decides, as for a rejection.
      return Promise.reject(e);
    }
  }

  #answered(st: AgentRequest, info: PoolInfo, r: PoolResult): OriginResponse {
    try {
      const pool = info.pool;
      const t = info.target;
      if (!t.proxy)
        this.dialer.selector.onResponse(
          t.origin,
          r.res.headers,
          info.spec,
          info.ctx,
          t.policy === 'auto' ? pool : null,
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
    const group = st.group;
    // A group's endpoint not tried yet: the retry goes to another server (group.ts pickAgain takes those first).
    const otherServer =
      ep !== null && group !== null && group.endpoints.some((x) => x !== ep && !(st.triedEps?.includes(x) ?? false));
    const d = retryDecision(err, {
      attempt: st.attempt,
      maxRetries: this.maxRetries,
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
      return this.run(st);
    }
    // A group's retry spends its budget: past it the failure is the answer (counted on the endpoint that failed).
    const refused =
      d.retry && ep !== null && group !== null && group.budget !== null && !group.budget.take(performance.now());
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
    if (ep !== null && group !== null) {
      // Another endpoint than the one that failed: one not tried yet where any is (group.ts pickAgain).
      const tried = (st.triedEps ??= [ep]);
      const next = group.pickAgain(tried, performance.now());
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
    return this.run(st);
  }
}
