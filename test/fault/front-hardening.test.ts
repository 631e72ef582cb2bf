/**
 * The smaller findings of issue 44, each against the connector with a raw HTTP/1.1 origin that records every
 * request head it gets: nothing pipelined behind a refusal that closes the connection is forwarded; an empty Host
 * is refused as such; an h2/h3 client's cookie crumbs reach an HTTP/1.1 origin as one field; field names with `_`
 * are dropped unless `proxy.underscoresInHeaders`; `:scheme: foo` and a bracketed name in Host route nowhere; the
 * admin listener answers its own names only (DNS rebinding); a 502 names no origin or address unless
 * `proxy.errorDetails`; an origin's 1xx keeps its reason phrase on the HTTP/1.1 front.
 */
import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/index.js';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { makeCerts } from '../helpers/certs.js';
import { CLOSED_PORT } from '../helpers/ports.js';
import { rawExchange } from '../helpers/raw.js';

const certs = makeCerts();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Every request head the origin read (its text, as sent). */
const heads: string[] = [];
let origin: net.Server;
let strict: Service;
let loose: Service;
const strictLogs: Array<Record<string, unknown>> = [];

/** A keep-alive HTTP/1.1 origin that answers each head at once (no request bodies); `/interim` first sends two 1xx. */
function startOrigin(): Promise<net.Server> {
  const s = net.createServer((c) => {
    let buf = '';
    c.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      let end: number;
      while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        heads.push(head);
        const path = head.split(' ')[1] ?? '';
        if (path === '/interim')
          c.write(
            'HTTP/1.1 102 Still Working On It\r\n\r\nHTTP/1.1 103 Hints From The Origin\r\nlink: </a.css>; rel=preload\r\n\r\n',
          );
        const body = `seen ${path}\n`;
        c.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
      }
    });
    c.on('error', () => {});
  });
  return new Promise((r) => s.listen(0, '127.0.0.1', () => r(s)));
}

function config(extra: string): string {
  const port = (origin.address() as net.AddressInfo).port;
  return `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
  - { name: clear2, kind: h2c, host: 127.0.0.1, port: 0 }
  - { name: quic, kind: h3, host: 127.0.0.1, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }
admin: { host: 127.0.0.1, port: 0, hosts: [metrics.internal.example] }
logging: { requests: true }
${extra}
origins:
  app: { url: "http://127.0.0.1:${port}", protocol: h1 }
  internal: { url: "http://127.0.0.1:${port}", protocol: h1 }
  dead: { url: "http://127.0.0.1:${CLOSED_PORT}", protocol: h1, retries: 0, pool: { connectBackoffBaseMs: 0 } }
routes:
  - { host: internal.example, path: /, origin: internal }
  - { path: /dead, origin: dead }
  - { path: /, origin: app }
`;
}

beforeAll(async () => {
  origin = await startOrigin();
  strict = await Service.start(parseConfig(config(''), 'strict.yaml', certs.dir), {
    logDestination: {
      write: (s: string) => {
        for (const l of s.split('\n')) if (l) strictLogs.push(JSON.parse(l) as Record<string, unknown>);
      },
    },
  });
  loose = await Service.start(
    parseConfig(config('proxy: { underscoresInHeaders: true, errorDetails: true }'), 'loose.yaml', certs.dir),
    { logDestination: { write: () => {} } },
  );
});
afterAll(async () => {
  await strict?.shutdown(500);
  await loose?.shutdown(500);
  await new Promise((r) => origin?.close(r));
});

const plainOf = (s: Service): number => s.addresses()['plain'] as number;
const seen = (path: string): string[] => heads.filter((h) => h.split(' ')[1] === path);

describe('HTTP/1.1 front', () => {
  it('after a forwarder-level 400 with connection: close, nothing pipelined behind it is forwarded (RFC 9112 §9.6)', async () => {
    const out = await rawExchange(
      plainOf(strict),
      'GET /../x HTTP/1.1\r\nHost: a\r\n\r\nGET /raw/SMUGGLED HTTP/1.1\r\nHost: a\r\n\r\n',
    );
    expect(out).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n[^]*connection: close\r\n/i);
    expect(out.match(/^HTTP\/1\.1 /gm)).toHaveLength(1);
    // The same behind a request that was forwarded first (both safe: pipelined requests run side by side).
    const two = await rawExchange(
      plainOf(strict),
      'GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /../y HTTP/1.1\r\nHost: a\r\n\r\nGET /raw/SMUGGLED2 HTTP/1.1\r\nHost: a\r\n\r\n',
    );
    expect(two.match(/^HTTP\/1\.1 \d{3}/gm)).toEqual(['HTTP/1.1 200', 'HTTP/1.1 400']);
    await sleep(200);
    expect(seen('/first')).toHaveLength(1);
    expect([...seen('/raw/SMUGGLED'), ...seen('/raw/SMUGGLED2')]).toEqual([]);
  });

  it('an empty Host is refused as empty, not as "more than one Host"', async () => {
    const out = await rawExchange(plainOf(strict), 'GET /e HTTP/1.1\r\nHost: \r\n\r\n');
    expect(out).toMatch(/^HTTP\/1\.1 400 /);
    expect(out).toMatch(/400 Bad Request: empty Host\n$/);
  });

  it('Host: [internal.example] is no host: 400, not routed as internal.example; [::1] is one', async () => {
    const out = await rawExchange(plainOf(strict), 'GET /bracket HTTP/1.1\r\nHost: [internal.example]\r\n\r\n');
    expect(out).toMatch(/^HTTP\/1\.1 400 /);
    const v6 = await rawExchange(plainOf(strict), 'GET /v6 HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n');
    expect(v6).toMatch(/^HTTP\/1\.1 200 [^]*seen \/v6\n$/);
    expect(seen('/bracket')).toEqual([]);
  });

  it('field names with "_" are dropped (Transfer_Encoding beside Content-Length never reaches the origin); proxy.underscoresInHeaders keeps them', async () => {
    const req = (path: string): string =>
      `GET ${path} HTTP/1.1\r\nHost: a\r\nX_Custom: 1\r\nTransfer_Encoding: chunked\r\nX-Dash: 2\r\nConnection: close\r\n\r\n`;
    expect(await rawExchange(plainOf(strict), req('/under-strict'))).toMatch(/^HTTP\/1\.1 200 /);
    expect(await rawExchange(plainOf(loose), req('/under-loose'))).toMatch(/^HTTP\/1\.1 200 /);
    const [a] = seen('/under-strict');
    const [b] = seen('/under-loose');
    expect(a).toMatch(/\r\nx-dash: 2\r\n/i);
    expect(a).not.toMatch(/_/);
    expect(b).toMatch(/\r\nx_custom: 1\r\n/i);
    expect(b).toMatch(/\r\ntransfer_encoding: chunked\r\n/i);
  });

  it('an origin 1xx keeps its reason phrase (RFC 9112 §4) on the way to an HTTP/1.1 client', async () => {
    const out = await rawExchange(plainOf(strict), 'GET /interim HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(out).toMatch(
      /^HTTP\/1\.1 102 Still Working On It\r\n\r\nHTTP\/1\.1 103 Hints From The Origin\r\nlink: <\/a\.css>; rel=preload\r\n\r\nHTTP\/1\.1 200 OK\r\n/,
    );
  });

  it('a 502 names no origin, address or port unless proxy.errorDetails (the log line has them)', async () => {
    const out = await rawExchange(plainOf(strict), 'GET /dead/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(out).toMatch(/^HTTP\/1\.1 502 /);
    expect(out).toMatch(/x-originlink-error: OL_CONNECT_FAILED/i);
    const body = out.slice(out.indexOf('\r\n\r\n') + 4);
    expect(body).toBe('502 Bad Gateway: OL_CONNECT_FAILED\n');
    const detailed = await rawExchange(plainOf(loose), 'GET /dead/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(detailed).toMatch(new RegExp(`502 Bad Gateway: origin dead: .*127\\.0\\.0\\.1:${CLOSED_PORT}`));
    await sleep(250); // request lines leave within logging.flushMs
    const line = strictLogs.find((l) => l['msg'] === 'request' && l['path'] === '/dead/x');
    expect(String(line?.['reason'])).toMatch(/^origin dead: /);
  });
});

describe('HTTP/2 and HTTP/3 fronts', () => {
  it('cookie crumbs from h2 and h3 reach the HTTP/1.1 origin as one field joined with "; " (RFC 9113 §8.2.3, RFC 9114 §4.2.1)', async () => {
    const c = http2.connect(`http://127.0.0.1:${strict.addresses()['clear2']}`);
    try {
      const s = c.request({ ':path': '/cookie-h2', cookie: ['a=1', 'b=2', 'c=3'] });
      s.resume();
      await new Promise((r) => s.on('end', r));
    } finally {
      c.close();
    }
    const agent = new Agent({ protocol: 'h3', tls: { ca: certs.ca } });
    try {
      const r = await agent.request({
        origin: `https://localhost:${strict.addresses()['quic']}`,
        path: '/cookie-h3',
        headers: [
          ['cookie', 'x=1'],
          ['accept', '*/*'],
          ['cookie', 'y=2'],
        ],
      });
      await r.text();
    } finally {
      await agent.close();
    }
    const [h2] = seen('/cookie-h2');
    const [h3] = seen('/cookie-h3');
    expect(h2?.match(/^cookie: .*$/gim)).toEqual(['cookie: a=1; b=2; c=3']);
    expect(h3?.match(/^cookie: .*$/gim)).toEqual(['cookie: x=1; y=2']);
  });

  it(':scheme foo does not step around the authority checks: :authority and Host that differ are malformed; a scheme other than http(s) is a 400', async () => {
    const c = http2.connect(`http://127.0.0.1:${strict.addresses()['clear2']}`);
    c.on('error', () => {});
    const ask = (h: http2.OutgoingHttpHeaders): Promise<number | string> =>
      new Promise((resolve) => {
        const s = c.request(h);
        s.on('response', (r) => {
          s.resume();
          resolve(Number(r[':status']));
        });
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
        s.on('close', () => resolve(`closed ${s.rstCode}`));
      });
    try {
      const differ = await ask({
        ':scheme': 'foo',
        ':authority': 'public.example',
        ':path': '/scheme-differ',
        host: 'internal.example',
      });
      expect(String(differ)).toMatch(/ERR_HTTP2_STREAM_ERROR|closed 1/);
      expect(await ask({ ':scheme': 'foo', ':authority': 'internal.example', ':path': '/scheme-foo' })).toBe(400);
    } finally {
      c.close();
    }
    expect([...seen('/scheme-differ'), ...seen('/scheme-foo')]).toEqual([]);
  });
});

describe('admin listener', () => {
  it('answers its own addresses, localhost and admin.hosts; any other Host gets 421 (DNS rebinding never reads /metrics)', async () => {
    const port = strict.adminPort as number;
    const get = (host: string): Promise<string> =>
      rawExchange(port, `GET /metrics HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'metrics.internal.example', `[::1]:${port}`]) {
      expect(await get(host), host).toMatch(/^HTTP\/1\.1 200 [^]*originlink_front_requests_total|^HTTP\/1\.1 200 /);
    }
    const evil = await get(`rebind.attacker.example:${port}`);
    expect(evil).toMatch(/^HTTP\/1\.1 421 /);
    expect(evil).not.toMatch(/originlink_/);
  });
});
