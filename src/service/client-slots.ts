/**
 * Upstream requests per client connection (`limits.maxUpstreamPerClient`)
 * and per client address (`limits.maxUpstreamPerAddress`): one client — an
 * HTTP/2 connection with a hundred streams, a pipelining HTTP/1.1 one, or a
 * handful of connections from one address — may not hold more of the
 * origins' capacity than this at a time. A request over a limit waits (FIFO)
 * for one of the same client's to finish; other clients are not affected. A
 * waiting request the client abandons leaves the queue. A connection's counts
 * live beside the connection object (a WeakMap), so a closed connection needs
 * no cleanup; an address's are forgotten when nothing of it is active or waits.
 */
export class ClientSlots {
  #active = 0;
  #waiting: Array<() => void> = [];

  /** Requests of this client going upstream now, and waiting for a slot. */
  get active(): number {
    return this.#active;
  }
  get waiting(): number {
    return this.#waiting.length;
  }

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
    const wait = new Promise<void>((resolve) => {
      turn = resolve;
    });
    const entry = (): void => {
      this.#active++;
      turn();
    };
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
    if (this.#active === 0 && this.#waiting.length === 0) this.onIdle?.();
  }

  /** Called when nothing of this client is active or waits (its entry may go). */
  onIdle: (() => void) | null = null;
}

const byConnection = new WeakMap<object, ClientSlots>();

export function clientSlots(connection: object): ClientSlots {
  let s = byConnection.get(connection);
  if (!s) byConnection.set(connection, (s = new ClientSlots()));
  return s;
}

const byAddress = new Map<string, ClientSlots>();

/** The slots of a client address (an IPv4-mapped IPv6 address is its IPv4 one); the entry goes when idle. */
export function addressSlots(address: string): ClientSlots {
  const key = address.startsWith('::ffff:') ? address.slice(7) : address;
  let s = byAddress.get(key);
  if (!s) {
    const made = (s = new ClientSlots());
    made.onIdle = () => {
      if (byAddress.get(key) === made) byAddress.delete(key);
    };
    byAddress.set(key, made);
  }
  return s;
}
