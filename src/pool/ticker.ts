/**
 * One timer for many pools: health pings, maximum age and (in the Agent)
 * forgetting idle origins run from a single unref'd interval instead of one
 * per pool. Members join while they have something to watch and leave when
 * they have nothing; the interval runs only while some member is there.
 */

export interface TickMember {
  /** Called every period with performance.now(). Must not throw. */
  tick(now: number): void;
}

export class Ticker {
  readonly periodMs: number;
  #members = new Set<TickMember>();
  #timer: NodeJS.Timeout | null = null;

  constructor(periodMs = 250) {
    this.periodMs = periodMs;
  }

  add(m: TickMember): void {
    this.#members.add(m);
    if (this.#timer) return;
    this.#timer = setInterval(this.#run, this.periodMs);
    this.#timer.unref();
  }

  delete(m: TickMember): void {
    this.#members.delete(m);
    if (this.#members.size === 0 && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }

  get size(): number {
    return this.#members.size;
  }

  #run = (): void => {
    const now = performance.now();
    for (const m of this.#members) m.tick(now);
  };
}

/** The ticker pools use unless given another. */
export const sharedTicker = new Ticker();
