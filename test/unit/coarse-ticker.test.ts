/** util/coarse-ticker.ts IdleDeadline: a real timer under a second, the shared ticker from a second on. */
import { describe, expect, it } from 'vitest';
import { IdleDeadline, TICK_MS } from '../../src/util/coarse-ticker.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('IdleDeadline', () => {
  it('under a second: fires once after ms of no touch; touches move it; stop cancels', async () => {
    let fired = 0;
    const d = new IdleDeadline(120, () => { fired++; });
    d.start();
    for (let i = 0; i < 3; i++) { await sleep(70); d.touch(); }
    expect(fired).toBe(0);
    await sleep(200);
    expect(fired).toBe(1);
    const e = new IdleDeadline(80, () => { fired++; });
    e.start();
    e.stop();
    await sleep(150);
    expect(fired).toBe(1);
  });

  it('a second or more: on the shared ticker, at most TICK_MS late; not started, nothing fires', async () => {
    const t0 = performance.now();
    let at = 0;
    const d = new IdleDeadline(1000, () => { at = performance.now(); });
    d.start();
    await sleep(600);
    d.touch(); // now due 1,000 ms from here
    const never = new IdleDeadline(1000, () => { at = -1; });
    never.touch();
    await sleep(1000 + TICK_MS + 150);
    expect(at).toBeGreaterThan(t0 + 1600 - 5);
    expect(at).toBeLessThan(t0 + 1600 + TICK_MS + 50);
  });
});
