import { describe, expect, it, vi } from 'vitest';
import { turnNow } from '../../src/util/clock.js';

describe('turnNow', () => {
  it('is one reading for a turn of the loop, its microtasks included, and a new one in the next turn', async () => {
    const a = turnNow();
    const spin = performance.now() + 2;
    while (performance.now() < spin) {
      /* the clock moves, the turn's reading does not */
    }
    expect(turnNow()).toBe(a);
    // Promise reactions of this turn share it (the reactions of a socket read: pool, Agent, server).
    await Promise.resolve();
    await new Promise<void>((r) => queueMicrotask(r));
    expect(turnNow()).toBe(a);
    // The next turn reads anew.
    await new Promise<void>((r) => setImmediate(r));
    const b = turnNow();
    expect(b).toBeGreaterThanOrEqual(a + 2);
    // `b` was read in the check phase, so its forgetting runs in the next one: after that, a new reading (a spin, not
    // a timer: libuv's timers run on its millisecond loop time, and fire up to 1 ms before performance.now() says).
    const spin2 = performance.now() + 5;
    while (performance.now() < spin2) {
      /* the clock moves */
    }
    await new Promise<void>((r) => setImmediate(r));
    const c = turnNow();
    expect(c).toBeGreaterThanOrEqual(b + 5);
    expect(c).toBeLessThanOrEqual(performance.now());
  });

  it('a reading whose forgetting was queued on fake timers is not kept once they are gone', async () => {
    vi.useFakeTimers({ toFake: ['setImmediate', 'clearImmediate', 'performance'] });
    try {
      const fake = turnNow();
      vi.advanceTimersByTime(60_000); // the fake Immediate runs: the next reading is the fake clock's, a minute on
      expect(turnNow()).toBeGreaterThanOrEqual(fake + 60_000);
      turnNow(); // a forgetting queued on the fake timers, never run
    } finally {
      vi.useRealTimers();
    }
    const real = turnNow();
    expect(Math.abs(real - performance.now())).toBeLessThan(50);
  });
});
