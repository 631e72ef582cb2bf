/**
 * The IPv6 text form the batched receiver gives source addresses: the same
 * as inet_ntop / dgram's rinfo (RFC 5952), checked against Node's own
 * formatting of the same bytes.
 */
import { describe, expect, it } from 'vitest';
import { SocketAddress } from 'node:net';
import { formatIPv6 } from '../../src/quic/udp-rx.js';

const bytes = (text: string): Uint8Array => {
  // Expand a full 8-group address written without "::".
  const out = new Uint8Array(16);
  text.split(':').forEach((g, i) => {
    const v = Number.parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
};

describe('formatIPv6', () => {
  const cases: Array<[string, string]> = [
    ['0:0:0:0:0:0:0:1', '::1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['2001:db8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7'],
    ['fe80:0:0:0:abcd:0:0:2', 'fe80::abcd:0:0:2'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['0:0:0:0:0:ffff:7f00:1', '::ffff:127.0.0.1'],
  ];
  for (const [full, want] of cases) {
    it(`${full} → ${want}`, () => {
      expect(formatIPv6(bytes(full))).toBe(want);
      // Node parses and prints the same form.
      expect(new SocketAddress({ address: want, family: 'ipv6' }).address).toBe(want);
    });
  }
});
