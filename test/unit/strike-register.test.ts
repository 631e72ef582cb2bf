/** The 0-RTT ClientHello record (src/quic/strike-register.ts): once within the window, bounded, fails closed. */
import { describe, expect, it } from 'vitest';
import { StrikeRegister } from '../../src/quic/strike-register.js';

describe('StrikeRegister', () => {
  it('a key is first once within the window; after the window it is forgotten', () => {
    const s = new StrikeRegister(1000, 10);
    expect(s.first('a', 0)).toBe(true);
    expect(s.first('a', 10)).toBe(false);
    expect(s.first('b', 500)).toBe(true);
    expect(s.first('a', 999)).toBe(false);
    // Past the window the oldest go; a copy that old is refused by the TLS stack's freshness check anyway.
    expect(s.first('a', 1000)).toBe(true);
    expect(s.size).toBe(2);
  });

  it('full: every new key is refused (no early data) until the window frees room, never accepted unrecorded', () => {
    const s = new StrikeRegister(1000, 3);
    for (const k of ['a', 'b', 'c']) expect(s.first(k, 0)).toBe(true);
    expect(s.first('d', 10)).toBe(false);
    expect(s.first('d', 1000)).toBe(true);
  });
});
