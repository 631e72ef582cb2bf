/**
 * Our HTTP/2 client (src/h2 + client/h2.ts) against independent servers:
 * nginx, h2o, nghttpd (nghttp2), Caddy (Go), HAProxy's h2 front and Bun's
 * HTTP/2 server. A 1 MiB GET byte-identical, 100 concurrent streams on one
 * connection, a streamed POST echoed back, trailers, a server RST_STREAM,
 * and GOAWAY with a restart in the middle of load (nginx reload).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, ErrorCode, OriginlinkError } from '../../src/index.js';
import { makeCerts } from '../helpers/certs.js';
import { BUN, startCaddy, startPeer, type Peer } from '../helpers/h3-peers.js';
import { Nginx } from '../helpers/nginx.js';
import { freePort, freeTcpUdpPort, waitForPort } from '../helpers/ports.js';

const certs = makeCerts();
const big = randomBytes(1024 * 1024);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
let dir: string;
let echo: http.Server;
let echoPort: number;
const peers: Record<string, { port: number; stop: () => Promise<void> }> = {};
let nginx: Nginx;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ol-h2-interop-'));
  writeFileSync(join(dir, 'big.bin'), big);
  writeFileSync(join(dir, 'index.html'), 'hello\n');
  // An HTTP/1.1 echo origin behind the proxies (nginx, Caddy, HAProxy): the body's length and hash.
  echo = http.createServer((req, res) => {
    const h = createHash('sha256');
    let n = 0;
    req.on('data', (c: Buffer) => {
      h.update(c);
      n += c.length;
    });
    req.on('end', () => res.end(`${n} ${h.digest('hex')}`));
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as AddressInfo).port;

  nginx = await Nginx.start({
    files: { 'big.bin': big },
    serverExtra: `location /echo { proxy_pass http://127.0.0.1:${echoPort}; proxy_http_version 1.1; proxy_request_buffering off; }`,
  });
  peers['nginx'] = { port: nginx.port, stop: () => nginx.close() };

  const h2oPort = await freePort();
  writeFileSync(
    join(dir, 'h2o.conf'),
    `user: root\npid-file: ${dir}/h2o.pid\nerror-log: ${dir}/h2o-error.log\n` +
      `listen:\n  host: 127.0.0.1\n  port: ${h2oPort}\n  ssl:\n    certificate-file: ${certs.certPath}\n    key-file: ${certs.keyPath}\n    ocsp-update-interval: 0\n` +
      `hosts:\n  "*":\n    paths:\n      /:\n        file.dir: ${dir}\n`,
  );
  const h2o = await startPeer({ argv: ['h2o', '-c', join(dir, 'h2o.conf')], port: h2oPort });
  await waitForPort(h2oPort);
  peers['h2o'] = h2o;

  const nghttpdPort = await freePort();
  const nghttpd = await startPeer({
    argv: [
      'nghttpd',
      '-a',
      '127.0.0.1',
      '-d',
      dir,
      '--echo-upload',
      String(nghttpdPort),
      certs.keyPath,
      certs.certPath,
    ],
    port: nghttpdPort,
  });
  await waitForPort(nghttpdPort);
  peers['nghttpd'] = nghttpd;

  const caddy: Peer = await startCaddy({
    port: await freeTcpUdpPort(),
    certFile: certs.certPath,
    keyFile: certs.keyPath,
    root: dir,
    echoPort,
  });
  peers['caddy'] = caddy;

  const haPort = await freePort();
  writeFileSync(join(dir, 'ha.pem'), Buffer.concat([certs.cert, certs.key]));
  writeFileSync(
    join(dir, 'haproxy.cfg'),
    `global\n  nbthread 1\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n` +
      `frontend fe\n  bind 127.0.0.1:${haPort} ssl crt ${dir}/ha.pem alpn h2\n  default_backend be\nbackend be\n  server s1 127.0.0.1:${echoPort}\n`,
  );
  const ha = await startPeer({ argv: ['haproxy', '-db', '-f', join(dir, 'haproxy.cfg')], port: haPort });
  await waitForPort(haPort);
  peers['haproxy'] = ha;

  const bunPort = await freePort();
  writeFileSync(
    join(dir, 'bun-h2.mjs'),
    `
import http2 from 'node:http2';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
const big = readFileSync(${JSON.stringify(join(dir, 'big.bin'))});
const s = http2.createSecureServer({ cert: readFileSync(${JSON.stringify(certs.certPath)}), key: readFileSync(${JSON.stringify(certs.keyPath)}) });
s.on('stream', (st, h) => {
  st.on('error', () => {});
  const path = h[':path'];
  if (path === '/big.bin') { st.respond({ ':status': 200 }); st.end(big); return; }
  if (path === '/reset') { st.close(http2.constants.NGHTTP2_INTERNAL_ERROR); return; }
  if (path === '/trailers') { st.respond({ ':status': 200 }, { waitForTrailers: true }); st.on('wantTrailers', () => st.sendTrailers({ 'x-checksum': 'abc' })); st.end('with trailers'); return; }
  if (path === '/echo') { const hash = createHash('sha256'); let n = 0; st.on('data', (c) => { hash.update(c); n += c.length; }); st.on('end', () => { st.respond({ ':status': 200 }); st.end(n + ' ' + hash.digest('hex')); }); return; }
  st.respond({ ':status': 200 }); st.end('hello');
});
s.listen(${bunPort}, '127.0.0.1', () => console.log('bun-h2-ready'));
`,
  );
  const bun = await startPeer({
    argv: [BUN, join(dir, 'bun-h2.mjs')],
    ready: /bun-h2-ready/,
    port: bunPort,
    settleMs: 100,
  });
  peers['bun'] = bun;
}, 120_000);

afterAll(async () => {
  for (const p of Object.values(peers)) await p.stop().catch(() => {});
  echo?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function agent(): Agent {
  return new Agent({ protocol: 'h2', tls: { ca: certs.ca }, maxRetries: 0 });
}

async function readAll(r: { body: AsyncIterable<unknown> }): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r.body) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

async function* chunks(n: number, size: number, seed: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < n; i++) {
    await new Promise((r) => setImmediate(r));
    yield Buffer.alloc(size, (seed + i) & 0xff);
  }
}
const expectedEcho = (n: number, size: number, seed: number): string => {
  const h = createHash('sha256');
  for (let i = 0; i < n; i++) h.update(Buffer.alloc(size, (seed + i) & 0xff));
  return `${n * size} ${h.digest('hex')}`;
};

/** What each server can do: file path, whether POST /echo echoes, etc. */
const matrix: Array<{ name: string; post: boolean }> = [
  { name: 'nginx', post: true },
  { name: 'h2o', post: false },
  { name: 'nghttpd', post: false },
  { name: 'caddy', post: true },
  { name: 'haproxy', post: true },
  { name: 'bun', post: true },
];

describe('our HTTP/2 client against independent servers', () => {
  for (const { name, post } of matrix) {
    it(`${name}: 1 MiB GET byte-identical and 100 concurrent streams on one connection`, async () => {
      const a = agent();
      try {
        const port = peers[name]!.port;
        const path = name === 'haproxy' ? '/any' : '/big.bin';
        const r = await a.request({ url: `https://localhost:${port}${path}` });
        expect(r.protocol).toBe('h2');
        const body = await readAll(r);
        if (name === 'haproxy') expect(body.toString()).toBe(`0 ${sha(new Uint8Array(0))}`);
        else expect(sha(body)).toBe(sha(big));
        const many = await Promise.all(
          Array.from({ length: 100 }, async (_, i) => {
            const x = await a.request({
              url: `https://localhost:${port}${name === 'haproxy' ? `/n${i}` : '/index.html'}`,
            });
            return [x.status, (await readAll(x)).length] as const;
          }),
        );
        expect(many.every(([s, n]) => s === 200 && n > 0)).toBe(true);
        expect(a.stats()[0]?.connectionsOpened).toBe(1);
      } finally {
        await a.close();
      }
    });
    if (post) {
      it(`${name}: a streamed POST (40 × 16 KiB) is echoed back whole`, async () => {
        const a = agent();
        try {
          const r = await a.request({
            url: `https://localhost:${peers[name]!.port}/echo`,
            method: 'POST',
            body: chunks(40, 16 * 1024, 3),
          });
          expect(r.status).toBe(200);
          expect((await readAll(r)).toString()).toBe(expectedEcho(40, 16 * 1024, 3));
        } finally {
          await a.close();
        }
      });
    }
  }

  it('bun: trailers arrive', async () => {
    const a = agent();
    try {
      const t = await a.request({ url: `https://localhost:${peers['bun']!.port}/trailers` });
      expect((await readAll(t)).toString()).toBe('with trailers');
      expect(await t.trailers).toEqual([['x-checksum', 'abc']]);
    } finally {
      await a.close();
    }
  });

  it('bun: a stream it closes with a code before any response head (it sends DATA first) is a malformed response, and the connection keeps serving', async () => {
    const a = agent();
    try {
      const port = peers['bun']!.port;
      const err = await a
        .request({ url: `https://localhost:${port}/reset` })
        .catch((e: unknown) => e as OriginlinkError);
      // RFC 9113 §8.1: DATA before HEADERS is malformed; we reset that stream with PROTOCOL_ERROR.
      expect((err as OriginlinkError).code).toBe(ErrorCode.MALFORMED_RESPONSE);
      const ok = await a.request({ url: `https://localhost:${port}/` });
      expect((await readAll(ok)).toString()).toBe('hello');
      expect(a.stats()[0]?.connectionsOpened).toBe(1);
    } finally {
      await a.close();
    }
  });

  it('nghttp2 (node:http2 server): a server RST_STREAM is a typed stream reset; the connection keeps serving', async () => {
    const srv = http2.createSecureServer({ cert: certs.cert, key: certs.key });
    srv.on('stream', (st, h) => {
      st.on('error', () => {});
      if (h[':path'] === '/reset') st.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      else {
        st.respond({ ':status': 200 });
        st.end('fine');
      }
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const a = agent();
    try {
      const port = (srv.address() as AddressInfo).port;
      const err = await a
        .request({ url: `https://localhost:${port}/reset` })
        .catch((e: unknown) => e as OriginlinkError);
      expect((err as OriginlinkError).code).toBe(ErrorCode.STREAM_RESET);
      expect((err as OriginlinkError).details['h2ErrorCode']).toBe(2);
      expect((err as OriginlinkError).retrySafe).toBe(false);
      expect((await readAll(await a.request({ url: `https://localhost:${port}/` }))).toString()).toBe('fine');
      expect(a.stats()[0]?.connectionsOpened).toBe(1);
    } finally {
      await a.close();
      srv.close();
    }
  });

  it('nghttp2 (node:http2 server): text() of a body sent after its head, whole; a connection lost in the middle rejects it typed', async () => {
    const srv = http2.createSecureServer({ cert: certs.cert, key: certs.key });
    srv.on('stream', (st, h) => {
      st.on('error', () => {});
      st.respond({ ':status': 200 });
      // The head goes first; the body in later writes, so that text() is called before the body has ended.
      st.write('first ');
      setTimeout(() => {
        // (Not st.close(code): node:http2 ends the stream first and sends its RST_STREAM after, a whole body.)
        if (h[':path'] === '/cut') st.session?.destroy();
        else st.end('second');
      }, 30);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const a = agent();
    try {
      const port = (srv.address() as AddressInfo).port;
      const res = await a.request({ url: `https://localhost:${port}/` });
      expect(await res.text()).toBe('first second');
      // The body was taken whole (LazyBody.collect): its stream is empty and ended.
      expect((await readAll(res)).length).toBe(0);
      const cut = await a.request({ url: `https://localhost:${port}/cut` });
      const err = await cut.text().catch((e: unknown) => e as OriginlinkError);
      expect(err).toBeInstanceOf(OriginlinkError);
      expect((err as OriginlinkError).code).toBe(ErrorCode.SOCKET_CLOSED);
      expect(await (await a.request({ url: `https://localhost:${port}/` })).text()).toBe('first second');
      expect(a.stats()[0]?.connectionsOpened).toBe(2);
    } finally {
      await a.close();
      srv.close();
    }
  });

  it('nginx reloaded in the middle of load (GOAWAY to the old connection): every request succeeds on a new one', async () => {
    const a = new Agent({ protocol: 'h2', tls: { ca: certs.ca } });
    try {
      const url = `https://localhost:${nginx.port}/big.bin`;
      await readAll(await a.request({ url }));
      let reloaded = false;
      const results = await Promise.all(
        Array.from({ length: 60 }, async (_, i) => {
          await new Promise((r) => setTimeout(r, i * 5));
          if (i === 20 && !reloaded) {
            reloaded = true;
            nginx.reload();
          }
          const r = await a.request({ url });
          return sha(await readAll(r)) === sha(big);
        }),
      );
      // On a loaded machine the reload can take effect after the burst: requests go on (bounded: 200, ~5 s) until
      // the old connection's GOAWAY has moved them to a new one, each checked as the burst's were.
      for (let i = 0; i < 200 && a.stats()[0]!.connectionsOpened < 2; i++) {
        await new Promise((r) => setTimeout(r, 20));
        results.push(sha(await readAll(await a.request({ url }))) === sha(big));
      }
      expect(results.every(Boolean)).toBe(true);
      expect(a.stats()[0]!.connectionsOpened).toBeGreaterThanOrEqual(2);
    } finally {
      await a.close();
    }
  });
});
