/**
 * Upgrade tunnels (WebSocket by HTTP/1.1 `Upgrade` and by RFC 8441 extended
 * CONNECT) dial their origin the way requests do (the Agent's dial stack:
 * net/dial.ts): through the origin's egress proxy (a real tinyproxy), across
 * the origin's `urls` when one is dead, with the configured DNS server (a
 * real dnsmasq knows a name nobody else does), and to an origin group's
 * endpoint as requests go (never one its health checks took out). The
 * origins are real WebSocket servers (the `ws` package).
 *
 * Before, service/upgrade.ts took `urls[0]` and a bare TCP connect: the
 * proxy was bypassed, a dead first URL was a 502 for every tunnel, and a name
 * went to the system resolver.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { makeCerts } from '../helpers/certs.js';
import { startDnsmasq, type Dnsmasq } from '../helpers/dnsmasq.js';
import { CLOSED_PORT } from '../helpers/ports.js';
import { startTinyproxy, type ProxyPeer } from '../helpers/proxies.js';

const certs = makeCerts();
let svc: Service;
let wss: WebSocketServer;
let origin: http.Server;
let originPort = 0;
let proxy: ProxyPeer;
let dns: Dnsmasq;
let plain = 0;
let tls = 0;
const seen: string[] = [];
/** A second WebSocket origin that fails its health checks (503): the group's unhealthy endpoint. */
let sick: http.Server;
let sickWss: WebSocketServer;
const seenSick: string[] = [];

/** A WebSocket server on `server` that notes each upgrade's target in `seen`, greets with it and echoes. */
function echoing(server: http.Server, seen: string[]): WebSocketServer {
  const w = new WebSocketServer({ server });
  w.on('connection', (ws, req) => {
    seen.push(req.url ?? '');
    ws.send(`hello ${req.url}`);
    ws.on('message', (d, binary) => ws.send(d, { binary }));
  });
  return w;
}

beforeAll(async () => {
  origin = http.createServer((_q, s) => s.end('not a websocket\n'));
  wss = echoing(origin, seen);
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', () => r()));
  originPort = (origin.address() as net.AddressInfo).port;
  sick = http.createServer((_q, s) => {
    s.statusCode = 503;
    s.end('down\n');
  });
  sickWss = echoing(sick, seenSick);
  await new Promise<void>((r) => sick.listen(0, '127.0.0.1', () => r()));
  const sickPort = (sick.address() as net.AddressInfo).port;
  [proxy, dns] = await Promise.all([startTinyproxy(), startDnsmasq({ 'ws.test': ['127.0.0.1'] }, 30)]);
  const yaml = `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
  - { name: tls, kind: https, host: 127.0.0.1, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }
admin: false
dns: { servers: ["${dns.server}"] }
origins:
  proxied: { url: "http://127.0.0.1:${originPort}", protocol: h1, proxy: { nodes: ["${proxy.url}"] } }
  failover: { urls: ["http://127.0.0.1:${CLOSED_PORT}", "http://127.0.0.1:${originPort}"], protocol: h1 }
  named: { url: "http://ws.test:${originPort}", protocol: h1 }
  grouped: { endpoints: [{ url: "http://127.0.0.1:${sickPort}" }, { url: "http://127.0.0.1:${originPort}" }], protocol: h1, health: { path: /health, intervalMs: 50, timeoutMs: 40, fall: 1 } }
routes:
  - { path: /g/, origin: grouped }
  - { path: /p/, origin: proxied }
  - { path: /f/, origin: failover }
  - { path: /n/, origin: named }
`;
  svc = await Service.start(parseConfig(yaml, 'upgrade-dial.yaml', certs.dir), { logDestination: { write: () => {} } });
  plain = svc.addresses()['plain'] as number;
  tls = svc.addresses()['tls'] as number;
}, 30_000);

afterAll(async () => {
  await svc?.shutdown(200);
  await Promise.all([proxy?.stop(), dns?.close()]);
  await new Promise<void>((r) => sickWss.close(() => r()));
  await new Promise<void>((r) => sick.close(() => r()));
  await new Promise<void>((r) => wss.close(() => r()));
  await new Promise<void>((r) => origin.close(() => r()));
});

/** A WebSocket through the http front: its first message, then an echo. */
async function talk(path: string): Promise<string[]> {
  const ws = new WebSocket(`ws://127.0.0.1:${plain}${path}`);
  const got: string[] = [];
  await new Promise<void>((resolve, reject) => {
    ws.on('message', (d) => {
      got.push(d.toString());
      if (got.length === 1) ws.send(`echo ${path}`);
      else {
        ws.close(1000);
        resolve();
      }
    });
    ws.once('error', reject);
    ws.once('unexpected-response', (_q, res) => reject(new Error(`status ${res.statusCode}`)));
  });
  return got;
}

describe('upgrade tunnels dial through the dial stack', () => {
  it('an origin with an egress proxy: the WebSocket goes through tinyproxy (CONNECT in its log)', async () => {
    const before = proxy.tunnels(`127.0.0.1:${originPort}`);
    expect(await talk('/p/one')).toEqual(['hello /p/one', 'echo /p/one']);
    expect(await talk('/p/two')).toEqual(['hello /p/two', 'echo /p/two']);
    const t0 = Date.now();
    while (proxy.tunnels(`127.0.0.1:${originPort}`) < before + 2 && Date.now() - t0 < 3000)
      await new Promise((r) => setTimeout(r, 50));
    expect(proxy.tunnels(`127.0.0.1:${originPort}`)).toBe(before + 2);
  });

  it('the first of two URLs refuses connections: every tunnel fails over to the second, whichever URL it starts at', async () => {
    for (const i of [1, 2, 3, 4]) expect(await talk(`/f/${i}`)).toEqual([`hello /f/${i}`, `echo /f/${i}`]);
  });

  it('an origin group: a tunnel goes to an endpoint requests may go to, never one its health checks took out', async () => {
    const t0 = Date.now();
    const health = (): unknown =>
      (svc.stats()['grouped'] as { endpoints: Array<{ health: string }> }).endpoints.map((e) => e.health);
    while (JSON.stringify(health()) !== '["unhealthy","healthy"]' && Date.now() - t0 < 3000)
      await new Promise((r) => setTimeout(r, 20));
    expect(health()).toEqual(['unhealthy', 'healthy']);
    const before = seen.length;
    for (const i of [1, 2, 3, 4, 5, 6]) expect(await talk(`/g/${i}`)).toEqual([`hello /g/${i}`, `echo /g/${i}`]);
    expect(seenSick).toEqual([]);
    expect(seen.slice(before)).toEqual(['/g/1', '/g/2', '/g/3', '/g/4', '/g/5', '/g/6']);
  });

  it('a name only the configured DNS server knows', async () => {
    expect(await talk('/n/x')).toEqual(['hello /n/x', 'echo /n/x']);
    expect(await dns.settledQueries('ws.test', 1)).toBeGreaterThan(0);
  });

  it('WebSocket over HTTP/2 (RFC 8441) takes the same dial: failover and the proxy', async () => {
    const c = http2.connect(`https://localhost:${tls}`, { ca: certs.ca });
    try {
      await new Promise<void>((r) => c.once('remoteSettings', () => r()));
      for (const path of ['/f/h2a', '/f/h2b', '/p/h2']) {
        const s = c.request({
          ':method': 'CONNECT',
          ':protocol': 'websocket',
          ':scheme': 'https',
          ':path': path,
          ':authority': `localhost:${tls}`,
          'sec-websocket-version': '13',
        });
        const status = await new Promise<number>((r) => s.once('response', (h) => r(Number(h[':status']))));
        expect(status, path).toBe(200);
        // The origin's first frame: FIN + text (0x81), an unmasked length below 126, the payload.
        const first = await new Promise<string>((resolve) => {
          let buf = Buffer.alloc(0);
          s.on('data', (d: Buffer) => {
            buf = Buffer.concat([buf, d]);
            if (buf.length >= 2 && buf.length >= 2 + (buf[1] as number))
              resolve(buf.subarray(2, 2 + (buf[1] as number)).toString());
          });
        });
        expect(first).toBe(`hello ${path}`);
        s.close();
      }
    } finally {
      c.close();
    }
  });
});
