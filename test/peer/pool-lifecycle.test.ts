/**
 * Pool lifecycle against nginx: the fetch CLI's reuse summary, diagnostics
 * events, PING finding a frozen h2 peer before any request does, the idle h1
 * liveness check, and maximum connection age.
 */
import { execFile, execFileSync } from 'node:child_process';
import diagnostics from 'node:diagnostics_channel';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/index.js';
import { CLI } from '../helpers/build.js';
import { makeCerts } from '../helpers/certs.js';
import { Nginx } from '../helpers/nginx.js';

const run = promisify(execFile);
const certs = makeCerts();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('pool lifecycle against nginx', () => {
  let nginx: Nginx;
  beforeAll(async () => {
    nginx = await Nginx.start({ keepaliveTimeout: '1s' });
  });
  afterAll(async () => {
    await nginx?.close();
  });

  for (const protocol of ['h1', 'h2'] as const) {
    it(`fetch --repeat 1000 --concurrency 8 (${protocol}): connectionsOpened ≤ concurrency, reuseRate ≥ 0.99`, async () => {
      const { stdout } = await run(process.execPath, [
        CLI,
        'fetch',
        `https://localhost:${nginx.port}/small.txt`,
        '--protocol',
        protocol,
        '--repeat',
        '1000',
        '--concurrency',
        '8',
        '--cacert',
        certs.caPath,
        '--json',
      ]);
      const s = JSON.parse(stdout) as {
        requests: number;
        ok: number;
        connectionsOpened: number;
        reuseRate: number;
        protocol: string;
        latencyMs: { p50: number };
        first: { sha256: string; bytes: number };
      };
      expect(s.requests).toBe(1000);
      expect(s.ok).toBe(1000);
      expect(s.protocol).toBe(protocol);
      expect(s.connectionsOpened).toBeLessThanOrEqual(8);
      expect(s.reuseRate).toBeGreaterThanOrEqual(0.99);
      expect(s.first.bytes).toBe(1024);
      expect(s.first.sha256).toMatch(/^[0-9a-f]{64}$/);
    });
  }

  it('{ origin, path } names the same pool as the equivalent url; a bad origin or path is a typed error', async () => {
    const agent = new Agent({ tls: { ca: certs.ca } });
    const origin = `https://localhost:${nginx.port}`;
    const a = await agent.request({ url: `${origin}/small.txt` });
    await a.dump();
    const b = await agent.request({ origin, path: '/small.txt?x=1' });
    expect((await b.bytes()).length).toBe(1024);
    expect(b.connectionId).toBe(a.connectionId);
    await expect(agent.request({ origin: `${origin}/x`, path: '/' })).rejects.toMatchObject({
      code: 'OL_INVALID_ARGUMENT',
    });
    await expect(agent.request({ origin, path: 'small.txt' })).rejects.toMatchObject({ code: 'OL_INVALID_ARGUMENT' });
    // nginx writes its log line after the response left: wait for it (bounded).
    for (let t = 0; t < 100 && !nginx.log().some((l) => l.uri === '/small.txt?x=1'); t++)
      await new Promise((r) => setTimeout(r, 20));
    expect(nginx.log().some((l) => l.uri === '/small.txt?x=1')).toBe(true);
    await agent.close();
  });

  it('publishes connection and request events on diagnostics_channel', async () => {
    const seen: string[] = [];
    const on =
      (name: string) =>
      (msg: unknown): void => {
        seen.push(`${name}:${(msg as { origin: string }).origin.startsWith('https://localhost') ? 'ok' : 'bad'}`);
      };
    const subs = [
      ['originlink:connection:open', on('open')],
      ['originlink:request:end', on('req')],
      ['originlink:connection:close', on('close')],
    ] as const;
    for (const [ch, fn] of subs) diagnostics.subscribe(ch, fn);
    const agent = new Agent({ tls: { ca: certs.ca } });
    for (let i = 0; i < 3; i++)
      await (await agent.request({ url: `https://localhost:${nginx.port}/small.txt` })).dump();
    await agent.close();
    for (const [ch, fn] of subs) diagnostics.unsubscribe(ch, fn);
    expect(seen).toEqual(['open:ok', 'req:ok', 'req:ok', 'req:ok', 'close:ok']);
  });

  it('an idle h1 connection closed by the origin is noticed before reuse: a fresh connection, no retry', async () => {
    const agent = new Agent({ protocol: 'h1', tls: { ca: certs.ca } });
    const url = `https://localhost:${nginx.port}/small.txt`;
    const a = await agent.request({ url });
    await a.dump();
    await sleep(1500); // nginx keepalive_timeout 1s closes it
    const b = await agent.request({ url });
    await b.dump();
    expect(b.reused).toBe(false);
    expect(b.attempts).toBe(1);
    expect(b.connectionId).not.toBe(a.connectionId);
    expect(agent.stats()[0]?.errors).toEqual({});
    await agent.close();
  });

  it("nginx's unsaid keepalive_timeout is observed from two idle closes; then ours close first, by the margin", async () => {
    const agent = new Agent({ protocol: 'h1', tls: { ca: certs.ca }, pool: { keepAliveMarginMs: 300 } });
    const url = `https://localhost:${nginx.port}/small.txt`;
    for (let i = 0; i < 2; i++) {
      const r = await agent.request({ url });
      expect(r.connection.keepAliveHintMs).toBeNull(); // nginx says nothing (keepalive_timeout has one parameter)
      await r.dump();
      await sleep(1500); // nginx keepalive_timeout 1s closes it
    }
    const observed = agent.stats()[0]?.idleObservedMs;
    // nginx's 1 s, as two clocks read it: nginx times from its own cached clock (ms), we from our release (CI: 999.98).
    expect(observed).toBeGreaterThan(900);
    expect(observed).toBeLessThan(1400);
    const c = await agent.request({ url });
    expect(c.connection.keepAliveObservedMs).toBe(observed);
    await c.dump();
    await sleep(850); // past ours (observed − 300 ms), before nginx's 1 s
    expect(agent.stats()[0]?.open).toBe(0);
    expect(agent.stats()[0]?.errors).toEqual({});
    await agent.close();
  });

  it('maxAgeMs recycles connections (with jitter below the maximum)', async () => {
    const agent = new Agent({
      protocol: 'h2',
      tls: { ca: certs.ca },
      pool: { maxAgeMs: 300, maxAgeJitter: 0.5, pingIntervalMs: 100 },
    });
    const url = `https://localhost:${nginx.port}/small.txt`;
    const a = await agent.request({ url });
    await a.dump();
    await sleep(450);
    const b = await agent.request({ url });
    await b.dump();
    expect(b.connectionId).not.toBe(a.connectionId);
    await agent.close();
  });
});

describe('PING finds a dead h2 peer before a request does', () => {
  let nginx: Nginx;
  beforeAll(async () => {
    nginx = await Nginx.start();
  });
  afterAll(async () => {
    await nginx?.close();
  });

  it('a frozen origin (SIGSTOP) is detected by PING and the connection dropped', async () => {
    const agent = new Agent({
      protocol: 'h2',
      tls: { ca: certs.ca },
      pool: { pingIntervalMs: 200, pingTimeoutMs: 300 },
    });
    const url = `https://localhost:${nginx.port}/small.txt`;
    await (await agent.request({ url })).dump();
    const workers = execFileSync('pgrep', ['-P', String(nginx.pid)], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
    expect(workers.length).toBeGreaterThan(0);
    for (const w of workers) process.kill(w, 'SIGSTOP');
    try {
      const deadline = Date.now() + 3000;
      while (Date.now() < deadline && (agent.stats()[0]?.connectionsClosed ?? 0) === 0) await sleep(50);
      const st = agent.stats()[0];
      expect(st?.connectionsClosed).toBe(1);
      expect(st?.errors['OL_PING_TIMEOUT']).toBe(1);
      expect(st?.requests).toBe(1); // no request had to fail to find out
    } finally {
      for (const w of workers) process.kill(w, 'SIGCONT');
    }
    const r = await agent.request({ url });
    await r.dump();
    expect(r.reused).toBe(false);
    await agent.close();
  });
});
