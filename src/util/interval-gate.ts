/**
 * One log line per key per interval: a condition that repeats (an origin's stray responses, descriptors running
 * out, a failing disk) is told once per interval, with how many times it was seen meanwhile, so it cannot flood
 * the log. Bounded: at most `max` keys are remembered, least recently used first out.
 */
import { LruMap } from './lru.js';

export class IntervalGate {
  readonly #intervalMs: number;
  readonly #last: LruMap<string, { at: number; suppressed: number }>;

  constructor(intervalMs: number, max = 1024) {
    this.#intervalMs = intervalMs;
    this.#last = new LruMap(max);
  }

  /**
   * Whether to log `key` now: null within the interval (counted), else how many were not logged since the last line.
   */
  pass(key: string, now = Date.now()): { since: number } | null {
    const seen = this.#last.get(key);
    if (seen && now - seen.at < this.#intervalMs) {
      seen.suppressed++;
      return null;
    }
    this.#last.set(key, { at: now, suppressed: 0 });
    return { since: seen?.suppressed ?? 0 };
  }
}
