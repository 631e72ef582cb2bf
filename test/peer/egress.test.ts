/**
 * Egress through real forward proxies started here on loopback ports: squid
 * and tinyproxy (HTTP/1.1 CONNECT, with and without Basic credentials),
 * microsocks (SOCKS5, with and without RFC 1929 user/pass). Which node
 * carried which request is counted in the proxies' own logs and at the
 * origin (TLS connections accepted).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/index.js';
import { makeCerts } from '../helpers/certs.js';
import { CLOSED_PORT, freePort } from '../helpers/ports.js';
import { type ProxyPeer, startMicrosocks, startSquid, startTinyproxy } from '../helpers/proxies.js';
import { runCli, writeTsHooks } from '../helpers/ts-child.js';
import { parseConfig } from '../../src/service/config.js';
import { Upstream } from '../../src/service/upstream.js';
import { MemorySessionStore } from '../../src/store/session-store.js';

const certs = makeCerts();
let origin: https.Server;
let port = 0;
let originConns = 0;
let target = '';
let url = '';
const peers: Record<string, ProxyPeer> = {};
const U1 = { user: 'crawler', pass: 's3cret-1' };
const U2 = { user: 'other', pass: 'second' };

beforeAll(async () => {
  port = await freePort();
  origin = https.createServer({ cert: certs.cert, key: certs.key }, (req, res) => res.end(`ok ${req.url}`));
  origin.keepAliveTimeout = 60_000;
  origin.on('secureConnection', () => originConns++);
  await new Promise<void>((r) => origin.listen(port, '127.0.0.1', r));
  target = `localhost:${port}`;
  url = `https://${target}/`;
  const started = await Promise.all([
    startSquid(),
    startSquid([U1, U2]),
    startTinyproxy(),
    startTinyproxy(),
    startTinyproxy(U1),
    startMicrosocks(),
    startMicrosocks(U1),
  ]);
  [peers.squid, peers.squidAuth, peers.tiny, peers.tiny2, peers.tinyAuth, peers.socks, peers.socksAuth] = started;
}, 60_000);

afterAll(async () => {
  await Promise.all(Object.values(peers).map((p) => p.stop()));
  origin?.closeAllConnections();
  await new Promise((r) => origin?.close(r));
});

const withPass = (u: string, pass: string): string => u.replace(/:[^:@/]*@/, `:${encodeURIComponent(pass)}@`);
const mk = (
  proxy: ConstructorParameters<typeof Agent>[0] extends infer O ? (O extends { proxy?: infer P } ? P : never) : never,
): Agent => new Agent({ tls: { ca: certs.ca }, proxy, pool: { idleTimeoutMs: 30_000 } });

async function get(
  agent: Agent,
  n: number,
  path = '/',
): Promise<Array<{ node: string | undefined; reused: boolean; protocol: string }>> {
  const out = [];
  for (let i = 0; i < n; i++) {
    const r = await agent.request({ url: `https://${target}${path}` });
    expect(await r.text()).toBe(`ok ${path}`);
    out.push({ node: r.connection.proxy?.node, reused: r.reused, protocol: r.protocol });
  }
  return out;
}

/** squid writes a tunnel's access.log line when it closes: wait for it (bounded). */
async function settled(p: ProxyPeer, want: number): Promise<number> {
  const deadline = Date.now() + 5000;
  while (p.tunnels(target) < want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return p.tunnels(target);
}

describe('egress through forward proxies', () => {
  for (const name of ['squid', 'tiny', 'socks', 'squidAuth', 'tinyAuth', 'socksAuth'] as const) {
    it(`${name}: 20 requests, one tunnel, reuse 0.95; facts name the node, never the credentials`, async () => {
      const p = peers[name] as ProxyPeer;
      const before = originConns;
      const agent = mk({ nodes: [p.url] });
      const rs = await get(agent, 20);
      const id = `${p.url.startsWith('socks5') ? 'socks5' : 'http'}://127.0.0.1:${p.port}`;
      expect(rs.every((r) => r.node === id && r.protocol === 'h1')).toBe(true);
      const conn = agent.pool(url).connections()[0];
      expect(conn?.facts.proxy).toEqual({
        node: id,
        kind: id.split(':')[0],
        http2: false,
        h3: 'not attempted: TCP-only proxy',
      });
      expect(conn?.facts.remoteAddress).toBe('localhost');
      expect(JSON.stringify(conn?.facts)).not.toContain(U1.pass);
      const st = agent.proxyStats();
      expect(st).toHaveLength(1);
      expect(st[0]).toMatchObject({ node: id, requests: 20, connectionsOpened: 1, reuseRate: 0.95 });
      expect(st[0]?.handshakeMsSaved).toBeGreaterThan(0);
      await agent.close();
      expect(originConns - before).toBe(1);
      if (p.kind !== 'microsocks') expect(await settled(p, 1)).toBe(1); // the first use of this proxy
    });
  }

  it('wrong or missing credentials: OL_PROXY_AUTH_FAILED, one attempt, never another node', async () => {
    for (const p of [peers.squidAuth, peers.tinyAuth, peers.socksAuth] as ProxyPeer[]) {
      for (const bad of [withPass(p.url, 'wrong'), p.url.replace(/\/\/[^@]*@/, '//')]) {
        const agent = mk({ nodes: [bad, (peers.tiny as ProxyPeer).url], policy: 'round-robin' });
        const before = originConns;
        const tinyBefore = (peers.tiny as ProxyPeer).tunnels(target);
        const err = await agent.request({ url }).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err, `${p.kind} ${bad}`).toMatchObject({ code: 'OL_PROXY_AUTH_FAILED', details: { attempts: 1 } });
        expect(String((err as Error).message)).not.toContain('wrong');
        expect(originConns).toBe(before);
        expect((peers.tiny as ProxyPeer).tunnels(target)).toBe(tinyBefore);
        await agent.close();
      }
    }
  }, 30_000);

  it('the pool key holds the credentials hash: one node, two users → two tunnels, never shared', async () => {
    const p = peers.squidAuth as ProxyPeer;
    const other = p.url.replace(/\/\/[^@]*@/, `//${U2.user}:${U2.pass}@`);
    const agent = mk({ nodes: [p.url, other], policy: 'round-robin' });
    const rs = await get(agent, 6);
    expect(rs.filter((r) => r.reused).length).toBe(4);
    const st = agent.proxyStats();
    expect(st).toHaveLength(1); // same node id…
    expect(st[0]).toMatchObject({ requests: 6, connectionsOpened: 2 }); // …two credential pools
    expect(agent.pools()).toHaveLength(2);
    await agent.close();
  });

  it('round-robin over two nodes: alternate per request, a warm tunnel on each (counted in their logs)', async () => {
    const a = peers.tiny as ProxyPeer;
    const b = peers.tiny2 as ProxyPeer;
    const [ta, tb] = [a.tunnels(target), b.tunnels(target)];
    const agent = mk({ nodes: [a.url, b.url], policy: 'round-robin' });
    const rs = await get(agent, 10);
    expect(rs.map((r) => (r.node?.endsWith(String(a.port)) ? 'a' : 'b')).join('')).toBe('ababababab');
    expect(rs.filter((r) => r.reused).length).toBe(8);
    expect([a.tunnels(target) - ta, b.tunnels(target) - tb]).toEqual([1, 1]);
    expect(
      agent
        .proxyStats()
        .map((s) => s.requests)
        .sort(),
    ).toEqual([5, 5]);
    await agent.close();
  });

  it('sticky window: one node for every request of a window, the next node in the next window', async () => {
    const a = peers.tiny as ProxyPeer;
    const b = peers.tiny2 as ProxyPeer;
    const w = 1000;
    const agent = mk({ nodes: [a.url, b.url], policy: 'sticky', stickyWindowMs: w });
    const windows: string[][] = [];
    for (let k = 0; k < 2; k++) {
      await new Promise((r) => setTimeout(r, w - (Date.now() % w) + 30)); // just after a window starts
      windows.push((await get(agent, 5)).map((r) => r.node as string));
    }
    for (const win of windows) expect(new Set(win).size).toBe(1);
    expect(windows[0]?.[0]).not.toBe(windows[1]?.[0]);
    await agent.close();
  });

  it('per-origin: an origin always goes through the same node', async () => {
    const agent = mk({ nodes: [(peers.tiny as ProxyPeer).url, (peers.tiny2 as ProxyPeer).url], policy: 'per-origin' });
    const rs = await get(agent, 6);
    expect(new Set(rs.map((r) => r.node)).size).toBe(1);
    await agent.close();
  });

  it('h3 is not attempted through a TCP-only proxy; a per-origin null goes direct', async () => {
    const p = peers.tiny as ProxyPeer;
    const agent = new Agent({ tls: { ca: certs.ca }, proxy: { nodes: [p.url] }, protocol: 'h3' });
    await expect(agent.request({ url })).rejects.toMatchObject({
      code: 'OL_UNSUPPORTED_PROTOCOL',
      message: /TCP-only proxy/,
    });
    await agent.close();
    const direct = new Agent({
      tls: { ca: certs.ca },
      proxy: { nodes: [p.url] },
      origins: { [`https://localhost:${port}`]: { proxy: null } },
    });
    const r = await direct.request({ url });
    await r.text();
    expect(r.connection.proxy).toBeNull();
    expect(direct.proxyStats()).toEqual([]);
    await direct.close();
  });

  it('CLI: fetch --proxy (two nodes, round-robin) --json names the node per request; probe --proxy says QUIC was not attempted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'addr-cli-'));
    writeTsHooks(dir);
    try {
      const a = peers.tiny as ProxyPeer;
      const b = peers.socks as ProxyPeer;
      const one = await runCli(dir, ['fetch', url, '--cacert', certs.caPath, '--proxy', b.url, '--json']);
      expect(one.code, one.stderr).toBe(0);
      const j = JSON.parse(one.stdout);
      expect(j).toMatchObject({
        status: 200,
        proxy: { node: `socks5://127.0.0.1:${b.port}`, kind: 'socks5', h3: 'not attempted: TCP-only proxy' },
        family: null,
        tfo: false,
      });
      const many = await runCli(dir, [
        'fetch',
        url,
        '--cacert',
        certs.caPath,
        '--proxy',
        a.url,
        '--proxy',
        b.url,
        '--proxy-policy',
        'round-robin',
        '--repeat',
        '10',
        '--json',
      ]);
      expect(many.code, many.stderr).toBe(0);
      const m = JSON.parse(many.stdout);
      expect(m.ok).toBe(10);
      expect(
        m.proxies.map((p: { requests: number; connectionsOpened: number }) => [p.requests, p.connectionsOpened]),
      ).toEqual([
        [5, 1],
        [5, 1],
      ]);
      const probe = await runCli(dir, ['probe', url, '--cacert', certs.caPath, '--proxy', a.url]);
      expect(probe.code, probe.stderr).toBe(0);
      expect(probe.stdout).toMatch(new RegExp(`proxy\\s+http://127\\.0\\.0\\.1:${a.port}`));
      expect(probe.stdout).toMatch(/quic\s+not attempted: TCP-only proxy/);
      const bad = await runCli(dir, ['fetch', url, '--proxy-policy', 'sticky']);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(/need --proxy/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("service config: global proxy.egress and dns, per-origin proxy (or none) reach the Upstream's Agent; bad values are named", async () => {
    const a = peers.tiny as ProxyPeer;
    const b = peers.tiny2 as ProxyPeer;
    const yaml = `
listeners:
  - { kind: http, port: 0 }
dns: { servers: ["127.0.0.1:53"], minTtlMs: 500, attemptDelayMs: 100 }
proxy:
  egress: { nodes: ["${a.url}"], policy: sticky, stickyWindowMs: 30000 }
origins:
  viaGlobal: { url: "https://localhost:${port}", tls: { ca: ${JSON.stringify(certs.caPath)} } }
  viaOwn: { url: "https://localhost:${port}", tls: { ca: ${JSON.stringify(certs.caPath)} }, proxy: { nodes: ["${b.url}"], policy: round-robin } }
  direct: { url: "https://localhost:${port}", proxy: none }
routes:
  - { path: /, origin: viaGlobal }
`;
    const c = parseConfig(yaml, 'e.yaml', '/tmp');
    expect(c.origins.get('viaGlobal')?.egress).toEqual({
      nodes: [a.url],
      policy: 'sticky',
      stickyWindowMs: 30000,
      http2: false,
    });
    expect(c.origins.get('viaOwn')?.egress?.policy).toBe('round-robin');
    expect(c.origins.get('direct')?.egress).toBeNull();
    expect(c.origins.get('direct')?.dns).toMatchObject({
      servers: ['127.0.0.1:53'],
      minTtlMs: 500,
      attemptDelayMs: 100,
      maxTtlMs: 300000,
    });
    for (const [name, node] of [
      ['viaGlobal', a],
      ['viaOwn', b],
    ] as const) {
      const before = node.tunnels(target);
      const up = new Upstream(c.origins.get(name)!, new MemorySessionStore(), () => {});
      const res = await up.request({ path: '/svc' });
      expect(await res.text()).toBe('ok /svc');
      expect(res.connection.proxy?.node).toBe(`http://127.0.0.1:${node.port}`);
      expect(node.tunnels(target) - before).toBe(1);
      await up.agent.close();
    }
    const fails = (t: string): string => {
      try {
        parseConfig(t, 'e.yaml', '/tmp');
        return '';
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(fails(yaml.replace(`nodes: ["${a.url}"]`, 'nodes: ["ftp://x:1"]'))).toMatch(
      /e\.yaml:\d+: proxy\.egress\.nodes: unsupported proxy scheme ftp:/,
    );
    expect(fails(yaml.replace('policy: round-robin', 'policy: random'))).toMatch(/origins\.viaOwn\.proxy\.policy/);
    expect(fails(yaml.replace('"127.0.0.1:53"', '"not an address"'))).toMatch(/dns\.servers/);
    expect(fails(yaml.replace('minTtlMs: 500', 'minTtlMs: 500, maxTtlMs: 10'))).toMatch(
      /dns\.minTtlMs: must be ≤ maxTtlMs/,
    );
  });

  it('a proxy that streams interim responses to CONNECT: refused after 16 (OL_PROXY_FAILED), not read until the timeout', async () => {
    let sent = 0;
    const chatty = net.createServer((s) => {
      s.on('error', () => {});
      s.once('data', () => {
        const t = setInterval(() => {
          if (s.destroyed || sent > 100_000) {
            clearInterval(t);
            return;
          }
          s.write('HTTP/1.1 100 Continue\r\n\r\n'.repeat(50));
          sent += 50;
        }, 1);
        s.on('close', () => clearInterval(t));
      });
    });
    await new Promise<void>((r) => chatty.listen(0, '127.0.0.1', () => r()));
    const node = `http://127.0.0.1:${(chatty.address() as net.AddressInfo).port}`;
    const agent = new Agent({
      tls: { ca: certs.ca },
      proxy: { nodes: [node] },
      maxRetries: 0,
      pool: { connectTimeoutMs: 5000 },
    });
    try {
      const t0 = Date.now();
      await expect(agent.request({ url })).rejects.toMatchObject({
        code: 'OL_PROXY_FAILED',
        message: expect.stringMatching(/more than 16 interim/),
      });
      expect(Date.now() - t0).toBeLessThan(2000);
    } finally {
      await agent.close();
      chatty.close();
    }
  });

  it('a proxy that is down: OL_PROXY_FAILED naming the node (retry-safe: nothing was sent)', async () => {
    const dead = CLOSED_PORT;
    const agent = new Agent({ tls: { ca: certs.ca }, proxy: { nodes: [`http://127.0.0.1:${dead}`] }, maxRetries: 0 });
    await expect(agent.request({ url })).rejects.toMatchObject({
      code: 'OL_PROXY_FAILED',
      retrySafe: true,
      details: { proxy: `http://127.0.0.1:${dead}` },
    });
    await agent.close();
  });
});
