/**
 * h2 and h3 connection coalescing (RFC 9113 §9.1.1, RFC 9114 §3.3): names
 * resolving to the same address and port, covered by the certificate, share a
 * connection; a name outside the SANs gets its own; a 421 turns coalescing off
 * for the name and the request is retried on its own connection. Names are
 * mapped with the Agent's `lookup` option (no hosts file). Needs `nginx` and
 * `openssl`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import http2 from 'node:http2';
import type net from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { Agent } from '../../src/index.js';
import { ErrorCode } from '../../src/errors.js';
import { startH3Server, type H3Server } from '../../src/server/h3.js';
import { makeCerts } from '../helpers/certs.js';
import { Nginx } from '../helpers/nginx.js';

const certs = makeCerts();
const lookup = async (host: string): Promise<string[]> => {
  if (['a.test', 'b.test', 'c.test', 'localhost'].includes(host)) return ['127.0.0.1'];
  throw new Error(`unknown host ${host}`);
};

/** A leaf for c.test only, signed by the test CA. */
function cTestCert(): { cert: Buffer; key: Buffer } {
  const d = certs.dir;
  const run = (...a: string[]): void => {
    execFileSync('openssl', a, { cwd: d, stdio: 'pipe' });
  };
  writeFileSync(
    join(d, 'c.ext'),
    'subjectAltName=DNS:c.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n',
  );
  run(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-subj',
    '/CN=c.test',
    '-keyout',
    'c.key',
    '-out',
    'c.csr',
  );
  run(
    'x509',
    '-req',
    '-in',
    'c.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '30',
    '-extfile',
    'c.ext',
    '-out',
    'c.pem',
  );
  return { cert: readFileSync(join(d, 'c.pem')), key: readFileSync(join(d, 'c.key')) };
}

describe('coalescing against an h2 server with SNI', () => {
  let server: http2.Http2SecureServer;
  let port = 0;
  const seen: Array<{ conn: number; sni: string; authority: string; status: number }> = [];
  const conns = new WeakMap<object, number>();
  const sessions = new Set<http2.ServerHttp2Session>();
  let nConns = 0;

  beforeAll(async () => {
    const main = tls.createSecureContext({ cert: certs.cert, key: certs.key });
    const c = cTestCert();
    const cctx = tls.createSecureContext(c);
    server = http2.createSecureServer({
      cert: certs.cert,
      key: certs.key,
      SNICallback: (name, cb) => cb(null, name === 'c.test' ? cctx : main),
    });
    server.on('session', (s) => {
      conns.set(s, ++nConns);
      sessions.add(s);
      s.once('close', () => sessions.delete(s));
    });
    server.on('stream', (stream, headers) => {
      const sock = stream.session?.socket as (tls.TLSSocket & net.Socket) | undefined;
      const sni = (sock as unknown as { servername?: string | false })?.servername || '';
      const authority = String(headers[':authority'] ?? '');
      const host = authority.replace(/:\d+$/, '');
      // Like a server that only serves the SNI name: anything else on this connection is misdirected.
      const status = host === 'localhost' && sni !== 'localhost' ? 421 : 200;
      seen.push({ conn: stream.session ? (conns.get(stream.session) ?? -1) : -1, sni, authority, status });
      stream.respond({ ':status': status });
      stream.end(`host ${host}\n`);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as net.AddressInfo).port;
  });
  afterAll(async () => {
    for (const s of sessions) s.destroy();
    await new Promise((r) => server.close(r));
  });

  it('a.test and b.test share one connection; c.test (outside the SANs) gets its own; stats count coalesced requests', async () => {
    seen.length = 0;
    const agent = new Agent({ tls: { ca: certs.ca }, lookup });
    const ra = await agent.request({ url: `https://a.test:${port}/x` });
    expect(await ra.text()).toBe('host a.test\n');
    expect(ra.protocol).toBe('h2');
    for (let i = 0; i < 3; i++) {
      const rb = await agent.request({ url: `https://b.test:${port}/y` });
      expect(await rb.text()).toBe('host b.test\n');
      expect(rb.connectionId).toBe(ra.connectionId);
    }
    const rc = await agent.request({ url: `https://c.test:${port}/z` });
    expect(await rc.text()).toBe('host c.test\n');
    expect(rc.connectionId).not.toBe(ra.connectionId);
    const st = new Map(agent.stats().map((s) => [s.origin, s]));
    expect(st.get(`https://b.test:${port}`)).toMatchObject({ coalesced: 3, connectionsOpened: 0 });
    expect(st.get(`https://a.test:${port}`)).toMatchObject({ coalesced: 0, connectionsOpened: 1, requests: 4 });
    expect(st.get(`https://c.test:${port}`)).toMatchObject({ coalesced: 0, connectionsOpened: 1 });
    // At the server: a.test and b.test on one TLS connection (SNI a.test), c.test on another.
    const byHost = (h: string): Set<number> =>
      new Set(seen.filter((s) => s.authority.startsWith(h)).map((s) => s.conn));
    expect([...byHost('a.test')]).toEqual([...byHost('b.test')]);
    expect(seen.filter((s) => s.authority.startsWith('b.test')).every((s) => s.sni === 'a.test')).toBe(true);
    expect([...byHost('c.test')][0]).not.toBe([...byHost('a.test')][0]);
    await agent.close();
  });

  it('a 421 turns coalescing off for that name and the request is retried on its own connection', async () => {
    seen.length = 0;
    const agent = new Agent({ tls: { ca: certs.ca }, lookup });
    const ra = await agent.request({ url: `https://a.test:${port}/` });
    await ra.dump();
    const rl = await agent.request({ url: `https://localhost:${port}/p`, method: 'POST', body: 'payload' });
    expect(rl.status).toBe(200);
    expect(await rl.text()).toBe('host localhost\n');
    expect(rl.connectionId).not.toBe(ra.connectionId);
    expect(seen.map((s) => [s.authority.replace(/:\d+$/, ''), s.sni, s.status])).toEqual([
      ['a.test', 'a.test', 200],
      ['localhost', 'a.test', 421],
      ['localhost', 'localhost', 200],
    ]);
    const st = agent.stats().find((s) => s.origin === `https://localhost:${port}`);
    expect(st).toMatchObject({ coalesced: 0, retries: 1, connectionsOpened: 1 });
    await agent.close();
  });

  it("a name whose lookup never answers: the coalescing check is bounded by the request's signal and the pool's deadlines (it waited on DNS past them)", async () => {
    const never = async (host: string): Promise<string[]> =>
      host === 'slow.test' ? new Promise<string[]>(() => {}) : lookup(host);
    const agent = new Agent({
      tls: { ca: certs.ca },
      lookup: never,
      maxRetries: 0,
      pool: { pendingTimeoutMs: 500, connectTimeoutMs: 500 },
    });
    try {
      await (await agent.request({ url: `https://a.test:${port}/` })).dump(); // an h2 connection on this port: a candidate
      let t0 = Date.now();
      await expect(
        agent.request({ url: `https://slow.test:${port}/`, signal: AbortSignal.timeout(300) }),
      ).rejects.toMatchObject({ code: 'OL_ABORTED' });
      expect(Date.now() - t0).toBeLessThan(1000);
      t0 = Date.now();
      // No signal: the pool's deadlines, both 500 ms — the request waiting for a connection (pendingTimeoutMs), or the
      // dial waiting on the lookup (connectTimeoutMs), whichever fires first.
      const e = await agent.request({ url: `https://slow.test:${port}/` }).then(
        () => null,
        (x: unknown) => x as { code: string },
      );
      expect(['OL_QUEUE_TIMEOUT', 'OL_CONNECT_TIMEOUT']).toContain(e?.code);
      expect(Date.now() - t0).toBeLessThan(2500);
    } finally {
      await agent.destroy();
    }
  });

  it('coalescing can be switched off per origin', async () => {
    const agent = new Agent({
      tls: { ca: certs.ca },
      lookup,
      origins: { [`https://b.test:${port}`]: { coalesce: false } },
    });
    const ra = await agent.request({ url: `https://a.test:${port}/` });
    await ra.dump();
    const rb = await agent.request({ url: `https://b.test:${port}/` });
    await rb.dump();
    expect(rb.connectionId).not.toBe(ra.connectionId);
    await agent.close();
  });
});

describe('coalescing against nginx', () => {
  let nginx: Nginx;
  beforeAll(async () => {
    nginx = await Nginx.start();
  });
  afterAll(async () => {
    await nginx?.close();
  });

  it('a.test and b.test through one nginx connection', async () => {
    const agent = new Agent({ tls: { ca: certs.ca }, lookup });
    const before = nginx.log().length;
    for (const h of ['a.test', 'b.test', 'a.test', 'b.test']) {
      const r = await agent.request({ url: `https://${h}:${nginx.port}/index.html` });
      expect(await r.text()).toBe('hello from nginx\n');
    }
    // nginx writes the log line after the response: give the last one a moment.
    for (let i = 0; i < 50 && nginx.log().length < before + 4; i++) await new Promise((r) => setTimeout(r, 20));
    const lines = nginx.log().slice(before);
    expect(lines.length).toBe(4);
    expect(new Set(lines.map((l) => l.connection)).size).toBe(1);
    expect(agent.stats().find((s) => s.origin === `https://b.test:${nginx.port}`)?.coalesced).toBe(2);
    await agent.close();
  });
});

describe('coalescing against our h3 server', () => {
  let server: H3Server;
  let port = 0;
  /** Requests as the server saw them; a QUIC connection is told apart by the client's UDP port (one socket per connection). */
  const seen: Array<{ conn: number; authority: string; status: number }> = [];
  /** Client ports of connections that carried a.test: a server that only serves the SNI name answers 421 for localhost there. */
  const aConns = new Set<number>();

  beforeAll(async () => {
    server = await startH3Server({
      cert: certs.certPath,
      key: certs.keyPath,
      handler: (r) => {
        const host = r.authority.replace(/:\d+$/, '');
        if (host === 'a.test') aConns.add(r.remotePort);
        const status = host === 'localhost' && aConns.has(r.remotePort) ? 421 : 200;
        seen.push({ conn: r.remotePort, authority: r.authority, status });
        return { status, body: `host ${host}\n` };
      },
    });
    port = server.address.port;
  });
  afterAll(async () => {
    await server?.close();
  });

  it('a.test and b.test share one QUIC connection; c.test (outside the SANs) dials its own', async () => {
    seen.length = 0;
    const agent = new Agent({ protocol: 'h3', tls: { ca: certs.ca }, lookup });
    const ra = await agent.request({ url: `https://a.test:${port}/x` });
    expect(await ra.text()).toBe('host a.test\n');
    expect(ra.protocol).toBe('h3');
    for (let i = 0; i < 3; i++) {
      const rb = await agent.request({ url: `https://b.test:${port}/y` });
      expect(await rb.text()).toBe('host b.test\n');
      expect(rb.protocol).toBe('h3');
      expect(rb.connectionId).toBe(ra.connectionId);
    }
    const aPool = agent.pools().find((p) => p.origin === `https://a.test:${port}`);
    const aConn = aPool?.connections()[0] as { peerCertificate?: () => { subjectAltName?: string } | null } | undefined;
    expect(aConn?.peerCertificate?.()?.subjectAltName).toContain('DNS:b.test');
    // The server has one certificate (no c.test): c.test is not put on a.test's connection, it dials its
    // own, whose handshake fails the name check — proof the certificate, not the address, decided.
    const err = await agent.request({ url: `https://c.test:${port}/z` }).then(
      () => null,
      (e: unknown) => e as { code?: string },
    );
    expect(err?.code).toBe(ErrorCode.CERT_INVALID);
    const st = new Map(agent.stats().map((s) => [s.origin, s]));
    expect(st.get(`https://b.test:${port}`)).toMatchObject({ coalesced: 3, connectionsOpened: 0 });
    expect(st.get(`https://a.test:${port}`)).toMatchObject({ coalesced: 0, connectionsOpened: 1, requests: 4 });
    expect(st.get(`https://c.test:${port}`)).toMatchObject({ coalesced: 0 });
    // At the server: a.test and b.test on one QUIC connection, nothing for c.test anywhere.
    const byHost = (h: string): Set<number> =>
      new Set(seen.filter((s) => s.authority.startsWith(h)).map((s) => s.conn));
    expect(byHost('a.test').size).toBe(1);
    expect([...byHost('b.test')]).toEqual([...byHost('a.test')]);
    expect(byHost('c.test').size).toBe(0);
    await agent.close();
  });

  it('a resumed (0-RTT) QUIC connection still shows its leaf and is coalesced onto', async () => {
    const first = new Agent({ protocol: 'h3', tls: { ca: certs.ca }, lookup });
    await (await first.request({ url: `https://a.test:${port}/` })).dump();
    // The session ticket arrives after the handshake: give it a moment before closing.
    await new Promise((r) => setTimeout(r, 100));
    await first.close();
    const agent = new Agent({ protocol: 'h3', tls: { ca: certs.ca }, lookup, sessionStore: first.sessionStore });
    const ra = await agent.request({ url: `https://a.test:${port}/` });
    await ra.dump();
    expect(ra.connection.resumed).toBe(true);
    const rb = await agent.request({ url: `https://b.test:${port}/` });
    expect(await rb.text()).toBe('host b.test\n');
    expect(rb.connectionId).toBe(ra.connectionId);
    await agent.close();
  });

  it("a 421 on a coalesced h3 request is retried on the name's own QUIC connection", async () => {
    seen.length = 0;
    const agent = new Agent({ protocol: 'h3', tls: { ca: certs.ca }, lookup });
    const ra = await agent.request({ url: `https://a.test:${port}/` });
    await ra.dump();
    const rl = await agent.request({ url: `https://localhost:${port}/p`, method: 'POST', body: 'payload' });
    expect(rl.status).toBe(200);
    expect(await rl.text()).toBe('host localhost\n');
    expect(rl.connectionId).not.toBe(ra.connectionId);
    const aConn = seen[0]?.conn;
    expect(seen.map((s) => [s.authority.replace(/:\d+$/, ''), s.conn === aConn, s.status])).toEqual([
      ['a.test', true, 200],
      ['localhost', true, 421],
      ['localhost', false, 200],
    ]);
    expect(agent.stats().find((s) => s.origin === `https://localhost:${port}`)).toMatchObject({
      coalesced: 0,
      retries: 1,
      connectionsOpened: 1,
    });
    await agent.close();
  });
});
