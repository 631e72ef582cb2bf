/**
 * Our HTTP/2 server (server/h2.ts, the one behind the service's
 * https/h2c fronts and the demo origin) against independent clients: curl
 * (TLS+ALPN h2 and cleartext prior knowledge), nghttp and h2load (nghttp2),
 * HAProxy (h2 over TLS to us) and nginx (grpc_pass: h2c to us) as proxies.
 * A 3 MiB upload echoed back byte-identical, response trailers, many
 * concurrent streams, and a rapid-reset flood from a raw socket that ends in
 * GOAWAY ENHANCE_YOUR_CALM (RFC 9113 §10.5) while other clients keep being
 * served.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import {
  CLIENT_PREFACE,
  H2FrameReader,
  encodeHeaders,
  encodeRstStream,
  encodeSettings,
  encodeWindowUpdate,
  type H2Frame,
} from '../../src/codec/h2frame.js';
import { H2ErrorCode } from '../../src/codec/errors.js';
import { HpackEncoder } from '../../src/codec/hpack/encoder.js';
import { startH2Server, type H2Server } from '../../src/server/h2.js';
import { DISCARD_MAX_BYTES } from '../../src/server/request.js';
import type { RequestHandler } from '../../src/server/request.js';
import { makeCerts } from '../helpers/certs.js';
import { startPeer, type Peer } from '../helpers/h3-peers.js';
import { Nginx } from '../helpers/nginx.js';
import { freePort, waitForPort } from '../helpers/ports.js';

const run = promisify(execFile);
const certs = makeCerts();
const upload = randomBytes(3 * 1024 * 1024);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const bigAnswer = randomBytes(1024 * 1024);
let dir: string;
let tlsServer: H2Server;
let clearServer: H2Server;
let haproxy: Peer;
let haPort: number;
let nginx: Nginx;

const handler: RequestHandler = async (req) => {
  if (req.path === '/echo') {
    const chunks: Buffer[] = [];
    for await (const c of req.body) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    return { status: 200, headers: [['content-type', 'application/octet-stream']], body };
  }
  if (req.path === '/throws') throw new Error('handler bug');
  // As an origin's 204 relayed: a Content-Length it must not have (RFC 9110 §8.6), and a body a 204 cannot carry.
  if (req.path === '/204cl')
    return {
      status: 204,
      headers: [
        ['Content-Length', '5'],
        ['x-kept', '1'],
      ],
      body: 'hello',
    };
  // Answered before the request body is read (an origin's early 405 relayed): the body is never touched.
  if (req.path === '/early')
    return { status: 405, headers: [['content-type', 'text/plain']], body: 'no uploads here\n' };
  if (req.path === '/early-reading') {
    // Answers at once but keeps taking the body (as a forwarded request to an HTTP/1.1 origin does).
    req.body.on('data', () => {});
    return { status: 405, headers: [['content-type', 'text/plain']], body: 'no uploads here\n' };
  }
  if (req.path === '/early-big')
    return { status: 413, headers: [['content-type', 'application/octet-stream']], body: bigAnswer };
  if (req.path.endsWith('/trailers')) {
    return {
      status: 200,
      headers: [['content-type', 'text/plain']],
      body: 'with trailers\n',
      trailers: [['x-checksum', 'abc123']],
    };
  }
  return {
    status: 200,
    headers: [['content-type', 'text/plain']],
    body: `hello ${req.method} ${req.path} ${req.scheme}\n`,
  };
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ol-h2-server-'));
  writeFileSync(join(dir, 'up.bin'), upload);
  tlsServer = await startH2Server({ handler, cert: certs.cert, key: certs.key });
  clearServer = await startH2Server({ handler });
  // HAProxy: cleartext HTTP/1.1 in front, HTTP/2 over TLS (ALPN h2, verified) to our server.
  haPort = await freePort();
  writeFileSync(
    join(dir, 'haproxy.cfg'),
    `global\n  nbthread 1\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n` +
      `frontend fe\n  bind 127.0.0.1:${haPort}\n  default_backend be\n` +
      `backend be\n  server s1 127.0.0.1:${tlsServer.address.port} ssl verify required ca-file ${certs.caPath} sni str(localhost) alpn h2\n`,
  );
  haproxy = await startPeer({ argv: ['haproxy', '-db', '-f', join(dir, 'haproxy.cfg')], port: haPort });
  await waitForPort(haPort);
  // nginx's grpc_pass speaks cleartext HTTP/2 with prior knowledge to its upstream: our h2c server.
  nginx = await Nginx.start({
    serverExtra: `location /g/ { grpc_pass grpc://127.0.0.1:${clearServer.address.port}; }`,
  });
});

afterAll(async () => {
  await haproxy?.stop();
  await nginx?.close();
  await tlsServer?.close(100);
  await clearServer?.close(100);
  rmSync(dir, { recursive: true, force: true });
});

const tlsUrl = (path: string): string => `https://localhost:${tlsServer.address.port}${path}`;
const clearUrl = (path: string): string => `http://127.0.0.1:${clearServer.address.port}${path}`;

describe('our HTTP/2 server against curl', () => {
  it('serves over TLS with ALPN h2', async () => {
    const { stdout } = await run('curl', [
      '-sS',
      '--http2',
      '--cacert',
      certs.caPath,
      '-w',
      '\n%{http_version}',
      tlsUrl('/a'),
    ]);
    expect(stdout).toBe('hello GET /a https\n\n2');
  });

  it('a 204 goes without Content-Length or DATA whatever the handler gave (curl/nghttp2 reset such a stream as malformed)', async () => {
    const { stdout } = await run('curl', [
      '-sS',
      '-i',
      '--http2-prior-knowledge',
      '-w',
      '%{http_code}',
      clearUrl('/204cl'),
    ]);
    expect(stdout).toMatch(/^HTTP\/2 204 ?\r\n/);
    expect(stdout.toLowerCase()).not.toContain('content-length');
    expect(stdout).toContain('x-kept: 1');
    expect(stdout.endsWith('\r\n\r\n204')).toBe(true);
  });

  it('serves cleartext HTTP/2 with prior knowledge (h2c)', async () => {
    const { stdout } = await run('curl', ['-sS', '--http2-prior-knowledge', '-w', '\n%{http_version}', clearUrl('/b')]);
    expect(stdout).toBe('hello GET /b http\n\n2');
  });

  it('a GET whose handler reads the body gets an empty, ended one (made on first read: the request ended with its HEADERS)', async () => {
    const { stdout } = await run('curl', [
      '-sS',
      '--http2-prior-knowledge',
      '-w',
      '%{http_code} %{size_download}',
      clearUrl('/echo'),
    ]);
    expect(stdout).toBe('200 0');
  });

  it('echoes a 3 MiB upload byte-identical (flow control both ways)', async () => {
    const out = join(dir, 'echo.bin');
    await run('curl', [
      '-sS',
      '--http2',
      '--cacert',
      certs.caPath,
      '--data-binary',
      `@${join(dir, 'up.bin')}`,
      '-o',
      out,
      tlsUrl('/echo'),
    ]);
    const { stdout } = await run('sha256sum', [out]);
    expect(stdout.split(' ')[0]).toBe(sha(upload));
  });

  it('answers 500 when the handler throws before responding, and keeps the connection', async () => {
    // Over TLS: curl 7.88 fails to reuse an h2c prior-knowledge connection for a second URL (node:http2's server too).
    const { stdout } = await run('curl', [
      '-sS',
      '--http2',
      '--cacert',
      certs.caPath,
      '-w',
      '%{http_code} %{num_connects}\n',
      tlsUrl('/throws'),
      tlsUrl('/ok'),
    ]);
    expect(stdout).toBe('500 1\nhello GET /ok https\n200 0\n');
  });

  it('Expect: 100-continue: no 100 for a request answered without its body (the client keeps its upload)', async () => {
    const c = http2.connect(clearUrl('/'));
    try {
      const st = c.request({ ':method': 'POST', ':path': '/early', expect: '100-continue' }, { endStream: false });
      let continued = false;
      st.on('continue', () => {
        continued = true;
      });
      const status = await new Promise<number>((r) => st.once('response', (h) => r(Number(h[':status']))));
      expect(status).toBe(405);
      expect(continued).toBe(false);
      st.close();
    } finally {
      c.close();
    }
  });

  it('answers Expect: 100-continue at once when the handler reads the body (curl would otherwise wait 1 s before the body)', async () => {
    const t0 = performance.now();
    const { stdout } = await run('curl', [
      '-sS',
      '--http2',
      '--cacert',
      certs.caPath,
      '-H',
      'expect: 100-continue',
      '--expect100-timeout',
      '20',
      '--data-binary',
      'abc',
      tlsUrl('/echo'),
    ]);
    expect(stdout).toBe('abc');
    // The bound only separates "answered" from curl's 20 s expect timeout.
    expect(performance.now() - t0).toBeLessThan(10_000);
  });

  it('sends response trailers', async () => {
    const { stdout, stderr } = await run('curl', ['-sS', '-v', '--http2-prior-knowledge', clearUrl('/trailers')]);
    expect(stdout).toBe('with trailers\n');
    expect(stderr.toLowerCase()).toContain('x-checksum: abc123');
  });
});

describe('a request answered before its body is in (RFC 9113 §8.1), against node:http2 (nghttp2) as the client', () => {
  /** POST `path` with a body written a piece at a time until the stream closes; the answer, the stream's reset code, what was written. */
  async function upload(
    path: string,
  ): Promise<{ status: number; body: Buffer; rstCode: number; written: number; after: string }> {
    const session = http2.connect(`http://127.0.0.1:${clearServer.address.port}`);
    try {
      const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/octet-stream' });
      let written = 0;
      let closed = false;
      req.on('close', () => {
        closed = true;
      });
      req.on('error', () => {});
      const got: Buffer[] = [];
      let status = 0;
      req.on('response', (h) => {
        status = Number(h[':status']);
      });
      req.on('data', (c: Buffer) => got.push(c));
      const piece = Buffer.alloc(16 * 1024, 0x75);
      for (let i = 0; i < 512 && !closed; i++) {
        // at most 8 MiB
        if (!req.write(piece)) {
          // Bounded: a server that neither reads nor resets leaves the client stalled on its window.
          const moved = await new Promise<boolean>((r) => {
            const t = setTimeout(() => r(false), 2000);
            req.once('drain', () => {
              clearTimeout(t);
              r(true);
            });
            req.once('close', () => {
              clearTimeout(t);
              r(true);
            });
          });
          if (!moved) break;
        } else await new Promise((r) => setImmediate(r));
        if (!closed) written += piece.length;
      }
      for (let i = 0; i < 300 && !closed; i++) await new Promise((r) => setTimeout(r, 10));
      // The connection still serves.
      const next = session.request({ ':path': '/after' });
      const after = await new Promise<string>((resolve, reject) => {
        setTimeout(() => resolve('(no answer within 3 s)'), 3000);
        let t = '';
        next.on('data', (c: Buffer) => {
          t += c.toString();
        });
        next.on('end', () => resolve(t));
        next.on('error', reject);
      });
      return { status, body: Buffer.concat(got), rstCode: req.rstCode ?? -1, written, after };
    } finally {
      session.close();
    }
  }

  it('the client is asked to stop with RST_STREAM(NO_ERROR) after the answer, and the connection serves on', async () => {
    const r = await upload('/early');
    expect(r.status).toBe(405);
    expect(r.body.toString()).toBe('no uploads here\n');
    expect(r.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    // Stopped by the reset, well before it filled our 1 MiB stream window (without the reset it fills it, then stalls).
    expect(r.written).toBeLessThan(1024 * 1024);
    expect(r.after).toMatch(/^hello GET \/after http/);
  });

  it('a handler still reading after its answer gets the rest, up to DISCARD_MAX_BYTES; past it the client is stopped the same way', async () => {
    const r = await upload('/early-reading');
    expect(r.status).toBe(405);
    expect(r.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    expect(r.written).toBeGreaterThan(DISCARD_MAX_BYTES); // more than a stopped client sends (64 KiB above)
    expect(r.written).toBeLessThan(DISCARD_MAX_BYTES + 2 * 1024 * 1024); // the bound, plus what one window lets through
    expect(r.after).toMatch(/^hello GET \/after http/);
  });

  it('an answer that waits for flow control leaves whole first: the reset follows its last DATA', async () => {
    const r = await upload('/early-big'); // 1 MiB: sixteen of the client's 64 KiB stream windows
    expect(r.status).toBe(413);
    expect(sha(r.body)).toBe(sha(bigAnswer));
    expect(r.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
  });
});

describe('our HTTP/2 server against nghttp2 clients', () => {
  it('nghttp: six concurrent requests on one connection, plus an upload', async () => {
    const paths = ['/1', '/2', '/3', '/4', '/5', '/6'].map(tlsUrl);
    const { stdout } = await run('nghttp', ['-n', '-s', ...paths]);
    // -s prints one row of timing per completed stream.
    expect(stdout.split('\n').filter((l) => /\s200\s/.test(l)).length).toBe(6);
    const up = await run('nghttp', ['-d', join(dir, 'up.bin'), tlsUrl('/echo')], {
      maxBuffer: 8 * 1024 * 1024,
      encoding: 'buffer',
    });
    expect(sha(up.stdout)).toBe(sha(upload));
  });

  it('h2load: 4000 requests over 4 connections × 20 streams, none failed', async () => {
    const { stdout } = await run('h2load', ['-n', '4000', '-c', '4', '-m', '20', tlsUrl('/load')]);
    const m = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(
      stdout,
    );
    expect(m, stdout).not.toBeNull();
    expect(Number(m![4])).toBe(4000);
    expect(Number(m![5]) + Number(m![6])).toBe(0);
    const codes = /status codes: (\d+) 2xx/.exec(stdout);
    expect(Number(codes![1])).toBe(4000);
  });
});

describe('our HTTP/2 server as the upstream of proxies', () => {
  it('HAProxy (h2 over TLS to us): GET and a 3 MiB POST echoed byte-identical', async () => {
    const { stdout } = await run('curl', ['-sS', `http://127.0.0.1:${haPort}/via-haproxy`]);
    expect(stdout).toBe('hello GET /via-haproxy https\n');
    const out = join(dir, 'ha-echo.bin');
    await run('curl', [
      '-sS',
      '--data-binary',
      `@${join(dir, 'up.bin')}`,
      '-o',
      out,
      `http://127.0.0.1:${haPort}/echo`,
    ]);
    expect((await run('sha256sum', [out])).stdout.split(' ')[0]).toBe(sha(upload));
  });

  it('nginx grpc_pass (h2c to us): the response and its trailers come through', async () => {
    const { stdout } = await run('curl', [
      '-sS',
      '--http2',
      '--cacert',
      certs.caPath,
      `https://localhost:${nginx.port}/g/x`,
    ]);
    expect(stdout).toBe('hello GET /g/x http\n');
    const tr = await run('curl', [
      '-sS',
      '-v',
      '--http2',
      '--cacert',
      certs.caPath,
      `https://localhost:${nginx.port}/g/trailers`,
    ]);
    expect(tr.stdout).toBe('with trailers\n');
    expect(tr.stderr.toLowerCase()).toContain('x-checksum: abc123');
  });
});

describe('our HTTP/2 server under a rapid-reset flood', () => {
  it('ends the flooding connection with GOAWAY ENHANCE_YOUR_CALM and keeps serving others', async () => {
    const sock = net.connect(clearServer.address.port, '127.0.0.1');
    await new Promise<void>((r, j) => {
      sock.once('connect', () => r());
      sock.once('error', j);
    });
    const frames: H2Frame[] = [];
    const reader = new H2FrameReader();
    reader.maxFrameSize = 16_777_215;
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    sock.on('data', (d: Buffer) => {
      try {
        frames.push(...reader.push(d));
      } catch {
        /* frames after GOAWAY do not matter */
      }
    });
    sock.on('error', () => {});
    const enc = new HpackEncoder();
    const parts: Uint8Array[] = [CLIENT_PREFACE, encodeSettings([])];
    // CVE-2023-44487's shape: open a stream and cancel it at once, many times, in one write.
    for (let i = 0, id = 1; i < 1000; i++, id += 2) {
      const block = enc.encode([
        [':method', 'GET'],
        [':scheme', 'http'],
        [':authority', 'x'],
        [':path', '/'],
      ]);
      parts.push(...encodeHeaders(id, block, true, 16_384), encodeRstStream(id, H2ErrorCode.CANCEL));
    }
    sock.write(Buffer.concat(parts));
    const timeout = new Promise<void>((r) => setTimeout(r, 5000).unref());
    await Promise.race([closed, timeout]);
    sock.destroy();
    const goaway = frames.find((f) => f.type === 'goaway');
    expect(goaway, 'the server must answer the flood with GOAWAY').toBeDefined();
    expect(goaway!.type === 'goaway' && goaway!.code).toBe(H2ErrorCode.ENHANCE_YOUR_CALM);
    // Far fewer responses than opened streams: the flood was cut off, not served.
    expect(frames.filter((f) => f.type === 'headers').length).toBeLessThan(1000);
    // Another client is still served by the same server.
    const { stdout } = await run('curl', ['-sS', '--http2-prior-knowledge', clearUrl('/after')]);
    expect(stdout).toBe('hello GET /after http\n');
  });
});

describe('a client that reads nothing of what it makes us send', () => {
  it('is not read either once 4 MiB of our output waits for it: its requests stop reaching the handler (memory per connection bounded)', {
    timeout: 20_000,
  }, async () => {
    let handled = 0;
    // Each answer is a head of ~8 KiB and no body: no flow control holds it back (only DATA is flow-controlled).
    const server = await startH2Server({
      handler: () => {
        handled++;
        return { status: 200, headers: [['x-pad', `${handled}`.padEnd(8000, 'p')]] };
      },
    });
    const sock = net.connect(server.address.port, '127.0.0.1');
    try {
      await new Promise<void>((r, j) => {
        sock.once('connect', () => r());
        sock.once('error', j);
      });
      sock.on('error', () => {});
      sock.pause(); // never read
      const enc = new HpackEncoder();
      const N = 6000; // ~48 MiB of answers: more than both kernels' buffers and our 4 MiB
      sock.write(Buffer.concat([CLIENT_PREFACE, encodeSettings([])]));
      // In waves of 50 (under the server's 100 concurrent streams): each wave is answered and its streams closed on
      // our side before the next, so only the unread output can stop them.
      for (let i = 0, id = 1; i < N; i += 50) {
        const wave: Uint8Array[] = [];
        for (let k = 0; k < 50; k++, id += 2)
          wave.push(
            ...encodeHeaders(
              id,
              enc.encode([
                [':method', 'GET'],
                [':scheme', 'http'],
                [':authority', 'x'],
                [':path', `/q${i + k}`],
              ]),
              true,
              16_384,
            ),
          );
        sock.write(Buffer.concat(wave));
        await new Promise((r) => setTimeout(r, 2));
      }
      let last = -1;
      const t0 = Date.now();
      while (handled !== last && Date.now() - t0 < 10_000) {
        last = handled;
        await new Promise((r) => setTimeout(r, 300));
      }
      expect(handled).toBeGreaterThan(100);
      expect(handled).toBeLessThan(N); // without the pause: every one of them, the answers piling up in our memory
    } finally {
      sock.destroy();
      await server.close(100);
    }
  });

  it('that grants all the window there is: a body is made only as fast as the socket takes it (credit alone let the whole body into our memory)', {
    timeout: 20_000,
  }, async () => {
    let made = 0;
    const server = await startH2Server({
      handler: () => {
        const body = new Readable({
          read() {
            if (made >= 64 << 20) {
              this.push(null);
              return;
            }
            made += 65536;
            this.push(Buffer.alloc(65536, 0x62));
          },
        });
        return { status: 200, headers: [['content-length', String(64 << 20)]], body };
      },
    });
    const sock = net.connect(server.address.port, '127.0.0.1');
    try {
      await new Promise<void>((r, j) => {
        sock.once('connect', () => r());
        sock.once('error', j);
      });
      sock.on('error', () => {});
      sock.pause(); // never read
      const max = 0x7fffffff;
      sock.write(
        Buffer.concat([
          CLIENT_PREFACE,
          encodeSettings([[0x4, max]]),
          encodeWindowUpdate(0, max - 65_535),
          ...encodeHeaders(
            1,
            new HpackEncoder().encode([
              [':method', 'GET'],
              [':scheme', 'http'],
              [':authority', 'x'],
              [':path', '/big'],
            ]),
            true,
            16_384,
          ),
        ]),
      );
      let last = -1;
      const t0 = Date.now();
      while (made !== last && Date.now() - t0 < 10_000) {
        last = made;
        await new Promise((r) => setTimeout(r, 300));
      }
      // The kernel's buffers both ways (a few MiB on loopback), our socket's 1 MiB and the stream's 256 KiB: far from 64.
      expect(made).toBeGreaterThan(1 << 20);
      expect(made).toBeLessThan(16 << 20); // 4.3 MiB here
    } finally {
      sock.destroy();
      await server.close(100);
    }
  });

  it('a stream whose window the client keeps shut is reset after sendTimeoutMs, however busy its other streams keep the socket', {
    timeout: 20_000,
  }, async () => {
    const server = await startH2Server({
      sendTimeoutMs: 500,
      handler: (req) => {
        let made = 0;
        const held = req.path === '/held';
        const body = new Readable({
          read() {
            if (made >= (held ? 4 << 20 : 256 << 20)) {
              this.push(null);
              return;
            }
            made += 65536;
            // The busy stream's bytes come paced (64 KiB every 5 ms, each write one more 'drain'), for seconds.
            if (held) this.push(Buffer.alloc(65536, 0x61));
            else setTimeout(() => this.push(Buffer.alloc(65536, 0x62)), 5);
          },
        });
        return { status: 200, headers: [], body };
      },
    });
    const c = http2.connect(`http://127.0.0.1:${server.address.port}`);
    try {
      const held = c.request({ ':path': '/held' });
      held.pause(); // never read: its window stays shut once the first 64 KiB are in
      const ended = new Promise<number>((r) => {
        const t0 = Date.now();
        held.on('close', () => r(Date.now() - t0));
        held.on('error', () => {});
      });
      const busy = c.request({ ':path': '/busy' });
      busy.on('data', () => {}); // read on: the socket drains again and again
      busy.on('error', () => {});
      const ms = await Promise.race([ended, new Promise<number>((r) => setTimeout(() => r(-1), 8000))]);
      // sendTimeoutMs is 500 from the last progress, which came with the first 64 KiB; before, every drain of the
      // busy stream counted as the held one's progress and it was never reset (-1 at 8 s). Room for a loaded machine.
      expect(ms).toBeGreaterThanOrEqual(400);
      expect(ms).toBeLessThan(2500);
      busy.close();
    } finally {
      c.destroy();
      await server.close(100);
    }
  });
});
