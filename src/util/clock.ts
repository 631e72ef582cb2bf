/**
 * `performance.now()` read once per turn of the event loop. A request reads the clock about ten times on its way
 * through (deadlines armed and moved, a connection's last use, the Agent's start and time to first byte), and every
 * read is a call into the binding (~45 ns here). `turnNow()` reads it at the first call and hands the same value
 * out until the loop's check phase (util/turn-end.ts, asked at that first reading): every socket read the poll
 * phase handled in between, and all their promise reactions, share one reading — the granularity of Node's own
 * timers (libuv's loop time, updated once per iteration) and of nginx's request times (`ngx_current_msec`, updated
 * after each `epoll_wait`). Forgetting it after the microtasks queued so far instead (the first way) cost about five
 * readings per proxied request where this costs two or fewer: the reactions that run after the forgetting one
 * (the pool's, the Agent's, the server's keep-alive timer) each read the clock anew, and queued another forgetting.
 * A reading is older than the real time by what the loop did since: the work of the socket reads before it in the
 * same poll phase (under load, hundreds of microseconds), or a long synchronous stretch. Use `performance.now()`
 * where a measurement must be exact to better than that (the timers' own firing checks, the request log's totalMs,
 * a request's start in the Agent: its ttfbMs is the answer's turn's reading less that start, so it may read short by
 * the answer's turn's work but never exceeds the wall time — from a turn's reading it did, 3.37 ms for 1.03 ms).
 */
import { atTurnEnd, type TurnEnd } from './turn-end.js';

let cached = -1;
/**
 * The `setImmediate` the forgetting was queued with. When the global one is replaced (a test's fake timers
 * installed or taken away) that Immediate may never run: the reading is taken anew.
 */
let queuedWith: typeof setImmediate | null = null;
/** Forgotten at the turn's end, from the Immediate the turn's writers share (util/turn-end.ts). */
const FORGET: TurnEnd = {
  turnEnd(): void {
    cached = -1;
  },
};

export function turnNow(): number {
  if (cached < 0 || queuedWith !== setImmediate) {
    cached = performance.now();
    queuedWith = setImmediate;
    atTurnEnd(FORGET);
  }
  return cached;
}
