/**
 * A reader that destroys a response body before its end ends the request:
 * what held the response is freed at once. h2 resets the stream with CANCEL
 * (RFC 9113 §8.1) and h3 cancels it (RFC 9114 §4.1.1), their connection
 * staying in use; h1 cannot cancel one request: the rest of the body is read
 * out and thrown away when it is at most 16 KiB and comes within 5 s (or the
 * body timeout), and the connection serves again (Chromium's
 * HttpResponseBodyDrainer); otherwise the connection closes.
 * Origins: node:http (h1), node:http2 over TLS (h2), our HTTP/3 server (h3),
 * each sending 32 MiB, more than any read-ahead (the default stream window is 8 MiB: with a body no larger,
 * the origin could finish sending before the cancel reached it).
 */
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, type OriginResponse } from '../../src/index.js';
import type { H3Server } from '../../src/server/h3.js';
import { makeCerts } from '../helpers/certs.js';
import { startTestH3Server } from '../helpers/h3-server.js';

const certs = makeCerts();
const BIG = Buffer.alloc(32 << 20, 0x61);
let h1: http.Server;
let h1Base = '';
/** When the origin saw each h1 connection close (Date.now()), by the connection; and the one that served each path last. */
const h1ClosedAt = new Map<net.Socket, number>();
const h1ServedBy = new Map<string, net.Socket>();
/** When the connection that served `path` last closed, or null while it is open. */
const closedAt = (path: string): number | null => h1ClosedAt.get(h1ServedBy.get(path) as net.Socket) ?? null;
let h2: http2.Http2SecureServer;
let h2Base = '';
/** The h2 origin's streams that ended by the peer's RST_STREAM, with its code. */
const h2Resets: number[] = [];
let h3: H3Server;
let h3Base = '';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(what: string, check: () => boolean, ms = 3000): Promise<void> {
  for (const t0 = Date.now(); !check(); await sleep(10))
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
}

beforeAll(async () => {
  h1 = http.createServer((req, res) => {
    res.on('error', () => {});
    h1ServedBy.set(req.url as string, req.socket);
    if (req.url === '/small') {
      res.end('small');
      return;
    }
    // 4 KiB at once, the rest 200 ms later: a reader that drops the body after its first chunk leaves 8 KiB.
    if (req.url === '/12k' || req.url === '/chunked') {
      if (req.url === '/12k') res.writeHead(200, { 'content-length': 12 << 10 });
      res.write(Buffer.alloc(4 << 10, 0x62));
      setTimeout(() => res.end(Buffer.alloc(8 << 10, 0x63)), 200);
      return;
    }
    // 4 KiB of 12, then nothing.
    if (req.url === '/stall') {
      res.writeHead(200, { 'content-length': 12 << 10 });
      res.write(Buffer.alloc(4 << 10, 0x62));
      return;
    }
    res.writeHead(200, { 'content-length': BIG.length });
    res.end(BIG);
  });
  h1.on('connection', (s) => s.on('close', () => h1ClosedAt.set(s, Date.now())));
  await new Promise<void>((r) => h1.listen(0, '127.0.0.1', r));
  h1Base = `http://127.0.0.1:${(h1.address() as AddressInfo).port}`;

  // `end(BIG)` queues the whole body in the session: past node's default maxSessionMemory (10 MB) the origin would
  // refuse the next stream (ENHANCE_YOUR_CALM), a limit of this origin, not of the client under test.
  h2 = http2.createSecureServer({ cert: certs.cert, key: certs.key, maxSessionMemory: 128 });
  h2.on('stream', (s, h) => {
    s.on('error', () => {});
    s.on('close', () => {
      if (s.rstCode !== http2.constants.NGHTTP2_NO_ERROR) h2Resets.push(s.rstCode);
    });
    s.respond({ ':status': 200 });
    s.end(h[':path'] === '/small' ? 'small' : BIG);
  });
  await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
  h2Base = `https://localhost:${(h2.address() as AddressInfo).port}`;

  h3 = await startTestH3Server({ handler: (r) => ({ status: 200, body: r.path === '/small' ? 'small' : BIG }) });
  h3Base = `https://localhost:${h3.address.port}`;
});

afterAll(async () => {
  await h3.close(0);
  h1.closeAllConnections();
  await new Promise((r) => h1.close(r));
  await new Promise((r) => h2.close(r));
});

/** Read the first chunk of the body, then destroy it. */
async function dropAfterFirstChunk(res: OriginResponse): Promise<void> {
  await new Promise((r) => res.body.once('data', r));
  res.body.destroy();
}

describe('a reader that drops the response body', () => {
  for (const path of ['/12k', '/chunked']) {
    it(`h1, 8 KiB left (${path === '/12k' ? 'counted' : 'chunked'}): the rest is read out and the connection serves the next request`, async () => {
      const agent = new Agent({ protocol: 'h1' });
      try {
        const res = await agent.request({ url: `${h1Base}${path}` });
        await dropAfterFirstChunk(res);
        // Busy while it drains: a request now waits or dials, it does not land on the draining connection.
        expect(agent.stats()[0]).toMatchObject({ open: 1, busy: 1 });
        await until('the drained connection to be idle', () => agent.stats()[0]!.idle === 1);
        const next = await agent.request({ url: `${h1Base}/small` });
        expect([next.status, await next.text(), next.reused]).toEqual([200, 'small', true]);
        expect(agent.stats()[0]).toMatchObject({ connectionsOpened: 1, connectionsClosed: 0, errors: {} });
        expect(h1ServedBy.get('/small')).toBe(h1ServedBy.get(path));
        expect(closedAt(path)).toBeNull();
      } finally {
        await agent.close();
      }
    });
  }

  it('h1, the rest does not come within the body timeout: the connection closes then', async () => {
    const agent = new Agent({ protocol: 'h1', pool: { bodyTimeoutMs: 500 } });
    try {
      const res = await agent.request({ url: `${h1Base}/stall` });
      await dropAfterFirstChunk(res);
      const dropped = Date.now();
      await until('the origin to see the connection close', () => closedAt('/stall') !== null);
      expect(closedAt('/stall')! - dropped).toBeGreaterThanOrEqual(400);
      expect(closedAt('/stall')! - dropped).toBeLessThan(2000);
      expect(agent.stats()[0]).toMatchObject({ open: 0, busy: 0, connectionsClosed: 1, errors: {} });
    } finally {
      await agent.close();
    }
  });

  it('h1, more than 16 KiB left: the connection closes at once (it cannot cancel one request); the next request gets a new one', async () => {
    const agent = new Agent({ protocol: 'h1' });
    try {
      const res = await agent.request({ url: `${h1Base}/big` });
      await dropAfterFirstChunk(res);
      const dropped = Date.now();
      // Before: the socket stayed paused for the destroyed body, the connection busy for ever.
      await until('the origin to see the connection close', () => closedAt('/big') !== null);
      expect(closedAt('/big')! - dropped).toBeLessThan(1000);
      expect(agent.stats()[0]).toMatchObject({ open: 0, busy: 0, activeRequests: 0, connectionsClosed: 1, errors: {} });
      const next = await agent.request({ url: `${h1Base}/small` });
      expect([next.status, await next.text(), next.reused]).toEqual([200, 'small', false]);
    } finally {
      await agent.close();
    }
  });

  for (const [protocol, base, resets] of [
    ['h2', () => h2Base, () => h2Resets],
    ['h3', () => h3Base, null],
  ] as const) {
    it(`${protocol}: the stream is cancelled, the connection stays and serves the next request`, async () => {
      const agent = new Agent({ protocol, tls: { ca: certs.ca } });
      try {
        const res = await agent.request({ url: `${base()}/big` });
        await dropAfterFirstChunk(res);
        if (resets)
          await until('the origin to see RST_STREAM(CANCEL)', () => resets().includes(http2.constants.NGHTTP2_CANCEL));
        await until('the request to be over', () => agent.stats()[0]!.activeRequests === 0);
        expect(agent.stats()[0]).toMatchObject({ open: 1, busy: 0, connectionsClosed: 0, errors: {} });
        const next = await agent.request({ url: `${base()}/small` });
        expect([next.status, await next.text(), next.reused]).toEqual([200, 'small', true]);
      } finally {
        await agent.close();
      }
    });
  }
});
