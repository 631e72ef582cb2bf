/**
 * LegSignal: the abort signal of our own that pools, races and request legs hand their dials (util/leg-signal.ts) —
 * it follows its parent, runs each listener once, and makes Node's AbortSignal only when something needs one
 * (AbortSignal.any in a hostname's address race, a proxy link's deadline).
 */
import { describe, expect, it } from 'vitest';
import { abortSignalOf, LegSignal } from '../../src/util/leg-signal.js';

describe('LegSignal', () => {
  it('fires its listeners once with its reason, and a parent abort reaches it', () => {
    const parent = new AbortController();
    const leg = new LegSignal(parent.signal);
    const seen: unknown[] = [];
    leg.addEventListener('abort', () => seen.push(leg.reason), { once: true });
    parent.abort('gone');
    leg.abort('again');
    expect(seen).toEqual(['gone']);
    expect([leg.aborted, leg.reason]).toEqual([true, 'gone']);
  });

  it('a listener removed before the abort does not run; one added after it never runs', () => {
    const leg = new LegSignal(null);
    let n = 0;
    const f = (): void => {
      n++;
    };
    leg.addEventListener('abort', f);
    leg.removeEventListener('abort', f);
    leg.abort();
    leg.addEventListener('abort', f);
    expect(n).toBe(0);
  });

  it('toAbortSignal: one Node signal per leg, aborted with it (made before or after the abort)', () => {
    const leg = new LegSignal(null);
    const s = leg.toAbortSignal();
    expect(s).toBeInstanceOf(AbortSignal);
    expect(leg.toAbortSignal()).toBe(s);
    expect(s.aborted).toBe(false);
    leg.abort(new Error('stop'));
    expect(s.aborted).toBe(true);
    expect((s.reason as Error).message).toBe('stop');
    const late = new LegSignal(null);
    late.abort('early');
    expect([late.toAbortSignal().aborted, late.toAbortSignal().reason]).toEqual([true, 'early']);
  });

  it('abortSignalOf: a Node signal is itself; a leg gives its own, which AbortSignal.any follows', () => {
    const ac = new AbortController();
    expect(abortSignalOf(ac.signal)).toBe(ac.signal);
    const leg = new LegSignal(null);
    const any = AbortSignal.any([abortSignalOf(leg), new AbortController().signal]);
    leg.abort('pool closed');
    expect([any.aborted, any.reason]).toEqual([true, 'pool closed']);
  });

  it('detach: a leg let go of its parent no longer follows it', () => {
    const parent = new LegSignal(null);
    const leg = new LegSignal(parent);
    leg.detach();
    parent.abort();
    expect(leg.aborted).toBe(false);
  });
});
