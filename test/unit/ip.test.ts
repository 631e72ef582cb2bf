/**
 * src/util/ip.ts answers what `net.isIP` answers: for the literal forms RFC 4291 §2.2 allows, for their near misses,
 * and for strings built at random from the characters an IP literal is made of (seeded, so a failure repeats).
 */
import { isIP } from 'node:net';
import { describe, expect, it } from 'vitest';
import { rng } from '../../bench/lib/rng.mjs';
import { ipFamily } from '../../src/util/ip.js';

const KNOWN: Array<[string, 0 | 4 | 6]> = [
  ['127.0.0.1', 4],
  ['0.0.0.0', 4],
  ['255.255.255.255', 4],
  ['256.0.0.1', 0],
  ['01.2.3.4', 0],
  ['1.2.3', 0],
  ['1.2.3.4.', 0],
  ['1.2.3.4.5', 0],
  ['.1.2.3', 0],
  ['1..2.3', 0],
  ['::', 6],
  ['::1', 6],
  ['1::', 6],
  ['1:2:3:4:5:6:7:8', 6],
  ['1:2:3:4:5:6:7::', 6],
  ['::2:3:4:5:6:7:8', 6],
  ['1:2:3:4:5:6:7:8:9', 0],
  ['1:2:3:4:5:6:7:8::', 0],
  ['1::2::3', 0],
  [':::', 0],
  [':1::', 0],
  ['1:', 0],
  ['12345::', 0],
  ['::ffff:192.0.2.1', 6],
  ['1:2:3:4:5:6:192.0.2.1', 6],
  ['1:2:3:4:5:6::192.0.2.1', 0],
  ['::192.0.2.256', 0],
  ['fe80::1%eth0', 6],
  ['fe80::1%', 0],
  ['fe80::1%e!', 0],
  ['FE80::ABCD', 6],
  ['', 0],
  ['localhost', 0],
  ['example.com', 0],
  ['[::1]', 0],
];

describe('ipFamily', () => {
  it.each(KNOWN)('%s → %i, as net.isIP', (s, family) => {
    expect(isIP(s)).toBe(family);
    expect(ipFamily(s)).toBe(family);
  });

  it('agrees with net.isIP on 200,000 generated near-literals', () => {
    const r = rng(58);
    const pick = (xs: string) => xs[Math.floor(r() * xs.length)] as string;
    const group = () => {
      const n = Math.floor(r() * 6);
      let g = '';
      for (let i = 0; i < n; i++) g += pick('0123456789abcdefABCDEFg');
      return g;
    };
    const quad = () => Array.from({ length: 3 + Math.floor(r() * 3) }, () => String(Math.floor(r() * 300))).join('.');
    const seen = { 0: 0, 4: 0, 6: 0 };
    for (let i = 0; i < 200_000; i++) {
      let s: string;
      const kind = r();
      if (kind < 0.3) {
        s = quad();
        if (r() < 0.1) s = `0${s}`;
      } else {
        const parts = Array.from({ length: 1 + Math.floor(r() * 9) }, group);
        if (r() < 0.6) parts.splice(Math.floor(r() * (parts.length + 1)), 0, '');
        if (r() < 0.2) parts.push(quad());
        s = parts.join(':');
        if (r() < 0.2) s += `%${Array.from({ length: Math.floor(r() * 4) }, () => pick('eth0.-:%_')).join('')}`;
      }
      if (r() < 0.05) s = s.slice(0, Math.floor(r() * s.length));
      const want = isIP(s);
      if (ipFamily(s) !== want) expect({ s, family: ipFamily(s) }).toEqual({ s, family: want });
      seen[want as 0 | 4 | 6]++;
    }
    // The generator must reach every answer often, or the comparison proves little.
    for (const n of Object.values(seen)) expect(n).toBeGreaterThan(5_000);
  });
});
