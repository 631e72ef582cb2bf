/**
 * HTTP/3 pool transport (connectH3) against our own HTTP/3 server over real
 * UDP on 127.0.0.1: GET/POST, 1 MiB byte-identical, 100 concurrent requests
 * on one connection, streamed bodies, abort, GOAWAY drain, resumption and
 * 0-RTT with a session store.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { makeCerts, type TestCerts } from '../helpers/certs.js';
import { connectH3 } from '../../src/connect/h3.js';
import type { H3Response } from '../../src/client/h3.js';
import type { H3Server } from '../../src/server/h3.js';
import { startTestH3Server } from '../helpers/h3-server.js';
import { MemorySessionStore } from '../../src/store/session-store.js';
import { ErrorCode, OriginlinkError } from '../../src/errors.js';
import type { ConnRequest } from '../../src/http/types.js';

let certs: TestCerts;
let server: H3Server;
const big = randomBytes(1024 * 1024);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function readAll(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

function req(path: string, extra: Partial<ConnRequest> = {}): ConnRequest {
  return {
    method: 'GET',
    path,
    authority: `localhost:${server.address.port}`,
    scheme: 'https',
    headers: [],
    body: null,
    ...extra,
  };
}

beforeAll(async () => {
  certs = makeCerts();
  server = await startTestH3Server({
    async handler(r) {
      if (r.path === '/big') return { status: 200, headers: [['content-type', 'application/octet-stream']], body: big };
      if (r.path === '/echo') {
        const body = await readAll(r.body);
        return {
          status: 200,
          headers: [
            ['x-sha256', sha(body)],
            ['x-method', r.method],
          ],
          body,
        };
      }
      if (r.path === '/slow') {
        await new Promise((res) => setTimeout(res, 5000));
        return { status: 200, body: 'late' };
      }
      if (r.path === '/trailers') return { status: 200, body: 'with trailers', trailers: [['x-done', 'yes']] };
      if (r.path === '/drip') {
        // A streamed body that never ends on its own.
        const body = new Readable({ read() {} });
        const t = setInterval(() => body.push(Buffer.alloc(1000, 0x61)), 20);
        body.on('close', () => clearInterval(t));
        r.signal.addEventListener('abort', () => body.destroy(), { once: true });
        return { status: 200, body };
      }
      return { status: 200, headers: [['x-path', r.path]], body: `hello ${r.path}` };
    },
  });
});

afterAll(async () => {
  await server?.close(100);
});

describe('HTTP/3 transport against our server', () => {
  it('GET, facts, 1 MiB byte-identical, trailers', async () => {
    const c = await connectH3({
      host: '127.0.0.1',
      port: server.address.port,
      servername: 'localhost',
      ca: certs.caPath,
    });
    expect(c.facts.alpn).toBe('h3');
    expect(c.facts.connectMs).toBeGreaterThan(0);
    expect(c.facts.resumed).toBe(false);
    // The handshake's RTT sample, read from the active path (loopback: whole ms, so 0 or a few).
    expect(c.facts.rttMs).toBeTypeOf('number');
    expect(c.facts.rttMs).toBeLessThan(50);
    // The server's initial_max_streams_bidi (src/quic/config.ts's default, 128), read by the binding's own getter.
    expect(c.facts.peerMaxConcurrentStreams).toBe(128);
    expect(c.capacity).toBe(128);
    const r = await c.request(req('/hi'));
    expect(r.status).toBe(200);
    expect(r.headers).toContainEqual(['x-path', '/hi']);
    expect((await readAll(r.body)).toString()).toBe('hello /hi');
    const b = await c.request(req('/big'));
    const got = await readAll(b.body);
    expect(got.length).toBe(big.length);
    expect(sha(got)).toBe(sha(big));
    const t = await c.request(req('/trailers'));
    expect((await readAll(t.body)).toString()).toBe('with trailers');
    expect(await t.trailers).toEqual([['x-done', 'yes']]);
    expect(c.served).toBe(3);
    expect(c.isUsable()).toBe(true);
    expect(await c.ping(2000)).toBeGreaterThanOrEqual(0);
    c.destroy();
  });

  it('a GET whose handler reads the body gets an empty, ended one (made on first read: the FIN came with the HEADERS)', async () => {
    const c = await connectH3({
      host: '127.0.0.1',
      port: server.address.port,
      servername: 'localhost',
      ca: certs.caPath,
    });
    const r = await c.request(req('/echo'));
    expect(r.headers).toContainEqual(['x-sha256', sha(Buffer.alloc(0))]);
    expect((await readAll(r.body)).length).toBe(0);
    c.destroy();
  });

  it('POST with a buffer body and a streamed body', async () => {
    const c = await connectH3({
      host: '127.0.0.1',
      port: server.address.port,
      servername: 'localhost',
      ca: certs.caPath,
    });
    const payload = randomBytes(300_000);
    const r = await c.request(req('/echo', { method: 'POST', body: payload }));
    expect(r.headers).toContainEqual(['x-sha256', sha(payload)]);
    expect(sha(await readAll(r.body))).toBe(sha(payload));
    async function* gen(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 20; i++) yield payload.subarray(i * 15_000, (i + 1) * 15_000);
    }
    const s = await c.request(req('/echo', { method: 'PUT', body: gen() }));
    expect(s.headers).toContainEqual(['x-sha256', sha(payload)]);
    expect(s.headers).toContainEqual(['x-method', 'PUT']);
    await readAll(s.body);
    c.destroy();
  });

  it('answers expect: 100-continue with an interim 100 that the client skips (RFC 9110 §10.1.1, RFC 9114 §4.1)', async () => {
    const c = await connectH3({
      host: '127.0.0.1',
      port: server.address.port,
      servername: 'localhost',
      ca: certs.caPath,
    });
    const payload = randomBytes(10_000);
    const r = await c.request(req('/echo', { method: 'POST', headers: [['expect', '100-continue']], body: payload }));
    // With the client's 1xx skip (client/h3.ts) disabled this sees 100: the server did send it.
    expect(r.status).toBe(200);
    expect(sha(await readAll(r.body))).toBe(sha(payload));
    c.destroy();
  });

  it('runs 100 concurrent requests on one connection', async () => {
    const c = await connectH3({
      host: '127.0.0.1',
      port: server.address.port,
      servername: 'localhost',
      ca: certs.caPath,
    });
    const rs = await Promise.all(Array.from({ length: 100 }, (_, i) => c.request(req(`/n/${i}`))));
    const bodies = await Promise.all(rs.map((r) => readAll(r.body)));
    bodies.forEach((b, i) => expect(b.toString()).toBe(`hello /n/${i}`));
    expect(c.served).toBe(100);
    c.destroy();
  });

  it('queues requests beyond the peer stream limit until credit returns', async () => {
    const tight = await startTestH3Server({
      quic: { maxStreamsBidi: 10 },
      handler: (r) => ({ status: 200, body: r.path }),
    });
    const c = await connectH3({
      host: '127.0.0.1',
      port: tight.address.port,
      servername: 'localhost',
      ca: certs.caPath,
    });
    expect(c.capacity).toBe(10);
    const rs = await Promise.all(Array.from({ length: 50 }, (_, i) => c.request(req(`/q/${i}`))));
    const bodies = await Promise.all(rs.map((r) => readAll(r.body)));
    bodies.forEach((b, i) => expect(b.toString()).toBe(`/q/${i}`));
    c.destroy();
    await tight.close(50);
  });

  it('opens streams while other uploads wait for flow-control credit, within the peer stream limit', async () => {
    // A request stream is created in quiche by its first write when nothing else waits (quic/connection.ts
    // `openBidi`); here every stream after the first opens while earlier uploads wait for credit, so each must be
    // created explicitly, or quiche's count of open streams falls behind and a stream past the limit is refused.
    const tight = await startTestH3Server({
      quic: { maxStreamsBidi: 3, maxStreamData: 16 * 1024 },
      async handler(r) {
        const body = await readAll(r.body);
        return { status: 200, headers: [['x-sha256', sha(body)]], body: r.path };
      },
    });
    const c = await connectH3({
      host: '127.0.0.1',
      port: tight.address.port,
      servername: 'localhost',
      ca: certs.caPath,
    });
    const payloads = Array.from({ length: 12 }, () => randomBytes(200_000));
    const rs = await Promise.all(payloads.map((p, i) => c.request(req(`/up/${i}`, { method: 'POST', body: p }))));
    for (const [i, r] of rs.entries()) {
      expect(r.status).toBe(200);
      expect(r.headers).toContainEqual(['x-sha256', sha(payloads[i]!)]);
      expect((await readAll(r.body)).toString()).toBe(`/up/${i}`);
    }
    c.destroy();
    await tight.close(50);
  });

  it('applies backpressure to a slow response reader through QUIC flow control', async () => {
    const huge = randomBytes(24 * 1024 * 1024);
    const srv = await startTestH3Server({ handler: () => ({ status: 200, body: huge }) });
    const c = await connectH3({ host: '127.0.0.1', port: srv.address.port, servername: 'localhost', ca: certs.caPath });
    const r = await c.request(req('/huge'));
    await new Promise((res) => setTimeout(res, 400));
    const received = c.quicStats().bytesReceived;
    // Stream window (4 MiB) + our readable buffer: far below the 24 MiB body.
    expect(received).toBeLessThan(10 * 1024 * 1024);
    const got = await readAll(r.body);
    expect(sha(got)).toBe(sha(huge));
    c.destroy();
    await srv.close(50);
  });

  it('our server relays a streamed body no faster than a slow reader takes it (stream paused, not read ahead)', async () => {
    const total = 32 * 1024 * 1024;
    let made = 0;
    const srv = await startTestH3Server({
      handler: () => ({
        status: 200,
        body: new Readable({
          read() {
            if (made >= total) {
              this.push(null);
              return;
            }
            made += 65536;
            this.push(Buffer.alloc(65536, 0x63));
          },
        }),
      }),
    });
    const c = await connectH3({ host: '127.0.0.1', port: srv.address.port, servername: 'localhost', ca: certs.caPath });
    const r = await c.request(req('/made-as-read'));
    await new Promise((res) => setTimeout(res, 400));
    // The stream window, the QUIC write queue's mark and a Readable's buffer: a few MiB, not the 32 of the body.
    expect(made).toBeGreaterThan(0);
    expect(made).toBeLessThan(12 * 1024 * 1024);
    expect((await readAll(r.body)).length).toBe(total);
    c.destroy();
    await srv.close(50);
  });

  it('a request body that fails after its whole answer: the stream is cancelled, its credit comes back (two streams, four requests)', async () => {
    // Two request streams at a time: a stream we never end or reset keeps its credit (RFC 9000 §4.6), and the
    // fourth request could not open one.
    const srv = await startTestH3Server({
      quic: { maxStreamsBidi: 2 },
      handler: () => ({ status: 200, body: 'early\n' }),
    });
    const c = await connectH3({ host: '127.0.0.1', port: srv.address.port, servername: 'localhost', ca: certs.caPath });
    try {
      for (let i = 0; i < 3; i++) {
        if (i > 0) {
          const until = Date.now() + 2000;
          while (c.active !== 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
        }
        async function* failing(): AsyncGenerator<Buffer> {
          yield Buffer.alloc(1024, 0x61);
          await new Promise((r) => setTimeout(r, 30));
          throw new Error('source broke');
        }
        const r = await c.request(
          req(`/f/${i}`, { method: 'POST', headers: [['content-length', '4096']], body: failing() }),
        );
        expect((await readAll(r.body)).toString()).toBe('early\n');
      }
      // Each stream counts while its body may still leave, then its cancel frees it.
      const end = Date.now() + 2000;
      while (c.active !== 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
      expect(c.active).toBe(0);
      expect((await readAll((await c.request(req('/after'))).body)).toString()).toBe('early\n');
    } finally {
      c.destroy();
      await srv.close(50);
    }
  });

  it('keeps an idle connection alive past the peer idle timeout with keep-alive packets', async () => {
    const srv = await startTestH3Server({
      quic: { idleTimeoutMs: 600 },
      handler: () => ({ status: 200, body: 'alive' }),
    });
    const base = { host: '127.0.0.1', port: srv.address.port, servername: 'localhost', ca: certs.caPath };
    const kept = await connectH3({ ...base, keepAliveMs: 150 });
    const idle = await connectH3({ ...base, keepAliveMs: 0 });
    await new Promise((r) => setTimeout(r, 1500));
    expect(idle.state).toBe('closed');
    expect(kept.isUsable()).toBe(true);
    expect((await readAll((await kept.request(req('/'))).body)).toString()).toBe('alive');
    kept.destroy();
    await srv.close(50);
  });

  it('aborts a request with H3_REQUEST_CANCELLED and keeps the connection', async () => {
    const c = await connectH3({
      host: '127.0.0.1',
      port: server.address.port,
      servername: 'localhost',
      ca: certs.caPath,
    });
    const ac = new AbortController();
    const p = c.request(req('/slow', { signal: ac.signal }));
    setTimeout(() => ac.abort(), 50);
    const err = (await p.catch((e: unknown) => e)) as OriginlinkError;
    expect(err.code).toBe(ErrorCode.ABORTED);
    expect(err.facts?.responseStarted).toBe(false);
    const r = await c.request(req('/after'));
    expect((await readAll(r.body)).toString()).toBe('hello /after');
    c.destroy();
  });

  it("the server's request signal fires when the client cancels mid-upload, also when first read after the reset", async () => {
    const seen: Array<{ early: boolean; reason: unknown }> = [];
    let arrived: () => void = () => {};
    const own = await startTestH3Server({
      async handler(r) {
        arrived();
        if (r.path === '/watch') {
          // Read the signal at once and wait for it.
          const sig = r.signal;
          await new Promise<void>((res) => sig.addEventListener('abort', () => res(), { once: true }));
          seen.push({ early: true, reason: sig.reason });
        } else {
          // Look only after the client has gone.
          await new Promise((res) => setTimeout(res, 300));
          seen.push({ early: false, reason: r.signal.aborted ? r.signal.reason : null });
        }
        return { status: 200, body: 'unused' };
      },
    });
    try {
      const c = await connectH3({
        host: '127.0.0.1',
        port: own.address.port,
        servername: 'localhost',
        ca: certs.caPath,
      });
      for (const path of ['/watch', '/late']) {
        const ac = new AbortController();
        // A body that never ends: the cancel resets the client's sending side, which the server reads.
        const body = new Readable({ read() {} });
        body.push('partial');
        let arrivedNow!: () => void;
        const here = new Promise<void>((r) => (arrivedNow = r));
        arrived = arrivedNow;
        const p = c.request({
          ...req(path),
          method: 'POST',
          body,
          authority: `localhost:${own.address.port}`,
          signal: ac.signal,
        });
        await here;
        ac.abort();
        expect(((await p.catch((e: unknown) => e)) as OriginlinkError).code).toBe(ErrorCode.ABORTED);
        for (let i = 0; i < 100 && seen.length < (path === '/watch' ? 1 : 2); i++)
          await new Promise((r) => setTimeout(r, 10));
      }
      expect(seen).toHaveLength(2);
      for (const s of seen) expect((s.reason as OriginlinkError).code).toBe('OL_STREAM_RESET');
      c.destroy();
    } finally {
      await own.close(50);
    }
  });

  it('drains on GOAWAY from the server and refuses new requests as retry-safe', async () => {
    const own = await startTestH3Server({ handler: () => ({ status: 200, body: 'x' }) });
    const c = await connectH3({ host: '127.0.0.1', port: own.address.port, servername: 'localhost', ca: certs.caPath });
    await readAll((await c.request(req('/1'))).body);
    const events: string[] = [];
    c.on((ev) => events.push(ev.type));
    const closing = own.close(200);
    for (let i = 0; i < 50 && !events.includes('goaway'); i++) await new Promise((r) => setTimeout(r, 10));
    expect(events).toContain('goaway');
    expect(c.state).not.toBe('ready');
    const err = (await c.request(req('/2')).catch((e: unknown) => e)) as OriginlinkError;
    expect(err.retrySafe).toBe(true);
    await closing;
    for (let i = 0; i < 50 && c.state !== 'closed'; i++) await new Promise((r) => setTimeout(r, 10));
    expect(c.state).toBe('closed');
  });

  it('resumes with a stored session and sends 0-RTT for allowed requests', async () => {
    const store = new MemorySessionStore();
    const opts = {
      host: '127.0.0.1',
      port: server.address.port,
      servername: 'localhost',
      ca: certs.caPath,
      sessionStore: store,
    };
    const c1 = await connectH3(opts);
    await readAll((await c1.request(req('/first'))).body);
    c1.destroy();
    expect(store.size).toBe(1);
    const c2 = await connectH3(opts);
    const r = await c2.request(req('/early', { allowEarlyData: true }));
    expect((await readAll(r.body)).toString()).toBe('hello /early');
    expect(c2.facts.resumed).toBe(true);
    expect(r.earlyData).toBe(true);
    expect(c2.facts.earlyData).toBe(true);
    c2.destroy();
  });

  it('resends refused 0-RTT requests after the handshake when the server cannot resume; unreplayable bodies fail as EARLY_DATA_REJECTED', async () => {
    const store = new MemorySessionStore();
    const other = await startTestH3Server({ handler: () => ({ status: 200, body: 'other' }) });
    const opts = {
      host: '127.0.0.1',
      servername: 'localhost',
      ca: certs.caPath,
      sessionStore: store,
      sessionKey: 'shared',
    };
    const c1 = await connectH3({ ...opts, port: server.address.port });
    await readAll((await c1.request(req('/first'))).body);
    c1.destroy();
    // The ticket came from another server (another ticket key): resumption and early data fail.
    const c2 = await connectH3({ ...opts, port: other.address.port });
    const streamed = c2
      .request(req('/echo', { method: 'POST', allowEarlyData: true, body: Readable.from([Buffer.from('once')]) }))
      .catch((e: unknown) => e);
    const r = (await c2.request(req('/early', { allowEarlyData: true }))) as H3Response;
    expect((await readAll(r.body)).toString()).toBe('other');
    expect(r.earlyData).toBe(false);
    expect(r.earlyDataRefused).toBe('rejected');
    const err = (await streamed) as OriginlinkError;
    expect(err.code).toBe(ErrorCode.EARLY_DATA_REJECTED);
    expect(err.retrySafe).toBe(true);
    expect(c2.facts.resumed).toBe(false);
    const again = await c2.request(req('/again'));
    expect((await readAll(again.body)).toString()).toBe('other');
    c2.destroy();
    await other.close(50);
  });

  it('fails clearly on an untrusted certificate', async () => {
    const err = (await connectH3({
      host: '127.0.0.1',
      port: server.address.port,
      servername: 'localhost',
      ca: certs.certPath,
    }).catch((e: unknown) => e)) as OriginlinkError;
    expect(err).toBeInstanceOf(OriginlinkError);
    expect(err.code).toBe(ErrorCode.CERT_INVALID);
    const err2 = (await connectH3({
      host: '127.0.0.1',
      port: server.address.port,
      servername: 'wrong.invalid',
      ca: certs.caPath,
    }).catch((e: unknown) => e)) as OriginlinkError;
    expect(err2.code).toBe(ErrorCode.CERT_INVALID);
  });
});
