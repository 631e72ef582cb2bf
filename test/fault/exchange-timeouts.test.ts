/**
 * Timeouts of ≥ 1 s ride one shared ticker (client/exchange.ts: no Timer
 * per request on multiplexed connections); they must still fire, at most a
 * tick (250 ms) late, and the idle body deadline must move with each chunk.
 * Origin: node:http2 over TLS, answering per path — silent, a head then
 * silence, or chunks every 600 ms. Then the body deadline and a reader that
 * is behind (h1: node:http, h2: node:http2, h3: our server): silence the
 * reader causes by holding the origin paused is not the origin's.
 */
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, OriginlinkError } from '../../src/index.js';
import type { H3Server } from '../../src/server/h3.js';
import { makeCerts } from '../helpers/certs.js';
import { startTestH3Server } from '../helpers/h3-server.js';

const certs = makeCerts();
const BIG = Buffer.alloc(8 << 20, 0x61);
/** Where /bigstall stops: past every protocol's read-ahead (h3's is 256 KiB), so the reader is behind while it stalls. */
const STALL_AT = 4 << 20;
let origin: http2.Http2SecureServer;
let plain: http.Server;
let plainBase = '';
let h3: H3Server;
let h3Base = '';
let base = '';
const timers = new Set<NodeJS.Timeout>();
const later = (ms: number, fn: () => void): void => {
  const t = setTimeout(() => {
    timers.delete(t);
    fn();
  }, ms);
  timers.add(t);
};

beforeAll(async () => {
  origin = http2.createSecureServer({ cert: certs.cert, key: certs.key });
  origin.on('stream', (s, h) => {
    s.on('error', () => {});
    const path = h[':path'];
    if (path === '/silent') return; // no head, ever
    if (path === '/sink') {
      s.resume();
      return;
    } // reads the request body, never answers
    s.respond({ ':status': 200 });
    if (path === '/stall') {
      s.write('first');
      return;
    } // a head and one chunk, then nothing
    if (path === '/big') {
      s.end(BIG);
      return;
    } // 8 MiB at once: more than any read-ahead
    if (path === '/bigstall') {
      s.write(BIG.subarray(0, STALL_AT));
      return;
    } // 4 MiB, then nothing
    let n = 0;
    const tick = (): void => {
      if (s.destroyed) return;
      s.write(`c${n}`);
      if (++n < 3) later(600, tick);
      else s.end();
    };
    tick(); // /drip: 3 chunks 600 ms apart, 1.2 s in all
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  base = `https://localhost:${(origin.address() as AddressInfo).port}`;
  // The same two bodies over HTTP/1.1 (node:http).
  plain = http.createServer((req, res) => {
    res.on('error', () => {});
    if (req.url === '/big') {
      res.writeHead(200, { 'content-length': BIG.length });
      res.end(BIG);
      return;
    }
    if (req.url === '/noread') return; // reads none of the request body (node:http then stops reading the socket), never answers
    res.writeHead(200, { 'content-length': BIG.length });
    res.write(BIG.subarray(0, STALL_AT));
  });
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
  plainBase = `http://127.0.0.1:${(plain.address() as AddressInfo).port}`;
  // And over HTTP/3 (our server; its body a stream that stops after 4 MiB).
  h3 = await startTestH3Server({
    handler: (r) => {
      if (r.path === '/big') return { status: 200, body: BIG };
      const stalled = new Readable({ read() {} });
      stalled.push(BIG.subarray(0, STALL_AT));
      return { status: 200, body: stalled };
    },
  });
  h3Base = `https://localhost:${h3.address.port}`;
});

afterAll(async () => {
  for (const t of timers) clearTimeout(t);
  await h3.close(0);
  plain.closeAllConnections();
  await new Promise((r) => plain.close(r));
  await new Promise((r) => origin.close(r));
});

describe('exchange deadlines on the shared ticker (h2, 1 s)', () => {
  const agentOf = (): Agent =>
    new Agent({
      protocol: 'h2',
      tls: { ca: certs.ca },
      maxRetries: 0,
      pool: { headersTimeoutMs: 1000, bodyTimeoutMs: 1000 },
    });

  it('no head: OL_HEADERS_TIMEOUT between 1.0 and 1.4 s', async () => {
    const agent = agentOf();
    try {
      const t0 = performance.now();
      const err = await agent.request({ url: `${base}/silent` }).catch((e: unknown) => e);
      const ms = performance.now() - t0;
      expect(err).toBeInstanceOf(OriginlinkError);
      expect((err as OriginlinkError).code).toBe('OL_HEADERS_TIMEOUT');
      expect(ms).toBeGreaterThanOrEqual(990);
      expect(ms).toBeLessThan(1400);
    } finally {
      await agent.destroy();
    }
  });

  it('a body that stops: OL_BODY_TIMEOUT 1.0–1.4 s after its last chunk; one that drips every 600 ms completes', async () => {
    const agent = agentOf();
    try {
      const r = await agent.request({ url: `${base}/stall` });
      const t0 = performance.now();
      const err = await r.text().catch((e: unknown) => e);
      const ms = performance.now() - t0;
      expect((err as OriginlinkError).code).toBe('OL_BODY_TIMEOUT');
      expect(ms).toBeGreaterThanOrEqual(950);
      expect(ms).toBeLessThan(1400);
      // Idle 600 ms at a time, 1.2 s in all: the deadline follows the chunks.
      expect(await (await agent.request({ url: `${base}/drip` })).text()).toBe('c0c1c2');
    } finally {
      await agent.destroy();
    }
  });
});

describe("a reader that is behind: its silence is not the origin's (1 s body timeout)", () => {
  /** Read the first chunk, stall `stallMs` (the body holds the origin paused meanwhile), then read the rest. */
  async function stallThenRead(
    agent: Agent,
    url: string,
    protocol: 'h1' | 'h2' | 'h3',
    stallMs: number,
  ): Promise<{ bytes: number; err: OriginlinkError | null; afterStallMs: number }> {
    const r = await agent.request({ url, protocol });
    const it = r.body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    let bytes = (await it.next()).value.length as number;
    await new Promise((res) => setTimeout(res, stallMs));
    const t0 = performance.now();
    try {
      for (;;) {
        const n = await it.next();
        if (n.done) break;
        bytes += n.value.length;
      }
      return { bytes, err: null, afterStallMs: performance.now() - t0 };
    } catch (e) {
      return { bytes, err: e as OriginlinkError, afterStallMs: performance.now() - t0 };
    }
  }

  for (const protocol of ['h1', 'h2', 'h3'] as const) {
    it(`${protocol}: a reader that stalls 2.5 s mid-body gets all 8 MiB; an origin that stalls while the reader does is still caught once the reader catches up`, async () => {
      const agent = new Agent({
        protocol,
        tls: { ca: certs.ca },
        maxRetries: 0,
        pool: { headersTimeoutMs: 1000, bodyTimeoutMs: 1000 },
      });
      const at = protocol === 'h1' ? plainBase : protocol === 'h2' ? base : h3Base;
      try {
        const ok = await stallThenRead(agent, `${at}/big`, protocol, 2500);
        expect(ok.err).toBeNull();
        expect(ok.bytes).toBe(BIG.length);
        // 4 MiB arrive, then the origin says nothing more: read-ahead first, then its own silence is caught within two
        // periods of the reader catching up (the last one the reader was behind in, then a whole one: ≤ 2 × 1.25 s on
        // the 250 ms ticker). A timer that stayed suspended would hang here instead.
        const bad = await stallThenRead(agent, `${at}/bigstall`, protocol, 2500);
        expect(bad.err?.code).toBe('OL_BODY_TIMEOUT');
        expect(bad.bytes).toBe(STALL_AT);
        expect(bad.afterStallMs).toBeLessThan(3000);
      } finally {
        await agent.destroy();
      }
    });
  }
});

describe('a request body that stalls: whose stall it is (1 s)', () => {
  const agentOf = (protocol: 'h1' | 'h2'): Agent =>
    new Agent({
      protocol,
      tls: { ca: certs.ca },
      maxRetries: 0,
      pool: { headersTimeoutMs: 1000, bodyTimeoutMs: 1000 },
    });

  it('its source sends nothing more (h2): OL_REQUEST_BODY_TIMEOUT, ours; the origin takes nothing more (h1): OL_BODY_TIMEOUT, theirs', async () => {
    const agent = agentOf('h2');
    const h1 = agentOf('h1');
    try {
      const source = new Readable({ read() {} });
      source.push('first bytes'); // then nothing, and no end
      const t0 = performance.now();
      const mine = await agent
        .request({ url: `${base}/sink`, method: 'POST', body: source })
        .catch((e: unknown) => e as OriginlinkError);
      expect(mine).toBeInstanceOf(OriginlinkError);
      expect((mine as OriginlinkError).code).toBe('OL_REQUEST_BODY_TIMEOUT');
      expect((mine as OriginlinkError).side).toBe('local');
      expect(performance.now() - t0).toBeLessThan(1600);
      // 64 MiB into an origin that reads none of it: the socket buffers fill and the rest waits on the origin.
      const mib = Buffer.alloc(1 << 20, 0x62);
      const upload = Readable.from(
        (function* () {
          for (let i = 0; i < 64; i++) yield mib;
        })(),
      );
      const theirs = await h1
        .request({ url: `${plainBase}/noread`, method: 'POST', body: upload })
        .catch((e: unknown) => e as OriginlinkError);
      expect((theirs as OriginlinkError).code).toBe('OL_BODY_TIMEOUT');
      expect((theirs as OriginlinkError).side).toBe('remote');
      expect((theirs as OriginlinkError).message).toMatch(/origin took no request body bytes/);
    } finally {
      await agent.destroy();
      await h1.destroy();
    }
  });
});
