/**
 * `performance.now()` read once per turn of the event loop's work. A request reads the clock about ten
 * times on its way through (deadlines armed and moved, a connection's last use, the Agent's start and
 * time to first byte), and every read is a call into the binding (~45 ns here). `turnNow()` reads it at
 * the first call and hands the same value out until the microtasks queued so far have run (a microtask
 * clears it): within one socket read's work and its promise reactions, readings differ by microseconds
 * anyway. A long synchronous stretch reads an older time: use `performance.now()` where a measurement
 * must be exact to better than one turn's work (the timers' own firing checks still do).
 */
let cached = -1;
const forget = (): void => { cached = -1; };
/** `then` on a settled promise queues `forget` (Node's queueMicrotask costs twice that: an AsyncResource each). */
const SETTLED = Promise.resolve();

export function turnNow(): number {
  if (cached < 0) {
    cached = performance.now();
    void SETTLED.then(forget);
  }
  return cached;
}
