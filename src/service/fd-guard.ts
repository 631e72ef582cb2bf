/**
 * Running out of file descriptors, handled as nginx does it: one log line per interval, a counter, new client
 * connections not served for a moment, and descriptors kept for what must go on working (the admin listener,
 * origin connections, temporary files).
 *
 * At the limit, accept(2) fails with EMFILE; libuv then takes the pending connections off the listen queue and
 * closes them, silently (its reserve-descriptor trick), and the process sees nothing. So the fronts stop before
 * it: Linux gives an accepted socket the lowest free descriptor number, so an accepted descriptor within
 * `headroom` of the soft RLIMIT_NOFILE means at most that many are left. That connection is closed, and so is
 * every one accepted in the next `pauseMs` (Node cannot stop a listening socket's accepts without closing the
 * socket, which would refuse them as well and drop its queue); a few descriptors held open from the start
 * (`reserve`) are let go for others to use meanwhile and taken again afterwards. An EMFILE or ENFILE met anywhere
 * else (a dial, a temporary file) trips the guard the same way.
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import { IntervalGate } from '../util/interval-gate.js';

export interface FdGuardOptions {
  /** The soft RLIMIT_NOFILE (default: read from /proc/self/limits; unknown: only EMFILE met elsewhere trips). */
  limit?: number;
  /** Descriptors held open to be let go when the guard trips. Default 8. */
  reserve?: number;
  /** How long new client connections are closed after a trip, ms. Default 500 (nginx's accept_mutex_delay). */
  pauseMs?: number;
  /** One log line per this interval, ms. Default 10000. */
  logIntervalMs?: number;
}

/** The soft limit on open files of this process (Node raises it to the hard limit at start), or Infinity. */
export function openFileLimit(): number {
  try {
    const line = fs
      .readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    const n = Number(soft);
    return Number.isFinite(n) && n > 0 ? n : Infinity;
  } catch {
    return Infinity;
  }
}

export class FdGuard {
  readonly limit: number;
  /** Descriptors the fronts never take: a sixteenth of the limit, at least 16 and at most 256. */
  readonly headroom: number;
  /** Client connections closed as accepted because descriptors ran short. */
  refused = 0;
  /** Times the guard tripped. */
  trips = 0;
  readonly #log: Logger;
  readonly #reserve: number;
  readonly #pauseMs: number;
  readonly #gate: IntervalGate;
  #held: number[] = [];
  #until = 0;
  #retake: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(log: Logger, o: FdGuardOptions = {}) {
    this.#log = log;
    this.limit = o.limit ?? openFileLimit();
    this.headroom = Number.isFinite(this.limit) ? Math.max(16, Math.min(256, Math.floor(this.limit / 16))) : 0;
    this.#reserve = o.reserve ?? 8;
    this.#pauseMs = o.pauseMs ?? 500;
    this.#gate = new IntervalGate(o.logIntervalMs ?? 10_000);
    this.#take();
  }

  /** Descriptors held in reserve now. */
  get held(): number {
    return this.#held.length;
  }

  /**
   * Whether a client connection just accepted may be served: false while the guard is tripped, and when its
   * descriptor says the process is within `headroom` of its limit (which trips it). `listener` names it in the log.
   */
  admit(socket: { _handle?: { fd?: number } | null }, listener: string): boolean {
    const now = performance.now();
    if (now < this.#until) {
      this.refused++;
      return false;
    }
    const fd = socket._handle?.fd;
    if (typeof fd !== 'number' || fd < this.limit - this.headroom) return true;
    this.refused++;
    this.#trip(now, { listener, fd });
    return false;
  }

  /** An EMFILE or ENFILE met elsewhere (a dial, a temporary file): descriptors are out now. */
  exhausted(err: NodeJS.ErrnoException, where: string): void {
    if (err.code !== 'EMFILE' && err.code !== 'ENFILE') return;
    this.#trip(performance.now(), { where, code: err.code });
  }

  close(): void {
    this.#closed = true;
    if (this.#retake) clearTimeout(this.#retake);
    this.#retake = null;
    this.#let();
  }

  #trip(now: number, facts: Record<string, unknown>): void {
    this.#until = now + this.#pauseMs;
    this.trips++;
    const released = this.#held.length;
    this.#let();
    const pass = this.#gate.pass('trip');
    if (pass) {
      this.#log.warn(
        { ...facts, limit: this.limit, headroom: this.headroom, released, since: pass.since, refused: this.refused },
        `file descriptors nearly exhausted: new client connections are closed as they are accepted for ${this.#pauseMs} ms, the reserve let go (more of these within the interval are counted, not logged)`,
      );
    }
    if (this.#retake) clearTimeout(this.#retake);
    this.#retake = setTimeout(() => {
      this.#retake = null;
      this.#take();
    }, this.#pauseMs);
    this.#retake.unref();
  }

  /** Take the reserve again, as far as descriptors allow. */
  #take(): void {
    while (!this.#closed && this.#held.length < this.#reserve) {
      try {
        this.#held.push(fs.openSync('/dev/null', 'r'));
      } catch {
        return;
      }
    }
  }

  #let(): void {
    for (const fd of this.#held) {
      try {
        fs.closeSync(fd);
      } catch {
        // already gone
      }
    }
    this.#held = [];
  }
}
