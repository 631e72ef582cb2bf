/**
 * The QUIC connection's timers (quic/connection.ts): one kept at or before quiche's deadline, and one-shots (the
 * pacer's wait, the connect deadline). Small on purpose: what they call is the connection's.
 */

/**
 * One timer at or before a deadline that mostly moves out (quiche's idle, loss and ACK timers after every exchange):
 * a later deadline keeps the armed timer, which fires early and lets its callback re-arm, so the common case costs
 * no timer churn. Unref'd: quiche's deadline never holds the process by itself (a connection with work in flight
 * has its socket ref'd; an idle one must let a script that forgot agent.close() exit).
 */
export class DeadlineTimer {
  readonly #fire: () => void;
  #timer: NodeJS.Timeout | null = null;
  /** performance.now() the armed timer fires at. */
  #at = Infinity;

  constructor(fire: () => void) {
    this.#fire = fire;
  }

  /** Due in `ms` from now; null: no deadline. */
  set(ms: number | null): void {
    if (ms === null) {
      this.stop();
      return;
    }
    const at = performance.now() + ms;
    if (this.#timer !== null && this.#at <= at) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#at = at;
    this.#timer = setTimeout(this.#onTimer, Math.max(0, ms)).unref();
  }

  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#at = Infinity;
  }

  #onTimer = (): void => {
    this.#timer = null;
    this.#at = Infinity;
    this.#fire();
  };
}

/** A one-shot timer: armed only when not already armed; `ref` says whether it holds the process. */
export class OneShot {
  readonly #fire: () => void;
  readonly #ref: boolean;
  #timer: NodeJS.Timeout | null = null;

  constructor(fire: () => void, ref: boolean) {
    this.#fire = fire;
    this.#ref = ref;
  }

  /** Fire in `ms` unless already armed; false when it was. */
  arm(ms: number): boolean {
    if (this.#timer !== null) return false;
    this.#timer = setTimeout(this.#onTimer, ms);
    if (!this.#ref) this.#timer.unref();
    return true;
  }

  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #onTimer = (): void => {
    this.#timer = null;
    this.#fire();
  };
}
