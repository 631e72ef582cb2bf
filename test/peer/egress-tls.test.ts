/**
 * Egress through a proxy behind TLS, and HTTP/2 CONNECT (RFC 9113 §8.5):
 * nghttpx in HTTP/2 proxy mode (`--http2-proxy`, a TLS front offering h2 and
 * HTTP/1.1 by ALPN) in front of squid, which checks Basic credentials. All on
 * loopback ports, started here. Counted at the proxies: nghttpx's access log
 * names the client port of every CONNECT (one port = one connection to the
 * proxy), squid's access log the tunnels it opened.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/index.js';
import { makeCerts } from '../helpers/certs.js';
import { freePort } from '../helpers/ports.js';
import { type NghttpxPeer, type ProxyPeer, startNghttpx, startSquid } from '../helpers/proxies.js';
import { runCli, writeTsHooks } from '../helpers/ts-child.js';
import { parseConfig } from '../../src/service/config.js';

const certs = makeCerts();
const U = { user: 'fleet', pass: 'p4ss:word' };
let squid: ProxyPeer;
let front: NghttpxPeer;
let narrow: NghttpxPeer;
let h1Origin: https.Server;
let h2Origin: http2.Http2SecureServer;
let h1Target = '';
let h2Target = '';
let h1Accepted = 0;

beforeAll(async () => {
  const [p1, p2] = [await freePort(), await freePort()];
  // Answers after 150 ms: concurrent requests need one HTTP/1.1 connection each.
  h1Origin = https.createServer({ cert: certs.cert, key: certs.key }, (req, res) => {
    setTimeout(() => res.end(`h1 ${req.url}`), 150);
  });
  h1Origin.keepAliveTimeout = 60_000;
  h1Origin.on('secureConnection', () => h1Accepted++);
  h2Origin = http2.createSecureServer({ cert: certs.cert, key: certs.key }, (req, res) => {
    setTimeout(() => res.end(`h2 ${req.url}`), 50);
  });
  await new Promise<void>((r) => h1Origin.listen(p1, '127.0.0.1', r));
  await new Promise<void>((r) => h2Origin.listen(p2, '127.0.0.1', r));
  h1Target = `localhost:${p1}`;
  h2Target = `localhost:${p2}`;
  squid = await startSquid(U);
  front = await startNghttpx(squid, certs.certPath, certs.keyPath, U);
  narrow = await startNghttpx(squid, certs.certPath, certs.keyPath, U, 3);
}, 60_000);

afterAll(async () => {
  await Promise.all([front?.stop(), narrow?.stop(), squid?.stop()]);
  h1Origin?.closeAllConnections();
  await new Promise((r) => h1Origin?.close(r));
  await new Promise((r) => h2Origin?.close(r));
});

const withPass = (u: string, pass: string): string => u.replace(/:[^:@/]*@/, `:${encodeURIComponent(pass)}@`);

/** Access-log lines are written when a tunnel ends: wait for `want` CONNECTs to `target` (bounded). */
async function logged(
  p: NghttpxPeer,
  target: string,
  want: number,
): Promise<Map<number, { tunnels: number; alpn: string; statuses: number[] }>> {
  const deadline = Date.now() + 5000;
  const total = (): number => [...p.clients(target).values()].reduce((a, e) => a + e.tunnels, 0);
  while (total() < want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return p.clients(target);
}

/** A TCP relay to a local port: counts connections; `cut` on a pair stops carrying its bytes (both ends stay open). */
async function startRelay(
  to: number,
): Promise<{ port: number; pairs: Array<{ a: net.Socket; b: net.Socket; cut: boolean }>; close: () => Promise<void> }> {
  const pairs: Array<{ a: net.Socket; b: net.Socket; cut: boolean }> = [];
  const server = net.createServer((a) => {
    const b = net.connect(to, '127.0.0.1');
    const pair = { a, b, cut: false };
    pairs.push(pair);
    a.on('data', (d) => {
      if (!pair.cut) b.write(d);
    });
    b.on('data', (d) => {
      if (!pair.cut) a.write(d);
    });
    a.on('error', () => b.destroy());
    b.on('error', () => a.destroy());
    a.on('close', () => b.destroy());
    b.on('close', () => a.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    pairs,
    close: async () => {
      for (const p of pairs) {
        p.a.destroy();
        p.b.destroy();
      }
      await new Promise((r) => server.close(r));
    },
  };
}

describe('egress through a TLS proxy (nghttpx → squid)', () => {
  it("a proxy whose certificate comes from another CA than the origin's: refused without proxy.tls, trusted with its own CA", {
    timeout: 30_000,
  }, async () => {
    const proxyCerts = makeCerts({ fresh: true }); // a second CA, for the proxy only
    const own = await startNghttpx(squid, proxyCerts.certPath, proxyCerts.keyPath, U);
    try {
      // Without tls for the node, its certificate is checked against the origin's CA: a typed error naming the proxy.
      const plain = new Agent({ tls: { ca: certs.ca }, protocol: 'h1', proxy: { nodes: [own.url] }, maxRetries: 0 });
      await expect(plain.request({ url: `https://${h1Target}/x` })).rejects.toMatchObject({ code: 'OL_PROXY_FAILED' });
      await plain.close();
      // The node's own CA: the tunnel is made, and the origin is still checked against the origin's CA.
      const trusted = new Agent({
        tls: { ca: certs.ca },
        protocol: 'h1',
        proxy: { nodes: [own.url], tls: { ca: proxyCerts.ca } },
      });
      const r = await trusted.request({ url: `https://${h1Target}/own-ca` });
      expect(await r.text()).toBe('h1 /own-ca');
      await trusted.close();
      // The service config carries the same: proxy.egress.tls.ca.
      const c = parseConfig(
        `proxy: { egress: { nodes: ["${own.url}"], tls: { ca: ${proxyCerts.caPath}, verify: true } } }\norigins: { a: { url: "https://${h1Target}" } }\nroutes: [ { origin: a } ]\nlisteners: [ { kind: http, port: 0 } ]\n`,
        'x.yaml',
        certs.dir,
      );
      expect(c.origins.get('a')!.egress?.tls?.ca?.equals(Buffer.from(proxyCerts.ca))).toBe(true);
    } finally {
      await own.stop();
    }
  });

  it('https:// node with HTTP/1.1 CONNECT inside TLS, with credentials: 10 requests, one tunnel, TLS to the proxy seen at the proxy', async () => {
    const before = front.clients(h1Target).size;
    const agent = new Agent({ tls: { ca: certs.ca }, protocol: 'h1', proxy: { nodes: [front.url] } });
    for (let i = 0; i < 10; i++) {
      const r = await agent.request({ url: `https://${h1Target}/a${i}` });
      expect(await r.text()).toBe(`h1 /a${i}`);
      expect(r.connection.proxy).toEqual({
        node: `https://127.0.0.1:${front.port}`,
        kind: 'https',
        http2: false,
        h3: 'not attempted: TCP-only proxy',
      });
    }
    expect(agent.proxyStats()[0]).toMatchObject({ requests: 10, connectionsOpened: 1, nodeConnections: null });
    await agent.close();
    const seen = await logged(front, h1Target, 1);
    expect(seen.size - before).toBe(1);
    expect([...seen.values()].at(-1)).toMatchObject({ tunnels: 1, alpn: 'http/1.1', statuses: [200] });
  });

  it('https:// node, wrong or missing credentials: OL_PROXY_AUTH_FAILED, one attempt, nothing reaches the origin', async () => {
    for (const http2on of [false, true]) {
      for (const bad of [withPass(front.url, 'wrong'), front.url.replace(/\/\/[^@]*@/, '//')]) {
        const before = h1Accepted;
        const agent = new Agent({ tls: { ca: certs.ca }, protocol: 'h1', proxy: { nodes: [bad], http2: http2on } });
        const err = await agent.request({ url: `https://${h1Target}/` }).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err, `http2 ${http2on} ${bad}`).toMatchObject({
          code: 'OL_PROXY_AUTH_FAILED',
          details: { attempts: 1 },
        });
        expect(String((err as Error).message)).not.toContain('wrong');
        expect(h1Accepted).toBe(before);
        await agent.close();
      }
    }
  }, 30_000);

  it('HTTP/2 CONNECT: 8 concurrent origin connections are 8 streams of ONE connection to the proxy (nghttpx log), 8 tunnels at squid', async () => {
    const squidBefore = squid.tunnels(h1Target);
    const portsBefore = new Set(front.clients(h1Target).keys());
    const agent = new Agent({
      tls: { ca: certs.ca },
      protocol: 'h1',
      pool: { maxConnections: 8 },
      proxy: { nodes: [front.url], http2: true },
    });
    const rs = await Promise.all(
      Array.from({ length: 8 }, (_, i) => agent.request({ url: `https://${h1Target}/c${i}` })),
    );
    expect(await Promise.all(rs.map((r) => r.text()))).toEqual(Array.from({ length: 8 }, (_, i) => `h1 /c${i}`));
    expect(new Set(rs.map((r) => r.connectionId)).size).toBe(8);
    for (const r of rs) expect(r.connection.proxy).toMatchObject({ kind: 'https', http2: true });
    // Warm: the next 8 ride the same tunnels.
    const again = await Promise.all(Array.from({ length: 8 }, () => agent.request({ url: `https://${h1Target}/w` })));
    await Promise.all(again.map((r) => r.text()));
    expect(again.every((r) => r.reused)).toBe(true);
    expect(agent.proxyStats()[0]).toMatchObject({
      requests: 16,
      connectionsOpened: 8,
      nodeConnections: 1,
      reuseRate: 0.5,
    });
    await agent.close();
    const seen = await logged(front, h1Target, [...portsBefore].length + 8);
    const fresh = [...seen].filter(([p]) => !portsBefore.has(p));
    expect(fresh).toHaveLength(1); // one client connection…
    expect(fresh[0]?.[1]).toMatchObject({ tunnels: 8, alpn: 'h2' }); // …carried all 8 tunnels over h2
    const deadline = Date.now() + 5000;
    while (squid.tunnels(h1Target) - squidBefore < 8 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    expect(squid.tunnels(h1Target) - squidBefore).toBe(8);
  }, 30_000);

  it("HTTP/2 CONNECT past the proxy's stream limit (3): 6 tunnels need a second connection to it, no more", async () => {
    const agent = new Agent({
      tls: { ca: certs.ca },
      protocol: 'h1',
      pool: { maxConnections: 6 },
      proxy: { nodes: [narrow.url], http2: true },
    });
    // The first tunnel learns the limit from the proxy's SETTINGS.
    await (await agent.request({ url: `https://${h1Target}/first` })).text();
    const rs = await Promise.all(
      Array.from({ length: 6 }, (_, i) => agent.request({ url: `https://${h1Target}/n${i}` })),
    );
    await Promise.all(rs.map((r) => r.text()));
    expect(agent.proxyStats()[0]).toMatchObject({ connectionsOpened: 6, nodeConnections: 2 });
    await agent.close();
    const seen = await logged(narrow, h1Target, 6);
    expect([...seen.values()].map((e) => e.tunnels).sort()).toEqual([3, 3]);
  }, 30_000);

  it('HTTP/2 CONNECT: an origin closing its idle connection ends that stream only; the next request opens a new tunnel on the same proxy connection', async () => {
    const port = await freePort();
    const short = https.createServer({ cert: certs.cert, key: certs.key }, (req, res) => res.end('short'));
    short.keepAliveTimeout = 300; // the origin closes an idle connection after 300 ms
    await new Promise<void>((r) => short.listen(port, '127.0.0.1', r));
    try {
      const agent = new Agent({ tls: { ca: certs.ca }, protocol: 'h1', proxy: { nodes: [front.url], http2: true } });
      const url = `https://localhost:${port}/`;
      const a = await agent.request({ url });
      await a.text();
      const link = (): number => agent.proxyStats()[0]?.nodeConnections ?? -1;
      expect(link()).toBe(1);
      const deadline = Date.now() + 5000;
      while (agent.pool(url).connections().length > 0 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 25));
      expect(agent.pool(url).connections()).toHaveLength(0); // the tunnel's end reached the pooled connection
      const b = await agent.request({ url });
      expect(await b.text()).toBe('short');
      expect(b.reused).toBe(false);
      expect(b.connectionId).not.toBe(a.connectionId);
      expect(agent.proxyStats()[0]).toMatchObject({ connectionsOpened: 2, nodeConnections: 1 });
      await agent.close();
      const seen = await logged(front, `localhost:${port}`, 2);
      expect([...seen.values()]).toMatchObject([{ tunnels: 2, alpn: 'h2', statuses: [200, 200] }]);
    } finally {
      short.closeAllConnections();
      await new Promise((r) => short.close(r));
    }
  });

  it('HTTP/2 CONNECT: a connection to the proxy that goes silent is found by PING and closed with its tunnel; the next request gets a new one', async () => {
    // A TCP relay in front of nghttpx that can stop carrying bytes on the connections it has (a middlebox dropping the flow) while keeping them open.
    const relay = await startRelay(front.port);
    const relayed = relay.pairs;
    const relayUrl = front.url.replace(`:${front.port}`, `:${relay.port}`);
    const agent = new Agent({
      tls: { ca: certs.ca },
      protocol: 'h1',
      pool: { pingIntervalMs: 300, pingTimeoutMs: 300 },
      proxy: { nodes: [relayUrl], http2: true },
    });
    try {
      const url = `https://${h1Target}/before`;
      expect(await (await agent.request({ url })).text()).toBe('h1 /before');
      expect(relayed).toHaveLength(1);
      expect(agent.proxyStats()[0]).toMatchObject({ nodeConnections: 1, nodeConnectionsDead: 0 });
      // Nothing crosses the first connection from now on; it stays open at both ends.
      for (const p of relayed) p.cut = true;
      const deadline = Date.now() + 5000;
      while (agent.proxyStats()[0]?.nodeConnectionsDead !== 1 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      expect(agent.proxyStats()[0]).toMatchObject({ nodeConnections: 0, nodeConnectionsDead: 1 });
      // The tunnel inside it ended, and with it the pooled origin connection.
      expect(agent.pool(url).connections()).toHaveLength(0);
      const b = await agent.request({ url: `https://${h1Target}/after` });
      expect(await b.text()).toBe('h1 /after');
      expect(relayed).toHaveLength(2);
      expect(agent.proxyStats()[0]).toMatchObject({ nodeConnections: 1, nodeConnectionsDead: 1 });
    } finally {
      await agent.close();
      await relay.close();
    }
  }, 30_000);

  it('HTTP/2 CONNECT carrying an h2 origin connection (h2 inside h2): 20 concurrent requests, one tunnel', async () => {
    const agent = new Agent({ tls: { ca: certs.ca }, proxy: { nodes: [front.url], http2: true } });
    const rs = await Promise.all(
      Array.from({ length: 20 }, (_, i) => agent.request({ url: `https://${h2Target}/m${i}` })),
    );
    expect(await Promise.all(rs.map((r) => r.text()))).toEqual(Array.from({ length: 20 }, (_, i) => `h2 /m${i}`));
    expect(new Set(rs.map((r) => r.protocol))).toEqual(new Set(['h2']));
    expect(agent.proxyStats()[0]).toMatchObject({ requests: 20, connectionsOpened: 1, nodeConnections: 1 });
    await agent.close();
    expect([...(await logged(front, h2Target, 1)).values()].at(-1)).toMatchObject({
      tunnels: 1,
      alpn: 'h2',
      statuses: [200],
    });
  });

  it('HTTP/2 CONNECT to a node that chooses HTTP/1.1 by ALPN: HTTP/1.1 CONNECT on the same TLS connection (as curl --proxy-http2), facts say so, no wasted handshake', async () => {
    const h1only = await startNghttpx(squid, certs.certPath, certs.keyPath, U, 100, ['--npn-list=http/1.1']);
    const relay = await startRelay(h1only.port); // counts the TCP connections made to the proxy
    try {
      const agent = new Agent({
        tls: { ca: certs.ca },
        protocol: 'h1',
        maxRetries: 0,
        proxy: { nodes: [h1only.url.replace(`:${h1only.port}`, `:${relay.port}`)], http2: true },
      });
      // The origin answers after 150 ms: two at once need two origin connections, so two tunnels.
      const rs = await Promise.all([1, 2].map((i) => agent.request({ url: `https://${h1Target}/fb${i}` })));
      expect(await Promise.all(rs.map((r) => r.text()))).toEqual(['h1 /fb1', 'h1 /fb2']);
      for (const r of rs) expect(r.connection.proxy).toMatchObject({ kind: 'https', http2: false });
      expect(agent.proxyStats()[0]).toMatchObject({ connectionsOpened: 2, nodeConnections: 0 });
      await agent.close();
      // Two connections reached the proxy, each carrying one HTTP/1.1 CONNECT: the one the h2 attempt opened was used.
      expect(relay.pairs).toHaveLength(2);
      const seen = await logged(h1only, h1Target, 2);
      expect([...seen.values()]).toEqual([
        { tunnels: 1, alpn: 'http/1.1', statuses: [200] },
        { tunnels: 1, alpn: 'http/1.1', statuses: [200] },
      ]);
    } finally {
      await relay.close();
      await h1only.stop();
    }
  }, 30_000);

  it('HTTP/2 CONNECT to a node whose certificate is for another name: OL_PROXY_FAILED naming why, nothing sent', async () => {
    const wrongName = await startNghttpx(squid, certs.wrongCertPath, certs.wrongKeyPath, U);
    try {
      const before = h1Accepted;
      const agent = new Agent({
        tls: { ca: certs.ca },
        protocol: 'h1',
        maxRetries: 0,
        proxy: { nodes: [wrongName.url], http2: true },
      });
      const err = await agent.request({ url: `https://${h1Target}/` }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({
        code: 'OL_PROXY_FAILED',
        facts: { requestSent: false },
        details: { proxy: `https://127.0.0.1:${wrongName.port}` },
      });
      expect(String((err as Error).message)).toMatch(/cannot reach the proxy: .*(altnames|certificate)/i);
      expect(h1Accepted).toBe(before);
      await agent.close();
    } finally {
      await wrongName.stop();
    }
  }, 30_000);

  it('http2 on a node that is not https:// is a config error naming the field (Agent, service config)', () => {
    expect(() => new Agent({ proxy: { nodes: [squid.url], http2: true } })).toThrow(
      expect.objectContaining({
        code: 'OL_INVALID_CONFIG',
        message: expect.stringMatching(/proxy\.http2: HTTP\/2 CONNECT needs an https:\/\/ node/),
      }),
    );
    const yaml = (nodes: string, http2: string): string => `
listeners: [{ kind: http, port: 0 }]
proxy: { egress: { nodes: ["${nodes}"], http2: ${http2} } }
origins: { o: { url: "https://${h1Target}" } }
routes: [{ path: /, origin: o }]
`;
    expect(parseConfig(yaml(front.url, 'true'), 'e.yaml', '/tmp').origins.get('o')?.egress).toMatchObject({
      nodes: [front.url],
      http2: true,
    });
    expect(() => parseConfig(yaml(squid.url, 'true'), 'e.yaml', '/tmp')).toThrow(
      /e\.yaml:\d+: proxy\.egress\.http2: HTTP\/2 CONNECT needs an https:\/\/ node/,
    );
    expect(() => parseConfig(yaml(front.url, '"yes"'), 'e.yaml', '/tmp')).toThrow(/proxy\.egress\.http2/);
  });

  it('CLI: fetch --proxy https://… --proxy-http2 --json says the tunnel was an HTTP/2 stream', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'addr-cli-'));
    writeTsHooks(dir);
    try {
      const r = await runCli(dir, [
        'fetch',
        `https://${h2Target}/cli`,
        '--cacert',
        certs.caPath,
        '--proxy',
        front.url,
        '--proxy-http2',
        '--json',
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({
        status: 200,
        protocol: 'h2',
        proxy: { node: `https://127.0.0.1:${front.port}`, kind: 'https', http2: true },
      });
      const bad = await runCli(dir, ['fetch', `https://${h2Target}/`, '--proxy-http2']);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(/--proxy-http2 need --proxy/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
