import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LazyTimer } from '../../src/util/lazy-timer.js';

describe('LazyTimer', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('fires once at its deadline; a later deadline re-arms on the way, an earlier one replaces the Timeout', async () => {
    const fired: number[] = [];
    const t = new LazyTimer(() => fired.push(performance.now()));
    const start = performance.now();
    t.set(1000);
    await vi.advanceTimersByTimeAsync(400);
    t.set(1000); // moved later: due at 1400
    await vi.advanceTimersByTimeAsync(998);
    expect(fired).toEqual([]);
    await vi.advanceTimersByTimeAsync(3);
    expect(fired.length).toBe(1);
    expect(fired[0]! - start).toBeGreaterThanOrEqual(1399);
    t.set(5000);
    await vi.advanceTimersByTimeAsync(100);
    t.set(200); // moved earlier than the armed Timeout
    await vi.advanceTimersByTimeAsync(201);
    expect(fired.length).toBe(2);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(fired.length).toBe(2);
  });

  it('a cleared deadline never fires; set again it does; stop leaves no Timeout', async () => {
    let n = 0;
    const t = new LazyTimer(() => {
      n++;
    });
    t.set(100);
    t.clear();
    await vi.advanceTimersByTimeAsync(500);
    expect(n).toBe(0);
    t.set(100);
    expect(t.pending).toBe(true);
    await vi.advanceTimersByTimeAsync(101);
    expect(n).toBe(1);
    expect(t.pending).toBe(false);
    t.set(100);
    t.stop();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(500);
    expect(n).toBe(1);
  });

  it('re-set on every "request" costs one Timeout per period, not one per set', async () => {
    const spy = vi.spyOn(globalThis, 'setTimeout');
    const t = new LazyTimer(() => {});
    for (let i = 0; i < 1000; i++) {
      t.clear(); // a request starts
      await vi.advanceTimersByTimeAsync(5);
      t.set(1000); // its response went: idle deadline
    }
    expect(spy.mock.calls.length).toBeLessThanOrEqual(6); // 5 s of requests, a 1 s period
    spy.mockRestore();
    t.stop();
  });
});
