/**
 * A captured 0-RTT first flight sent again is never served twice (issue 54, finding 6; RFC 8446 §8: a server MUST
 * accept 0-RTT for the same handshake at most once). A client resumes with its GET in 0-RTT through a relay that
 * records what it sends before the server first answers (its Initial and 0-RTT packets); once that connection is
 * gone, the record is sent again from new ports. Before: each copy was accepted with its early data and its request
 * handled again. Now the strike register (src/quic/strike-register.ts) knows the ClientHello: the copy's connection
 * gets no early data, and without the client's keys its handshake never completes.
 */
import dgram from 'node:dgram';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { H3Response } from '../../src/client/h3.js';
import { connectH3 } from '../../src/connect/h3.js';
import type { ConnRequest } from '../../src/http/types.js';
import type { H3Server } from '../../src/server/h3.js';
import { MemorySessionStore } from '../../src/store/session-store.js';
import { makeCerts } from '../helpers/certs.js';
import { startTestH3Server } from '../helpers/h3-server.js';
import { until } from '../helpers/wait.js';

const certs = makeCerts();
let srv: H3Server;
const hits: string[] = [];

beforeAll(async () => {
  srv = await startTestH3Server({
    handler: (r) => {
      hits.push(r.path);
      return { status: 200, body: `ok ${r.path}\n` };
    },
  });
});
afterAll(async () => {
  await srv?.close(50);
});

async function text(r: Readable): Promise<string> {
  let s = '';
  for await (const c of r) s += String(c);
  return s;
}

const req = (path: string, allowEarlyData: boolean): ConnRequest => ({
  method: 'GET',
  path,
  authority: 'localhost',
  scheme: 'https',
  headers: [],
  body: null,
  allowEarlyData,
});

/** A connection to `port` keeping its tickets in `store`. */
const dial = (port: number, store: MemorySessionStore) =>
  connectH3({
    host: '127.0.0.1',
    port,
    servername: 'localhost',
    ca: certs.caPath,
    sessionStore: store,
    sessionKey: 'k',
  });

describe('0-RTT anti-replay on our h3 server', () => {
  it('a captured first flight replayed from new ports after its connection is gone: the request is handled once, the copies get no early data', async () => {
    const port = srv.address.port;
    const store = new MemorySessionStore();
    const c0 = await dial(port, store);
    expect(await text((await c0.request(req('/prime', false))).body)).toBe('ok /prime\n');
    c0.destroy();

    // The relay: client → server datagrams sent before the server's first answer are the first flight.
    const relay = dgram.createSocket('udp4');
    const flight: Buffer[] = [];
    let answered = false;
    let afterAnswer = 0;
    let client: dgram.RemoteInfo | null = null;
    relay.on('message', (m, from) => {
      if (from.port === port) {
        answered = true;
        if (client) relay.send(m, client.port, client.address);
        return;
      }
      client = from;
      if (!answered) flight.push(Buffer.from(m));
      else afterAnswer++;
      relay.send(m, port, '127.0.0.1');
    });
    await new Promise<void>((r) => relay.bind(0, '127.0.0.1', () => r()));
    try {
      const c1 = await dial(relay.address().port, store);
      const r = (await c1.request(req('/replay-me', true))) as H3Response;
      expect(r.earlyData).toBe(true);
      expect(await text(r.body)).toBe('ok /replay-me\n');
      // The answer came with the server's first flight (0.5-RTT): let the client's Finished leave, then close.
      await until(() => afterAnswer > 0, 2000);
      c1.destroy();
      // Its CONNECTION_CLOSE goes through the relay: the server forgets the connection (and its DCID).
      await until(() => srv.connections === 0, 5000);
    } finally {
      relay.close();
    }
    expect(flight.length).toBeGreaterThan(0);
    expect(srv.connections).toBe(0);

    const before = srv.stats().replayedEarly;
    for (let i = 0; i < 3; i++) {
      const s = dgram.createSocket('udp4');
      await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
      for (const m of flight) s.send(m, port, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 300));
      s.close();
    }
    expect(hits.filter((p) => p === '/replay-me')).toHaveLength(1);
    expect(srv.stats().replayedEarly - before).toBeGreaterThanOrEqual(1);
  });

  it('a resumed client is not held back by it: each new connection of its own gets 0-RTT', async () => {
    const port = srv.address.port;
    const store = new MemorySessionStore();
    const c0 = await dial(port, store);
    await text((await c0.request(req('/prime2', false))).body);
    c0.destroy();
    for (let i = 0; i < 3; i++) {
      const c = await dial(port, store);
      const r = (await c.request(req(`/again/${i}`, true))) as H3Response;
      expect(await text(r.body)).toBe(`ok /again/${i}\n`);
      expect(r.earlyData).toBe(true);
      c.destroy();
    }
  });
});
