/**
 * What keeps the process alive for the work a program waits on: one ref'd handle for the whole process while any
 * work is held, none otherwise — Node's rule and undici's: an idle socket or a maintenance timer does not keep a
 * process, a pending `close()`, a request or a store's flush does.
 *
 * Sockets are unref'd once, when they join a pool, so a request costs no ref/unref call into libuv (two per request
 * were ~2 % of a proxied request's CPU); holding is a counter here, and the handle flips only when the count crosses
 * zero. It lets go at the end of the turn that reached zero, so work that starts in that same turn (the next request
 * of a loop) keeps it without a flip.
 *
 * Invariant: every `hold()` is matched by exactly one `release()`.
 */
import { atTurnEnd, type TurnEnd } from './turn-end.js';

let held = 0;
let keeper: NodeJS.Timeout | null = null;

function noop(): void {}

export function hold(): void {
  if (held++ === 0) {
    keeper ??= setInterval(noop, 0x3fffffff);
    keeper.ref();
  }
}

export function release(): void {
  // At the turn's end, once per crossing to zero (not per release), with the turn's writes (util/turn-end.ts).
  if (--held === 0) atTurnEnd(LET_GO);
}

const LET_GO: TurnEnd = {
  turnEnd(): void {
    if (held === 0) keeper?.unref();
  },
};

/** `p`, with the process held from now until it settles. */
export function holdUntil<T>(p: Promise<T>): Promise<T> {
  hold();
  p.then(release, release);
  return p;
}
