/**
 * Fleet sharing through a real redis-server between real processes:
 * process A meets an origin, process B (a separate child that never met it)
 * starts warm from A's Redis — h3 chosen from A's Alt-Svc with A's ticket,
 * its first request sent as 0-RTT (Caddy), TLS resumed on its first TCP connection
 * (nginx); a broken-h3 mark set by A honoured by B within a second; Redis
 * killed under load without a failed request, sharing back after restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import { Agent } from '../../src/agent/agent.js';
import { openStores } from '../../src/store/open-stores.js';
import { RedisSessionStore } from '../../src/store/redis-session-store.js';
import { buildIfStale, CLI, ROOT } from '../helpers/build.js';
import { makeCerts, type TestCerts } from '../helpers/certs.js';
import { startCaddy, type Caddy } from '../helpers/caddy.js';
import { Nginx } from '../helpers/nginx.js';
import { freeTcpUdpPort } from '../helpers/ports.js';
import { startRedis, type RedisPeer } from '../helpers/redis.js';
import { writeTsHooks } from '../helpers/ts-child.js';

let certs: TestCerts;
let redis: RedisPeer;
let caddy: Caddy;
let nginx: Nginx;
let dir: string;
let hooks: string[];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const SRC = pathToFileURL(join(ROOT, 'src', 'index.ts')).href;
const STATE = pathToFileURL(join(ROOT, 'src', 'probe', 'state.ts')).href;

/** One child process: `fetch` (an Agent over Redis stores) or `mark` (an h3 failure recorded for an origin). */
const CHILD = `
const { Agent, openStores, RedisOriginCache } = await import(${JSON.stringify(SRC)});
const { OriginState } = await import(${JSON.stringify(STATE)});
const c = JSON.parse(process.env.FLEET_CHILD);
if (c.mode === 'mark') {
  const cache = new RedisOriginCache({ url: c.redis, prefix: c.prefix });
  await cache.ready(1000);
  new OriginState(c.origin, cache).h3Failed(Date.now(), { brokenBackoffMs: 60000, brokenBackoffMaxMs: 60000 });
  await cache.close();
  console.log(JSON.stringify({ markedAt: Date.now() }));
} else {
  const stores = openStores({ sessionStore: c.redis, originCache: c.redis, redis: { prefix: c.prefix } });
  await stores.ready(1000);
  const agent = new Agent({ protocol: c.protocol ?? 'auto', tls: { ca: c.ca }, sessionStore: stores.sessionStore, originCache: stores.originCache });
  const out = [];
  for (let i = 0; i < c.requests; i++) {
    const r = await agent.request({ url: c.url });
    await r.text();
    out.push({ status: r.status, protocol: r.protocol, resumed: r.connection.resumed, earlyData: r.earlyData });
    if (c.untilH3 && r.protocol === 'h3') break;
    await new Promise((res) => setTimeout(res, 50));
  }
  const report = agent.origin(c.url);
  agent.destroy();
  await new Promise((res) => setImmediate(res));
  await stores.close();
  console.log(JSON.stringify({ out, report, sessions: stores.sessionStore.stats(), origins: stores.originCache.stats() }));
}
`;

function child(cfg: Record<string, unknown>): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [...hooks, join(dir, 'child.mjs')],
      { env: { ...process.env, FLEET_CHILD: JSON.stringify(cfg) }, timeout: 30_000 },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`child failed: ${err.message}\n${stderr}`));
          return;
        }
        resolve(JSON.parse(stdout.trim().split('\n').pop() as string) as Record<string, unknown>);
      },
    );
  });
}

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI, ...args], { cwd: ROOT, timeout: 30_000 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  certs = makeCerts();
  dir = mkdtempSync(join(tmpdir(), 'ol-fleet-'));
  hooks = writeTsHooks(dir);
  writeFileSync(join(dir, 'child.mjs'), CHILD);
  buildIfStale();
  [redis, caddy, nginx] = await Promise.all([
    startRedis(),
    freeTcpUdpPort().then((port) => startCaddy({ port, certFile: certs.certPath, keyFile: certs.keyPath })),
    Nginx.start({ h2: true }),
  ]);
}, 120_000);

afterAll(async () => {
  await Promise.all([redis?.stop(), caddy?.stop(), nginx?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('two processes sharing one Redis', () => {
  // `auto` keeps TCP in the race: on a loaded machine a QUIC handshake slower than the race delay plus a TCP
  // handshake hands the request to TCP (the fallback), hence the retries.
  it("Caddy (h3): B never met the origin, yet in `auto` its first request chooses h3 from A's Alt-Svc and goes out as 0-RTT early data on A's QUIC ticket (B is the real CLI with redis:// URLs)", {
    timeout: 60_000,
    retry: 2,
  }, async () => {
    const prefix = `f${randomBytes(4).toString('hex')}:`;
    const url = `https://localhost:${caddy.port}/`;
    // Up to 200 requests 50 ms apart until one goes over h3: A's background QUIC upgrade first loads the h3 stack, which
    // in this child is TypeScript compiled on first import — over a second when the machine is loaded (20 were too few).
    const a = await child({
      mode: 'fetch',
      redis: redis.url,
      prefix,
      ca: certs.ca.toString(),
      url,
      requests: 200,
      untilH3: true,
    });
    const aOut = a['out'] as Array<Record<string, unknown>>;
    expect(aOut[0]).toMatchObject({ status: 200, resumed: false, earlyData: false });
    expect(aOut[0]!['protocol']).not.toBe('h3'); // A learned h3 from Alt-Svc
    expect(aOut.at(-1), JSON.stringify(a['report'])).toMatchObject({ protocol: 'h3' });
    const store = `redis://127.0.0.1:${redis.port}/0?prefix=${prefix}`;
    const b = await cli([
      'fetch',
      '--cacert',
      certs.caPath,
      '--session-store',
      store,
      '--origin-cache',
      store,
      '--json',
      url,
    ]);
    expect(b.stderr).toBe('');
    expect(b.code).toBe(0);
    // Early start: a known-good alternative with a ticket wins the race at 0-RTT readiness (TCP stays the fallback).
    expect(JSON.parse(b.stdout)).toMatchObject({
      protocol: 'h3',
      status: 200,
      resumed: true,
      earlyData: true,
      attempts: 1,
    });
  });

  it("Caddy (h3): with protocol h3, B's first request goes out as 0-RTT early data on A's ticket", async () => {
    const prefix = `f${randomBytes(4).toString('hex')}:`;
    const url = `https://localhost:${caddy.port}/`;
    const a = await child({
      mode: 'fetch',
      redis: redis.url,
      prefix,
      ca: certs.ca.toString(),
      url,
      requests: 1,
      protocol: 'h3',
    });
    expect((a['out'] as unknown[])[0]).toMatchObject({ status: 200, protocol: 'h3', resumed: false, earlyData: false });
    const store = `redis://127.0.0.1:${redis.port}/0?prefix=${prefix}`;
    const b = await cli([
      'fetch',
      '--protocol',
      'h3',
      '--cacert',
      certs.caPath,
      '--session-store',
      store,
      '--json',
      url,
    ]);
    expect(b.stderr).toBe('');
    expect(b.code).toBe(0);
    expect(JSON.parse(b.stdout)).toMatchObject({ protocol: 'h3', status: 200, resumed: true, earlyData: true });
  }, 60_000);

  it("nginx (h2 over TLS): B's first TCP connection resumes A's TLS session", async () => {
    const prefix = `f${randomBytes(4).toString('hex')}:`;
    const url = `https://localhost:${nginx.port}/`;
    const a = await child({ mode: 'fetch', redis: redis.url, prefix, ca: certs.ca.toString(), url, requests: 1 });
    expect((a['out'] as unknown[])[0]).toMatchObject({ status: 200, protocol: 'h2', resumed: false });
    // OpenSSL sends two TLS 1.3 tickets: one shared at once, the other given back at A's close.
    expect(a['sessions']).toMatchObject({ shared: 1, returned: 1 });
    const b = await child({ mode: 'fetch', redis: redis.url, prefix, ca: certs.ca.toString(), url, requests: 1 });
    expect((b['out'] as unknown[])[0]).toMatchObject({ status: 200, protocol: 'h2', resumed: true });
    // One claimed warm at start; its take left the key empty, so one more was claimed for a next dial.
    expect((b['sessions'] as { claimed: number }).claimed).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('a broken-h3 mark set by process A is honoured by B (this process, an Agent on h3) within a second', async () => {
    const prefix = `f${randomBytes(4).toString('hex')}:`;
    const url = `https://localhost:${caddy.port}/`;
    const stores = openStores({ sessionStore: redis.url, originCache: redis.url, redis: { prefix } });
    await stores.ready(1000);
    const agent = new Agent({
      protocol: 'auto',
      tls: { ca: certs.ca },
      sessionStore: stores.sessionStore!,
      originCache: stores.originCache!,
    });
    try {
      let proto = '';
      // Up to 10 s: the background upgrade first loads the h3 stack, over a second with both cores busy (a full run).
      for (let i = 0; i < 200 && proto !== 'h3'; i++) {
        const r = await agent.request({ url });
        await r.text();
        proto = r.protocol;
        await sleep(50);
      }
      expect(proto).toBe('h3');
      expect(agent.origin(url).choice.transport).toBe('quic');
      const origin = agent.origin(url).origin;
      const seen = new Promise<number>((resolve, reject) => {
        const t0 = Date.now();
        const poll = setInterval(() => {
          if (agent.origin(url).facts.brokenUntil > Date.now()) {
            clearInterval(poll);
            resolve(Date.now());
          } else if (Date.now() - t0 > 10_000) {
            clearInterval(poll);
            reject(new Error('mark never arrived'));
          }
        }, 5);
      });
      const a = await child({ mode: 'mark', redis: redis.url, prefix, origin });
      const lagMs = (await seen) - (a['markedAt'] as number);
      expect(lagMs).toBeLessThan(1000);
      expect(agent.origin(url).choice.transport).toBe('tcp');
    } finally {
      agent.destroy();
      await stores.close();
    }
  }, 60_000);

  it('a keyFile that is not there: one line, exit 2, and the process exits (its Redis connection was left open: a hang)', async () => {
    const t0 = performance.now();
    const r = await cli([
      'fetch',
      `https://localhost:${nginx.port}/`,
      '--cacert',
      certs.caPath,
      '--session-store',
      `${redis.url}?keyFile=${join(dir, 'nope.key')}`,
    ]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(
      /^originlink: \(2\) OL_INVALID_ARGUMENT: cannot read encryption key file .*nope\.key[^\n]*\n$/,
    );
    expect(performance.now() - t0).toBeLessThan(10_000); // not the 30 s the runner allows
  });

  it('Redis killed under load: zero failed requests; sharing resumes when it is back', async () => {
    const prefix = `f${randomBytes(4).toString('hex')}:`;
    const url = `https://localhost:${nginx.port}/`;
    const warnings: string[] = [];
    const stores = openStores({
      sessionStore: redis.url,
      originCache: redis.url,
      redis: { prefix, backoffMs: 50, backoffMaxMs: 200, onWarning: (e) => warnings.push(e.code) },
    });
    await stores.ready(1000);
    // New connections all along (5 requests each), so tickets are taken and stored throughout.
    const agent = new Agent({
      protocol: 'auto',
      tls: { ca: certs.ca },
      pool: { maxRequestsPerConnection: 5 },
      sessionStore: stores.sessionStore!,
      originCache: stores.originCache!,
    });
    let ok = 0;
    let failed = 0;
    const deadline = Date.now() + 3000;
    const worker = async (): Promise<void> => {
      for (let i = 0; i < 5000 && Date.now() < deadline; i++) {
        try {
          const r = await agent.request({ url });
          await r.text();
          if (r.status === 200) ok++;
          else failed++;
        } catch {
          failed++;
        }
      }
    };
    try {
      const load = Promise.all(Array.from({ length: 4 }, worker));
      await sleep(700);
      await redis.kill();
      await sleep(1000);
      await redis.restart();
      await load;
      expect(failed).toBe(0);
      expect(ok).toBeGreaterThan(100);
      expect(warnings).toEqual(['OL_STORE_UNAVAILABLE']);
      const st = (stores.sessionStore as RedisSessionStore).stats();
      expect(st.redis).toMatchObject({ up: true, outages: 1 });
      // Back: tickets shared after the restart are there for a fresh process.
      const shared = st.shared;
      const r = await agent.request({ url: `https://127.0.0.1:${nginx.port}/` }); // a new pool: a new connection and tickets
      await r.text();
      await sleep(100);
      expect((stores.sessionStore as RedisSessionStore).stats().shared).toBeGreaterThan(shared);
      const fresh = new RedisSessionStore({ url: redis.url, prefix });
      await fresh.ready();
      expect(fresh.stats().claimed).toBeGreaterThan(0);
      await fresh.close();
    } finally {
      agent.destroy();
      await stores.close();
    }
  }, 60_000);
});
