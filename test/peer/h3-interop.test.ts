/**
 * HTTP/3 interop with independent implementations. Our client against
 * Caddy (quic-go), ngtcp2 gtlsserver and Bun.serve (lsquic); ngtcp2
 * gtlsclient and Bun's fetch against our server. Checks: a 1 MiB GET
 * byte-identical, a POST with a body, 100 concurrent requests on one
 * connection. Needs Debian `caddy`, `ngtcp2-server`, `ngtcp2-client`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { makeCerts, type TestCerts } from '../helpers/certs.js';
import { freePort, freeTcpUdpPort } from '../helpers/ports.js';
import { bunFetch, runClient, startBunServer, startCaddy, startNgtcp2Server, type Peer } from '../helpers/h3-peers.js';
import { connectH3 } from '../../src/connect/h3.js';
import type { H3PooledConnection } from '../../src/client/h3.js';
import type { H3Server } from '../../src/server/h3.js';
import { startTestH3Server } from '../helpers/h3-server.js';
import type { ConnRequest } from '../../src/http/types.js';
import { MemorySessionStore } from '../../src/store/session-store.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
async function readAll(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

let certs: TestCerts;
let root: string;
const big = randomBytes(1024 * 1024);
const upload = randomBytes(200_000);
let echo: http.Server;
let caddy: Peer | null = null;
let ngtcp2: Peer | null = null;
let bun: Peer | null = null;
let ours: H3Server | null = null;
let oursRequests: Array<{ method: string; path: string; bodySha: string; bytes: number }> = [];

beforeAll(async () => {
  certs = makeCerts();
  root = mkdtempSync(join(tmpdir(), 'ol-h3-root-'));
  writeFileSync(join(root, 'big'), big);
  writeFileSync(join(root, 'small.txt'), 'small file\n');
  writeFileSync(join(root, 'upload.bin'), upload);
  echo = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const b = Buffer.concat(parts);
      res.writeHead(200, { 'x-sha256': sha(b), 'content-length': b.length });
      res.end(b);
    });
  });
  const echoPort = await freePort();
  await new Promise<void>((r) => echo.listen(echoPort, '127.0.0.1', r));
  const [pc, pn, pb] = [await freeTcpUdpPort(), await freeTcpUdpPort(), await freeTcpUdpPort()];
  const started = await Promise.allSettled([
    startCaddy({ port: pc, certFile: certs.certPath, keyFile: certs.keyPath, root, echoPort }),
    startNgtcp2Server({ port: pn, certFile: certs.certPath, keyFile: certs.keyPath, root }),
    startBunServer({ port: pb, certFile: certs.certPath, keyFile: certs.keyPath, bigFile: join(root, 'big') }),
  ]);
  const peer = (i: number): Peer | null => {
    const r = started[i]!;
    return r.status === 'fulfilled' ? r.value : null;
  };
  [caddy, ngtcp2, bun] = [peer(0), peer(1), peer(2)];
  for (const r of started) if (r.status === 'rejected') throw r.reason;
  ours = await startTestH3Server({
    async handler(r) {
      const body = await readAll(r.body);
      oursRequests.push({ method: r.method, path: r.path, bodySha: sha(body), bytes: body.length });
      if (r.path === '/big') return { status: 200, headers: [['content-type', 'application/octet-stream']], body: big };
      if (r.path === '/echo') return { status: 200, headers: [['x-sha256', sha(body)]], body };
      return { status: 200, body: `hello ${r.path}` };
    },
  });
}, 60_000);

afterAll(async () => {
  await Promise.all([caddy?.stop(), ngtcp2?.stop(), bun?.stop(), ours?.close(100)]);
  await new Promise<void>((r) => (echo ? echo.close(() => r()) : r()));
  if (root) rmSync(root, { recursive: true, force: true });
});

async function dial(port: number): Promise<H3PooledConnection> {
  let last: unknown;
  for (let i = 0; i < 3; i++) {
    try {
      return await connectH3({
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        ca: certs.caPath,
        connectTimeoutMs: 3000,
      });
    } catch (e) {
      last = e;
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  throw last;
}

function get(
  c: H3PooledConnection,
  port: number,
  path: string,
  extra: Partial<ConnRequest> = {},
): Promise<import('../../src/http/types.js').ConnResponse> {
  return c.request({
    method: 'GET',
    path,
    authority: `localhost:${port}`,
    scheme: 'https',
    headers: [],
    body: null,
    ...extra,
  });
}

async function clientChecks(
  port: number,
  post: { path: string; expectSha: string },
  smallPath: string,
  smallBody: string,
): Promise<void> {
  const c = await dial(port);
  try {
    expect(c.facts.alpn).toBe('h3');
    const r = await get(c, port, '/big');
    expect(r.status).toBe(200);
    const got = await readAll(r.body);
    expect(got.length).toBe(big.length);
    expect(sha(got)).toBe(sha(big));
    const p = await get(c, port, post.path, {
      method: 'POST',
      body: upload,
      headers: [['content-type', 'application/octet-stream']],
    });
    expect(p.status).toBe(200);
    expect(sha(await readAll(p.body))).toBe(post.expectSha);
    const rs = await Promise.all(Array.from({ length: 100 }, () => get(c, port, smallPath)));
    const bodies = await Promise.all(rs.map((x) => readAll(x.body)));
    for (const [i, b] of bodies.entries()) {
      expect(rs[i]!.status).toBe(200);
      expect(b.toString()).toBe(smallBody);
    }
    expect(c.served).toBe(102);
    expect(c.state).toBe('ready');
  } finally {
    c.destroy();
  }
}

describe('our HTTP/3 client against independent servers', () => {
  it('Caddy (quic-go): 1 MiB GET, POST through to an echo upstream, 100 concurrent', async () => {
    await clientChecks(caddy!.port, { path: '/echo', expectSha: sha(upload) }, '/small.txt', 'small file\n');
  });

  it('ngtcp2 gtlsserver: 1 MiB GET, POST (answered with the file), 100 concurrent', async () => {
    await clientChecks(ngtcp2!.port, { path: '/big', expectSha: sha(big) }, '/small.txt', 'small file\n');
  });

  it('Bun.serve http3 (lsquic): 1 MiB GET, POST echo, 100 concurrent', async () => {
    await clientChecks(bun!.port, { path: '/echo', expectSha: sha(upload) }, '/small.txt', 'hello /small.txt');
  });
});

/** Wait until the wall clock is `ms` into a second (the next such moment); returns Date.now() then. */
async function untilMsOfSecond(ms: number): Promise<number> {
  await new Promise((r) => setTimeout(r, (ms - (Date.now() % 1000) + 1000) % 1000));
  return Date.now();
}

describe('session resumption and 0-RTT against independent servers', () => {
  /**
   * `nextSecond`: the ticket is used in the wall clock's next second, well under a second after it came. BoringSSL
   * (under quiche) counts a ticket's age in whole seconds from the second it came in, so it reports 1000 ms then;
   * GnuTLS (ngtcp2's gtlsserver) declines early data whose reported age exceeds its own view (RFC 8446 §8.3).
   */
  async function resumeAgainst(
    port: number,
    path: string,
    nextSecond = false,
  ): Promise<{ resumed: boolean; early: boolean }> {
    const store = new MemorySessionStore();
    const o = { host: '127.0.0.1', port, servername: 'localhost', ca: certs.caPath, sessionStore: store };
    (await dial(port)).destroy(); // peer is up (dial retries)
    for (let attempt = 0; ; attempt++) {
      // The first exchange started late in a second of the clock, so that its ticket comes in that second: ~60 ms.
      const startedAt = nextSecond ? await untilMsOfSecond(800) : 0;
      const c0 = await connectH3(o);
      await readAll((await get(c0, port, path)).body);
      await new Promise((r) => setTimeout(r, 50)); // NewSessionTicket rides after the handshake
      c0.destroy();
      expect(store.size).toBe(1);
      if (!nextSecond) break;
      // Still that second: the ticket came in it; used 20 ms into the next one, some 100-200 ms old.
      if (Math.floor(Date.now() / 1000) === Math.floor(startedAt / 1000)) {
        await untilMsOfSecond(20);
        break;
      }
      expect(attempt, 'the first exchange took the rest of the second 3 times').toBeLessThan(2);
    }
    const c2 = await connectH3(o);
    try {
      const r = await get(c2, port, path, { allowEarlyData: true });
      expect(r.status).toBe(200);
      await readAll(r.body);
      return { resumed: c2.facts.resumed, early: r.earlyData === true };
    } finally {
      c2.destroy();
    }
  }

  it('Caddy and ngtcp2 resume and accept a 0-RTT request', async () => {
    expect(await resumeAgainst(caddy!.port, '/small.txt')).toEqual({ resumed: true, early: true });
    expect(await resumeAgainst(ngtcp2!.port, '/small.txt')).toEqual({ resumed: true, early: true });
  });

  it("ngtcp2 (GnuTLS) accepts 0-RTT with a ticket used in the clock's next second, under a second old", async () => {
    expect(await resumeAgainst(ngtcp2!.port, '/small.txt', true)).toEqual({ resumed: true, early: true });
  });

  it('Bun resumes; its tickets do not offer early data, so the request waits for the handshake', async () => {
    expect(await resumeAgainst(bun!.port, '/small.txt')).toEqual({ resumed: true, early: false });
  });
});

describe('independent clients against our HTTP/3 server', () => {
  it('ngtcp2 gtlsclient: 1 MiB GET, POST, 100 requests on one connection', async () => {
    const port = ours!.address.port;
    const dl = mkdtempSync(join(tmpdir(), 'ol-ngdl-'));
    try {
      oursRequests = [];
      const g = await runClient('gtlsclient', [
        '-q',
        '--exit-on-all-streams-close',
        '--download',
        dl,
        '127.0.0.1',
        String(port),
        `https://localhost:${port}/big`,
      ]);
      expect(g.code, g.output).toBe(0);
      expect(existsSync(join(dl, 'big'))).toBe(true);
      expect(sha(readFileSync(join(dl, 'big')))).toBe(sha(big));
      const p = await runClient('gtlsclient', [
        '-q',
        '--exit-on-all-streams-close',
        '--download',
        dl,
        '-d',
        join(root, 'upload.bin'),
        '-m',
        'POST',
        '127.0.0.1',
        String(port),
        `https://localhost:${port}/echo`,
      ]);
      expect(p.code, p.output).toBe(0);
      expect(sha(readFileSync(join(dl, 'echo')))).toBe(sha(upload));
      const posted = oursRequests.find((x) => x.method === 'POST');
      expect(posted?.bodySha).toBe(sha(upload));
      oursRequests = [];
      const before = ours!.stats().accepted;
      const n = await runClient('gtlsclient', [
        '-q',
        '--exit-on-all-streams-close',
        '-n',
        '100',
        '--download',
        dl,
        '127.0.0.1',
        String(port),
        `https://localhost:${port}/many`,
      ]);
      expect(n.code, n.output).toBe(0);
      expect(oursRequests.filter((x) => x.path === '/many').length).toBe(100);
      expect(ours!.stats().accepted - before).toBe(1);
      expect(readFileSync(join(dl, 'many'), 'utf8')).toBe('hello /many');
    } finally {
      rmSync(dl, { recursive: true, force: true });
    }
  });

  it('Bun fetch (protocol http3): 1 MiB GET, POST, 100 concurrent', async () => {
    const port = ours!.address.port;
    // Bun resolves localhost to ::1 first; our server binds 127.0.0.1 (the leaf has that IP SAN).
    const base = `https://127.0.0.1:${port}`;
    oursRequests = [];
    const before = ours!.stats().accepted;
    const jobs = [{ url: `${base}/big` }, { url: `${base}/echo`, method: 'POST', bodyFile: join(root, 'upload.bin') }];
    for (let i = 0; i < 100; i++) jobs.push({ url: `${base}/n/${i}` });
    const out = await bunFetch(jobs, certs.caPath, 30_000);
    expect(out[0]!.error).toBeUndefined();
    expect(out[0]!.status).toBe(200);
    expect(out[0]!.sha256).toBe(sha(big));
    expect(out[1]!.sha256).toBe(sha(upload));
    for (let i = 0; i < 100; i++) expect(out[i + 2]!.text).toBe(`hello /n/${i}`);
    expect(oursRequests.length).toBe(102);
    // Our server speaks only QUIC: every answer came over HTTP/3.
    expect(ours!.stats().accepted - before).toBeGreaterThanOrEqual(1);
  });
});
