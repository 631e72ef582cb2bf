/**
 * A stored TLS session or QUIC ticket is handed to one dial only (RFC 8446 §C.4: a ticket is for one connection):
 * of two concurrent dials with one stored, exactly one resumes (the store gave it to both before).
 */
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { MemorySessionStore } from '../../src/index.js';
import { connectH3 } from '../../src/connect/h3.js';
import { connectTcp } from '../../src/net/tcp.js';
import { makeCerts } from '../helpers/certs.js';
import { startTestH3Server } from '../helpers/h3-server.js';

const certs = makeCerts();

describe('single-use tickets: concurrent dials each take their own or none', () => {
  it('TLS: one stored session, two concurrent dials → exactly one resumes', async () => {
    const server = tls.createServer({ cert: certs.cert, key: certs.key, minVersion: 'TLSv1.3' }, (s) => s.resume());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const base = {
      host: '127.0.0.1',
      port,
      tls: true,
      servername: 'localhost',
      alpn: ['http/1.1'],
      ca: certs.ca,
      connectTimeoutMs: 3000,
      tfo: false,
      sessionKey: 'k',
    } as const;
    try {
      // Collect the tickets of one connection, keep exactly one of them.
      const seed = new MemorySessionStore();
      const first = await connectTcp({ ...base, sessionStore: seed });
      first.socket.resume(); // tickets arrive after the handshake, read like data
      await new Promise((r) => setTimeout(r, 100));
      first.socket.destroy();
      const one = seed.take('k');
      expect(one).toBeDefined();
      const store = new MemorySessionStore();
      store.put('k', one as Uint8Array);
      const [x, y] = await Promise.all([
        connectTcp({ ...base, sessionStore: store }),
        connectTcp({ ...base, sessionStore: store }),
      ]);
      x.socket.destroy();
      y.socket.destroy();
      expect([x.resumed, y.resumed].filter(Boolean)).toHaveLength(1);
    } finally {
      server.close();
    }
  });

  it('QUIC: one stored ticket, two concurrent connections → exactly one resumes', async () => {
    const server = await startTestH3Server({
      handler: async () => ({ status: 200, body: 'ok' }),
    });
    const base = {
      host: '127.0.0.1',
      port: server.address.port,
      servername: 'localhost',
      ca: certs.caPath,
      sessionKey: 'q',
      keepAliveMs: 0,
    };
    try {
      const seed = new MemorySessionStore();
      const c0 = await connectH3({ ...base, sessionStore: seed });
      const r0 = await c0.request({
        method: 'GET',
        path: '/',
        authority: `localhost:${server.address.port}`,
        scheme: 'https',
        headers: [],
        body: null,
      });
      await r0.body.resume();
      await new Promise((r) => r0.body.once('end', r));
      c0.drain();
      await new Promise((r) => setTimeout(r, 100));
      const one = seed.take('q');
      expect(one).toBeDefined();
      const store = new MemorySessionStore();
      store.put('q', one as Uint8Array);
      const [a, b] = await Promise.all([
        connectH3({ ...base, sessionStore: store, earlyData: false }),
        connectH3({ ...base, sessionStore: store, earlyData: false }),
      ]);
      expect([a.facts.resumed, b.facts.resumed].filter(Boolean)).toHaveLength(1);
      a.destroy();
      b.destroy();
    } finally {
      await server.close(100);
    }
  });
});
