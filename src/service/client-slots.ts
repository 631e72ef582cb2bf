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
import type { SignalLike } from '../util/leg-signal.js';
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

/** Where the time a request waited for its turns is added up, ms (its request log line). */
export interface WaitLog {
  clientWaitMs?: number | undefined;
}

/**
 * One request's turns: its connection's slot (limits.maxUpstreamPerClient), then its address's
 * (limits.maxUpstreamPerAddress); each limit 0 is off. Released together when its origin request is over.
 */
export class Turns {
  #conn: ClientSlots | null = null;
  #addr: ClientSlots | null = null;

  /**
   * Take both turns: true when both were free, else the promise of null once both came, or of the limit the client
   * left waiting on (a turn already taken goes to its next request).
   */
  take(
    connection: object,
    address: string,
    perClient: number,
    perAddress: number,
    signal: SignalLike,
    log: WaitLog | null,
  ): true | Promise<string | null> {
    if (perClient > 0) {
      const slots = (this.#conn = clientSlots(connection));
      const queued = slots.take(perClient);
      if (queued)
        return waitTurn(slots, queued, signal, log).then((got) => {
          if (!got) {
            this.#conn = null;
            return 'limits.maxUpstreamPerClient';
          }
          const next = this.#takeAddress(address, perAddress, signal, log);
          return next === true ? null : next;
        });
    }
    return this.#takeAddress(address, perAddress, signal, log);
  }

  #takeAddress(
    address: string,
    perAddress: number,
    signal: SignalLike,
    log: WaitLog | null,
  ): true | Promise<string | null> {
    if (perAddress <= 0) return true;
    const slots = (this.#addr = addressSlots(address));
    const queued = slots.take(perAddress);
    if (!queued) return true;
    return waitTurn(slots, queued, signal, log).then((got) => {
      if (got) return null;
      this.#addr = null;
      this.#conn?.release(); // the connection's turn, taken, goes to its next request
      this.#conn = null;
      return 'limits.maxUpstreamPerAddress';
    });
  }

  release(): void {
    this.#conn?.release();
    this.#addr?.release();
    this.#conn = this.#addr = null;
  }
}

/** True when the turn came, false when the client left first (a turn given meanwhile is passed on). */
function waitTurn(
  slots: ClientSlots,
  queued: NonNullable<ReturnType<ClientSlots['take']>>,
  signal: SignalLike,
  log: WaitLog | null,
): Promise<boolean> {
  const w0 = performance.now();
  return new Promise<boolean>((resolve) => {
    let over = false;
    const onAbort = (): void => {
      if (over) return;
      over = true;
      if (!queued.leave()) slots.release(); // the turn came just now: give it on
      resolve(false);
    };
    signal.addEventListener('abort', onAbort);
    void queued.wait.then(() => {
      if (over) return;
      over = true;
      signal.removeEventListener('abort', onAbort);
      if (log) log.clientWaitMs = (log.clientWaitMs ?? 0) + Math.round((performance.now() - w0) * 1000) / 1000;
      resolve(true);
    });
  });
}
