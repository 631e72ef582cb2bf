/**
 * Abuse of the connector's HTTP/3 front (issue 19): a client that opens
 * request streams and resets them at once (HTTP/2's rapid reset,
 * CVE-2023-44487, over QUIC) costs the origin at most the reset limit (a
 * request opened and reset in one receive pass never reaches the handler) and
 * loses its connection with H3_EXCESSIVE_LOAD (RFC 9114 §8.1), while other
 * clients are served. Before: 78 of 1,000 reached the origin and the
 * connection stayed up.
 *
 * Stream-open floods (RFC 9114 §10.5): request streams opened with a head
 * that never completes, or that stays blocked on QPACK inserts that never
 * come, are rejected with H3_REQUEST_REJECTED after requestHeaderTimeoutMs
 * (before: held for the connection's life, the window never came back); a
 * client blocking more streams than our SETTINGS_QPACK_BLOCKED_STREAMS loses
 * its connection with QPACK_DECOMPRESSION_FAILED (RFC 9204 §2.1.2).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { startH1Server, type H1Server } from '../../src/server/h1.js';
import { connectH3 } from '../../src/connect/h3.js';
import type { ConnRequest } from '../../src/http/types.js';
import type { OriginlinkError } from '../../src/errors.js';
import { startH3Server } from '../../src/server/h3.js';
import { makeCerts } from '../helpers/certs.js';
import { rawH3Client } from '../helpers/h3-raw-client.js';
import { getAt } from '../helpers/h3-request.js';
import { encodeFrame, FrameType } from '../../src/codec/h3frame.js';
import { QpackEncoder } from '../../src/codec/qpack/encoder.js';

const certs = makeCerts();
let origin: H1Server;
let svc: Service;
let quicPort = 0;
const seen: string[] = [];

beforeAll(async () => {
  origin = await startH1Server({
    handler: async (req) => {
      seen.push(req.path);
      await new Promise((r) => setTimeout(r, 100));
      return { status: 200, body: `ok ${req.path}\n` };
    },
  });
  const yaml = `
listeners:
  - { name: q, kind: h3, host: 127.0.0.1, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} }, quic: { qpack: { maxTableCapacity: 0 } } }
admin: false
logging: { requests: false }
limits: { requestHeaderTimeoutMs: 1000 }
origins:
  o: { url: "http://127.0.0.1:${origin.address.port}", protocol: h1, retries: 0 }
routes: [ { path: /, origin: o } ]
`;
  svc = await Service.start(parseConfig(yaml, 'h3-abuse.yaml', certs.dir), { logDestination: { write: () => {} } });
  quicPort = svc.addresses()['q'] as number;
});

afterAll(async () => {
  await svc?.shutdown(200);
  await origin?.close(100);
});

const get = (path: string, signal?: AbortSignal): ConnRequest => ({ ...getAt(path), ...(signal ? { signal } : {}) });

describe('the h3 front under abuse', () => {
  it('rapid reset over QUIC: of 1,000 requests each reset as it is sent, at most the reset limit reach the origin, the connection is closed with H3_EXCESSIVE_LOAD, others are served', {
    timeout: 30_000,
  }, async () => {
    const c = await connectH3({ host: '127.0.0.1', port: quicPort, servername: 'localhost', ca: certs.caPath });
    let closeError: Error | null = null;
    c.on((ev) => {
      if (ev.type === 'close') closeError = ev.error;
    });
    // The flood starts in the handshake's first round trip, where a 1-RTT packet can be dropped by the server:
    // quiche 0.18 never retransmitted a lost STOP_SENDING, so this test sent one ordinary request first (the
    // flood's first 128 cancels were otherwise never seen); quiche ≥ 0.26 resends it (native-notes/quic-addon.md
    // item 4): no warm-up (4 of 4 runs here on our engine; the drop it guarded against is timing-dependent).
    const settled: Array<Promise<unknown>> = [];
    try {
      for (let i = 0; i < 1000 && c.state !== 'closed'; i++) {
        const ac = new AbortController();
        const p = c.request(get(`/rr/${i}`, ac.signal)).catch(() => {});
        ac.abort();
        settled.push(p);
        if (i % 50 === 49) await new Promise((r) => setImmediate(r));
      }
      await Promise.allSettled(settled);
      await new Promise((r) => setTimeout(r, 500));
      const reached = seen.filter((p) => p.startsWith('/rr/')).length;
      console.log(
        `rapid reset over h3: ${reached} of 1000 reached the origin; connection ${c.state}: ${(closeError as Error | null)?.message}`,
      );
      // Each pair that lands in one receive pass never reaches the handler; the others are bounded by the
      // reset limit (100 per second, as on HTTP/2), after which the connection is gone.
      expect(reached).toBeLessThanOrEqual(100);
      expect(c.state).toBe('closed');
      expect(String((closeError as Error | null)?.message)).toMatch(/0x107|EXCESSIVE_LOAD|reset per second/i);
    } finally {
      c.destroy();
    }
    // Another client is served.
    const d = await connectH3({ host: '127.0.0.1', port: quicPort, servername: 'localhost', ca: certs.caPath });
    try {
      const r = await d.request(get('/after'));
      let text = '';
      for await (const x of r.body) text += String(x);
      expect([r.status, text]).toEqual([200, 'ok /after\n']);
    } finally {
      d.destroy();
    }
  });

  it('stream-open flood: every stream the window allows opened with a head that never completes is rejected after requestHeaderTimeoutMs (0x10b), the window comes back, the origin sees none, others are served meanwhile', {
    timeout: 30_000,
  }, async () => {
    const raw = await rawH3Client(quicPort, certs.caPath);
    const PARTIAL = Uint8Array.from([0x01, 0x10, 0x00, 0x00]); // HEADERS claiming 16 bytes, 2 of them sent
    const before = seen.length;
    const opened: number[] = [];
    const lat: number[] = [];
    const other = await connectH3({ host: '127.0.0.1', port: quicPort, servername: 'localhost', ca: certs.caPath });
    try {
      const t0 = Date.now();
      // For 3 s: open every stream the window allows (bounded per turn), and time another client's requests.
      while (Date.now() - t0 < 3000) {
        for (let k = 0; k < 1000; k++) {
          const id = raw.conn.openBidi();
          if (id === null) break;
          raw.conn.send(id, PARTIAL, false);
          opened.push(id);
        }
        const s0 = performance.now();
        const r = await other.request(get(`/other/${lat.length}`));
        for await (const _ of r.body) {
          /* drain */
        }
        lat.push(performance.now() - s0);
      }
    } finally {
      other.destroy();
    }
    await new Promise((r) => setTimeout(r, 200));
    const rejected = [...raw.resets.values()].filter((c) => c === 0x10b).length;
    console.log(
      `stream-open flood: ${opened.length} streams opened in 3 s (window 128), ${rejected} reset with H3_REQUEST_REJECTED; other client's p50/max ${lat.sort((a, b) => a - b)[lat.length >> 1]?.toFixed(1)}/${lat.at(-1)?.toFixed(1)} ms over ${lat.length} requests`,
    );
    raw.conn.close(0x100, 'done');
    // The first window was rejected after 0.5–1 s, its streams came back and were opened again.
    expect(rejected).toBeGreaterThanOrEqual(128);
    expect(opened.length).toBeGreaterThan(128);
    // No flood request reached the origin; the other client's 100 ms origin answers were not held up.
    expect(seen.slice(before).filter((p) => !p.startsWith('/other/'))).toEqual([]);
    expect(lat.length).toBeGreaterThanOrEqual(10);
    expect(lat.at(-1)!).toBeLessThan(1000);
  });

  it('QPACK: a front configured without a dynamic table (quic.qpack.maxTableCapacity 0), so a section that references one is QPACK_DECOMPRESSION_FAILED (0x200) and reaches nobody', {
    timeout: 15_000,
  }, async () => {
    const raw = await rawH3Client(quicPort, certs.caPath);
    const before = seen.length;
    const id = raw.conn.openBidi()!;
    raw.conn.send(id, BLOCKED_ON_INSERT_1, true);
    const err = (await raw.closed) as OriginlinkError;
    expect(err.details['wireCode']).toBe(0x200);
    expect(seen.length).toBe(before);
  });

  it('QPACK blocked streams (a server with a dynamic table, 2 blocked streams allowed): blocked sections wait at most the headers timeout (0x10b); one blocked stream more closes the connection with 0x200 (RFC 9204 §2.1.2)', {
    timeout: 15_000,
  }, async () => {
    const handled: string[] = [];
    const server = await startH3Server({
      host: '127.0.0.1',
      cert: certs.certPath,
      key: certs.keyPath,
      headersTimeoutMs: 400,
      qpack: { maxTableCapacity: 4096, blockedStreams: 2 },
      handler: (req) => {
        handled.push(req.path);
        return { status: 200, body: 'ok' };
      },
    });
    try {
      const a = await rawH3Client(server.address.port, certs.caPath);
      const ids = [a.conn.openBidi()!, a.conn.openBidi()!];
      for (const id of ids) a.conn.send(id, BLOCKED_ON_INSERT_1, true);
      const t0 = Date.now();
      while (a.resets.size < 2 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 20));
      expect(ids.map((id) => a.resets.get(id))).toEqual([0x10b, 0x10b]);
      expect(server.headTimeouts).toBe(2);
      a.conn.close(0x100, 'done');

      const b = await rawH3Client(server.address.port, certs.caPath);
      for (let i = 0; i < 3; i++) b.conn.send(b.conn.openBidi()!, BLOCKED_ON_INSERT_1, true);
      const err = (await b.closed) as OriginlinkError;
      expect(err.details['wireCode']).toBe(0x200);
      expect(handled).toEqual([]);
    } finally {
      await server.close(100);
    }
  });
  it('QPACK: DATA behind a head blocked on an insert that never comes stays in QUIC flow control, not in our memory (RFC 9204 §2.2.1)', {
    timeout: 15_000,
  }, async () => {
    const server = await startH3Server({
      host: '127.0.0.1',
      cert: certs.certPath,
      key: certs.keyPath,
      headersTimeoutMs: 5000,
      qpack: { maxTableCapacity: 4096, blockedStreams: 2 },
      handler: () => ({ status: 200, body: 'ok' }),
    });
    try {
      const a = await rawH3Client(server.address.port, certs.caPath);
      const id = a.conn.openBidi()!;
      a.conn.send(id, BLOCKED_ON_INSERT_1, false);
      // DATA frames (type 0, 60,000 bytes each) as fast as the client's queue lets them leave, for 1.5 s.
      const chunk = encodeFrame(FrameType.DATA, new Uint8Array(60_000));
      let handed = 0;
      const t0 = Date.now();
      while (Date.now() - t0 < 1500) {
        while (a.conn.queuedBytes(id) < 1_000_000 && handed < 2_000_000_000) {
          a.conn.send(id, chunk, false);
          handed += chunk.length;
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      const taken = handed - a.conn.queuedBytes(id);
      // What left the client is what the server let its flow control take: a window or so, not the loopback's line rate
      // (before: 1.5 GB of server memory in 6 s on one stream).
      expect(taken).toBeLessThan(32 * 1024 * 1024);
      expect(a.resets.has(id)).toBe(false); // still waiting for its head, within the 5 s timeout
      a.conn.close(0x100, 'done');
    } finally {
      await server.close(100);
    }
  });
});

describe('an upload answered early over HTTP/3', () => {
  it('the server asks the client to stop sending (STOP_SENDING H3_NO_ERROR, RFC 9114 §4.1) instead of reading and dropping the rest', {
    timeout: 15_000,
  }, async () => {
    const server = await startH3Server({
      host: '127.0.0.1',
      cert: certs.certPath,
      key: certs.keyPath,
      handler: () => ({ status: 413, body: 'too big\n' }),
    });
    try {
      const a = await rawH3Client(server.address.port, certs.caPath);
      const id = a.conn.openBidi()!;
      const head = new QpackEncoder({ maxTableCapacity: 0 }).encode([
        [':method', 'POST'],
        [':scheme', 'https'],
        [':authority', 'localhost'],
        [':path', '/up'],
        ['content-length', '50000000'],
      ]);
      a.conn.send(id, encodeFrame(FrameType.HEADERS, head), false);
      const chunk = encodeFrame(FrameType.DATA, new Uint8Array(60_000));
      let handed = 0;
      const t0 = Date.now();
      while (!a.stops.has(id) && Date.now() - t0 < 3000 && handed < 50_000_000) {
        while (a.conn.queuedBytes(id) < 500_000 && handed < 50_000_000) {
          a.conn.send(id, chunk, false);
          handed += chunk.length;
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      expect(a.stops.get(id)).toBe(0x100);
      expect(handed).toBeLessThan(50_000_000);
      a.conn.close(0x100, 'done');
    } finally {
      await server.close(100);
    }
  });
});

describe('critical streams (RFC 9114 §6.2.1)', () => {
  it('a STOP_SENDING on the server’s control stream closes the connection with H3_CLOSED_CRITICAL_STREAM', {
    timeout: 10_000,
  }, async () => {
    const server = await startH3Server({
      host: '127.0.0.1',
      cert: certs.certPath,
      key: certs.keyPath,
      handler: () => ({ status: 200, body: 'ok' }),
    });
    try {
      const a = await rawH3Client(server.address.port, certs.caPath);
      const t0 = Date.now();
      while (!(a.received.get(3) ?? 0) && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 10)); // its SETTINGS came
      a.conn.stopSending(3, 0x100);
      const err = (await Promise.race([a.closed, new Promise((r) => setTimeout(() => r('still open'), 2000))])) as
        | OriginlinkError
        | string;
      expect(typeof err === 'string' ? err : err.details['wireCode']).toBe(0x104);
    } finally {
      await server.close(100);
    }
  });
});

describe('graceful close of the HTTP/3 server (RFC 9114 §5.2)', () => {
  it('requests below the GOAWAY id are finished within the grace: a large answer read slowly arrives whole, a head that comes after the GOAWAY is still served', {
    timeout: 20_000,
  }, async () => {
    const BIG = Buffer.alloc(4 * 1024 * 1024, 0x5a);
    const server = await startH3Server({
      host: '127.0.0.1',
      cert: certs.certPath,
      key: certs.keyPath,
      handler: (req) => ({ status: 200, body: req.path === '/big' ? BIG : `ok ${req.path}\n` }),
    });
    const c = await connectH3({
      host: '127.0.0.1',
      port: server.address.port,
      servername: 'localhost',
      ca: certs.caPath,
    });
    const raw = await rawH3Client(server.address.port, certs.caPath);
    let closing: Promise<void> | null = null;
    try {
      // A head in two parts: the first before the close, the rest 150 ms after its GOAWAY.
      const id = raw.conn.openBidi()!;
      const head = encodeFrame(
        FrameType.HEADERS,
        new QpackEncoder({ maxTableCapacity: 0 }).encode([
          [':method', 'GET'],
          [':scheme', 'https'],
          [':authority', 'localhost'],
          [':path', '/late'],
        ]),
      );
      raw.conn.send(id, head.subarray(0, 3), false);
      const res = await c.request(get('/big'));
      const body = res.body;
      body.pause(); // a reader that falls behind: most of the answer still waits on our side when the close begins
      const ended = new Promise<void>((resolve, reject) => {
        body.once('end', () => resolve());
        body.once('error', reject);
      });
      await new Promise((r) => setTimeout(r, 100));
      closing = server.close(10_000);
      await new Promise((r) => setTimeout(r, 150));
      raw.conn.send(id, head.subarray(3), true);
      let n = 0;
      body.on('data', (d: Buffer) => {
        n += d.length;
      });
      await new Promise((r) => setTimeout(r, 300));
      body.resume();
      await ended;
      expect(n).toBe(BIG.length);
      const t0 = Date.now();
      while (!(raw.received.get(id) ?? 0) && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 20));
      expect(raw.received.get(id) ?? 0).toBeGreaterThan(0); // its answer came (was: the connection closed at once, the request lost)
      expect(raw.resets.has(id)).toBe(false);
    } finally {
      raw.conn.close(0x100, 'done');
      c.destroy();
      await (closing ?? server.close(100));
    }
  });
});

/** HEADERS whose section needs dynamic table insert 1 (RFC 9204 §4.5.1: Required Insert Count 1 encodes as 2 with a 4096-byte table), base 1, field: dynamic index 0. */
const BLOCKED_ON_INSERT_1 = Uint8Array.from([0x01, 0x03, 0x02, 0x00, 0x80]);

describe('a request stream opened and reset in one packet (HEADERS, then RESET_STREAM)', () => {
  it('gives its stream credit back: far more than one window (128) of such streams open over time, and the connection serves on', {
    timeout: 20_000,
  }, async () => {
    const server = await startH3Server({
      host: '127.0.0.1',
      cert: certs.certPath,
      key: certs.keyPath,
      handler: () => ({ status: 200, body: 'ok' }),
    });
    try {
      const raw = await rawH3Client(server.address.port, certs.caPath);
      const head = encodeFrame(
        FrameType.HEADERS,
        new QpackEncoder({ maxTableCapacity: 0 }).encode([
          [':method', 'GET'],
          [':scheme', 'https'],
          [':authority', 'localhost'],
          [':path', '/gone'],
        ]),
      );
      let opened = 0;
      const t0 = Date.now();
      // 40 every 100 ms (below the rapid-reset limit), for up to 3 s or 400 streams.
      while (Date.now() - t0 < 3000 && opened < 400) {
        for (let k = 0; k < 40; k++) {
          const id = raw.conn.openBidi();
          if (id === null) break;
          raw.conn.send(id, head, false);
          raw.conn.resetStream(id, 0x10c);
          opened++;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(opened).toBe(400);
      const id = raw.conn.openBidi();
      expect(id).not.toBeNull();
      raw.conn.close(0x100, 'done');
    } finally {
      await server.close(50);
    }
  });
});
