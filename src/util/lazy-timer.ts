/**
 * A deadline that moves with every request of a connection (an idle timeout re-armed after each
 * response, cleared at each request) without a timer per move. One unref'd Timeout stays armed while
 * a deadline may be pending: when it fires before the deadline (which moved later) it re-arms for the
 * rest; a deadline moved earlier than the armed Timeout replaces it; a cleared deadline leaves the
 * Timeout to fire once and find nothing. A connection answering requests back to back then costs one
 * Timeout per timeout period instead of a setTimeout/clearTimeout pair per request. The deadline is
 * kept on performance.now() (read by `set` through util/clock.ts `turnNow`: the first reading in this turn of the
 * event loop); `fn` runs at most once per `set`, never early by more than 1 ms plus the loop's work in that turn
 * before `set`.
 */
import { turnNow } from './clock.js';

export class LazyTimer {
  readonly #fn: () => void;
  /** performance.now() when `fn` is due; 0: none. */
  #deadline = 0;
  /** When the armed Timeout fires (performance.now()). */
  #due = 0;
  #timer: NodeJS.Timeout | null = null;

  constructor(fn: () => void) {
    this.#fn = fn;
  }

  /** `fn` in `ms` from now (replacing any earlier deadline). */
  set(ms: number): void {
    const at = turnNow() + ms;
    this.#deadline = at;
    if (this.#timer !== null) {
      if (this.#due <= at) return; // the armed Timeout comes first and re-arms for the rest
      clearTimeout(this.#timer);
    }
    this.#arm(at, ms);
  }

  /** No deadline (the armed Timeout, if any, fires once for nothing). */
  clear(): void {
    this.#deadline = 0;
  }

  /** No deadline and no Timeout (the connection is gone). */
  stop(): void {
    this.#deadline = 0;
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }

  get pending(): boolean {
    return this.#deadline !== 0;
  }

  #arm(at: number, ms: number): void {
    this.#due = at;
    this.#timer = setTimeout(this.#fire, ms);
    this.#timer.unref();
  }

  #fire = (): void => {
    this.#timer = null;
    const at = this.#deadline;
    if (at === 0) return;
    const left = at - performance.now();
    if (left > 1) {
      this.#arm(at, left);
      return;
    }
    this.#deadline = 0;
    this.#fn();
  };
}
