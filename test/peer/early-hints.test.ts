/**
 * Interim responses through the connector (RFC 9110 §15.2: a proxy forwards
 * 1xx responses), 103 Early Hints (RFC 8297) above all: from node:http and
 * node:http2 origins (`writeEarlyHints`) and our HTTP/3 server, to curl on the
 * HTTP/1.1 front, node:http2 on the https front and our Agent on the h3
 * front. An interim response goes only where it may: never to an HTTP/1.0
 * client, never in the middle of another request's answer (pipelining), never
 * with a connection-specific field.
 */
import { execFile } from 'node:child_process';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/index.js';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import type { H3Server } from '../../src/server/h3.js';
import { makeCerts } from '../helpers/certs.js';
import { startTestH3Server } from '../helpers/h3-server.js';
import { rawExchange } from '../helpers/raw.js';

const run = promisify(execFile);
const certs = makeCerts();
const LINK = '</style.css>; rel=preload; as=style';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let h1: http.Server;
let h2: http2.Http2SecureServer;
let h3: H3Server;
let svc: Service;
let plain = 0;
let tlsPort = 0;
let quic = 0;

beforeAll(async () => {
  h1 = http.createServer((req, res) => {
    if (req.url?.startsWith('/h1/slow')) {
      setTimeout(() => res.end('slow\n'), 150);
      return;
    }
    // A hint (with a field a proxy must not pass on: Connection names it), then the answer.
    res.writeEarlyHints({ link: LINK, 'x-hint': 'one', 'x-hop': 'origin-only', connection: 'x-hop' });
    setTimeout(() => res.end(`final ${req.url}\n`), 50);
  });
  await new Promise<void>((r) => h1.listen(0, '127.0.0.1', r));
  h2 = http2.createSecureServer({ cert: certs.cert, key: certs.key }, (req, res) => {
    res.writeEarlyHints({ link: LINK });
    setTimeout(() => res.end(`final over h2 ${req.url}\n`), 50);
  });
  await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
  h3 = await startTestH3Server({
    handler: async (req) => {
      req.informational(103, [['link', LINK]]);
      await sleep(50);
      return { status: 200, headers: [['content-type', 'text/plain']], body: `final over h3 ${req.path}\n` };
    },
  });
  svc = await Service.start(
    parseConfig(
      `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
  - { name: tls, kind: https, host: 127.0.0.1, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }
  - { name: quic, kind: h3, host: 127.0.0.1, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }
logging: { requests: false }
admin: false
origins:
  one: { url: "http://127.0.0.1:${(h1.address() as AddressInfo).port}", protocol: h1 }
  two: { url: "https://localhost:${(h2.address() as AddressInfo).port}", protocol: h2, tls: { ca: ${certs.caPath} } }
  three: { url: "https://localhost:${h3.address.port}", protocol: h3, tls: { ca: ${certs.caPath} } }
routes:
  - { path: /h1, origin: one }
  - { path: /h2, origin: two }
  - { path: /h3, origin: three }
`,
      'hints.yaml',
    ),
    { logDestination: { write: () => {} } },
  );
  const a = svc.addresses();
  plain = a['plain'] as number;
  tlsPort = a['tls'] as number;
  quic = a['quic'] as number;
});

afterAll(async () => {
  await svc?.shutdown(500);
  h1?.closeAllConnections();
  await new Promise((r) => h1?.close(r));
  await new Promise((r) => h2?.close(r));
  await h3?.close();
});

const raw = (bytes: string): Promise<string> => rawExchange(plain, bytes, { ms: 2000 });

describe('103 Early Hints through the connector', () => {
  it('h1 origin → HTTP/1.1 front (curl): the 103 with its Link, then the answer; no field of the origin’s hop', async () => {
    const { stdout } = await run('curl', ['-s', '-i', `http://127.0.0.1:${plain}/h1/page`]);
    expect(stdout).toMatch(
      /^HTTP\/1\.1 103 Early Hints\r\nlink: <\/style\.css>; rel=preload; as=style\r\nx-hint: one\r\n\r\nHTTP\/1\.1 200 OK\r\n/,
    );
    expect(stdout.endsWith('final /h1/page\n')).toBe(true);
  });

  it('h2 origin → HTTP/2 front (node:http2): the 103 arrives as an interim HEADERS before the response', async () => {
    const c = http2.connect(`https://localhost:${tlsPort}`, { ca: certs.ca });
    try {
      const s = c.request({ ':path': '/h2/page' });
      const interim: Array<Record<string, unknown>> = [];
      s.on('headers', (h) => interim.push(h));
      const status = await new Promise<number>((r) => s.once('response', (h) => r(Number(h[':status']))));
      let body = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        body += d;
      });
      await new Promise((r) => s.on('end', r));
      expect(interim.map((h) => [h[':status'], h['link']])).toEqual([[103, LINK]]);
      expect([status, body]).toEqual([200, 'final over h2 /h2/page\n']);
    } finally {
      c.close();
    }
  });

  it('h3 origin → HTTP/3 front (our Agent, onInformational): the 103 before the response', async () => {
    const agent = new Agent({ protocol: 'h3', tls: { ca: certs.ca } });
    try {
      const got: Array<[number, string | undefined]> = [];
      const r = await agent.request({
        origin: `https://localhost:${quic}`,
        path: '/h3/page',
        onInformational: (status, headers) => got.push([status, headers.find(([n]) => n === 'link')?.[1]]),
      });
      expect(got).toEqual([[103, LINK]]);
      expect([r.status, await r.text()]).toEqual([200, 'final over h3 /h3/page\n']);
    } finally {
      await agent.close();
    }
  });

  it('never to an HTTP/1.0 client (RFC 9110 §15.2), never inside another request’s answer (a pipelined one that is not yet the one answered)', async () => {
    const old = await raw('GET /h1/old HTTP/1.0\r\nhost: a\r\n\r\n');
    expect(old).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(old).not.toMatch(/103/);
    // The first request is slow: the second's hint comes while the first is still unanswered, and is dropped.
    const both = await raw(
      'GET /h1/slow HTTP/1.1\r\nhost: a\r\n\r\nGET /h1/second HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n',
    );
    expect(both.match(/^HTTP\/1\.1 \d{3}/gm)).toEqual(['HTTP/1.1 200', 'HTTP/1.1 200']);
    expect(both).toMatch(/slow\n[^]*final \/h1\/second\n$/);
  });
});
