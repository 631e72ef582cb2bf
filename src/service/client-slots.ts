/**
 * Upstream requests per client connection (`limits.maxUpstreamPerClient`):
 * one client — an HTTP/2 connection with a hundred streams, a pipelining
 * HTTP/1.1 one — may not hold more of the origins' capacity than this at a
 * time. A request over the limit waits (FIFO) for one of the same client's
 * to finish; other clients are not affected. A waiting request the client
 * abandons leaves the queue. The counts live beside the connection object
 * (a WeakMap), so a closed connection needs no cleanup.
 */
export class ClientSlots {
  #active = 0;
  #waiting: Array<() => void> = [];

  /** Requests of this client going upstream now, and waiting for a slot. */
  get active(): number { return this.#active; }
  get waiting(): number { return this.#waiting.length; }

  /**
   * Take a slot: null when one was free (taken), else a promise resolved
   * when it is this request's turn (the slot is then taken for it), and a
   * function that leaves the queue.
   */
  take(max: number): { wait: Promise<void>; leave: () => boolean } | null {
    if (this.#active < max) {
      this.#active++;
      return null;
    }
    let turn!: () => void;
    const wait = new Promise<void>((resolve) => { turn = resolve; });
    const entry = (): void => { this.#active++; turn(); };
    this.#waiting.push(entry);
    return {
      wait,
      /** Leave the queue; false when the turn already came (the slot is then this request's to release). */
      leave: () => {
        const i = this.#waiting.indexOf(entry);
        if (i < 0) return false;
        this.#waiting.splice(i, 1);
        return true;
      },
    };
  }

  /** Give a slot back: the next waiting request of this client gets it. */
  release(): void {
    this.#active--;
    this.#waiting.shift()?.();
  }
}

const byConnection = new WeakMap<object, ClientSlots>();

export function clientSlots(connection: object): ClientSlots {
  let s = byConnection.get(connection);
  if (!s) byConnection.set(connection, (s = new ClientSlots()));
  return s;
}
