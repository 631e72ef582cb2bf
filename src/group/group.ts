/**
 * One origin group: its endpoints and what the per-request path asks of them (docs/origin-groups.md) —
 * which endpoint next (pick, pickAgain), what an attempt's outcome does to it (sent, answered, failed:
 * EWMA, outlier ejection), the retry budget and the hedge delay, the active checks. The Agent sends; this
 * decides and keeps the state. Every change of an endpoint's standing is published once (diagnostics.ts).
 */
import type { OriginlinkError } from '../errors.js';
import { candidates, ewmaNow, EWMA_DECAY_MS, EWMA_MIN_WEIGHT, pick, type Candidates } from './balance.js';
import { RetryBudget } from './budget.js';
import { publishEndpoint, type EndpointEventKind } from './diagnostics.js';
import { Endpoint, type EndpointHealth } from './endpoint.js';
import { HealthChecks, type CheckFn, type CheckResult } from './health.js';
import { HedgeTimer, type Hedgeable } from './hedge-timer.js';
import { RecentLatency } from './latency.js';
import { DEFAULT_BUDGET, type ResolvedGroup } from './options.js';
import { ejectionMs, endpointFailed, failureStatus, maxEjected } from './outlier.js';

/**
 * A failed attempt feeds the EWMA as an answer at least this slow, ms: an endpoint that fails fast must not look fast.
 */
export const FAILURE_PENALTY_MS = 1000;

export interface EndpointStats {
  url: string;
  weight: number;
  health: EndpointHealth;
  /** Requests queued or in flight on its pool now (h2/h3: streams). */
  outstanding: number;
  /** Peak-EWMA of its response-head latency now, ms (null before a sample). */
  ewmaMs: number | null;
  /** Ejected for this much longer, ms (0 when not). */
  ejectedForMs: number;
  requests: number;
  failures: number;
  ejections: number;
  checks: number;
  checkFailures: number;
  hedgesSent: number;
  hedgesWon: number;
  retriesRefused: number;
  collapsed: number;
}

export interface GroupStats {
  name: string;
  balance: ResolvedGroup['balance'];
  /** Every endpoint is out (unhealthy or ejected): all of them are used again. */
  panic: boolean;
  endpoints: EndpointStats[];
}

export class Group {
  readonly key: string;
  readonly opts: ResolvedGroup;
  readonly endpoints: readonly Endpoint[];
  /** The endpoints' origins, in order (what a request names the endpoint that answered by). */
  readonly origins: readonly string[];
  /** The retry budget (`retryBudget`), or null: retries are bounded per request only. */
  readonly budget: RetryBudget | null;
  /** What hedges spend: the retry budget, or the default one when only `hedge` is set (hedges never go unbounded). */
  readonly hedgeBudget: RetryBudget | null;
  readonly hedgeTimer: HedgeTimer | null;
  /** Recent head latencies, for `hedge.percentile`. */
  readonly latency: RecentLatency | null;
  /** Endpoints that take requests now, and all of them (panic). */
  #usable: Candidates;
  readonly #all: Candidates;
  /** When the next ejection ends (performance.now()); Infinity when none runs. */
  #nextReadmit = Infinity;
  #readmitTimer: NodeJS.Timeout | null = null;
  #rr = 0;
  #panic = false;
  #checks: HealthChecks | null = null;
  #closed = false;

  constructor(key: string, opts: ResolvedGroup) {
    this.key = key;
    this.opts = opts;
    this.endpoints = opts.endpoints.map((e, i) => new Endpoint(e.url, e.weight, i));
    this.origins = this.endpoints.map((e) => e.origin);
    this.#all = candidates(this.endpoints);
    this.#usable = this.#all;
    const b = opts.retryBudget;
    this.budget = b ? new RetryBudget(b.ratio, b.minPerSecond) : null;
    this.hedgeBudget = opts.hedge
      ? (this.budget ?? new RetryBudget(DEFAULT_BUDGET.ratio, DEFAULT_BUDGET.minPerSecond))
      : null;
    this.hedgeTimer = opts.hedge ? new HedgeTimer() : null;
    this.latency = opts.hedge?.percentile != null ? new RecentLatency(opts.hedge.percentile) : null;
  }

  get name(): string {
    return this.opts.name;
  }

  /** The endpoint for a request's first attempt (`now`: performance.now()). */
  pick(now: number): Endpoint {
    if (this.budget !== null) this.budget.request(now);
    else if (this.hedgeBudget !== null) this.hedgeBudget.request(now);
    if (this.endpoints.length === 1) return this.endpoints[0] as Endpoint;
    if (now >= this.#nextReadmit) this.#readmit(now);
    const c = this.#usable.list.length > 0 ? this.#usable : this.#all;
    if (this.opts.balance === 'failover') return this.#inOrder(this.#rr++ % this.endpoints.length, now);
    return pick(c, this.opts.balance, now);
  }

  /**
   * The endpoint for another attempt of a request that tried `tried` (the last of them failed, or is being
   * hedged): one it has not tried, usable if any is; else any other than the last; the last when it is alone.
   */
  pickAgain(tried: readonly Endpoint[], now: number): Endpoint {
    const last = tried[tried.length - 1] as Endpoint;
    if (this.endpoints.length === 1) return last;
    if (now >= this.#nextReadmit) this.#readmit(now);
    if (this.opts.balance === 'failover') {
      // On down the list from the last, as `urls` failed over: usable untried first, then any untried, then the next.
      const n = this.endpoints.length;
      const start = (last.index + 1) % n;
      const usableUntried = this.#firstFrom(start, (e) => !tried.includes(e) && e.usable(now));
      return usableUntried ?? this.#firstFrom(start, (e) => !tried.includes(e)) ?? (this.endpoints[start] as Endpoint);
    }
    let list = this.#usable.list.filter((e) => !tried.includes(e));
    if (list.length === 0) list = this.endpoints.filter((e) => !tried.includes(e));
    if (list.length === 0) list = this.endpoints.filter((e) => e !== last);
    return pick(candidates(list), this.opts.balance, now);
  }

  /** The first usable endpoint from `start` on in list order (wrapping), else the one at `start` (panic). */
  #inOrder(start: number, now: number): Endpoint {
    const all = this.endpoints;
    for (let i = 0; i < all.length; i++) {
      const e = all[(start + i) % all.length] as Endpoint;
      if (e.usable(now)) return e;
    }
    return all[start] as Endpoint;
  }

  #firstFrom(start: number, ok: (e: Endpoint) => boolean): Endpoint | null {
    const all = this.endpoints;
    for (let i = 0; i < all.length; i++) {
      const e = all[(start + i) % all.length] as Endpoint;
      if (ok(e)) return e;
    }
    return null;
  }

  /** An attempt goes to `ep`. */
  sent(ep: Endpoint): void {
    ep.state.requests++;
  }

  /** `ep` answered an attempt with a head of `status` after `ms`. */
  answered(ep: Endpoint, status: number, ms: number, now: number): void {
    this.#sample(ep, ms, now);
    const failure = failureStatus(status);
    this.#outcome(!failure);
    if (failure) return this.#failure(ep, `answered ${status}`, now);
    ep.state.consecutiveFailures = 0;
    this.latency?.add(ms);
  }

  /** An attempt on `ep` failed after `ms`: the endpoint's failure, or one of ours (which counts nothing). */
  failed(ep: Endpoint, err: OriginlinkError, ms: number, now: number): void {
    if (!endpointFailed(err)) return;
    this.#outcome(false);
    this.#sample(ep, Math.max(ms, FAILURE_PENALTY_MS), now);
    this.#failure(ep, `${err.code}: ${err.message.split('\n')[0] ?? ''}`, now);
  }

  /** The budgets (one object when hedges spend the retry budget) learn how attempts end. */
  #outcome(answered: boolean): void {
    this.budget?.outcome(answered);
    if (this.hedgeBudget !== this.budget) this.hedgeBudget?.outcome(answered);
  }

  /**
   * Peak-EWMA: a sample above the estimate is taken whole; below it, weighed by the time since the last one, and at
   * least EWMA_MIN_WEIGHT. A reading of the clock older than the last sample's never makes the estimate older.
   */
  #sample(ep: Endpoint, ms: number, now: number): void {
    const s = ep.state;
    const cur = s.ewmaMs;
    const dt = now - s.ewmaAt;
    if (cur < 0 || ms > cur) s.ewmaMs = ms;
    else s.ewmaMs = cur + (ms - cur) * Math.max(EWMA_MIN_WEIGHT, dt > 0 ? 1 - Math.exp(-dt / EWMA_DECAY_MS) : 0);
    if (dt > 0) s.ewmaAt = now;
  }

  #failure(ep: Endpoint, reason: string, now: number): void {
    const s = ep.state;
    s.failures++;
    const o = this.opts.outlier;
    if (o === null || ++s.consecutiveFailures < o.consecutiveFailures || s.ejectedUntil > now) return;
    // One endpoint: ejecting it would only mean panic. Past maxEjectionPercent the endpoint stays (Envoy).
    if (this.endpoints.length === 1 || this.#ejectedCount(now) >= maxEjected(this.endpoints.length, o)) return;
    const forMs = ejectionMs(s, o, now);
    s.ejectedUntil = now + forMs;
    s.ejections++;
    s.consecutiveFailures = 0;
    this.#event(ep, 'ejected', `${o.consecutiveFailures} failures in a row, the last: ${reason}`, forMs);
    this.#changed(now);
  }

  #ejectedCount(now: number): number {
    let n = 0;
    for (const e of this.endpoints) if (e.state.ejectedUntil > now) n++;
    return n;
  }

  /** Ejections that have run out end now (and are told once each). */
  #readmit(now: number): void {
    let any = false;
    for (const e of this.endpoints) {
      const s = e.state;
      if (s.ejectedUntil > 0 && s.ejectedUntil <= now) {
        s.ejectedUntil = 0;
        s.admittedAt = now;
        any = true;
        this.#event(e, 'readmitted', 'ejection over');
      }
    }
    if (any) this.#changed(now);
    else this.#armReadmit(now);
  }

  /** The usable list again, the next re-admission's time, and a panic begun or over (told once each). */
  #changed(now: number): void {
    const usable = this.endpoints.filter((e) => e.usable(now));
    this.#usable = usable.length === this.endpoints.length ? this.#all : candidates(usable);
    const panic = usable.length === 0;
    if (panic !== this.#panic) {
      this.#panic = panic;
      this.#event(
        null,
        panic ? 'panic' : 'panic-over',
        panic ? 'every endpoint is out: all are used' : `${usable.length} endpoint(s) usable again`,
      );
    }
    this.#armReadmit(now);
  }

  #armReadmit(now: number): void {
    let next = Infinity;
    for (const e of this.endpoints) if (e.state.ejectedUntil > now) next = Math.min(next, e.state.ejectedUntil);
    this.#nextReadmit = next;
    if (this.#readmitTimer) clearTimeout(this.#readmitTimer);
    this.#readmitTimer = null;
    if (next === Infinity || this.#closed) return;
    // Re-admitted on time even with no request to notice (its log line and the usable list).
    this.#readmitTimer = setTimeout(() => this.#readmit(performance.now()), Math.max(1, next - now));
    this.#readmitTimer.unref();
  }

  /** Start the active checks (`health`), sending each through `run`. */
  startChecks(run: CheckFn): void {
    const h = this.opts.health;
    if (h === null || this.#checks !== null || this.#closed) return;
    this.#checks = new HealthChecks(h, run, (ep, r) => this.#checked(ep, r));
    this.#checks.start(this.endpoints);
  }

  #checked(ep: Endpoint, r: NonNullable<CheckResult>): void {
    const s = ep.state;
    const h = this.opts.health as NonNullable<ResolvedGroup['health']>;
    const now = performance.now();
    if (r.pass) {
      s.fails = 0;
      s.passes++;
      let changed = false;
      if (!s.healthy && s.passes >= h.rise) {
        s.healthy = true;
        changed = true;
        this.#event(ep, 'healthy', `${s.passes} checks passed in a row (${r.status})`);
      }
      // A check that passes ends an ejection (Envoy's successful_active_health_check_uneject_host).
      if (s.ejectedUntil > now && s.healthy) {
        s.ejectedUntil = 0;
        s.admittedAt = now;
        changed = true;
        this.#event(ep, 'readmitted', `health check passed (${r.status})`);
      }
      if (changed) this.#changed(now);
    } else {
      s.passes = 0;
      s.fails++;
      if (s.healthy && s.fails >= h.fall) {
        s.healthy = false;
        this.#event(ep, 'unhealthy', `${s.fails} checks failed in a row, the last: ${r.reason}`);
        this.#changed(now);
      }
    }
  }

  #event(ep: Endpoint | null, event: EndpointEventKind, reason: string, forMs?: number): void {
    const endpoint = ep ? ep.origin : this.endpoints.map((e) => e.origin).join(' ');
    publishEndpoint(
      forMs === undefined
        ? { group: this.name, endpoint, event, reason }
        : { group: this.name, endpoint, event, reason, forMs },
    );
  }

  /** The hedge delay for a request starting now, ms; -1: none (no `hedge`, or too few samples for its percentile). */
  hedgeDelay(): number {
    const h = this.opts.hedge;
    if (h === null) return -1;
    if (h.afterMs !== null) return h.afterMs;
    const p = (this.latency as RecentLatency).value;
    return p < 0 ? -1 : Math.max(h.minMs, p);
  }

  /**
   * Take over the state of `from`'s endpoints that are ours too (a reload: health, ejections, EWMA and counters
   * carry on); `from` stops checking. Ejections still running are re-armed here.
   */
  adopt(from: Group): void {
    from.#stopChecks();
    for (const e of this.endpoints) {
      const old = from.endpoints.find((x) => x.origin === e.origin);
      if (old) e.state = old.state;
    }
    this.#changed(performance.now());
  }

  #stopChecks(): void {
    this.#checks?.stop();
    this.#checks = null;
  }

  stats(): GroupStats {
    const now = performance.now();
    return {
      name: this.name,
      balance: this.opts.balance,
      panic: this.#panic,
      endpoints: this.endpoints.map((e) => {
        const s = e.state;
        const ewma = ewmaNow(e, now);
        return {
          url: e.origin,
          weight: e.weight,
          health: e.health(now),
          outstanding: e.load,
          ewmaMs: ewma < 0 ? null : Math.round(ewma * 1000) / 1000,
          ejectedForMs: Math.max(0, Math.round(s.ejectedUntil - now)),
          requests: s.requests,
          failures: s.failures,
          ejections: s.ejections,
          checks: s.checks,
          checkFailures: s.checkFailures,
          hedgesSent: s.hedgesSent,
          hedgesWon: s.hedgesWon,
          retriesRefused: s.retriesRefused,
          collapsed: s.collapsed,
        };
      }),
    };
  }

  close(): void {
    this.#closed = true;
    this.#stopChecks();
    if (this.#readmitTimer) clearTimeout(this.#readmitTimer);
    this.#readmitTimer = null;
    this.hedgeTimer?.close();
  }
}

export type { Hedgeable };
