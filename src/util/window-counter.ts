/**
 * Counts events in fixed windows (default one second) and says when a count
 * passes its limit: the one mechanism behind every "more than N per second"
 * flood rule (HTTP/2's frames, RFC 9113 §10.5; resets on either multiplexed
 * protocol, CVE-2023-44487). `now` comes from the caller (sans-IO).
 */
export class WindowCounter {
  readonly limit: number;
  readonly windowMs: number;
  #start = -Infinity;
  #count = 0;

  constructor(limit: number, windowMs = 1000) {
    this.limit = limit;
    this.windowMs = windowMs;
  }

  /** Count one event at `now` (ms); true when this one passes the limit within the window. */
  hit(now: number): boolean {
    if (now - this.#start >= this.windowMs) {
      this.#start = now;
      this.#count = 0;
    }
    return ++this.#count > this.limit;
  }
}
