import { describe, expect, it } from 'vitest';
import { turnNow } from '../../src/util/clock.js';

describe('turnNow', () => {
  it('is one reading for a synchronous stretch and a new one after the microtasks queued so far', async () => {
    const a = turnNow();
    const spin = performance.now() + 2;
    while (performance.now() < spin) { /* the clock moves, the turn's reading does not */ }
    expect(turnNow()).toBe(a);
    await new Promise<void>((r) => setTimeout(r, 5));
    const b = turnNow();
    expect(b).toBeGreaterThanOrEqual(a + 5);
    expect(b).toBeLessThanOrEqual(performance.now());
  });
});
