/**
 * A retry budget (Linkerd's and Finagle's, over a one-second window): retries and hedges of the last second
 * may be at most `ratio` × the first attempts of that second + `minPerSecond`. Past it the failure is the
 * answer: a total outage then costs the origin at most (1 + ratio) × the requests + minPerSecond a second,
 * where a fixed count per request (`retries: 2`) tripled it.
 *
 * The first attempts that fund retries are counted at the rate of now: the last second's count, but no more than
 * the rate of the last RECENT_BUCKETS (and the current one) makes in a second. When an outage begins, the rate of
 * first attempts falls at once (each waits for an attempt that fails); a second's worth of healthy traffic before
 * it no longer pays for the outage's first second of retries (the groups bench's outage with closed connections
 * went 1.29-1.33× the client's requests for that alone). A steady rate funds as before, and a burst of failures
 * at one moment (an endpoint killed with requests on it) draws on the rate that carried them.
 *
 * And they fund retries in the measure that attempts succeed: the funding is scaled by the share of recent
 * attempts that were answered (a moving average over about the last SHARE_OF outcomes; a 5xx that counts as an
 * endpoint's failure is not an answer here). Retries are for the occasional failure; when nearly every attempt
 * fails, another one mostly adds load, and minPerSecond is what is left (gRPC's retry throttling, gRFC A6, stops
 * retries the same way on failures; Linkerd's and Envoy's budgets do not look at outcomes). A rate measured over
 * buckets lags by a bucket at the start of an outage; the failures show from the first one.
 */

/** The window, in buckets of BUCKET_MS: a retry refused now is allowed again as old buckets leave. */
const BUCKETS = 10;
const BUCKET_MS = 100;
/** Full buckets before the current one that give the rate of now. */
const RECENT_BUCKETS = 1;
/** Outcomes the share of answered attempts averages over (the weight of each is 1 / SHARE_OF). */
const SHARE_OF = 16;

export class RetryBudget {
  readonly ratio: number;
  readonly minPerSecond: number;
  /** Retries and hedges refused (counted by the group per endpoint too). */
  refused = 0;
  #requests = new Uint32Array(BUCKETS);
  #retries = new Uint32Array(BUCKETS);
  #sumRequests = 0;
  #sumRetries = 0;
  /** The share of recent attempts answered (1 until told otherwise). */
  #answered = 1;
  /** The bucket of now: its number since the clock's origin, and its slot. */
  #bucket = 0;
  #slot = 0;

  constructor(ratio: number, minPerSecond: number) {
    this.ratio = ratio;
    this.minPerSecond = minPerSecond;
  }

  #advance(now: number): void {
    const b = Math.floor(now / BUCKET_MS);
    if (b === this.#bucket) return;
    const steps = Math.min(BUCKETS, b - this.#bucket);
    this.#bucket = b;
    for (let i = 0; i < steps; i++) {
      const s = (this.#slot = (this.#slot + 1) % BUCKETS);
      this.#sumRequests -= this.#requests[s] as number;
      this.#sumRetries -= this.#retries[s] as number;
      this.#requests[s] = 0;
      this.#retries[s] = 0;
    }
  }

  /** A first attempt went out (`now`: performance.now()). */
  request(now: number): void {
    this.#advance(now);
    (this.#requests[this.#slot] as number)++;
    this.#sumRequests++;
  }

  /** An attempt (first, retry or hedge) ended: answered, or failed as an endpoint's failure. */
  outcome(answered: boolean): void {
    this.#answered += ((answered ? 1 : 0) - this.#answered) / SHARE_OF;
  }

  /** First attempts a second at the rate of the recent buckets (the current one, partly elapsed, included). */
  #recentPerSecond(now: number): number {
    let n = 0;
    for (let i = 0; i <= RECENT_BUCKETS; i++) n += this.#requests[(this.#slot - i + BUCKETS) % BUCKETS] as number;
    const spanMs = RECENT_BUCKETS * BUCKET_MS + (now - this.#bucket * BUCKET_MS);
    return (n * 1000) / spanMs;
  }

  /** May a retry or hedge go now? Yes: it is counted. No: the refusal is. */
  take(now: number): boolean {
    this.#advance(now);
    const funding = Math.min(this.#sumRequests, this.#recentPerSecond(now)) * this.#answered;
    if (this.#sumRetries + 1 > this.ratio * funding + this.minPerSecond) {
      this.refused++;
      return false;
    }
    (this.#retries[this.#slot] as number)++;
    this.#sumRetries++;
    return true;
  }
}
