/**
 * The group's recent response-head latencies (the last RING samples) and one percentile of them, worked out
 * again every EVERY samples rather than per request: what `hedge.percentile` waits before a second attempt.
 */
const RING = 512;
const EVERY = 64;
/** Fewer samples than this say nothing yet: no hedge on a percentile. */
const MIN_SAMPLES = 16;

export class RecentLatency {
  readonly percentile: number;
  #ring = new Float64Array(RING);
  #scratch = new Float64Array(RING);
  #n = 0;
  #at = 0;
  #since = 0;
  #value = -1;

  constructor(percentile: number) {
    this.percentile = percentile;
  }

  add(ms: number): void {
    this.#ring[this.#at] = ms;
    this.#at = (this.#at + 1) % RING;
    if (this.#n < RING) this.#n++;
    if (++this.#since >= EVERY || (this.#value < 0 && this.#n >= MIN_SAMPLES)) this.#work();
  }

  /** The percentile of the recent samples, ms; -1 while there are too few. */
  get value(): number {
    return this.#value;
  }

  #work(): void {
    this.#since = 0;
    const n = this.#n;
    if (n < MIN_SAMPLES) return;
    const s = this.#scratch.subarray(0, n);
    s.set(this.#ring.subarray(0, n));
    s.sort();
    this.#value = s[Math.min(n - 1, Math.ceil((this.percentile / 100) * n) - 1)] as number;
  }
}
