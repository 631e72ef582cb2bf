/**
 * A retry budget (Linkerd's and Finagle's, over a one-second window): retries and hedges of the last second
 * may be at most `ratio` × the first attempts of that second + `minPerSecond`. Past it the failure is the
 * answer: a total outage then costs the origin at most (1 + ratio) × the requests + minPerSecond a second,
 * where a fixed count per request (`retries: 2`) tripled it.
 */

/** The window, in buckets of BUCKET_MS: a retry refused now is allowed again as old buckets leave. */
const BUCKETS = 10;
const BUCKET_MS = 100;

export class RetryBudget {
  readonly ratio: number;
  readonly minPerSecond: number;
  /** Retries and hedges refused (counted by the group per endpoint too). */
  refused = 0;
  #requests = new Uint32Array(BUCKETS);
  #retries = new Uint32Array(BUCKETS);
  #sumRequests = 0;
  #sumRetries = 0;
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

  /** May a retry or hedge go now? Yes: it is counted. No: the refusal is. */
  take(now: number): boolean {
    this.#advance(now);
    if (this.#sumRetries + 1 > this.ratio * this.#sumRequests + this.minPerSecond) {
      this.refused++;
      return false;
    }
    (this.#retries[this.#slot] as number)++;
    this.#sumRetries++;
    return true;
  }
}
