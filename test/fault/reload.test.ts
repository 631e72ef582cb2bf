/**
 * A reload is all or nothing for the listeners (service.ts #applyListeners): a config that cannot be bound leaves
 * every listener that served still serving — before, a listener rebound for a limits change was closed first and
 * lost when a later one failed, with the log saying the old config still ran. Limits apply in place (no rebind);
 * a listener that changes kind on its port is replaced; an admin listener that cannot move keeps serving.
 */
import http2 from 'node:http2';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { startH1Server, type H1Server } from '../../src/server/h1.js';
import { connectH3 } from '../../src/connect/h3.js';
import { makeCerts } from '../helpers/certs.js';
import { freePort, freeTcpUdpPort } from '../helpers/ports.js';
import { rawExchange } from '../helpers/raw.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function origin(): Promise<H1Server> {
  const o = await startH1Server({ handler: (req) => ({ status: 200, headers: [], body: `origin ${req.path}\n` }) });
  cleanups.push(() => o.close(0));
  return o;
}

const yaml = (o: {
  port: number;
  originPort: number;
  kind?: string;
  extra?: string;
  maxHeaderBytes?: number;
  admin?: number | null;
}): string => `
listeners:
  - { name: a, kind: ${o.kind ?? 'http'}, host: 127.0.0.1, port: ${o.port} }
${o.extra ?? ''}
admin: ${o.admin ? `{ host: 127.0.0.1, port: ${o.admin} }` : 'false'}
limits: { maxHeaderBytes: ${o.maxHeaderBytes ?? 16384} }
origins:
  o: { url: "http://127.0.0.1:${o.originPort}", protocol: h1 }
routes:
  - { path: /, origin: o }
`;

const get = async (port: number): Promise<string> =>
  rawExchange(port, 'GET /x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n');

describe('reload and listeners', () => {
  it('a reload that cannot bind a new listener leaves every listener serving, the one whose limits changed included', async () => {
    const o = await origin();
    const port = await freePort();
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => busy.close(() => r())));
    const busyPort = (busy.address() as net.AddressInfo).port;
    const svc = await Service.start(parseConfig(yaml({ port, originPort: o.address.port }), 'r.yaml', '/tmp'), {
      logDestination: { write: () => {} },
    });
    cleanups.push(() => svc.shutdown(0));
    expect(await get(port)).toMatch(/^HTTP\/1\.1 200 [^]*origin \/x\n$/);
    const bad = yaml({
      port,
      originPort: o.address.port,
      maxHeaderBytes: 32768,
      extra: `  - { name: b, kind: http, host: 127.0.0.1, port: ${busyPort} }`,
    });
    await expect(svc.reload(parseConfig(bad, 'r.yaml', '/tmp'))).rejects.toThrow(/cannot listen/);
    expect(await get(port)).toMatch(/^HTTP\/1\.1 200 [^]*origin \/x\n$/); // before: ECONNREFUSED
    // A limits change alone is applied in place: the socket stays, the new limit holds for new connections.
    await svc.reload(parseConfig(yaml({ port, originPort: o.address.port, maxHeaderBytes: 1024 }), 'r.yaml', '/tmp'));
    expect(
      await rawExchange(port, `GET /x HTTP/1.1\r\nhost: a\r\nx-big: ${'b'.repeat(2000)}\r\nconnection: close\r\n\r\n`),
    ).toMatch(/^HTTP\/1\.1 431 /);
  });

  it('a listener on port 0 that a reload leaves unchanged keeps its socket and its port (docs/config.md)', async () => {
    const o = await origin();
    const svc = await Service.start(parseConfig(yaml({ port: 0, originPort: o.address.port }), 'r.yaml', '/tmp'), {
      logDestination: { write: () => {} },
    });
    cleanups.push(() => svc.shutdown(0));
    const port = svc.addresses().a!;
    // A client connected before the reload: its keep-alive connection is not cut by it.
    const c = net.connect(port, '127.0.0.1');
    cleanups.push(() => {
      c.destroy();
    });
    await new Promise((r) => c.once('connect', r));
    await svc.reload(
      parseConfig(yaml({ port: 0, originPort: o.address.port, maxHeaderBytes: 8192 }), 'r.yaml', '/tmp'),
    );
    expect(svc.addresses().a).toBe(port); // before: another free port, and clients of the old one refused
    expect(await get(port)).toMatch(/^HTTP\/1\.1 200 [^]*origin \/x\n$/);
    c.write('GET /k HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n');
    let text = '';
    c.on('data', (d: Buffer) => {
      text += d.toString('latin1');
    });
    await new Promise((r) => c.once('close', r));
    expect(text).toMatch(/^HTTP\/1\.1 200 [^]*origin \/k\n$/);
    // Changed (another kind), it is replaced: a port of its own again, and it serves there.
    await svc.reload(parseConfig(yaml({ port: 0, originPort: o.address.port, kind: 'h2c' }), 'r.yaml', '/tmp'));
    expect(svc.addresses().a).not.toBe(port);
  });

  it('a listener that changes kind on its port is replaced (http → h2c)', async () => {
    const o = await origin();
    const port = await freePort();
    const svc = await Service.start(parseConfig(yaml({ port, originPort: o.address.port }), 'r.yaml', '/tmp'), {
      logDestination: { write: () => {} },
    });
    cleanups.push(() => svc.shutdown(0));
    await svc.reload(parseConfig(yaml({ port, originPort: o.address.port, kind: 'h2c' }), 'r.yaml', '/tmp'));
    const c = http2.connect(`http://127.0.0.1:${port}`);
    cleanups.push(() => {
      c.destroy();
    });
    const st = c.request({ ':path': '/y' });
    let body = '';
    st.on('data', (d: Buffer) => {
      body += d.toString();
    });
    await new Promise((r) => st.on('end', r));
    expect(body).toBe('origin /y\n');
  });

  it('an admin listener moved to a port that is taken keeps serving where it was', async () => {
    const o = await origin();
    const [port, admin] = [await freePort(), await freePort()];
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => busy.close(() => r())));
    const svc = await Service.start(parseConfig(yaml({ port, originPort: o.address.port, admin }), 'r.yaml', '/tmp'), {
      logDestination: { write: () => {} },
    });
    cleanups.push(() => svc.shutdown(0));
    await svc.reload(
      parseConfig(
        yaml({ port, originPort: o.address.port, admin: (busy.address() as net.AddressInfo).port }),
        'r.yaml',
        '/tmp',
      ),
    );
    expect(await rawExchange(admin, 'GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n')).toMatch(
      /^HTTP\/1\.1 200 /,
    ); // before: refused
  });

  it('an admin listener moved to another host on its own port is moved (the old one lets the port go first)', async () => {
    const o = await origin();
    const [port, admin] = [await freePort(), await freePort()];
    const svc = await Service.start(parseConfig(yaml({ port, originPort: o.address.port, admin }), 'r.yaml', '/tmp'), {
      logDestination: { write: () => {} },
    });
    cleanups.push(() => svc.shutdown(0));
    const moved = yaml({ port, originPort: o.address.port, admin }).replace(
      `admin: { host: 127.0.0.1, port: ${admin} }`,
      `admin: { host: 0.0.0.0, port: ${admin} }`,
    );
    await svc.reload(parseConfig(moved, 'r.yaml', '/tmp'));
    // 127.0.0.2 reaches a listener on 0.0.0.0, not one on 127.0.0.1: the move happened.
    const text = await new Promise<string>((resolve) => {
      const s = net.connect({ host: '127.0.0.2', port: admin }, () =>
        s.write('GET /healthz HTTP/1.1\r\nhost: 127.0.0.2\r\nconnection: close\r\n\r\n'),
      );
      let t = '';
      s.on('data', (d: Buffer) => {
        t += d.toString('latin1');
      });
      s.on('error', () => resolve(t));
      s.on('close', () => resolve(t));
    });
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('an h3 listener that moves to another host on its UDP port is replaced (its socket let go at once), and serves', async () => {
    const o = await origin();
    const certs = makeCerts();
    const [port, udp] = [await freePort(), await freeTcpUdpPort()];
    const withH3 = (host: string): string =>
      yaml({
        port,
        originPort: o.address.port,
        extra: `  - { name: q, kind: h3, host: ${host}, port: ${udp}, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }`,
      });
    const svc = await Service.start(parseConfig(withH3('127.0.0.1'), 'r.yaml', certs.dir), {
      logDestination: { write: () => {} },
    });
    cleanups.push(() => svc.shutdown(0));
    await svc.reload(parseConfig(withH3('0.0.0.0'), 'r.yaml', certs.dir)); // before: EADDRINUSE, then no h3 listener at all
    const c = await connectH3({
      host: '127.0.0.1',
      port: udp,
      servername: 'localhost',
      ca: certs.caPath,
      connectTimeoutMs: 3000,
    });
    try {
      const r = await c.request({
        method: 'GET',
        path: '/h3',
        authority: 'localhost',
        scheme: 'https',
        headers: [],
        body: null,
      });
      expect(r.status).toBe(200);
      await r.body.resume();
    } finally {
      c.destroy();
    }
  });
});
