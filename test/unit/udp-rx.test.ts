/**
 * The IPv6 text form the batched receiver gives source addresses: the same
 * as inet_ntop / dgram's rinfo (RFC 5952), checked against Node's own
 * formatting of the same bytes.
 */
import { describe, expect, it, vi } from 'vitest';
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

describe('batchReceiver with an addon build of another layout', () => {
  it('is not used: the socket keeps receiving through dgram events', async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dgram = await import('node:dgram');
    const dir = mkdtempSync(join(tmpdir(), 'ol-fake-addon-'));
    const fake = join(dir, 'udp.cjs');
    // A stale build: receive functions present, metadata stride 7 (ours is 8).
    writeFileSync(
      fake,
      'let started = 0; module.exports = { sendSegments() { return -22; }, gsoSupported() { return false; }, rxStart() { started++; return {}; }, rxStop() {}, rxRef() {}, rxMetaStride: 7, get started() { return started; } };',
    );
    const prev = process.env['ORIGINLINK_UDP_ADDON'];
    process.env['ORIGINLINK_UDP_ADDON'] = fake;
    const sock = dgram.createSocket('udp4');
    const peer = dgram.createSocket('udp4');
    try {
      vi.resetModules();
      const { batchReceiver } = await import('../../src/quic/udp-rx.js');
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
      expect(batchReceiver(sock, () => {})).toBeNull();
      const addon = (await import(fake)) as unknown as { default: { started: number } };
      expect(addon.default.started).toBe(0);
      const got = new Promise<string>((r) => sock.once('message', (m) => r(m.toString())));
      peer.send('still here', sock.address().port, '127.0.0.1');
      expect(await got).toBe('still here');
    } finally {
      if (prev === undefined) delete process.env['ORIGINLINK_UDP_ADDON'];
      else process.env['ORIGINLINK_UDP_ADDON'] = prev;
      sock.close();
      peer.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
