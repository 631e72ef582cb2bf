/**
 * Regression tests for three bugs the redesign fixed, each against real
 * servers over real sockets (each fails on the code before it):
 * - the headers timer ran from dispatch, so a streamed upload longer than
 *   headersTimeoutMs failed as OL_HEADERS_TIMEOUT (h1, h2, h3);
 * - a CA given as a string was identified by its length and last 32
 *   characters: two different CAs could share a pool key and coalescing
 *   eligibility, so a name configured with another trust root rode a
 *   connection verified against the first;
 * - the session store handed one TLS/QUIC ticket to every concurrent dial
 *   (RFC 8446 §C.4: a ticket is for one connection);
 * - an unanswered HTTP/3 PING surfaced as OL_HEADERS_TIMEOUT (h2 said OL_PING_TIMEOUT).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { Agent, ErrorCode, MemorySessionStore, OriginlinkError } from '../../src/index.js';
import { connectTcp } from '../../src/net/tcp.js';
import { connectH3 } from '../../src/connect/h3.js';
import type { H3Server } from '../../src/server/h3.js';
import { startTestH3Server } from '../helpers/h3-server.js';
import { makeCerts } from '../helpers/certs.js';

const certs = makeCerts();

/** A streamed body: `n` chunks, `gapMs` apart. */
async function* slowBody(n: number, gapMs: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < n; i++) {
    await new Promise((r) => setTimeout(r, gapMs));
    yield Buffer.from(`chunk${i};`);
  }
}

async function readBody(req: AsyncIterable<Buffer>): Promise<string> {
  let s = '';
  for await (const c of req) s += c.toString();
  return s;
}

describe('the headers timer starts when the request is fully sent', () => {
  let h1: http.Server;
  let h2: http2.Http2Server;
  let h3: H3Server;
  beforeAll(async () => {
    h1 = http.createServer((req, res) => { void readBody(req).then((b) => res.end(`got ${b.length}`)); });
    h2 = http2.createServer((req, res) => { void readBody(req).then((b) => res.end(`got ${b.length}`)); });
    await new Promise<void>((r) => h1.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
    h3 = await startTestH3Server({
    async handler(r) {
        const b = await readBody(r.body as AsyncIterable<Buffer>);
        return { status: 200, body: `got ${b.length}` };
      },
    });
  });
  afterAll(async () => {
    h1?.close();
    h2?.close();
    await h3?.close(100);
  });

  // 8 chunks 100 ms apart: the upload takes ~800 ms against a 300 ms headers timeout.
  const cases: Array<[string, () => string, 'h1' | 'h2' | 'h3']> = [
    ['h1', () => `http://127.0.0.1:${(h1.address() as AddressInfo).port}/up`, 'h1'],
    ['h2 (prior knowledge)', () => `http://127.0.0.1:${(h2.address() as AddressInfo).port}/up`, 'h2'],
    ['h3', () => `https://localhost:${h3.address.port}/up`, 'h3'],
  ];
  for (const [name, url, protocol] of cases) {
    it(`${name}: an 800 ms streamed upload with headersTimeoutMs 300 succeeds`, async () => {
      const agent = new Agent({ protocol, tls: { ca: certs.ca }, pool: { headersTimeoutMs: 300, bodyTimeoutMs: 2000 }, maxRetries: 0 });
      try {
        const res = await agent.request({ url: url(), method: 'POST', body: slowBody(8, 100) });
        expect(res.status).toBe(200);
        expect(res.protocol).toBe(protocol);
        expect(await res.text()).toBe(`got ${'chunk0;'.length * 8}`);
      } finally {
        await agent.close();
      }
    });
  }

  it('h1: the headers timer still fires after the request is sent', async () => {
    const silent = http.createServer(() => { /* never answers */ });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const agent = new Agent({ protocol: 'h1', pool: { headersTimeoutMs: 300 }, maxRetries: 0 });
    try {
      const t0 = Date.now();
      const err = await agent.request({ url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/`, method: 'POST', body: slowBody(3, 100) }).catch((e: unknown) => e);
      expect((err as OriginlinkError).code).toBe(ErrorCode.HEADERS_TIMEOUT);
      expect((err as OriginlinkError).facts).toMatchObject({ requestSent: true, responseStarted: false });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(550); // ~300 ms of upload + 300 ms of waiting
    } finally {
      agent.destroy();
      silent.closeAllConnections();
      silent.close();
    }
  });
});

describe('CA identity is a hash of the whole PEM', () => {
  let dir: string;
  let server: http2.Http2SecureServer;
  let port: number;
  let caA: string;
  let caB: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ol-ca-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=another test CA', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')], { stdio: 'pipe' });
    // Two bundles of the same length that end in the same 32 characters (text
    // after a PEM block is ignored by TLS): only the certificates differ.
    const a = certs.ca.toString();
    const b = readFileSync(join(dir, 'c.pem'), 'utf8');
    const len = Math.max(a.length, b.length) + 8;
    const tail = `\n${'#'.repeat(40)}\n`;
    caA = `${a}${' '.repeat(len - a.length)}${tail}`;
    caB = `${b}${' '.repeat(len - b.length)}${tail}`;
    expect(caA.length).toBe(caB.length);
    expect(caA.slice(-32)).toBe(caB.slice(-32));
    server = http2.createSecureServer({ cert: certs.cert, key: certs.key, allowHTTP1: false }, (_req, res) => res.end('hello'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => {
    server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a name trusting another CA never coalesces onto a connection verified with the first', async () => {
    const lookup = async (): Promise<string[]> => ['127.0.0.1'];
    const agent = new Agent({
      lookup,
      protocol: 'h2',
      maxRetries: 0,
      origins: {
        [`https://a.test:${port}`]: { tls: { ca: caA } },
        [`https://b.test:${port}`]: { tls: { ca: caB } },
      },
    });
    try {
      const a = await agent.request({ url: `https://a.test:${port}/` });
      expect(await a.text()).toBe('hello');
      // The server's leaf covers b.test, but b.test trusts only the other CA: its own dial must fail verification.
      const err = await agent.request({ url: `https://b.test:${port}/` }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OriginlinkError);
      expect((err as OriginlinkError).code).toBe(ErrorCode.CERT_INVALID);
      expect(new Set(agent.pools().map((p) => p.key.split('|ca=')[1])).size).toBe(2);
    } finally {
      agent.destroy();
    }
  });
});

describe('single-use tickets: concurrent dials each take their own or none', () => {
  it('TLS: one stored session, two concurrent dials → exactly one resumes', async () => {
    const server = tls.createServer({ cert: certs.cert, key: certs.key, minVersion: 'TLSv1.3' }, (s) => s.resume());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const base = { host: '127.0.0.1', port, tls: true, servername: 'localhost', alpn: ['http/1.1'], ca: certs.ca, connectTimeoutMs: 3000, tfo: false, sessionKey: 'k' } as const;
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
      const [x, y] = await Promise.all([connectTcp({ ...base, sessionStore: store }), connectTcp({ ...base, sessionStore: store })]);
      x.socket.destroy();
      y.socket.destroy();
      expect([x.resumed, y.resumed].filter(Boolean)).toHaveLength(1);
    } finally {
      server.close();
    }
  });

  it('QUIC: one stored ticket, two concurrent connections → exactly one resumes', async () => {
    const server = await startTestH3Server({
    handler: async () => ({ status: 200, body: 'ok' }) });
    const base = { host: '127.0.0.1', port: server.address.port, servername: 'localhost', ca: certs.caPath, sessionKey: 'q', keepAliveMs: 0 };
    try {
      const seed = new MemorySessionStore();
      const c0 = await connectH3({ ...base, sessionStore: seed });
      const r0 = await c0.request({ method: 'GET', path: '/', authority: `localhost:${server.address.port}`, scheme: 'https', headers: [], body: null });
      await r0.body.resume();
      await new Promise((r) => r0.body.once('end', r));
      c0.drain();
      await new Promise((r) => setTimeout(r, 100));
      const one = seed.take('q');
      expect(one).toBeDefined();
      const store = new MemorySessionStore();
      store.put('q', one as Uint8Array);
      const [a, b] = await Promise.all([connectH3({ ...base, sessionStore: store, earlyData: false }), connectH3({ ...base, sessionStore: store, earlyData: false })]);
      expect([a.facts.resumed, b.facts.resumed].filter(Boolean)).toHaveLength(1);
      a.destroy();
      b.destroy();
    } finally {
      await server.close(100);
    }
  });
});

describe('an unanswered PING is OL_PING_TIMEOUT on every protocol', () => {
  it('h3: PING through a path that went silent', async () => {
    const server = await startTestH3Server({
    handler: async () => ({ status: 200, body: 'ok' }) });
    // A UDP relay that can go silent (both ways) without the client's socket noticing.
    let silent = false;
    const front = dgram.createSocket('udp4');
    const back = dgram.createSocket('udp4');
    let client: { address: string; port: number } | null = null;
    front.on('message', (m, r) => { client = { address: r.address, port: r.port }; if (!silent) back.send(m, server.address.port, '127.0.0.1'); });
    back.on('message', (m) => { if (!silent && client) front.send(m, client.port, client.address); });
    await new Promise<void>((r) => front.bind(0, '127.0.0.1', r));
    await new Promise<void>((r) => back.bind(0, '127.0.0.1', r));
    const c = await connectH3({ host: '127.0.0.1', port: front.address().port, servername: 'localhost', ca: certs.caPath, migrateAfterProbeTimeouts: 0, keepAliveMs: 0 });
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
