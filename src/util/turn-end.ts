/**
 * Work that waits for the end of this event-loop turn's poll phase: one `setImmediate` (the check phase, after every
 * socket read of the poll phase and the promise reactions they set off) runs all of it, in the order it was asked.
 *
 * The writers use it: an HTTP/1.1 connection's request (client/h1.ts) and a session's whole responses (server/h1.ts)
 * leave together after the turn's reads, as the h2 wire and the QUIC endpoint write once a turn — written one by one
 * between the reads instead, each woke its peer, and a caller's long path per request ran alone for each (bench/RESULTS.md
 * `clients` and `proxy`, 2026-11-29). And util/hold.ts lets the process go at the turn's end, and util/clock.ts forgets
 * its reading of the clock. One Immediate a turn for all of them, not one each: a lone request's turn pays for one.
 */

/** Something that acts at the turn's end. */
export interface TurnEnd {
  turnEnd(): void;
}

let due: TurnEnd[] = [];
/**
 * The `setImmediate` the run was queued with. When the global one is replaced (a test's fake timers installed or
 * taken away) that Immediate may never run: the next ask queues one with the new global (util/clock.ts does the same).
 */
let queuedWith: typeof setImmediate | null = null;

function run(): void {
  const now = due;
  due = [];
  queuedWith = null;
  for (const x of now) x.turnEnd();
}

/** `x.turnEnd()` at the end of this turn's poll phase. Ask once per turn: each ask runs it once. */
export function atTurnEnd(x: TurnEnd): void {
  if (due.length === 0 || queuedWith !== setImmediate) {
    queuedWith = setImmediate;
    setImmediate(run);
  }
  due.push(x);
}
