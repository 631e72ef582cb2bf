/** RFC 8305 racing over scripted attempts: family interleaving (§4), attempt delay and fail-fast (§5), losers aborted or disposed. */
import { AddressBook } from '../../src/net/addresses.js';
import { Resolver } from '../../src/net/resolver.js';
import { describe, expect, it, vi } from 'vitest';
import { interleaveFamilies, raceAddresses } from '../../src/net/happy-eyeballs.js';
import type { ResolvedAddress } from '../../src/net/resolver.js';

const v6 = (a: string): ResolvedAddress => ({ address: a, family: 6 });
const v4 = (a: string): ResolvedAddress => ({ address: a, family: 4 });

/** An attempt that answers after `ms` (or never: null), failing when `fail`. */
function scripted(plan: Record<string, { ms: number | null; fail?: boolean }>, log: string[]) {
  return (a: ResolvedAddress, signal: AbortSignal): Promise<string> =>
    new Promise((resolve, reject) => {
      const t0 = performance.now();
      log.push(`start ${a.address}`);
      const p = plan[a.address] ?? { ms: null };
      const timer =
        p.ms === null
          ? null
          : setTimeout(() => (p.fail ? reject(new Error(`refused ${a.address}`)) : resolve(a.address)), p.ms);
      signal.addEventListener('abort', () => {
        if (timer) clearTimeout(timer);
        log.push(`abort ${a.address} ${Math.round(performance.now() - t0)}`);
        reject(new Error('aborted'));
      });
    });
}

describe('Happy Eyeballs v2', () => {
  it('interleaves families starting with the first (RFC 8305 §4)', () => {
    expect(interleaveFamilies([v6('a'), v6('b'), v6('c'), v4('x'), v4('y')]).map((x) => x.address)).toEqual([
      'a',
      'x',
      'b',
      'y',
      'c',
    ]);
    expect(interleaveFamilies([v4('x'), v6('a'), v6('b')]).map((x) => x.address)).toEqual(['x', 'a', 'b']);
  });

  it('a silent first address: the next starts after the attempt delay and wins; the first is aborted', async () => {
    // A fake clock: the delay is the race's own, whatever the machine's load.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    try {
      const log: string[] = [];
      const outrun: string[] = [];
      let r: unknown = null;
      void raceAddresses([v6('::dead'), v4('10.0.0.1')], scripted({ '10.0.0.1': { ms: 5 } }, log), {
        attemptDelayMs: 100,
        dispose: () => {},
        onOutrun: (a) => outrun.push(a.address),
      }).then((x) => {
        r = x;
      });
      await vi.advanceTimersByTimeAsync(99);
      expect(log).toEqual(['start ::dead']); // the second waits for the attempt delay
      await vi.advanceTimersByTimeAsync(1);
      expect(log).toEqual(['start ::dead', 'start 10.0.0.1']);
      await vi.advanceTimersByTimeAsync(5);
      expect(r).toMatchObject({ value: '10.0.0.1', attempts: 2, address: { family: 4 } });
      expect(outrun).toEqual(['::dead']);
      expect(log[2]).toBe('abort ::dead 105');
    } finally {
      vi.useRealTimers();
    }
  });

  it('a refusal starts the next attempt at once; every address failing is one error naming them all', async () => {
    const log: string[] = [];
    const t0 = performance.now();
    const r = await raceAddresses([v4('a'), v4('b')], scripted({ a: { ms: 1, fail: true }, b: { ms: 1 } }, log), {
      attemptDelayMs: 1000,
      dispose: () => {},
    });
    expect(performance.now() - t0).toBeLessThan(100);
    expect(r.attempts).toBe(2);
    const failed: string[] = [];
    await expect(
      raceAddresses([v4('a'), v4('b')], scripted({ a: { ms: 1, fail: true }, b: { ms: 1, fail: true } }, []), {
        attemptDelayMs: 1000,
        dispose: () => {},
        onFail: (x) => failed.push(x.address),
      }),
    ).rejects.toMatchObject({ code: 'OL_CONNECT_FAILED', retrySafe: true, details: { addresses: ['a', 'b'] } });
    expect(failed).toEqual(['a', 'b']);
  });

  it('a late success of a loser is disposed; an outer abort stops every attempt', async () => {
    const disposed: string[] = [];
    // Both answer; the loser's answer comes after the winner's and is not aborted in time by a non-cooperative attempt.
    // The loser answers 300 ms after its start, the winner 15 ms after it: timers late by a loaded machine (the whole
    // suite on two cores) cannot swap them.
    const stubborn = (a: ResolvedAddress): Promise<string> =>
      new Promise((r) => setTimeout(() => r(a.address), a.address === 'slow' ? 300 : 5));
    const r = await raceAddresses([v4('slow'), v4('fast')], stubborn, {
      attemptDelayMs: 10,
      dispose: (v) => disposed.push(v),
    });
    expect(r.value).toBe('fast');
    for (let i = 0; i < 100 && disposed.length === 0; i++) await new Promise((res) => setTimeout(res, 10));
    expect(disposed).toEqual(['slow']);
    const ac = new AbortController();
    const log: string[] = [];
    const p = raceAddresses([v4('a'), v4('b')], scripted({}, log), {
      attemptDelayMs: 10,
      signal: ac.signal,
      dispose: () => {},
    });
    setTimeout(() => ac.abort(), 30);
    await expect(p).rejects.toMatchObject({ code: 'OL_ABORTED' });
    expect(log.filter((l) => l.startsWith('abort')).length).toBe(2);
  });
});

describe('AddressBook.order: a huge answer', () => {
  it('considers the first 8 addresses of each family, in DNS order (2,000 made one dial try all 2,000)', () => {
    const book = new AddressBook(new Resolver());
    const addresses = [
      ...Array.from({ length: 1000 }, (_, i) => ({ address: `10.0.${i >> 8}.${i & 255}`, family: 4 as const })),
      ...Array.from({ length: 1000 }, (_, i) => ({ address: `fd00::${(i + 1).toString(16)}`, family: 6 as const })),
    ];
    const out = book.order('many.test', 443, {
      name: 'many.test',
      addresses,
      source: 'dns',
      ttlMs: 60_000,
      expiresAt: Infinity,
    } as never);
    expect(out).toHaveLength(16);
    expect(out.filter((a) => a.family === 4).map((a) => a.address)).toEqual(
      addresses.slice(0, 8).map((a) => a.address),
    );
    expect(out.filter((a) => a.family === 6).map((a) => a.address)).toEqual(
      addresses.slice(1000, 1008).map((a) => a.address),
    );
  });
});
