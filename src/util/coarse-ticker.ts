/**
 * Deadlines of COARSE_MIN_MS or more share one unref'd ticker and fire up to TICK_MS late: an armed
 * deadline costs no Timeout object and no timer-list insertion (undici's fast timers do the same). The
 * exchanges' head and body timeouts (client/exchange.ts) and a request body read whole before
 * forwarding (util/body.ts readWhole) arm theirs here. Shorter deadlines keep real timers.
 */
import { IdMap } from './id-map.js';
import { turnNow } from './clock.js';

export const COARSE_MIN_MS = 1000;
export const TICK_MS = 250;

/** Something with a coarse deadline: `check` runs on each tick with performance.now(). */
export interface CoarseEntry {
  check(now: number): void;
}

/** Armed entries by serial number (IdMap, not Set: see util/id-map.ts). */
const armed = new IdMap<CoarseEntry>();
let serials = 0;
let ticker: NodeJS.Timeout | null = null;

function sweep(): void {
  const now = performance.now();
  for (const e of armed.values()) e.check(now);
  if (armed.size === 0 && ticker) {
    clearInterval(ticker);
    ticker = null;
  }
}

/** A serial number for an entry's lifetime. */
export function coarseSerial(): number {
  return serials++;
}

/** `entry` is checked on every tick until disarmed (arming again is cheap: the same slot). */
export function coarseArm(serial: number, entry: CoarseEntry): void {
  armed.set(serial, entry);
  if (!ticker) {
    ticker = setInterval(sweep, TICK_MS);
    ticker.unref();
  }
}

export function coarseDisarm(serial: number): void {
  armed.delete(serial);
}

export function coarseArmed(serial: number): boolean {
  return armed.has(serial);
}

/**
 * An idle deadline: `fn` once nothing touched it for `ms`. On the shared ticker when `ms` is at
 * least COARSE_MIN_MS (up to TICK_MS late), else a real timer; 0 or less: never.
 */
export class IdleDeadline implements CoarseEntry {
  readonly #ms: number;
  readonly #fn: () => void;
  readonly #serial = coarseSerial();
  #at = 0;
  #timer: NodeJS.Timeout | null = null;

  constructor(ms: number, fn: () => void) {
    this.#ms = ms;
    this.#fn = fn;
  }

  /** Armed from now (again, after a touch or a stop). */
  start(): void {
    const ms = this.#ms;
    if (ms <= 0) return;
    if (ms >= COARSE_MIN_MS) {
      this.#at = turnNow() + ms;
      coarseArm(this.#serial, this);
    } else if (this.#timer) this.#timer.refresh();
    else {
      this.#timer = setTimeout(this.#fired, ms);
      this.#timer.unref();
    }
  }

  /** Activity: the deadline moves to `ms` from now (nothing when not started). */
  touch(): void {
    if (this.#timer) this.#timer.refresh();
    else if (this.#at !== 0) this.#at = turnNow() + this.#ms;
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#at = 0;
    coarseDisarm(this.#serial);
  }

  check(now: number): void {
    if (now < this.#at) return;
    this.#fired();
  }

  /** Over: a touch after this does not bring it back (only `start` does). */
  #fired = (): void => {
    this.stop();
    this.#fn();
  };
}
