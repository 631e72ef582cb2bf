/**
 * The connector under hostile clients and failing origins: request
 * smuggling shapes, oversized headers, slowloris, a client leaving
 * mid-upload, an origin dying mid-response, a full queue, timeouts.
 * Every case checks the status (or the cut) and that the service still serves.
 */
import { execFile } from 'node:child_process';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { makeCerts } from '../helpers/certs.js';
import { until } from '../helpers/wait.js';

const run = promisify(execFile);
const certs = makeCerts();

/** Write raw bytes, collect what comes back until the peer closes or `ms` pass. */
function raw(
  port: number,
  bytes: string | Buffer,
  o: { ms?: number; tls?: boolean; hold?: boolean } = {},
): Promise<{ text: string; closed: boolean; elapsed: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let text = '';
    let closed = false;
    const s: net.Socket = o.tls
      ? tls.connect(
          { port, host: '127.0.0.1', ca: certs.ca, servername: 'localhost', ALPNProtocols: ['http/1.1'] },
          () => {
            if (bytes.length) s.write(bytes);
          },
        )
      : net.connect(port, '127.0.0.1', () => {
          if (bytes.length) s.write(bytes);
        });
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
    });
    s.on('error', () => {});
    const finish = (): void => {
      clearTimeout(t);
      s.destroy();
      resolve({ text, closed, elapsed: Date.now() - t0 });
    };
    s.on('close', () => {
      closed = true;
      finish();
    });
    const t = setTimeout(finish, o.ms ?? 2000);
  });
}

describe('connector fault handling', () => {
  let svc: Service;
  let origin: http.Server;
  let hang: net.Server;
  let tlsHang: net.Server;
  let coded: net.Server;
  let h2cOrigin: net.Server;
  const h2cHeads: string[] = [];
  const seen: string[] = [];
  const uploads: Array<{ bytes: number; aborted: boolean }> = [];
  const logLines: string[] = [];
  let plain = 0;
  let tlsPort = 0;
  let h2c = 0;

  beforeAll(async () => {
    origin = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      const u = new URL(req.url ?? '/', 'http://x');
      if (u.pathname === '/slow') {
        setTimeout(() => res.end('slow\n'), Number(u.searchParams.get('ms') ?? 300));
        return;
      }
      if (u.pathname === '/eight') {
        res.end(Buffer.alloc(32 << 20, 0x65));
        return;
      }
      if (u.pathname === '/nohead') {
        res.socket?.destroy(); // closes without a byte of answer
        return;
      }
      if (u.pathname === '/die') {
        res.writeHead(200, { 'content-length': String(1 << 20) });
        res.write(Buffer.alloc(64 * 1024, 0x61), () => setTimeout(() => res.socket?.destroy(), 20));
        return;
      }
      if (u.pathname === '/upload') {
        const rec = { bytes: 0, aborted: false };
        uploads.push(rec);
        req.on('data', (c: Buffer) => {
          rec.bytes += c.length;
        });
        req.on('aborted', () => {
          rec.aborted = true;
        });
        req.on('error', () => {
          rec.aborted = true;
        });
        req.on('end', () => res.end(`got ${rec.bytes}\n`));
        return;
      }
      res.end(`ok ${req.url}\n`);
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    // Accepts, reads, never answers (headers timeout) / never speaks TLS (connect timeout).
    hang = net.createServer((s) => {
      s.on('error', () => {});
      s.resume();
    });
    await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
    tlsHang = net.createServer((s) => {
      s.on('error', () => {});
      s.resume();
    });
    await new Promise<void>((r) => tlsHang.listen(0, '127.0.0.1', r));
    // Answers in a transfer coding other than chunked (RFC 9112 §6.1), the body to be read until close.
    coded = net.createServer((s) => {
      s.on('error', () => {});
      s.once('data', () => s.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b\x08\x00compressed'));
    });
    await new Promise<void>((r) => coded.listen(0, '127.0.0.1', r));
    // An origin that takes the h2c upgrade (RFC 7540 §3.2) of any request that asks for it, else answers HTTP/1.1.
    h2cOrigin = net.createServer((s) => {
      s.on('error', () => {});
      s.once('data', (d: Buffer) => {
        const head = d.toString('latin1');
        h2cHeads.push(head);
        if (/^upgrade:\s*h2c/im.test(head))
          s.write(
            'HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\nh2 frames past every route',
          );
        else s.end('HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nplain\n');
      });
    });
    await new Promise<void>((r) => h2cOrigin.listen(0, '127.0.0.1', r));
    const op = (origin.address() as net.AddressInfo).port;
    const yaml = `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
  - { name: tls, kind: https, host: 127.0.0.1, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }
  - { name: h2c, kind: h2c, host: 127.0.0.1, port: 0 }
admin: false
limits: { maxHeaderBytes: 4096, maxHeaderCount: 20, requestHeaderTimeoutMs: 500, keepAliveTimeoutMs: 2000 }
origins:
  main: { url: "http://127.0.0.1:${op}", protocol: h1, pool: { maxConnections: 4 } }
  narrow: { url: "http://127.0.0.1:${op}", protocol: h1, pool: { maxConnections: 1, maxPending: 1 } }
  hang: { url: "http://127.0.0.1:${(hang.address() as net.AddressInfo).port}", retries: 0, timeouts: { headersMs: 300 } }
  tlshang: { url: "https://127.0.0.1:${(tlsHang.address() as net.AddressInfo).port}", retries: 0, timeouts: { connectMs: 300 } }
  coded: { url: "http://127.0.0.1:${(coded.address() as net.AddressInfo).port}", retries: 0 }
  h2cup: { url: "http://127.0.0.1:${(h2cOrigin.address() as net.AddressInfo).port}", retries: 0 }
routes:
  - { path: /h2cup, origin: h2cup }
  - { path: /coded, origin: coded }
  - { path: /narrow, origin: narrow, stripPrefix: true }
  - { path: /hang, origin: hang }
  - { path: /tlshang, origin: tlshang }
  - { path: /, origin: main }
`;
    svc = await Service.start(parseConfig(yaml, 'fault.yaml', certs.dir), {
      logDestination: { write: (l: string) => void logLines.push(l) },
    });
    const a = svc.addresses();
    plain = a['plain'] as number;
    tlsPort = a['tls'] as number;
    h2c = a['h2c'] as number;
  });
  afterAll(async () => {
    await svc?.shutdown(500);
    origin?.closeAllConnections();
    origin?.close();
    hang?.close();
    tlsHang?.close();
    coded?.close();
    h2cOrigin?.close();
  });

  const still = async (): Promise<void> => {
    const r = await raw(plain, 'GET /alive HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(r.text).toMatch(/^HTTP\/1.1 200/);
  };

  it('refuses smuggling shapes with 400 and forwards none of them', async () => {
    const attacks: Array<[string, string]> = [
      [
        'CL+TE',
        'POST /smuggle1 HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG',
      ],
      [
        'TE+CL',
        'POST /smuggle2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nG',
      ],
      ['duplicate CL', 'POST /smuggle3 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello'],
      ['differing CL', 'POST /smuggle4 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!'],
      ['CL list', 'POST /smuggle5 HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello'],
      ['obs-fold', 'GET /smuggle6 HTTP/1.1\r\nHost: a\r\nX-A: b\r\n Transfer-Encoding: chunked\r\n\r\n'],
      ['TE obfuscated', 'POST /smuggle7 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n'],
      [
        'TE twice',
        'POST /smuggle8 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n',
      ],
      ['space before colon', 'POST /smuggle9 HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello'],
      ['two Host', 'GET /smuggle10 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'],
      ['no Host', 'GET /smuggle11 HTTP/1.1\r\n\r\n'],
    ];
    for (const [name, bytes] of attacks) {
      for (const overTls of [false, true]) {
        const r = await raw(overTls ? tlsPort : plain, bytes, { tls: overTls });
        expect(r.text, `${name} (${overTls ? 'tls' : 'plain'})`).toMatch(/^HTTP\/1.1 400/);
        expect(r.text, name).toMatch(/\r\nx-originlink-error: bad_request\r\n/i);
        expect(r.closed, name).toBe(true);
      }
    }
    expect(seen.filter((s) => s.includes('smuggle'))).toEqual([]);
    // Each refusal is counted (the parser's as `framing`, as the forwarder's own are): none was invisible.
    const counted =
      (await svc.metrics.registry.getSingleMetric('originlink_front_rejected_total')?.get())?.values ?? [];
    const total = counted.reduce((n, v) => n + v.value, 0);
    expect(total).toBeGreaterThanOrEqual(attacks.length * 2);
    expect(counted.some((v) => v.labels['reason'] === 'framing')).toBe(true);
    await still();
  });

  it('a chunked body that breaks its framing after the head went on: 400 to the client, logged and counted as such (was 499, client went away)', async () => {
    const rejected = async (): Promise<number> =>
      ((await svc.metrics.registry.getSingleMetric('originlink_front_rejected_total')?.get())?.values ?? [])
        .filter((v) => v.labels['reason'] === 'framing')
        .reduce((n, v) => n + v.value, 0);
    const before = await rejected();
    const s = net.connect(plain, '127.0.0.1');
    s.on('error', () => {});
    let text = '';
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
    });
    s.write('POST /upload?framing HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
    await until(() => uploads.length > 0 && uploads.at(-1)!.bytes === 5, 3000);
    s.write('zz\r\nbroken\r\n');
    await new Promise((r) => s.once('close', r));
    expect(text).toMatch(/^HTTP\/1.1 400 /);
    expect(await rejected()).toBe(before + 1);
    await until(() => logLines.some((l) => l.includes('/upload?framing')), 3000);
    const line = JSON.parse(logLines.find((l) => l.includes('/upload?framing')) as string) as Record<string, unknown>;
    expect([line['status'], line['error']]).toEqual([400, 'bad_request']);
    expect(line['reason']).toMatch(/^malformed request body: /);
    await still();
  });

  it("an origin that closes without answering: the 502's log line says how many times the GET went, and that no answer began", async () => {
    await still(); // a warm connection, so the first attempt goes on a reused one
    const r = await raw(plain, 'GET /nohead HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(r.text).toMatch(/^HTTP\/1.1 502 /);
    const sent = seen.filter((x) => x === 'GET /nohead').length;
    expect(sent).toBeGreaterThan(1); // retried: a GET the origin never answered
    await until(() => logLines.some((l) => l.includes('"/nohead"')), 3000);
    const line = JSON.parse(logLines.find((l) => l.includes('"/nohead"')) as string) as Record<string, unknown>;
    expect([line['status'], line['attempts'], typeof line['reused']]).toEqual([502, sent, 'boolean']);
    expect(line['reason']).toBe('origin main: connection closed before the response');
  });

  it('a client that leaves after some of a large response: its 499 line counts what went its way, not what the origin sent', async () => {
    const s = net.connect(plain, '127.0.0.1');
    s.on('error', () => {});
    let got = 0;
    const enough = new Promise<void>((r) =>
      s.on('data', (d: Buffer) => {
        got += d.length;
        if (got > 64 * 1024) {
          s.pause(); // stops reading: the rest goes to the spool
          r();
        }
      }),
    );
    s.write('GET /eight HTTP/1.1\r\nHost: a\r\n\r\n');
    await enough;
    await new Promise((r) => setTimeout(r, 500)); // the origin's 32 MiB read whole into the spool
    s.destroy();
    await until(() => logLines.some((l) => l.includes('"/eight"')), 3000);
    const line = JSON.parse(logLines.find((l) => l.includes('"/eight"')) as string) as Record<string, unknown>;
    expect(line['status']).toBe(499);
    // Was 33,554,432: the origin's. The sockets' buffers on the way (several MB on loopback) hold some: a bound.
    expect(line['bytes']).toBeGreaterThanOrEqual(64 * 1024);
    expect(line['bytes']).toBeLessThan(16 << 20);
  });

  it('a request pipelined after one that closes the connection is never forwarded (RFC 9112 §9.6)', async () => {
    for (const overTls of [false, true]) {
      for (const first of [
        'GET /closing1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
        'GET /closing2 HTTP/1.0\r\nHost: a\r\n\r\n',
      ]) {
        const r = await raw(
          overTls ? tlsPort : plain,
          `${first}POST /after-close HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi`,
          { tls: overTls },
        );
        expect(r.text).toMatch(/^HTTP\/1.1 200/);
        expect(r.text.match(/HTTP\/1.1 /g)?.length).toBe(1);
        expect(r.closed).toBe(true);
      }
    }
    expect(seen.filter((s) => s.includes('closing')).length).toBe(4);
    // The service's own answer closes it (an HTTP/1.0 keep-alive request whose path climbs above the root: 400): the
    // POST behind it is never forwarded.
    const r = await raw(
      plain,
      'GET /../closing3 HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\nPOST /after-close HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n$$$',
    );
    expect(r.text).toMatch(/^HTTP\/1.1 400/);
    expect(r.text.match(/HTTP\/1.1 /g)?.length).toBe(1);
    expect(r.closed).toBe(true);
    expect(seen.filter((s) => s.includes('after-close'))).toEqual([]);
    await still();
  });

  it('an Upgrade naming h2c is ignored, never tunnelled (h2c smuggling; RFC 9113 §3.1 deprecated it): the ordinary request is answered — curl --http2 on an http URL too', async () => {
    for (const up of ['h2c', 'websocket, H2C']) {
      const r = await raw(
        plain,
        `GET /h2cup/x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: ${up}\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n`,
      );
      expect(r.text).toMatch(/^HTTP\/1.1 200 OK\r\n[^]*\r\n\r\nplain\n$/);
      expect(r.text).not.toMatch(/h2 frames/);
    }
    const { stdout } = await run('curl', ['-s', '--http2', '-i', `http://127.0.0.1:${plain}/h2cup/curl`]);
    expect(stdout).toMatch(/^HTTP\/1.1 200 OK\r\n[^]*plain\n$/);
    // The origin saw ordinary requests: no Upgrade, no HTTP2-Settings (hop-by-hop, RFC 9110 §7.6.1).
    expect(h2cHeads).toHaveLength(3);
    for (const h of h2cHeads) expect(h).not.toMatch(/^(upgrade|http2-settings):/im);
    await still();
  });

  it('an origin answering in a transfer coding we do not decode (gzip): 502, never its bytes under no coding at all (RFC 9112 §6.1)', async () => {
    const r = await raw(plain, 'GET /coded HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(r.text).toMatch(/^HTTP\/1.1 502/);
    expect(r.text).not.toMatch(/compressed/);
    await still();
  });

  it('oversized or too many headers get 431 on h1, h1 over TLS and h2', async () => {
    const big = `GET /big HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(5000)}\r\n\r\n`;
    expect((await raw(plain, big)).text).toMatch(/^HTTP\/1.1 431 [^]*\r\nx-originlink-error: headers_too_large\r\n/);
    expect((await raw(tlsPort, big, { tls: true })).text).toMatch(/^HTTP\/1.1 431/);
    const huge = `GET /huge HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`;
    expect((await raw(plain, huge)).text).toMatch(/^HTTP\/1.1 431/); // Node's own parser limit
    const many = `GET /many HTTP/1.1\r\nHost: a\r\n${Array.from({ length: 30 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`;
    expect((await raw(plain, many)).text).toMatch(/^HTTP\/1.1 431/);
    for (const headers of [
      { 'x-big': 'a'.repeat(5000) },
      Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`x-h${i}`, 'v'])),
    ]) {
      const c = http2.connect(`http://127.0.0.1:${h2c}`);
      const status = await new Promise<number>((resolve, reject) => {
        const s = c.request({ ':path': '/h2big', ...headers });
        s.on('response', (h) => resolve(Number(h[':status'])));
        s.on('error', reject);
        s.end();
      });
      c.close();
      expect(status).toBe(431);
    }
    expect(seen.filter((s) => /big|many|huge/.test(s))).toEqual([]);
    await still();
  });

  it('slowloris: an unfinished head is cut after requestHeaderTimeoutMs (h1, h1 over TLS, TLS handshake, h2c)', async () => {
    const partial = 'GET /slow-head HTTP/1.1\r\nHost: a\r\nX-Drip: 1\r\n';
    const results = await Promise.all([
      raw(plain, partial, { ms: 5000 }),
      raw(tlsPort, partial, { ms: 5000, tls: true }),
      raw(tlsPort, '', { ms: 5000 }), // TCP only: never starts TLS
      raw(h2c, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00', { ms: 5000 }), // preface + SETTINGS, then silence
    ]);
    for (const [i, r] of results.entries()) {
      expect(r.closed, `case ${i}`).toBe(true);
      expect(r.elapsed, `case ${i}`).toBeGreaterThanOrEqual(400);
      expect(r.elapsed, `case ${i}`).toBeLessThan(3000);
    }
    // A head begun gets its 408 (RFC 9110 §15.5.9) before the close, over TLS too; the TLS handshake and h2c close.
    expect(results[0]?.text).toMatch(/^HTTP\/1.1 408 Request Timeout\r\n[^]*x-originlink-error: request_timeout\r\n/);
    expect(results[1]?.text).toMatch(/^HTTP\/1.1 408 /);
    await still();
  });

  it('a client that disconnects mid-upload: the origin sees the upload end early, the service goes on', async () => {
    const before = uploads.length;
    await new Promise<void>((resolve) => {
      const s = net.connect(plain, '127.0.0.1', () => {
        s.write(`POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: ${4 << 20}\r\n\r\n`);
        s.write(Buffer.alloc(256 * 1024, 0x62), () =>
          setTimeout(() => {
            s.destroy();
            resolve();
          }, 200),
        );
      });
      s.on('error', () => {});
    });
    await until(() => uploads[before]?.aborted === true);
    const rec = uploads[before];
    expect(rec).toBeDefined();
    expect(rec?.bytes).toBeGreaterThan(0);
    expect(rec?.bytes).toBeLessThan(4 << 20);
    expect(rec?.aborted).toBe(true);
    await still();
  });

  it('an origin that dies mid-response: the client sees a cut, never a complete short body', async () => {
    const h1 = await run('curl', [
      '-sS',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code} %{size_download}',
      `http://127.0.0.1:${plain}/die`,
    ]).then(
      () => 0,
      (e: { code: number }) => e.code,
    );
    expect([18, 56]).toContain(h1); // partial file / receive failure
    const h2 = await run('curl', [
      '-sS',
      '-o',
      '/dev/null',
      '--http2-prior-knowledge',
      `http://127.0.0.1:${h2c}/die`,
    ]).then(
      () => 0,
      (e: { code: number }) => e.code,
    );
    expect(h2).not.toBe(0);
    await still();
  });

  it('a full pending queue answers 503 with Retry-After; the queued request still completes', async () => {
    const get = (p: string): Promise<{ status: number; retry: string | undefined }> =>
      new Promise((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port: plain, path: p, agent: false }, (res) => {
            res.resume();
            res.on('end', () =>
              resolve({ status: res.statusCode ?? 0, retry: res.headers['retry-after'] as string | undefined }),
            );
          })
          .on('error', reject);
      });
    const a = get('/narrow/slow?ms=400');
    await new Promise((r) => setTimeout(r, 150));
    const b = get('/narrow/slow?ms=10');
    await new Promise((r) => setTimeout(r, 50));
    const c = await get('/narrow/slow?ms=10');
    expect(c.status).toBe(503);
    expect(c.retry).toBe('1');
    expect((await a).status).toBe(200);
    expect((await b).status).toBe(200);
  });

  it('origin timeouts map to 504: no response head, TLS handshake never completing', async () => {
    const h = await raw(plain, 'GET /hang/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', { ms: 4000 });
    expect(h.text).toMatch(/^HTTP\/1.1 504/);
    expect(h.text).toMatch(/OL_HEADERS_TIMEOUT/);
    const t = await raw(plain, 'GET /tlshang/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', { ms: 4000 });
    expect(t.text).toMatch(/^HTTP\/1.1 504/);
    expect(t.text).toMatch(/OL_CONNECT_TIMEOUT/);
  });
});
