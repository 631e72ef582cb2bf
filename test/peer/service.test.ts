/**
 * The connector service against real peers: curl and h2load as clients,
 * nginx (and a small node origin for response-header cases) as origins.
 * Metrics are scraped and compared with nginx's access log.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import { join } from 'node:path';
import net from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { makeCerts } from '../helpers/certs.js';
import { Nginx } from '../helpers/nginx.js';
import { CLOSED_PORT } from '../helpers/ports.js';

const run = promisify(execFile);
const certs = makeCerts();

async function curl(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await run('curl', ['-sS', '-m', '10', '--cacert', certs.caPath, ...args], { maxBuffer: 64 << 20 });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout, err: x.stderr };
  }
}

function metric(text: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    found = true;
  }
  return found ? sum : NaN;
}

describe('connector service with nginx behind it', () => {
  let nginx: Nginx;
  let svc: Service;
  let odd: http.Server;
  let deadPort: number;
  let release: (() => void) | null = null;
  const logs: Array<Record<string, unknown>> = [];
  let tls = 0;
  let plain = 0;
  let h2c = 0;
  let admin = 0;

  beforeAll(async () => {
    nginx = await Nginx.start({
      serverExtra: `location = /hdr { default_type text/plain; return 200 "host=$host|via=$http_via|xff=$http_x_forwarded_for|xfp=$http_x_forwarded_proto|xfh=$http_x_forwarded_host|foo=$http_x_foo|ka=$http_keep_alive|pa=$http_proxy_authorization|up=$http_upgrade|keep=$http_x_keep\\n"; }`,
    });
    // An origin whose responses carry hop-by-hop fields the connector must strip.
    odd = http.createServer((req, res) => {
      if (req.url === '/stream/echo') {
        res.writeHead(200);
        req.pipe(res);
        return;
      }
      if (req.url === '/stream/down') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.write(Buffer.alloc(32 * 1024, 0x31));
        release = () => res.end(Buffer.alloc(32 * 1024, 0x32));
        return;
      }
      res.setHeader('connection', 'x-bar');
      res.setHeader('x-bar', '1');
      res.setHeader('keep-alive', 'timeout=77');
      res.setHeader('proxy-authenticate', 'Basic');
      res.setHeader('x-keep', 'yes');
      let n = 0;
      req.on('data', (c: Buffer) => {
        n += c.length;
      });
      req.on('end', () => res.end(`odd ${req.method} ${req.url}${n ? ` ${n}` : ''}\n`));
    });
    await new Promise<void>((r) => odd.listen(0, '127.0.0.1', r));
    deadPort = CLOSED_PORT;
    const yaml = `
listeners:
  - { name: tls, kind: https, host: 127.0.0.1, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
  - { name: h2c, kind: h2c, host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
limits: { maxBodyBytes: 1048576 }
proxy: { via: test-proxy }
origins:
  ng-h1: { url: "https://localhost:${nginx.port}", protocol: h1, tls: { ca: ${certs.caPath} } }
  ng-h2: { url: "https://localhost:${nginx.port}", protocol: h2, tls: { ca: ${certs.caPath} } }
  ng-load: { url: "https://127.0.0.1:${nginx.port}", protocol: h2, tls: { ca: ${certs.caPath}, servername: localhost } }
  odd: { url: "http://127.0.0.1:${(odd.address() as net.AddressInfo).port}", protocol: h1 }
  dead: { url: "http://127.0.0.1:${deadPort}", retries: 0, pool: { connectBackoffBaseMs: 0 } }
  strict: { url: "https://localhost:${nginx.port}" }
  failover: { urls: ["http://127.0.0.1:${deadPort}", "http://127.0.0.1:${(odd.address() as net.AddressInfo).port}"], protocol: h1, retries: 0, pool: { connectBackoffBaseMs: 0 } }
routes:
  - { path: /h1, origin: ng-h1, stripPrefix: true }
  - { path: /load, origin: ng-load, stripPrefix: true }
  - { path: /keep, origin: ng-h1, hostHeader: preserve, stripPrefix: true }
  - { path: /lit, origin: ng-h2, hostHeader: "lit.example", stripPrefix: true }
  - { path: /odd, origin: odd }
  - { path: /stream, origin: odd }
  - { path: /dead, origin: dead }
  - { path: /fo, origin: failover }
  - { path: /strict, origin: strict, stripPrefix: true }
  - { host: only.test, path: /, origin: odd }
  - { path: /, origin: ng-h2 }
`;
    svc = await Service.start(parseConfig(yaml, 'test.yaml', certs.dir), {
      logDestination: {
        write: (s: string) => {
          logs.push(JSON.parse(s) as Record<string, unknown>);
        },
      },
    });
    const a = svc.addresses();
    tls = a['tls'] as number;
    plain = a['plain'] as number;
    h2c = a['h2c'] as number;
    admin = svc.adminPort as number;
  });
  afterAll(async () => {
    await svc?.shutdown(1000);
    await nginx?.close();
    odd?.close();
  });

  it('an admin listener nobody scraped starts no process series (no 10 ms timer); the first scrape starts them, sampled', async () => {
    expect(svc.metrics.processSeries).toBe(false);
    const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
    expect(svc.metrics.processSeries).toBe(true);
    // The event-loop monitor had samples before the first scrape read it: no 2^63 ns minimum, no NaN mean.
    const min = Number(/^nodejs_eventloop_lag_min_seconds (\S+)$/m.exec(text)?.[1]);
    const mean = Number(/^nodejs_eventloop_lag_mean_seconds (\S+)$/m.exec(text)?.[1]);
    expect(min).toBeGreaterThan(0);
    expect(min).toBeLessThan(1);
    expect(Number.isFinite(mean)).toBe(true);
  });

  it('curl over h1 and h2 (TLS), h1 cleartext and h2c reaches nginx and gets the file', async () => {
    const cases: Array<[string, string[], string]> = [
      ['tls h1', ['--http1.1', `https://localhost:${tls}/index.html`], '1.1'],
      ['tls h2', ['--http2', `https://localhost:${tls}/index.html`], '2'],
      ['plain h1', [`http://127.0.0.1:${plain}/index.html`], '1.1'],
      ['h2c', ['--http2-prior-knowledge', `http://127.0.0.1:${h2c}/index.html`], '2'],
    ];
    for (const [name, args, version] of cases) {
      const r = await curl('-w', '\n%{http_code} %{http_version}', ...args);
      expect(r.code, `${name}: ${r.err}`).toBe(0);
      expect(r.out, name).toBe(`hello from nginx\n\n200 ${version}`);
    }
  });

  it('an http listener serves HTTP/2 with prior knowledge too (issue 45: it answered a 505 in HTTP/1.1, "Empty reply" to curl)', async () => {
    const r = await curl(
      '-w',
      '\n%{http_code} %{http_version}',
      '--http2-prior-knowledge',
      `http://127.0.0.1:${plain}/index.html`,
    );
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe('hello from nginx\n\n200 2');
    // HTTP/1.1 on the same listener, as before.
    const h1 = await curl('-w', '\n%{http_code} %{http_version}', `http://127.0.0.1:${plain}/index.html`);
    expect(h1.out).toBe('hello from nginx\n\n200 1.1');
  });

  it('adds Via and X-Forwarded-*, strips hop-by-hop request fields, rewrites Host to the origin', async () => {
    const r = await curl(
      '--http1.1',
      '-H',
      'Connection: X-Foo, Keep-Alive',
      '-H',
      'X-Foo: secret',
      '-H',
      'Keep-Alive: timeout=9',
      '-H',
      'Proxy-Authorization: Basic eA==',
      '-H',
      'X-Forwarded-For: 203.0.113.9',
      '-H',
      'X-Keep: kept',
      `https://localhost:${tls}/h1/hdr`,
    );
    expect(r.out.trim()).toBe(
      `host=localhost|via=1.1 test-proxy|xff=203.0.113.9, 127.0.0.1|xfp=https|xfh=localhost:${tls}|foo=|ka=|pa=|up=|keep=kept`,
    );
    const r2 = await curl('--http2', `https://localhost:${tls}/hdr`);
    expect(r2.out.trim()).toBe(
      `host=localhost|via=2 test-proxy|xff=127.0.0.1|xfp=https|xfh=localhost:${tls}|foo=|ka=|pa=|up=|keep=`,
    );
  });

  it('keeps or rewrites Host per route (needs the Agent to honour RequestOptions.authority)', async () => {
    const kept = await curl('-H', 'Host: keep.test', `http://127.0.0.1:${plain}/keep/hdr`);
    expect(kept.out).toMatch(/^host=keep\.test\|/);
    const lit = await curl(`http://127.0.0.1:${plain}/lit/hdr`);
    expect(lit.out).toMatch(/^host=lit\.example\|/);
  });

  it('an origin with several URLs: an unreachable URL fails over to the next inside the Agent policy, also for a POST', async () => {
    const before = logs.length;
    for (let i = 0; i < 4; i++) {
      const get = await curl(`http://127.0.0.1:${plain}/fo/get${i}`);
      expect(get.out).toContain(`odd GET /fo/get${i}`);
      const post = await curl('-X', 'POST', '--data-binary', 'payload', `http://127.0.0.1:${plain}/fo/post${i}`);
      expect(post.out).toContain(`odd POST /fo/post${i}`);
    }
    const lines = logs.slice(before).filter((l) => l['origin'] === 'failover');
    expect(lines).toHaveLength(8);
    const live = `http://127.0.0.1:${(odd.address() as net.AddressInfo).port}`;
    expect(lines.every((l) => l['status'] === 200 && l['upstream'] === live)).toBe(true);
    // Requests that started at the dead URL (every other one, round robin) took a second attempt.
    expect(lines.map((l) => l['attempts']).sort()).toEqual([1, 1, 1, 1, 2, 2, 2, 2]);
  });

  it('strips hop-by-hop response fields and appends Via on the way back', async () => {
    const r = await curl('-i', '--http1.1', `http://127.0.0.1:${plain}/odd/x`);
    const head = r.out.split('\r\n\r\n')[0]?.toLowerCase() ?? '';
    expect(head).toContain('x-keep: yes');
    expect(head).toContain('via: 1.1 test-proxy');
    expect(head).not.toContain('x-bar');
    expect(head).not.toContain('proxy-authenticate');
    expect(head).not.toMatch(/timeout=77/);
    const r2 = await curl('-i', '--http2', `https://localhost:${tls}/odd/y`);
    expect(r2.out.toLowerCase()).toContain('via: 1.1 test-proxy');
    expect(r2.out).toContain('odd GET /odd/y');
  });

  it('routes by host before path; unknown paths on a catch-all still route; no route is 404', async () => {
    const r = await curl('-H', 'Host: only.test', `http://127.0.0.1:${plain}/index.html`);
    expect(r.out).toBe('odd GET /index.html\n');
    const svc404 = await curl('-w', '%{http_code}', '-o', '/dev/null', `http://127.0.0.1:${plain}/does-not-exist`);
    expect(svc404.out).toBe('404'); // nginx's own 404, through the catch-all route
  });

  it('maps origin failures: refused -> 502, unverifiable certificate -> 502, with the error code (no origin or address: proxy.errorDetails)', async () => {
    const r = await curl('-i', `http://127.0.0.1:${plain}/dead/x`);
    expect(r.out).toMatch(/^HTTP\/1.1 502/);
    expect(r.out).toMatch(/x-originlink-error: OL_CONNECT_FAILED/i);
    expect(r.out).toMatch(/\r\n\r\n502 Bad Gateway: OL_CONNECT_FAILED\n$/);
    // Verification is on by default: without the test CA the origin's certificate is refused.
    const strict = await curl('-i', `http://127.0.0.1:${plain}/strict/index.html`);
    expect(strict.out).toMatch(/^HTTP\/1.1 502/);
    expect(strict.out).toMatch(/x-originlink-error: OL_(CERT_INVALID|TLS_FAILED)/i);
  });

  it('body size limit: 413 on a declared length and on a streamed body', async () => {
    const big = join(certs.dir, 'big.bin');
    writeFileSync(big, Buffer.alloc(2 * 1024 * 1024, 0x78));
    const declared = await curl(
      '-w',
      '%{http_code}',
      '-o',
      '/dev/null',
      '--data-binary',
      `@${big}`,
      `http://127.0.0.1:${plain}/post`,
    );
    expect(declared.out).toBe('413');
    const streamed = await curl(
      '-w',
      '%{http_code}',
      '-o',
      '/dev/null',
      '-H',
      'Transfer-Encoding: chunked',
      '--data-binary',
      `@${big}`,
      `http://127.0.0.1:${plain}/odd/upload`,
    );
    expect(streamed.out).toBe('413');
    const small = await curl(
      '-H',
      'Transfer-Encoding: chunked',
      '--data-binary',
      'y'.repeat(1000),
      `http://127.0.0.1:${plain}/odd/upload`,
    );
    expect(small.out).toBe('odd POST /odd/upload 1000\n');
  });

  it('uploads arrive whole, several on one keep-alive client connection (h1 front) and on one h2c connection', async () => {
    const body = randomBytes(900 * 1024);
    const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
    const file = join(certs.dir, 'upload.bin');
    writeFileSync(file, body);
    const outs = [1, 2, 3].map((i) => join(certs.dir, `echo-${i}.bin`));
    const u = `http://127.0.0.1:${plain}/stream/echo`;
    // Before: the second upload on a connection hung (the front's socket stayed paused after the first body's end).
    const r = await curl(
      '-w',
      '%{num_connects} ',
      '--data-binary',
      `@${file}`,
      u,
      u,
      u,
      '-o',
      outs[0]!,
      '-o',
      outs[1]!,
      '-o',
      outs[2]!,
    );
    expect(
      r.out
        .trim()
        .split(' ')
        .map(Number)
        .reduce((a, b) => a + b, 0),
    ).toBe(1);
    for (const o of outs) expect(sha(readFileSync(o))).toBe(sha(body));
    const c = http2.connect(`http://127.0.0.1:${h2c}`);
    try {
      for (let i = 0; i < 3; i++) {
        const s = c.request({ ':method': 'POST', ':path': '/stream/echo' });
        const parts: Buffer[] = [];
        s.on('data', (d: Buffer) => parts.push(d));
        s.end(body);
        await new Promise((res) => s.on('end', res));
        expect(sha(Buffer.concat(parts))).toBe(sha(body));
      }
    } finally {
      c.close();
    }
  });

  it('streams bodies both ways: echoed bytes return before the upload ends; a download arrives before the origin finishes', async () => {
    for (const [name, url] of [
      ['h2c', `http://127.0.0.1:${h2c}`],
      ['tls h2', `https://localhost:${tls}`],
    ] as const) {
      const c = http2.connect(url, { ca: certs.ca });
      const s = c.request({ ':method': 'POST', ':path': '/stream/echo' });
      const first = new Promise<Buffer>((r) => s.once('data', r));
      s.write(Buffer.alloc(100_000, 0x41));
      const got = await Promise.race([first, new Promise<null>((r) => setTimeout(() => r(null), 3000))]);
      expect(got, `${name}: no echo before the upload ended (buffered?)`).not.toBeNull();
      let total = got?.length ?? 0;
      s.on('data', (d: Buffer) => {
        total += d.length;
      });
      s.end(Buffer.alloc(100_000, 0x42));
      await new Promise((r) => s.on('end', r));
      expect(total).toBe(200_000);
      c.close();
    }
    const c = http2.connect(`http://127.0.0.1:${h2c}`);
    const s = c.request({ ':path': '/stream/down' });
    const firstDown = await new Promise<Buffer>((r) => s.once('data', r));
    expect(firstDown[0]).toBe(0x31); // the origin has not finished: it waits for release()
    let rest = firstDown.length;
    s.on('data', (d: Buffer) => {
      rest += d.length;
    });
    release?.();
    await new Promise((r) => s.on('end', r));
    expect(rest).toBe(64 * 1024);
    c.close();
  });

  it('h2load through the h2 front: metrics match nginx access log (requests, connections)', async () => {
    const before = nginx.log().length;
    const n = 3000;
    const r = await run(
      'h2load',
      ['-n', String(n), '-c', '8', '-m', '8', `https://127.0.0.1:${tls}/load/small.txt?h2load`],
      { maxBuffer: 8 << 20 },
    );
    expect(r.stdout).toMatch(new RegExp(`requests: ${n} total, ${n} started, ${n} done, ${n} succeeded`));
    const lines = nginx
      .log()
      .slice(before)
      .filter((l) => l.uri === '/small.txt?h2load');
    expect(lines.length).toBe(n);
    const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
    expect(metric(text, 'originlink_upstream_requests_total', { origin: 'ng-load' })).toBe(n);
    const opened = metric(text, 'originlink_upstream_connections_opened_total', { origin: 'ng-load' });
    expect(opened).toBe(new Set(lines.map((l) => l.connection)).size);
    expect(opened).toBe(1); // 64 concurrent streams fit in one h2 connection (nginx allows 128)
    expect(metric(text, 'originlink_upstream_reuse_ratio', { origin: 'ng-load' })).toBeGreaterThan(0.99);
    expect(metric(text, 'originlink_upstream_handshakes_total', { origin: 'ng-load', protocol: 'h2' })).toBe(opened);
    expect(metric(text, 'originlink_upstream_ttfb_seconds_count', { origin: 'ng-load' })).toBe(n);
    expect(metric(text, 'originlink_upstream_protocol', { origin: 'ng-load', protocol: 'h2' })).toBe(1);
    expect(
      metric(text, 'originlink_front_requests_total', { listener: 'tls', protocol: '2', status: '200' }),
    ).toBeGreaterThanOrEqual(n);
    expect(metric(text, 'originlink_upstream_connections_idle', { origin: 'ng-load' })).toBe(opened);
    expect(
      metric(text, 'originlink_upstream_choice', { origin: 'ng-load', protocol: 'h2', reason: 'configured' }),
    ).toBe(1);
    expect(metric(text, 'originlink_upstream_facts_info', { origin: 'ng-load', alpn: 'h2' })).toBe(1);
    expect(metric(text, 'originlink_upstream_choice', { origin: 'strict', transport: 'tcp' })).toBe(1); // auto: the selector's choice and reason
    // Scraped: the process's own series too (metrics.ts prepare).
    expect(text).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds \d/m);
    const health = await fetch(`http://127.0.0.1:${admin}/healthz`);
    expect(health.status).toBe(200);
  });

  it('logs one JSON line per request with route, origin, protocol, reused, status and timings', async () => {
    await curl(`https://localhost:${tls}/h1/index.html?logcheck`);
    const line = logs.find((l) => l['msg'] === 'request' && l['path'] === '/h1/index.html?logcheck');
    expect(line).toBeDefined();
    expect(line).toMatchObject({
      origin: 'ng-h1',
      protocol: 'h1',
      status: 200,
      route: 0,
      listener: 'tls',
      client: '2',
      method: 'GET',
    });
    expect(typeof line?.['reused']).toBe('boolean');
    expect(typeof line?.['ttfbMs']).toBe('number');
    expect(typeof line?.['totalMs']).toBe('number');
    expect(line?.['upstream']).toBe(`https://localhost:${nginx.port}`);
  });
});

describe('clients that leave before their answers', () => {
  it('do not recycle the warm h2 origin connection their streams were on (pool maxConsecutiveErrors counts origin failures only)', async () => {
    // An HTTP/2 origin (Node's own, nghttp2) that holds /hang requests until released and answers the rest at once.
    const held: http2.ServerHttp2Stream[] = [];
    const origin = http2.createSecureServer({ cert: certs.cert, key: certs.key }, (req, res) => {
      if (req.url === '/hang') {
        held.push(res.stream);
        return;
      }
      res.end('ok\n');
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const port = (origin.address() as net.AddressInfo).port;
    const svc = await Service.start(
      parseConfig(
        `
listeners: [{ name: plain, kind: http, host: 127.0.0.1, port: 0 }]
admin: { host: 127.0.0.1, port: 0 }
logging: { requests: false }
origins:
  o: { url: "https://127.0.0.1:${port}", protocol: h2, retries: 0, tls: { ca: ${certs.caPath}, servername: localhost }, pool: { maxConsecutiveErrors: 2 } }
routes: [{ path: /, origin: o }]
`,
        'test.yaml',
        certs.dir,
      ),
      { logDestination: { write: () => {} } },
    );
    try {
      const base = `http://127.0.0.1:${svc.addresses()['plain'] as number}`;
      expect(await (await fetch(`${base}/first`)).text()).toBe('ok\n');
      // Eight requests reach the origin on the one connection, then each client gives up (its socket closes).
      const controllers = Array.from({ length: 8 }, () => new AbortController());
      const pending = controllers.map((c) => fetch(`${base}/hang`, { signal: c.signal }).catch((e: Error) => e));
      for (let i = 0; i < 100 && held.length < 8; i++) await new Promise((r) => setTimeout(r, 20));
      expect(held).toHaveLength(8);
      for (const c of controllers) c.abort();
      await Promise.all(pending);
      const resets = (): number => held.filter((s) => s.rstCode === http2.constants.NGHTTP2_CANCEL).length;
      for (let i = 0; i < 100 && resets() < 8; i++) await new Promise((r) => setTimeout(r, 20));
      expect(resets()).toBe(8); // the aborts reached the origin as RST_STREAM(CANCEL)
      expect(await (await fetch(`${base}/after`)).text()).toBe('ok\n');
      const text = await (await fetch(`http://127.0.0.1:${svc.adminPort as number}/metrics`)).text();
      expect(metric(text, 'originlink_upstream_errors_total', { origin: 'o', code: 'OL_ABORTED' })).toBe(8);
      expect(metric(text, 'originlink_upstream_connections_opened_total', { origin: 'o' })).toBe(1);
      expect(metric(text, 'originlink_upstream_connections_closed_total', { origin: 'o' })).toBe(0);
    } finally {
      await svc.shutdown(1000);
      origin.close();
    }
  });
});

describe('a client that pauses its download', () => {
  it("gets all of it when it pauses longer than the origin body timeout but within clientSendTimeoutMs (its own silence is not the origin's)", async () => {
    const big = Buffer.alloc(8 << 20, 0x61);
    const origin = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-length': big.length });
      res.end(big);
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const svc = await Service.start(
      parseConfig(
        `
listeners: [{ name: plain, kind: http, host: 127.0.0.1, port: 0 }]
admin: false
logging: { requests: false }
limits: { clientSendTimeoutMs: 5000 }
origins:
  o: { url: "http://127.0.0.1:${(origin.address() as net.AddressInfo).port}", protocol: h1, timeouts: { bodyMs: 1000 } }
routes: [{ path: /, origin: o }]
`,
        'test.yaml',
        certs.dir,
      ),
      { logDestination: { write: () => {} } },
    );
    const s = net.connect(svc.addresses()['plain'] as number, '127.0.0.1');
    try {
      s.write('GET /big HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
      s.pause(); // the client reads nothing for 2.5 s: the service's read-ahead fills, the origin is held paused
      await new Promise((r) => setTimeout(r, 2500));
      const chunks: Buffer[] = [];
      s.on('data', (d: Buffer) => chunks.push(d));
      s.resume();
      await new Promise<void>((r) => {
        s.once('close', () => r());
        setTimeout(r, 10_000);
      });
      const all = Buffer.concat(chunks);
      const headEnd = all.indexOf('\r\n\r\n');
      expect(all.subarray(0, 12).toString()).toBe('HTTP/1.1 200');
      expect(all.length - headEnd - 4).toBe(big.length);
    } finally {
      s.destroy();
      await svc.shutdown(1000);
      origin.close();
    }
  });
});

describe('a client whose upload stalls', () => {
  it("gets 408 and its connection closed: its stall, not the origin's (OL_REQUEST_BODY_TIMEOUT, counted under that code)", async () => {
    const origin = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('done\n'));
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const svc = await Service.start(
      parseConfig(
        `
listeners: [{ name: plain, kind: http, host: 127.0.0.1, port: 0 }]
admin: { host: 127.0.0.1, port: 0 }
logging: { requests: false }
origins:
  o: { url: "http://127.0.0.1:${(origin.address() as net.AddressInfo).port}", protocol: h1, retries: 0, timeouts: { bodyMs: 1000 } }
routes: [{ path: /, origin: o }]
`,
        'test.yaml',
        certs.dir,
      ),
      { logDestination: { write: () => {} } },
    );
    const s = net.connect(svc.addresses()['plain'] as number, '127.0.0.1');
    try {
      const chunks: Buffer[] = [];
      s.on('data', (d: Buffer) => chunks.push(d));
      const closed = new Promise<void>((r) => s.once('close', () => r()));
      // 10 of 2,000,000 bytes, then nothing: past proxy.maxRequestTempFileBytes, so the request is streamed to the origin.
      s.write('POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: 2000000\r\n\r\n0123456789');
      const t0 = performance.now();
      await Promise.race([closed, new Promise((r) => setTimeout(r, 5000))]);
      const text = Buffer.concat(chunks).toString('latin1');
      expect(text).toMatch(/^HTTP\/1\.1 408 /);
      expect(text.toLowerCase()).toContain('x-originlink-error: ol_request_body_timeout');
      expect(s.destroyed || s.readableEnded).toBe(true);
      expect(performance.now() - t0).toBeLessThan(2500);
      const m = await (await fetch(`http://127.0.0.1:${svc.adminPort as number}/metrics`)).text();
      expect(metric(m, 'originlink_upstream_errors_total', { origin: 'o', code: 'OL_REQUEST_BODY_TIMEOUT' })).toBe(1);
      // A body within requestBufferBytes stalls before any origin is asked: the same 408, counted as a front refusal.
      const s2 = net.connect(svc.addresses()['plain'] as number, '127.0.0.1');
      const got: Buffer[] = [];
      s2.on('data', (d: Buffer) => got.push(d));
      const closed2 = new Promise<void>((r) => s2.once('close', () => r()));
      s2.write('POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789');
      await Promise.race([closed2, new Promise((r) => setTimeout(r, 5000))]);
      expect(Buffer.concat(got).toString('latin1')).toMatch(
        /^HTTP\/1\.1 408 [^]*x-originlink-error: OL_REQUEST_BODY_TIMEOUT/i,
      );
      const m2 = await (await fetch(`http://127.0.0.1:${svc.adminPort as number}/metrics`)).text();
      expect(metric(m2, 'originlink_front_rejected_total', { listener: 'plain', reason: 'body_timeout' })).toBe(1);
      expect(metric(m2, 'originlink_upstream_errors_total', { origin: 'o', code: 'OL_REQUEST_BODY_TIMEOUT' })).toBe(1);
    } finally {
      s.destroy();
      await svc.shutdown(1000);
      origin.close();
    }
  });
});

describe('request log lines to a buffered destination (logging.flushMs)', () => {
  it('wait for flushMs and leave together; the ones still waiting are written at shutdown', async () => {
    const origin = http.createServer((req, res) => res.end(`origin ${req.url}\n`));
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const writes: string[] = [];
    // pino's own destination is told apart by flushSync (SonicBoom): its request lines are batched.
    const dest = {
      write: (s: string) => {
        writes.push(s);
        return true;
      },
      flushSync: () => {},
    };
    const yaml = `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
admin: false
logging: { requests: true, flushMs: 300 }
origins:
  o: { url: "http://127.0.0.1:${(origin.address() as net.AddressInfo).port}", protocol: h1 }
routes:
  - { path: /, origin: o }
`;
    const svc = await Service.start(parseConfig(yaml, 'flush.yaml', certs.dir), {
      logDestination: dest as unknown as NodeJS.WritableStream,
    });
    const requestLines = (): Array<Record<string, unknown>> =>
      writes
        .flatMap((w) => w.trim().split('\n'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l['msg'] === 'request');
    try {
      const port = svc.addresses()['plain'] as number;
      const t0 = Date.now();
      for (const p of ['/a', '/b']) expect((await curl(`http://127.0.0.1:${port}${p}`)).out).toBe(`origin ${p}\n`);
      expect(requestLines()).toEqual([]);
      for (let i = 0; i < 100 && requestLines().length < 2; i++) await new Promise((r) => setTimeout(r, 20));
      const waited = Date.now() - t0;
      const first = requestLines();
      expect(first.map((l) => [l['path'], l['status']])).toEqual([
        ['/a', 200],
        ['/b', 200],
      ]);
      expect(waited).toBeGreaterThanOrEqual(250);
      // Both in one write.
      expect(writes.filter((w) => w.includes('"msg":"request"'))).toHaveLength(1);
      expect((await curl(`http://127.0.0.1:${port}/c`)).out).toBe('origin /c\n');
    } finally {
      await svc.shutdown(1000);
      await new Promise<void>((r) => origin.close(() => r()));
    }
    // /c's line did not wait out its 300 ms: shutdown wrote it.
    expect(requestLines().map((l) => l['path'])).toEqual(['/a', '/b', '/c']);
  }, 20_000);
});
