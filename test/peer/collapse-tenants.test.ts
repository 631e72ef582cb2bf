/**
 * Collapsed forwarding never hands one client's answer to a client whose request the origin would answer
 * differently (issue 54, finding 1). The service forwards over an `http` and an `https` front to a group with
 * `collapse: true`; the origin answers after 300 ms with what it was told about the client's request
 * (X-Forwarded-Host, X-Forwarded-Proto) and the credential fields it saw, so a body shows whose answer it is.
 */
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { makeCerts } from '../helpers/certs.js';

const certs = makeCerts();
let origin: http.Server;
let originPort = 0;
/** Requests the origin received, by path. */
const seen = new Map<string, number>();

beforeAll(async () => {
  origin = http.createServer((req, res) => {
    seen.set(req.url as string, (seen.get(req.url as string) ?? 0) + 1);
    const h = req.headers;
    const body = `host=${h['x-forwarded-host'] ?? '-'} proto=${h['x-forwarded-proto'] ?? '-'} key=${h['x-api-key'] ?? h['x-tenant'] ?? '-'}\n`;
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(body);
    }, 300);
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  originPort = (origin.address() as net.AddressInfo).port;
});
afterAll(() => {
  origin?.close();
});

let svc: Service | null = null;
afterEach(async () => {
  await svc?.shutdown(500);
  svc = null;
});

async function serve(collapse: string, hostHeader = 'origin'): Promise<{ http: number; https: number }> {
  const yaml = `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
  - { name: tls, kind: https, host: 127.0.0.1, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }
admin: false
logging: { requests: false }
origins:
  g:
    endpoints:
      - { url: "http://127.0.0.1:${originPort}" }
    protocol: h1
    collapse: ${collapse}
routes:
  - { path: /, origin: g, hostHeader: ${hostHeader} }
`;
  svc = await Service.start(parseConfig(yaml, 'collapse.yaml', certs.dir), { logDestination: { write: () => {} } });
  const a = svc.addresses();
  return { http: a['plain'] as number, https: a['tls'] as number };
}

interface Get {
  scheme: 'http' | 'https';
  port: number;
  host: string;
  path: string;
  from?: string;
  headers?: Record<string, string>;
}

function get(o: Get): Promise<string> {
  return new Promise((resolve, reject) => {
    const opts = {
      host: '127.0.0.1',
      port: o.port,
      path: o.path,
      headers: { host: o.host, ...o.headers },
      agent: false as const,
      ...(o.from ? { localAddress: o.from } : {}),
    };
    const req = o.scheme === 'https' ? https.get({ ...opts, ca: certs.ca, servername: 'localhost' }) : http.get(opts);
    req.on('response', (res) => {
      let b = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (b += d));
      res.on('end', () => resolve(b));
    });
    req.on('error', reject);
  });
}

describe('collapse keys on what the origin is told about the client', () => {
  it('an http client on one Host and an https client on another, in flight together: each gets the answer made for it', async () => {
    const p = await serve('true');
    for (let round = 0; round < 3; round++) {
      const path = `/tenants/${round}`;
      const [a, b] = await Promise.all([
        get({ scheme: 'http', port: p.http, host: 'shop-a.example', path }),
        get({ scheme: 'https', port: p.https, host: 'origin.test', path }),
      ]);
      expect(a).toBe('host=shop-a.example proto=http key=-\n');
      expect(b).toBe('host=origin.test proto=https key=-\n');
      expect(seen.get(path)).toBe(2);
    }
  });

  it('hostHeader: preserve, one Host on both fronts: the https client never gets the answer made for http', async () => {
    const p = await serve('true', 'preserve');
    const path = '/preserve';
    const [a, b] = await Promise.all([
      get({ scheme: 'http', port: p.http, host: 'origin.test', path }),
      get({ scheme: 'https', port: p.https, host: 'origin.test', path }),
    ]);
    expect(a).toBe('host=origin.test proto=http key=-\n');
    expect(b).toBe('host=origin.test proto=https key=-\n');
    expect(seen.get(path)).toBe(2);
  });

  it('clients at several addresses with the same Host and scheme still share one origin request', async () => {
    const p = await serve('true');
    const path = '/shared';
    const bodies = await Promise.all(
      ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'].map((from) =>
        get({ scheme: 'http', port: p.http, host: 'shop-a.example', path, from }),
      ),
    );
    expect(new Set(bodies)).toEqual(new Set(['host=shop-a.example proto=http key=-\n']));
    expect(seen.get(path)).toBe(1);
  });

  it('credential fields stop collapsing by default (X-Api-Key), and so do the names a group adds (collapse.private)', async () => {
    let p = await serve('true');
    const [alice, bob] = await Promise.all([
      get({ scheme: 'http', port: p.http, host: 'api.example', path: '/key', headers: { 'x-api-key': 'alice' } }),
      get({ scheme: 'http', port: p.http, host: 'api.example', path: '/key', headers: { 'x-api-key': 'bob' } }),
    ]);
    expect(alice).toBe('host=api.example proto=http key=alice\n');
    expect(bob).toBe('host=api.example proto=http key=bob\n');
    expect(seen.get('/key')).toBe(2);
    await svc?.shutdown(500);
    p = await serve('{ private: [X-Tenant] }');
    const [t1, t2] = await Promise.all([
      get({ scheme: 'http', port: p.http, host: 'api.example', path: '/tenant', headers: { 'x-tenant': 'one' } }),
      get({ scheme: 'http', port: p.http, host: 'api.example', path: '/tenant', headers: { 'x-tenant': 'two' } }),
    ]);
    expect(t1).toBe('host=api.example proto=http key=one\n');
    expect(t2).toBe('host=api.example proto=http key=two\n');
    expect(seen.get('/tenant')).toBe(2);
  });

  it('a field both in collapse.key and collapse.private is refused at load, naming it', () => {
    expect(() =>
      parseConfig(
        `
listeners: [{ kind: http, port: 0 }]
origins:
  g:
    endpoints: [{ url: "http://127.0.0.1:1" }]
    collapse: { key: [x-tenant], private: [x-tenant] }
routes: [{ path: /, origin: g }]
`,
        'bad.yaml',
        certs.dir,
      ),
    ).toThrow(/collapse\.key\[0\].*x-tenant/);
  });
});
