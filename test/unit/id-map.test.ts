/**
 * IdMap (util/id-map.ts) behaves like a Map for integer keys: same contents
 * and insertion order under a seeded random mix of set/delete/clear (through
 * growth and in-place compaction), deleting and adding during iteration, keys
 * beyond 2^32, and bad keys refused.
 */
import { describe, expect, it } from 'vitest';
import { IdMap } from '../../src/util/id-map.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

describe('IdMap', () => {
  it('matches Map (contents and order) over 20,000 random operations with churn, growth and compaction', () => {
    const r = rng(7);
    const ref = new Map<number, string>();
    const m = new IdMap<string>();
    let next = 1;
    for (let op = 0; op < 20_000; op++) {
      const x = r();
      if (x < 0.45) {
        const k = r() < 0.1 && ref.size ? ([...ref.keys()][Math.floor(r() * ref.size)] as number) : (next += 2);
        ref.set(k, `v${op}`);
        m.set(k, `v${op}`);
      } else if (x < 0.9) {
        const k = ref.size && r() < 0.9 ? ([...ref.keys()][Math.floor(r() * ref.size)] as number) : next + 100;
        expect(m.delete(k)).toBe(ref.delete(k));
      } else if (x < 0.999) {
        const k = Math.floor(r() * next);
        expect(m.get(k)).toBe(ref.get(k));
        expect(m.has(k)).toBe(ref.has(k));
      } else {
        ref.clear();
        m.clear();
      }
      expect(m.size).toBe(ref.size);
      if (op % 97 === 0) expect([...m]).toEqual([...ref]);
    }
    expect([...m].map(([k]) => k)).toEqual([...ref.keys()]);
    expect([...m.values()]).toEqual([...ref.values()]);
  });

  it('a burst of 1,000 live entries, then back to a handful: same answers, insertion order kept', () => {
    const m = new IdMap<number>();
    for (let i = 0; i < 1000; i++) m.set(i * 4 + 1, i);
    for (let i = 0; i < 995; i++) m.delete(i * 4 + 1);
    for (let i = 1000; i < 1010; i++) m.set(i * 4 + 1, i);
    expect([...m.values()]).toEqual([
      995, 996, 997, 998, 999, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009,
    ]);
    expect(m.get(999 * 4 + 1)).toBe(999);
    expect(m.get(5)).toBeUndefined();
  });

  it('deleting and adding while iterating behaves like Map: deleted ones are skipped, added ones visited', () => {
    const ref = new Map<number, number>();
    const m = new IdMap<number>();
    for (let i = 0; i < 20; i++) {
      ref.set(i, i);
      m.set(i, i);
    }
    const seenRef: number[] = [];
    const seen: number[] = [];
    for (const [k] of ref) {
      seenRef.push(k);
      if (k % 3 === 0) ref.delete(k + 1);
      if (k === 5) for (let j = 100; j < 120; j++) ref.set(j, j);
    }
    for (const [k] of m) {
      seen.push(k);
      if (k % 3 === 0) m.delete(k + 1);
      if (k === 5) for (let j = 100; j < 120; j++) m.set(j, j);
    }
    expect(seen).toEqual(seenRef);
    expect([...m]).toEqual([...ref]);
    // An iteration left early (break) still lets the table compact later.
    for (const _ of m) break;
    for (let i = 0; i < 200; i++) {
      m.set(1000 + i, i);
      m.delete(1000 + i);
    }
    expect([...m]).toEqual([...ref]);
  });

  it('keys past 2^32 (QUIC stream ids may be) and refuses keys that are not non-negative integers', () => {
    const m = new IdMap<string>();
    const big = 2 ** 40 + 3;
    m.set(big, 'a').set(3, 'b');
    expect(m.get(big)).toBe('a');
    expect(m.get(3)).toBe('b');
    expect(() => m.set(-1, 'x')).toThrow(RangeError);
    expect(() => m.set(1.5, 'x')).toThrow(RangeError);
    expect(() => m.set(Number.NaN, 'x')).toThrow(RangeError);
  });
});
