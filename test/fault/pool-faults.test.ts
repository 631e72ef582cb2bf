/**
 * Faults against real servers: nginx (stale keep-alive race, GOAWAY on
 * reload, restart mid-load) and a deliberately broken TLS origin (malformed
 * status line, oversized headers, reset mid-body, wrong certificate).
 */
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, OriginlinkError } from '../../src/index.js';
import { makeCerts } from '../helpers/certs.js';
import { Nginx } from '../helpers/nginx.js';

const certs = makeCerts();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('stale keep-alive race (origin idle timeout 1 s, ours 30 s)', () => {
  let nginx: Nginx;
  beforeAll(async () => {
    nginx = await Nginx.start({ keepaliveTimeout: '1s' });
  });
  afterAll(async () => {
    await nginx?.close();
  });

  it('GETs around the timeout never fail; no POST is ever sent twice', async () => {
    // One single-connection agent per worker, so a connection idles exactly as long as its worker sleeps.
    const agents = [0, 1, 2, 3].map(
      () => new Agent({ protocol: 'h1', tls: { ca: certs.ca }, pool: { maxConnections: 1 } }),
    );
    const base = `https://127.0.0.1:${nginx.port}`;
    const getFailures: unknown[] = [];
    let postsOk = 0;
    let postsFailed = 0;
    let id = 0;
    const worker = async (w: number): Promise<void> => {
      for (let i = 0; i < 6; i++) {
        // Land around nginx's 1 s timeout: 900..1300 ms of idleness.
        await sleep(900 + ((w * 67 + i * 131) % 400));
        try {
          const r = await (agents[w] as Agent).request({ url: `${base}/small.txt?w=${w}&i=${i}` });
          expect((await r.bytes()).length).toBe(1024);
        } catch (e) {
          getFailures.push(e);
        }
        try {
          const r = await (agents[w] as Agent).request({
            url: `${base}/post?id=${++id}`,
            method: 'POST',
            body: 'payload',
          });
          await r.dump();
          postsOk++;
        } catch (e) {
          expect(e).toBeInstanceOf(OriginlinkError);
          postsFailed++;
        }
      }
    };
    await Promise.all([0, 1, 2, 3].map(worker));
    const opened = agents.reduce((a, ag) => a + (ag.stats()[0]?.connectionsOpened ?? 0), 0);
    await Promise.all(agents.map((a) => a.close()));
    expect(getFailures).toEqual([]);
    // nginx writes its access-log line as it finalises the request, which can come just after the response reached us.
    for (let i = 0; i < 50 && nginx.log().filter((l) => l.method === 'POST').length < postsOk; i++) await sleep(20);
    const posts = nginx.log().filter((l) => l.method === 'POST');
    const ids = posts.map((l) => l.uri);
    expect(new Set(ids).size).toBe(ids.length); // never twice
    expect(posts.length).toBe(postsOk); // every successful POST reached the origin once
    expect(postsOk + postsFailed).toBe(24);
    // The race really happened: connections were found closed and replaced.
    expect(opened).toBeGreaterThan(4);
  }, 30_000);
});

describe('GOAWAY and restart mid-load', () => {
  let nginx: Nginx;
  beforeAll(async () => {
    nginx = await Nginx.start();
  });
  afterAll(async () => {
    await nginx?.close();
  });

  const load = async (
    agent: Agent,
    url: string,
    ms: number,
    midway: () => Promise<void> | void,
  ): Promise<{ ok: number; failed: unknown[] }> => {
    const deadline = Date.now() + ms;
    let ok = 0;
    const failed: unknown[] = [];
    let fired = false;
    const worker = async (): Promise<void> => {
      for (let n = 0; n < 100_000 && Date.now() < deadline; n++) {
        if (!fired && Date.now() > deadline - ms / 2) {
          fired = true;
          await midway();
        }
        try {
          const r = await agent.request({ url });
          await r.dump();
          ok++;
        } catch (e) {
          failed.push(e);
          await sleep(10); // a failure comes at once (issue 45): a client that loops on it is not the point here
        }
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    return { ok, failed };
  };

  it('h2: GOAWAY from a graceful reload loses no request', async () => {
    const agent = new Agent({ protocol: 'h2', tls: { ca: certs.ca } });
    const r = await load(agent, `https://127.0.0.1:${nginx.port}/small.txt?goaway`, 2000, () => nginx.reload());
    const st = agent.stats()[0];
    await agent.close();
    expect(r.failed).toEqual([]);
    expect(r.ok).toBeGreaterThan(100);
    expect(st?.connectionsOpened).toBeGreaterThanOrEqual(2); // drained and replaced
  });

  for (const protocol of ['h1', 'h2'] as const) {
    // While the origin is down its port refuses: a request that meets that is answered at once with
    // OL_CONNECT_FAILED (nothing sent; the service's 502), as nginx answers, rather than held through the
    // backoff (issue 45); a request lost with its connection is retried on a new one; once the origin is back
    // the pool serves again.
    it(`${protocol}: an origin restart mid-load: requests on lost connections are retried, refused connects fail at once, nothing else fails`, async () => {
      const agent = new Agent({
        protocol,
        tls: { ca: certs.ca },
        maxRetries: 6,
        pool: {
          maxConnections: 8,
          connectBackoffBaseMs: 50,
          pingIntervalMs: 500,
          pingTimeoutMs: 1000,
          headersTimeoutMs: 5000,
        },
      });
      const r = await load(agent, `https://127.0.0.1:${nginx.port}/small.txt?restart-${protocol}`, 2500, () =>
        nginx.restart(),
      );
      const st = agent.stats()[0];
      await agent.close();
      const other = r.failed
        .map((e) => e as OriginlinkError)
        .filter((e) => e.code !== 'OL_CONNECT_FAILED' || e.facts?.requestSent !== false);
      expect(other.map((e) => String(e))).toEqual([]);
      expect(r.ok).toBeGreaterThan(100);
      expect(st?.retries).toBeGreaterThan(0);
    });
  }
});

describe('bad input from the origin gives typed errors; the pool keeps serving', () => {
  let good: tls.Server;
  let wrong: tls.Server;
  let port = 0;
  let wrongPort = 0;
  beforeAll(async () => {
    // A deliberately broken HTTP/1.1 origin: the path picks the fault.
    const ctx = tls.createSecureContext({ cert: certs.cert, key: certs.key });
    good = net.createServer((raw) => {
      const s = new tls.TLSSocket(raw, { isServer: true, secureContext: ctx, ALPNProtocols: ['http/1.1'] });
      let served = 0;
      let buf = '';
      s.on('data', (d) => {
        buf += String(d);
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const path = buf.split(' ')[1] ?? '/';
        buf = buf.slice(end + 4);
        served++;
        switch (path) {
          // The keep-alive race made deterministic: the origin closes a reused
          // connection just as the next request arrives, without answering it.
          case '/close-on-reuse':
            if (served > 1) {
              raw.resetAndDestroy();
              break;
            }
            s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
            break;
          case '/malformed':
            s.end('HTTP/1.1 2OO OK\r\ncontent-length: 0\r\n\r\n');
            break;
          case '/huge-headers':
            s.end(`HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(100_000)}\r\ncontent-length: 0\r\n\r\n`);
            break;
          case '/reset-mid-body':
            s.write(`HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n${'b'.repeat(1000)}`);
            setTimeout(() => raw.resetAndDestroy(), 20);
            break;
          case '/bad-length':
            s.end('HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello');
            break;
          default:
            s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
        }
      });
      s.on('error', () => {});
      raw.on('error', () => {});
    }) as unknown as tls.Server;
    wrong = tls.createServer(
      {
        cert: (await import('node:fs')).readFileSync(certs.wrongCertPath),
        key: (await import('node:fs')).readFileSync(certs.wrongKeyPath),
      },
      (s) => s.end(),
    );
    await new Promise<void>((r) => good.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => wrong.listen(0, '127.0.0.1', r));
    port = (good.address() as AddressInfo).port;
    wrongPort = (wrong.address() as AddressInfo).port;
  });
  afterAll(() => {
    good?.close();
    wrong?.close();
  });

  const cases: Array<[string, string]> = [
    ['/malformed', 'OL_MALFORMED_RESPONSE'],
    ['/huge-headers', 'OL_HEADERS_TOO_LARGE'],
    ['/bad-length', 'OL_MALFORMED_RESPONSE'],
  ];
  for (const [path, code] of cases) {
    it(`${path} → ${code}, then the next request succeeds`, async () => {
      const agent = new Agent({ tls: { ca: certs.ca }, maxRetries: 0 });
      const err = await agent.request({ url: `https://localhost:${port}${path}` }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(OriginlinkError);
      expect((err as OriginlinkError).code).toBe(code);
      expect((err as OriginlinkError).side).toBe('remote');
      const ok = await agent.request({ url: `https://localhost:${port}/ok` });
      expect(await ok.text()).toBe('ok');
      await agent.close();
    });
  }

  it('a reset mid-body errors the body stream with a typed error', async () => {
    const agent = new Agent({ tls: { ca: certs.ca } });
    const res = await agent.request({ url: `https://localhost:${port}/reset-mid-body` });
    expect(res.status).toBe(200);
    const err = await res.bytes().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OriginlinkError);
    expect(['OL_SOCKET_RESET', 'OL_SOCKET_CLOSED']).toContain((err as OriginlinkError).code);
    expect((err as OriginlinkError).facts?.responseStarted).toBe(true);
    const ok = await agent.request({ url: `https://localhost:${port}/ok` });
    expect(await ok.text()).toBe('ok');
    await agent.close();
  });

  it('a reused connection closed as the request arrives: GET is retried once, POST fails and is never replayed', async () => {
    const agent = new Agent({ tls: { ca: certs.ca }, pool: { maxConnections: 1 } });
    const url = `https://localhost:${port}/close-on-reuse`;
    for (let i = 0; i < 5; i++) {
      const r = await agent.request({ url });
      expect(await r.text()).toBe('ok');
      expect(r.attempts).toBe(i === 0 ? 1 : 2);
    }
    const e = await agent.request({ url, method: 'POST', body: 'x' }).then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(OriginlinkError);
    expect((e as OriginlinkError).facts?.reused).toBe(true);
    expect((e as OriginlinkError).details['attempts']).toBe(1);
    // …unless it carries an Idempotency-Key (on a reused connection again: warm it with a GET).
    await (await agent.request({ url })).dump();
    const k = await agent.request({ url, method: 'POST', body: 'x', headers: { 'idempotency-key': 'k1' } });
    expect(k.attempts).toBe(2);
    await k.dump();
    expect(agent.stats()[0]?.retries).toBe(5);
    await agent.close();
  });

  it('a certificate that does not match the name → OL_CERT_INVALID', async () => {
    const agent = new Agent({ tls: { ca: certs.ca } });
    const err = await agent.request({ url: `https://localhost:${wrongPort}/` }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OriginlinkError);
    expect((err as OriginlinkError).code).toBe('OL_CERT_INVALID');
    const ok = await agent.request({ url: `https://localhost:${port}/ok` });
    expect(await ok.text()).toBe('ok');
    await agent.close();
  });

  it('an unknown CA → OL_CERT_INVALID; a refused port → OL_CONNECT_FAILED', async () => {
    const agent = new Agent({ maxRetries: 0 });
    const e1 = await agent.request({ url: `https://localhost:${port}/ok` }).then(
      () => null,
      (e: unknown) => e,
    );
    expect((e1 as OriginlinkError).code).toBe('OL_CERT_INVALID');
    const closed = tls.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const p = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const e2 = await agent.request({ url: `https://127.0.0.1:${p}/` }).then(
      () => null,
      (e: unknown) => e,
    );
    expect((e2 as OriginlinkError).code).toBe('OL_CONNECT_FAILED');
    agent.destroy();
  });
});

describe('minWarm against an origin that accepts and closes at once', () => {
  it('backs off like failed dials (10,216 connections a second before), and warms again once the origin answers', async () => {
    let accepted = 0;
    let healthy = false;
    const origin = net.createServer((sock) => {
      accepted++;
      if (!healthy) {
        sock.destroy();
        return;
      }
      sock.on('data', () => sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'));
      sock.on('error', () => {});
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(origin.address() as AddressInfo).port}/`;
    const agent = new Agent({
      protocol: 'h1',
      pool: { minWarm: 2, connectBackoffBaseMs: 50, connectBackoffMaxMs: 400 },
    });
    try {
      agent.pool(url);
      await sleep(1000);
      expect(accepted).toBeGreaterThan(2);
      expect(accepted).toBeLessThan(60); // 50 ms doubling to 400 ms: a few dozen at most
      // The next warm dial (the backoff's, at most 400 ms away) meets the healthy origin. A connection accepted just
      // before the flip is closed by it after our connect completed, as a real origin's would be: a request on it is
      // lost unanswered on a fresh connection and not retried (plain origin; nginx answers 502 too). CI met that
      // once; the request waits for a connection accepted while healthy.
      const before = accepted;
      healthy = true;
      for (let i = 0; i < 100 && accepted === before; i++) await sleep(20);
      await sleep(50);
      const r = await agent.request({ url });
      expect(await r.text()).toBe('ok');
    } finally {
      await agent.destroy();
      origin.close();
    }
  });

  it("a warm connection still goes at the origin's Keep-Alive hint less the margin (it was kept past it, into the origin's close)", async () => {
    const closedAt: number[] = [];
    let answeredAt = 0;
    const origin = net.createServer((sock) => {
      sock.on('data', () => {
        answeredAt = Date.now();
        sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nkeep-alive: timeout=2\r\n\r\nok');
      });
      sock.on('end', () => closedAt.push(Date.now() - answeredAt));
      sock.on('error', () => {});
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(origin.address() as AddressInfo).port}/`;
    const agent = new Agent({ protocol: 'h1', pool: { minWarm: 1, maxConnections: 1, keepAliveMarginMs: 500 } });
    try {
      expect(await (await agent.request({ url })).text()).toBe('ok');
      const t0 = Date.now();
      while (closedAt.length === 0 && Date.now() - t0 < 4000) await sleep(25);
      expect(closedAt[0]).toBeGreaterThan(1300);
      expect(closedAt[0]).toBeLessThan(1900); // 2 s hinted, 0.5 s margin: ours at ~1.5 s, before the origin's
    } finally {
      await agent.destroy();
      origin.close();
    }
  });

  it('maxRequestsPerConnection holds for concurrent requests on h2 (counted as they go out, not as answers come)', async () => {
    const perSession = new Map<object, number>();
    const origin = http2.createServer((req, res) => {
      perSession.set(req.stream.session as object, (perSession.get(req.stream.session as object) ?? 0) + 1);
      setTimeout(() => res.end('ok'), 50);
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', () => r()));
    const agent = new Agent({ protocol: 'h2', pool: { maxRequestsPerConnection: 2 } });
    try {
      const url = `http://127.0.0.1:${(origin.address() as AddressInfo).port}/`;
      const all = await Promise.all(Array.from({ length: 10 }, async () => (await agent.request({ url })).text()));
      expect(all.every((t) => t === 'ok')).toBe(true);
      expect(Math.max(...perSession.values())).toBe(2); // before: all ten on one session
    } finally {
      await agent.destroy();
      origin.close();
    }
  });

  it("a request body whose source fails is OL_REQUEST_BODY_FAILED, not the caller's abort (OL_ABORTED)", async () => {
    const origin = net.createServer((sock) => {
      sock.on('data', () => {});
      sock.on('error', () => {});
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', () => r()));
    const agent = new Agent({ protocol: 'h1', maxRetries: 0 });
    try {
      async function* source(): AsyncGenerator<Uint8Array> {
        yield Buffer.from('first part');
        await sleep(20);
        throw new Error('disk read failed');
      }
      const err = await agent
        .request({
          url: `http://127.0.0.1:${(origin.address() as AddressInfo).port}/up`,
          method: 'PUT',
          body: source(),
        })
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'OL_REQUEST_BODY_FAILED', side: 'local' });
      expect((err as Error).message).toMatch(/disk read failed/);
    } finally {
      await agent.destroy();
      origin.close();
    }
  });
});
