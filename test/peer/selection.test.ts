/**
 * `auto` protocol selection against real peers: nginx over TLS → h2, nginx
 * without h2 → h1, Caddy (Alt-Svc) → h3 after the first response, and h3 at
 * once after a restart with the persisted origin cache. Needs Debian `nginx-light`
 * (or any nginx) and `caddy`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSocket, type Socket } from 'node:dgram';
import { Agent, MemorySessionStore, type OriginlinkError } from '../../src/index.js';
import { FileOriginCache, MemoryOriginCache } from '../../src/store/origin-cache.js';
import { makeCerts } from '../helpers/certs.js';
import { Nginx } from '../helpers/nginx.js';
import { startCaddy, type Caddy } from '../helpers/caddy.js';
import { freeTcpUdpPort } from '../helpers/ports.js';

const certs = makeCerts();
let h2nginx: Nginx;
let h1nginx: Nginx;
let caddy: Caddy;
let tmp: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'ol-sel-'));
  [h2nginx, h1nginx, caddy] = await Promise.all([
    Nginx.start(),
    Nginx.start({ h2: false }),
    freeTcpUdpPort().then((port) => startCaddy({ port, certFile: certs.certPath, keyFile: certs.keyPath })),
  ]);
}, 30_000);

afterAll(async () => {
  await Promise.all([h2nginx?.close(), h1nginx?.close(), caddy?.stop()]);
  rmSync(tmp, { recursive: true, force: true });
});

describe('auto selection', () => {
  it('nginx over TLS (no h3) → h2; ALPN is remembered', async () => {
    const agent = new Agent({ tls: { ca: certs.ca } });
    const url = `https://localhost:${h2nginx.port}/index.html`;
    const r = await agent.request({ url });
    await r.dump();
    expect(r.protocol).toBe('h2');
    const o = agent.origin(url);
    expect(o.facts.alpn).toBe('h2');
    expect(o.facts.h3).toBeNull();
    expect(o.choice).toMatchObject({ transport: 'tcp', protocol: 'h2' });
    expect(o.choice.reason).toMatch(/ALPN offers h2/);
    await agent.close();
  });

  it('nginx with h2 disabled → h1', async () => {
    const agent = new Agent({ tls: { ca: certs.ca } });
    const url = `https://localhost:${h1nginx.port}/index.html`;
    const r = await agent.request({ url });
    expect(await r.text()).toBe('hello from nginx\n');
    expect(r.protocol).toBe('h1');
    expect(agent.origin(url).choice).toMatchObject({ transport: 'tcp', protocol: 'h1' });
    await agent.close();
  });

  it('Caddy → h2 first, h3 after Alt-Svc is seen; a restart with the persisted cache goes h3 at once', async () => {
    const file = join(tmp, 'origins.json');
    const url = `https://localhost:${caddy.port}/index.html`;
    const agent = new Agent({ tls: { ca: certs.ca }, originCache: new FileOriginCache(file) });
    const r1 = await agent.request({ url });
    expect(await r1.text()).toBe('hello from caddy\n');
    expect(r1.protocol).toBe('h2');
    expect(r1.header('alt-svc')).toMatch(/h3=":\d+"/);
    const o = agent.origin(url);
    expect(o.facts.h3).toMatchObject({ host: '', port: caddy.port, source: 'alt-svc' });
    // The upgrade runs in the background; the next requests land on h3.
    let proto = '';
    for (let i = 0; i < 500 && proto !== 'h3'; i++) {
      // up to 10 s: the h3 stack's first load is slow on a busy machine
      await new Promise((res) => setTimeout(res, 20));
      const r = await agent.request({ url });
      await r.dump();
      proto = r.protocol;
    }
    expect(proto).toBe('h3');
    expect(agent.origin(url).counters.upgrades).toBe(1);
    await agent.close();

    const saved = JSON.parse(readFileSync(file, 'utf8')) as { origins: Record<string, { h3: { port: number } }> };
    expect(saved.origins[`https://localhost:${caddy.port}`]?.h3.port).toBe(caddy.port);

    // "Restart": a new agent with only the file. No ticket, so QUIC needs its full handshake; the derived race delay
    // (2·RTT + 25 ms on loopback) let TCP win it when the suite loaded the machine (CI 11-27). What this test checks
    // is that the cache makes h3 the first choice, not the race's timing (selection-blackhole.test.ts does): TCP waits
    // longer here.
    const agent2 = new Agent({
      tls: { ca: certs.ca },
      originCache: new FileOriginCache(file),
      selection: { raceDelayMs: 2000 },
    });
    expect(agent2.origin(url).choice).toMatchObject({ transport: 'quic', protocol: 'h3' });
    const r2 = await agent2.request({ url });
    expect(await r2.text()).toBe('hello from caddy\n');
    expect(r2.protocol).toBe('h3');
    const [st] = agent2.stats();
    expect(st?.connectionsOpened).toBe(1);
    expect(agent2.origin(url).counters).toMatchObject({ races: 1, quicWins: 1, tcpWins: 0 });
    await agent2.close();
  });

  it('a corrupt cache file is ignored with a warning', () => {
    const file = join(tmp, 'corrupt.json');
    writeFileSync(file, '{"format": "originlink-origin-cache/1", "origins": {');
    const warnings: string[] = [];
    const c = new FileOriginCache(file, { warn: (m) => warnings.push(m) });
    expect(c.size).toBe(0);
    expect(warnings[0]).toMatch(/ignoring unreadable origin cache/);
    c.put('https://x:1', { h3: null, alpn: 'h2', rttMs: 1, brokenUntil: 0, brokenCount: 0, updatedAt: Date.now() });
    c.flush();
    expect(new FileOriginCache(file).get('https://x:1')?.alpn).toBe('h2');
  });

  it('per-origin override and per-request protocol win over auto', async () => {
    const url = `https://localhost:${caddy.port}/index.html`;
    const agent = new Agent({
      tls: { ca: certs.ca },
      origins: { [`https://localhost:${caddy.port}`]: { protocol: 'h1' } },
    });
    const r1 = await agent.request({ url });
    await r1.dump();
    expect(r1.protocol).toBe('h1');
    const r2 = await agent.request({ url, protocol: 'h3' });
    await r2.dump();
    expect(r2.protocol).toBe('h3');
    await agent.close();
  });

  it('early start: a known h3 alternative with a ticket gets the first GET as 0-RTT at once; when that path is blackholed, TCP takes over after the race delay, the GET is sent again there, a POST that went early (earlyData: always) is never replayed', async () => {
    const url = `https://localhost:${caddy.port}/index.html`;
    const cache = new MemoryOriginCache();
    const sessionStore = new MemorySessionStore();
    const selection = { quicTimeoutMs: 700, raceDelayMs: 40 };
    // 1. Learn h3 and get tickets.
    const a1 = new Agent({ tls: { ca: certs.ca }, originCache: cache, sessionStore, selection });
    let proto = '';
    for (let i = 0; i < 500 && proto !== 'h3'; i++) {
      // up to 10 s: the h3 stack's first load is slow on a busy machine
      const r = await a1.request({ url });
      await r.dump();
      proto = r.protocol;
      await new Promise((res) => setTimeout(res, 20));
    }
    expect(proto).toBe('h3');
    await a1.close();
    // 2. A healthy path: the first request of a fresh agent is early data on the ticket.
    // TCP joins only if QUIC has not answered in 2 s: on a machine busy with the rest of the suite the 0-RTT answer
    // took over 40 ms once, TCP won the race and the GET went again there (attempts 2) — a race this step is not about.
    const a2 = new Agent({
      tls: { ca: certs.ca },
      originCache: cache,
      sessionStore,
      selection: { ...selection, raceDelayMs: 2000 },
    });
    const r2 = await a2.request({ url });
    expect(await r2.text()).toBe('hello from caddy\n');
    expect([r2.protocol, r2.earlyData, r2.connection.resumed, r2.attempts]).toEqual(['h3', true, true, 1]);
    expect(a2.origin(url).counters).toMatchObject({ races: 1, earlyStarts: 1, quicWins: 1, fallbacks: 0, tcpWins: 0 });
    await a2.close();
    // 3. The alternative now points at a UDP port that swallows every datagram (a blackhole).
    const holes: Socket[] = [];
    const bind = (type: 'udp4' | 'udp6', host: string, port: number): Promise<number> =>
      new Promise((res, rej) => {
        const s = createSocket(type);
        s.on('message', () => {});
        s.once('error', rej);
        s.bind(port, host, () => {
          holes.push(s);
          res(s.address().port);
        });
      });
    const hole = await bind('udp4', '127.0.0.1', 0);
    await bind('udp6', '::1', hole).catch(() => 0);
    try {
      const origin = `https://localhost:${caddy.port}`;
      const f = cache.get(origin)!;
      cache.put(origin, { ...f, h3: { ...f.h3!, port: hole }, brokenCount: 0, brokenUntil: 0 });
      const a3 = new Agent({ tls: { ca: certs.ca }, originCache: cache, sessionStore, selection, earlyData: 'always' });
      const t0 = performance.now();
      const [get, post] = await Promise.allSettled([
        a3.request({ url }).then(async (r) => ({ r, text: await r.text(), ms: performance.now() - t0 })),
        a3.request({ url, method: 'POST', body: 'once' }),
      ]);
      expect(get.status).toBe('fulfilled');
      const g = (
        get as PromiseFulfilledResult<{
          r: { protocol: string; attempts: number; earlyData: boolean };
          text: string;
          ms: number;
        }>
      ).value;
      expect(g.text).toBe('hello from caddy\n');
      expect([g.r.protocol, g.r.attempts, g.r.earlyData]).toEqual(['h2', 2, false]);
      expect(g.ms).toBeLessThan(600); // race delay + one TCP+TLS handshake, not the QUIC deadline
      // The POST stayed on the QUIC connection and failed with it, not sent a second time.
      expect(post.status).toBe('rejected');
      const e = (post as PromiseRejectedResult).reason as OriginlinkError;
      expect([e.code, e.details['attempts']]).toEqual(['OL_EARLY_DATA_ABANDONED', 1]);
      const o = a3.origin(url);
      expect(o.counters).toMatchObject({ races: 1, earlyStarts: 1, fallbacks: 1, quicFailures: 1 });
      expect(o.facts.brokenCount).toBe(1);
      // Later requests use the TCP connection.
      const r4 = await a3.request({ url });
      await r4.dump();
      expect([r4.protocol, r4.attempts]).toEqual(['h2', 1]);
      await a3.close();
    } finally {
      for (const s of holes) s.close();
    }
  }, 30_000);
});
