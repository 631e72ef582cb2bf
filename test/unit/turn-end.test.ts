import { describe, expect, it, vi } from 'vitest';
import { atTurnEnd } from '../../src/util/turn-end.js';

describe('atTurnEnd', () => {
  it("runs after the turn's promise reactions, in the order asked, from one Immediate; asks made then go to the next turn", async () => {
    const seen: string[] = [];
    const immediates = vi.spyOn(globalThis, 'setImmediate');
    try {
      atTurnEnd({ turnEnd: () => seen.push('a') });
      atTurnEnd({
        turnEnd: () => {
          seen.push('b');
          atTurnEnd({ turnEnd: () => seen.push('d') });
        },
      });
      await Promise.resolve();
      atTurnEnd({ turnEnd: () => seen.push('c') });
      expect(seen).toEqual([]);
      expect(immediates).toHaveBeenCalledTimes(1);
      await new Promise<void>((r) => setImmediate(r));
      // The test's own Immediate was queued after the run's: a, b, c ran, d waits for the next check phase.
      expect(seen).toEqual(['a', 'b', 'c']);
      await new Promise<void>((r) => setImmediate(r));
      expect(seen).toEqual(['a', 'b', 'c', 'd']);
    } finally {
      immediates.mockRestore();
    }
  });

  it('an ask queued on fake timers that never ran does not hold later asks once the real timers are back', async () => {
    vi.useFakeTimers({ toFake: ['setImmediate', 'clearImmediate'] });
    let stuck = false;
    try {
      atTurnEnd({
        turnEnd: () => {
          stuck = true;
        },
      });
    } finally {
      vi.useRealTimers();
    }
    let ran = false;
    atTurnEnd({
      turnEnd: () => {
        ran = true;
      },
    });
    await new Promise<void>((r) => setImmediate(r));
    // Both ran from the real Immediate: the fake one never will.
    expect([stuck, ran]).toEqual([true, true]);
  });
});
