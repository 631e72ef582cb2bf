/**
 * One timer per group for every hedge it may send, not one per request: entries wait in the order they were
 * added, and one timer is armed for the first. With a fixed `afterMs` that is the order they fall due; with a
 * percentile the delay moves between its updates (every 64 samples), and an entry due a little sooner than one
 * ahead of it fires with it. An entry whose request ended meanwhile stays queued until its time and does nothing.
 */
export interface Hedgeable {
  /** performance.now() at which the hedge is due. */
  readonly hedgeAt: number;
  /** The hedge is due: send it if the request still waits. */
  hedgeDue(): void;
}

export class HedgeTimer {
  #queue: Array<Hedgeable | null> = [];
  #head = 0;
  #timer: NodeJS.Timeout | null = null;

  add(e: Hedgeable): void {
    this.#queue.push(e);
    if (this.#timer === null) this.#arm(e.hedgeAt);
  }

  #arm(at: number): void {
    this.#timer = setTimeout(this.#run, Math.max(0, at - performance.now()));
    this.#timer.unref();
  }

  #run = (): void => {
    this.#timer = null;
    // Timers fire on whole milliseconds: an entry due within the next one goes now.
    const now = performance.now() + 1;
    const q = this.#queue;
    while (this.#head < q.length) {
      const e = q[this.#head] as Hedgeable;
      if (e.hedgeAt > now) break;
      q[this.#head++] = null;
      e.hedgeDue();
    }
    if (this.#head === q.length) {
      this.#queue = [];
      this.#head = 0;
    } else {
      if (this.#head > 1024 && this.#head * 2 > q.length) {
        this.#queue = q.slice(this.#head);
        this.#head = 0;
      }
      this.#arm((this.#queue[this.#head] as Hedgeable).hedgeAt);
    }
  };

  close(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#queue = [];
    this.#head = 0;
  }
}
