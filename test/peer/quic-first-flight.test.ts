/**
 * A client connection without a ticket sends its Initial from `connect()` itself (src/quic/endpoint.ts): nothing can
 * ride with it (no 0-RTT without a ticket, RFC 9001 §4.6.1), so it does not wait for the turn's check phase behind
 * what the caller sets up next (the HTTP/3 layer, the pool). The peer here is a plain UDP socket that only counts what
 * arrives: the Initial has left before `connect()` returns, and arrives padded to 1200 bytes (RFC 9000 §14.1).
 */
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { clientConfig } from '../../src/quic/config.js';
import { QuicEndpoint } from '../../src/quic/endpoint.js';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

describe('a QUIC client without a ticket', () => {
  it('sends its Initial before connect() returns', async () => {
    const peer = dgram.createSocket('udp4');
    const first = new Promise<Buffer>((resolve) => peer.once('message', resolve));
    await new Promise<void>((r) => peer.bind(0, '127.0.0.1', () => r()));
    cleanup.push(() => new Promise<void>((r) => peer.close(() => r())));
    const port = (peer.address() as { port: number }).port;
    const ep = await QuicEndpoint.bind({ host: '127.0.0.1', peer: { host: '127.0.0.1', port } });
    cleanup.push(() => ep.close());
    const before = ep.stats().packetsOut;
    const c = ep.connect({
      config: clientConfig({ verifyPeer: false }),
      host: '127.0.0.1',
      port,
      serverName: 'localhost',
      session: null,
      connectTimeoutMs: 5_000,
    });
    cleanup.push(() => c.destroy(null));
    // Synchronously: the first flight is out of the endpoint's sink already.
    expect(ep.stats().packetsOut).toBeGreaterThan(before);
    const m = await first;
    expect(m.length).toBeGreaterThanOrEqual(1200);
    expect(m[0]! & 0xf0).toBe(0xc0); // a long header, type Initial (RFC 9000 §17.2.2)
  });
});
