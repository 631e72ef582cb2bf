/**
 * Active health checks: per endpoint, a GET of `path` every `intervalMs`, over the endpoint's own pool (its
 * warm connections and protocol, h1/h2/h3: the Agent's `run`). At most one check per endpoint is in flight:
 * the next is armed when the last ends, `intervalMs` after it began (or at once if it took longer, which
 * `timeoutMs ≤ intervalMs` rules out) — a slow endpoint never has checks piling up on it.
 */
import { ErrorCode, OriginlinkError, toOriginlinkError } from '../errors.js';
import { LegSignal } from '../util/leg-signal.js';
import type { Endpoint } from './endpoint.js';
import type { ResolvedHealth } from './options.js';
import type { SignalLike } from '../util/leg-signal.js';

/** Sends one check to `ep` (GET `path`, aborted through `signal`): the status of its answer. */
export type CheckFn = (ep: Endpoint, path: string, signal: SignalLike) => Promise<number>;

/** One check's verdict: `pass`, or why it failed; null when it says nothing of the endpoint (our side gave up). */
export type CheckResult = { pass: true; status: number } | { pass: false; reason: string } | null;

/** Failures of ours, not the endpoint's: a check that met them proves nothing either way. */
const OURS: ReadonlySet<string> = new Set([ErrorCode.POOL_CLOSED, ErrorCode.QUEUE_FULL, ErrorCode.INVALID_ARGUMENT]);

export class HealthChecks {
  readonly #cfg: ResolvedHealth;
  readonly #run: CheckFn;
  readonly #onResult: (ep: Endpoint, r: NonNullable<CheckResult>) => void;
  #timers = new Map<Endpoint, NodeJS.Timeout>();
  #inFlight = new Map<Endpoint, LegSignal>();
  #stopped = false;

  constructor(cfg: ResolvedHealth, run: CheckFn, onResult: (ep: Endpoint, r: NonNullable<CheckResult>) => void) {
    this.#cfg = cfg;
    this.#run = run;
    this.#onResult = onResult;
  }

  /** Check `eps` from now on: the first check of each within a tenth of the interval (spread, not all at once). */
  start(eps: readonly Endpoint[]): void {
    for (const ep of eps) this.#arm(ep, Math.random() * Math.min(100, this.#cfg.intervalMs / 10));
  }

  #arm(ep: Endpoint, ms: number): void {
    if (this.#stopped) return;
    const t = setTimeout(() => this.#check(ep), ms);
    t.unref();
    this.#timers.set(ep, t);
  }

  #check(ep: Endpoint): void {
    this.#timers.delete(ep);
    if (this.#stopped || this.#inFlight.has(ep)) return;
    const t0 = performance.now();
    // A signal of our own (util/leg-signal.ts, as the forwarder's and a hedge's are), not an AbortController: with a
    // real AbortSignal on one request a second beside the service's own signals, every request of the service cost
    // ~12 % more CPU (bench groups, side by side with a plain origin; V8's inline caches on the connections' signal
    // calls, presumably, going polymorphic and back).
    const ctl = new LegSignal(null);
    this.#inFlight.set(ep, ctl);
    const { timeoutMs, path } = this.#cfg;
    const deadline = setTimeout(
      () =>
        ctl.abort(
          new OriginlinkError(
            ErrorCode.HEADERS_TIMEOUT,
            'remote',
            `no answer to the health check within ${timeoutMs} ms`,
          ),
        ),
      timeoutMs,
    );
    deadline.unref();
    let p: Promise<number>;
    try {
      p = this.#run(ep, path, ctl);
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (status) => this.#verdict(status),
      (e: unknown) => this.#failure(e, ctl),
    ).then((r) => {
      clearTimeout(deadline);
      this.#inFlight.delete(ep);
      if (this.#stopped) return;
      ep.state.checks++;
      if (r !== null) {
        if (!r.pass) ep.state.checkFailures++;
        this.#onResult(ep, r);
      }
      this.#arm(ep, Math.max(0, this.#cfg.intervalMs - (performance.now() - t0)));
    });
  }

  #verdict(status: number): CheckResult {
    for (const [lo, hi] of this.#cfg.expect) if (status >= lo && status <= hi) return { pass: true, status };
    return { pass: false, reason: `health check answered ${status}` };
  }

  #failure(e: unknown, ctl: LegSignal): CheckResult {
    // Our deadline: the endpoint did not answer in time, wherever the check was (its connect, its head).
    if (ctl.aborted && !this.#stopped) return { pass: false, reason: (ctl.reason as Error).message };
    const err = toOriginlinkError(e);
    if (this.#stopped || OURS.has(err.code)) return null;
    return { pass: false, reason: `health check failed: ${err.code} ${err.message.split('\n')[0] ?? ''}` };
  }

  /** No more checks; those in flight are aborted and their verdicts dropped. */
  stop(): void {
    this.#stopped = true;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    for (const c of this.#inFlight.values())
      c.abort(new OriginlinkError(ErrorCode.ABORTED, 'local', 'health checks stopped'));
    this.#inFlight.clear();
  }
}
