/**
 * An unanswered HTTP/3 PING is OL_PING_TIMEOUT, as on HTTP/2 (it surfaced as OL_HEADERS_TIMEOUT).
 */
import dgram from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { ErrorCode, OriginlinkError } from '../../src/index.js';
import { connectH3 } from '../../src/connect/h3.js';
import { makeCerts } from '../helpers/certs.js';
import { startTestH3Server } from '../helpers/h3-server.js';

const certs = makeCerts();

describe('an unanswered PING is OL_PING_TIMEOUT on every protocol', () => {
  it('h3: PING through a path that went silent', async () => {
    const server = await startTestH3Server({
      handler: async () => ({ status: 200, body: 'ok' }),
    });
    // A UDP relay that can go silent (both ways) without the client's socket noticing.
    let silent = false;
    const front = dgram.createSocket('udp4');
    const back = dgram.createSocket('udp4');
    let client: { address: string; port: number } | null = null;
    front.on('message', (m, r) => {
      client = { address: r.address, port: r.port };
      if (!silent) back.send(m, server.address.port, '127.0.0.1');
    });
    back.on('message', (m) => {
      if (!silent && client) front.send(m, client.port, client.address);
    });
    await new Promise<void>((r) => front.bind(0, '127.0.0.1', r));
    await new Promise<void>((r) => back.bind(0, '127.0.0.1', r));
    const c = await connectH3({
      host: '127.0.0.1',
      port: front.address().port,
      servername: 'localhost',
      ca: certs.caPath,
      migrateAfterProbeTimeouts: 0,
      keepAliveMs: 0,
    });
    try {
      expect(await c.ping(2000)).toBeGreaterThanOrEqual(0);
      silent = true;
      await new Promise((r) => setTimeout(r, 150)); // what was already on its way has arrived
      const err = await c.ping(300).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OriginlinkError);
      expect((err as OriginlinkError).code).toBe(ErrorCode.PING_TIMEOUT);
    } finally {
      c.destroy();
      front.close();
      back.close();
      await server.close(100);
    }
  });
});
