/** util/coarse-ticker.ts IdleDeadline: a real timer under a second, the shared ticker from a second on. */
import { describe, expect, it } from 'vitest';
import { IdleDeadline, TICK_MS } from '../../src/util/coarse-ticker.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('IdleDeadline', () => {
  it('under a second: fires once, never before ms of no touch; touches move it; stop cancels', async () => {
    const fired: number[] = [];
    let last = performance.now();
    const d = new IdleDeadline(300, () => {
      fired.push(performance.now() - last);
    });
    d.start();
    for (let i = 0; i < 3; i++) {
      await sleep(100);
      if (fired.length) break; // a loaded machine slept past the deadline: what follows still holds
      d.touch();
      last = performance.now();
    }
    for (let t = 0; t < 100 && fired.length === 0; t++) await sleep(20);
    await sleep(100);
    expect(fired.length).toBe(1);
    expect(fired[0]).toBeGreaterThanOrEqual(299);
    d.touch(); // after it fired: nothing comes back
    await sleep(400);
    expect(fired.length).toBe(1);
    const e = new IdleDeadline(80, () => {
      fired.push(-1);
    });
    e.start();
    e.stop();
    await sleep(200);
    expect(fired.length).toBe(1);
  });

  it('a second or more: on the shared ticker, never early, about TICK_MS late at most; never started, never fires', async () => {
    let last = performance.now();
    let late: number | null = null;
    const d = new IdleDeadline(1000, () => {
      late = performance.now() - last - 1000;
    });
    d.start();
    await sleep(400);
    d.touch(); // due 1,000 ms from here
    last = performance.now();
    let neverFired = false;
    const never = new IdleDeadline(1000, () => {
      neverFired = true;
    });
    never.touch();
    for (let t = 0; t < 150 && late === null; t++) await sleep(20);
    expect(late).not.toBeNull();
    expect(late!).toBeGreaterThanOrEqual(-1);
    expect(late!).toBeLessThan(TICK_MS + 500); // a tick's lateness, and slack for a loaded machine
    expect(neverFired).toBe(false);
  });
});
