/**
 * Our HTTP/1.1 server (server/h1.ts, the service's http front and
 * the h1 side of its https front) against real clients — curl, h2load in
 * HTTP/1.1 mode, nginx as a reverse proxy with upstream keepalive — and a
 * raw socket for what clients never send: pipelined requests, and every
 * smuggling shape of RFC 9112 §6 refused with the handler's request count
 * proving that nothing behind a refused head reached it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { startH1Server, type H1Server } from '../../src/server/h1.js';
import { DISCARD_MAX_BYTES } from '../../src/server/request.js';
import type { RequestHandler } from '../../src/server/request.js';
import { makeCerts } from '../helpers/certs.js';
import { Nginx } from '../helpers/nginx.js';

const run = promisify(execFile);
const certs = makeCerts();
const upload = randomBytes(3 * 1024 * 1024);
const EVERY_BYTE = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7) % 256));
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
let dir: string;
let server: H1Server;
let tlsServer: H1Server;
let nginx: Nginx;
const seen: string[] = [];
let bigMade = 0;
const proxiedPorts: number[] = [];
let finSignal: (() => void) | null = null;

const handler: RequestHandler = async (req) => {
  seen.push(`${req.method} ${req.path}`);
  if (req.path.startsWith('/p')) proxiedPorts.push(req.remotePort);
  if (req.path === '/echo') {
    const chunks: Buffer[] = [];
    for await (const c of req.body) chunks.push(c as Buffer);
    return { status: 200, headers: [['content-type', 'application/octet-stream']], body: Buffer.concat(chunks) };
  }
  if (req.path === '/throws') throw new Error('handler bug');
  // Answered when the test says so (finSignal): the client's FIN test.
  if (req.path === '/fin-wait') {
    await new Promise<void>((resolve) => (finSignal = resolve));
    return { status: 200, body: 'fin-wait\n' };
  }
  // Pipelining rules: a response that closes the connection; a slow one that says when it answered; aborts seen.
  if (req.path.startsWith('/closing')) {
    if (req.path === '/closing-slow') await new Promise((r) => setTimeout(r, 100));
    return { status: 200, body: 'closing\n', close: true };
  }
  if (req.path === '/slow-mark') {
    await new Promise((r) => setTimeout(r, 100));
    seen.push('slow-mark answered');
    return { status: 200, body: 'slow-mark\n' };
  }
  if (req.path === '/watched') {
    req.onAbort((e) => seen.push(`aborted ${req.path}: ${e.message}`));
    await new Promise((r) => setTimeout(r, 300));
    return { status: 200, body: 'watched\n' };
  }
  // Responses without a body and the Content-Length they may carry (RFC 9110 §8.6).
  if (req.path === '/204') return { status: 204, headers: [['content-length', '0']] };
  if (req.path === '/304') return { status: 304, headers: [['etag', '"a"']] };
  if (req.path === '/304-len')
    return {
      status: 304,
      headers: [
        ['etag', '"a"'],
        ['content-length', '1234'],
      ],
    };
  if (req.path === '/bad-len')
    return { status: req.method === 'HEAD' ? 200 : 304, headers: [['content-length', '7, 7']] };
  if (req.path === '/streamed-nolen') return { status: 200, body: Readable.from([Buffer.from('a'), Buffer.from('b')]) };
  // Every byte value, and text with multi-byte UTF-8: a small whole body leaves with its head as one latin1 string.
  if (req.path === '/bytes') return { status: 200, body: EVERY_BYTE };
  // A stream that already ended, in object mode, its one chunk a plain Uint8Array (not a Buffer): sent whole, byte for byte.
  if (req.path === '/u8stream') {
    const body = new Readable({ objectMode: true, read() {} });
    body.push(new Uint8Array([0x41, 0x42, 0x43, 0xff, 0x00, 0x0a]));
    body.push(null);
    return { status: 200, body };
  }
  if (req.path === '/utf8')
    return { status: 200, headers: [['content-type', 'text/plain; charset=utf-8']], body: 'é € 😀\n' };
  // Answered before its body is read (an origin's early 405 relayed): the body is never touched.
  if (req.path === '/early-then-drop') {
    // A reader that stays behind (paused), then lets go: the rest of the body must not stay stuck behind it.
    const b = req.body;
    b.on('data', () => {});
    b.pause();
    setTimeout(() => b.destroy(), 50);
    return { status: 405, headers: [['content-type', 'text/plain']], body: 'no uploads here\n' };
  }
  if (req.path === '/early')
    return { status: 405, headers: [['content-type', 'text/plain']], body: 'no uploads here\n' };
  if (req.path === '/split') return { status: 200, headers: [['x-a', 'b\r\nset-cookie: evil=1']], body: 'no' };
  // Fields a parser of ours already checked (a relayed origin response): written as they are, the framing still the server's.
  if (req.path === '/checked')
    return {
      status: 200,
      headers: [
        ['x-b', '2'],
        ['content-length', '999'],
        ['x-a', '1'],
      ],
      body: 'ok',
      checked: true,
    };
  if (req.path === '/slow') {
    await new Promise((r) => setTimeout(r, 100));
    return { status: 200, body: 'slow\n' };
  }
  if (req.path === '/stream') {
    return {
      status: 200,
      headers: [['content-type', 'text/plain']],
      body: Readable.from([Buffer.from('part1 '), Buffer.from('part2\n')]),
      trailersLater: Promise.resolve([['x-checksum', 'abc']]),
    };
  }
  if (req.path === '/burst') {
    // Sixteen 4 KiB chunks pushed in one turn (as an origin read of several TLS records or h2 DATA frames delivers them).
    const body = new Readable({ read() {} });
    setTimeout(() => {
      for (let i = 0; i < 16; i++) body.push(Buffer.alloc(4096, 0x61 + i));
      setTimeout(() => body.push(null), 20);
    }, 10);
    return { status: 200, headers: [['content-type', 'application/octet-stream']], body };
  }
  if (req.path === '/big') {
    // 64 MiB made only as the relay reads: how much was made shows whether a reader that stops holds the relay back.
    let made = 0;
    const body = new Readable({
      read() {
        if (made >= 64 << 20) {
          this.push(null);
          return;
        }
        made += 65536;
        bigMade = made;
        this.push(Buffer.alloc(65536, 0x62));
      },
    });
    return {
      status: 200,
      headers: [
        ['content-type', 'application/octet-stream'],
        ['content-length', String(64 << 20)],
      ],
      body,
    };
  }
  if (req.path === '/tunnel' && req.protocol === 'echo') {
    return {
      status: 101,
      headers: [
        ['connection', 'upgrade'],
        ['upgrade', 'echo'],
      ],
      tunnel: (client) => client.pipe(client),
    };
  }
  return {
    status: 200,
    headers: [['content-type', 'text/plain']],
    body: `hello ${req.method} ${req.path} ${req.version} ${req.authority}\n`,
  };
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ol-h1-server-'));
  writeFileSync(join(dir, 'up.bin'), upload);
  server = await startH1Server({ handler, headersTimeoutMs: 1000, keepAliveTimeoutMs: 2000 });
  tlsServer = await startH1Server({ handler, cert: certs.cert, key: certs.key });
  nginx = await Nginx.start({
    httpExtra: `upstream ours { server 127.0.0.1:${server.address.port}; keepalive 8; }`,
    serverExtra: 'location /via/ { proxy_pass http://ours/; proxy_http_version 1.1; proxy_set_header Connection ""; }',
  });
});

afterAll(async () => {
  await nginx?.close();
  await server?.close(100);
  await tlsServer?.close(100);
  rmSync(dir, { recursive: true, force: true });
});

const url = (path: string): string => `http://127.0.0.1:${server.address.port}${path}`;

/** Send raw bytes, read until the server closes (or `ms`). */
function raw(bytes: string | Buffer, ms = 3000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(server.address.port, '127.0.0.1');
    const got: Buffer[] = [];
    let closed = false;
    const t = setTimeout(() => {
      s.destroy();
      resolve({ text: Buffer.concat(got).toString('latin1'), closed });
    }, ms);
    s.on('data', (d) => got.push(d));
    s.on('end', () => {
      closed = true;
    });
    s.on('close', () => {
      clearTimeout(t);
      resolve({ text: Buffer.concat(got).toString('latin1'), closed: true });
    });
    s.on('error', () => {});
    s.write(bytes);
  });
}

describe('real clients', () => {
  it('curl: GET, a 3 MiB POST echoed (content-length and chunked), HTTP/1.0, HEAD', async () => {
    const { stdout: a } = await run('curl', ['-sS', '-i', url('/x')]);
    expect(a).toMatch(
      /^HTTP\/1\.1 200 OK\r\n[\s\S]*content-length: \d+\r\n[\s\S]*hello GET \/x 1\.1 127\.0\.0\.1:\d+\n$/,
    );
    for (const extra of [[], ['-H', 'transfer-encoding: chunked']]) {
      const { stdout } = await run(
        'curl',
        ['-sS', '--data-binary', `@${join(dir, 'up.bin')}`, ...extra, url('/echo')],
        { encoding: 'buffer', maxBuffer: 8 << 20 },
      );
      expect(sha(stdout)).toBe(sha(upload));
    }
    const { stdout: old } = await run('curl', ['-sS', '-0', url('/old')]);
    expect(old).toMatch(/hello GET \/old 1\.0/);
    const { stdout: head } = await run('curl', ['-sS', '-I', url('/x')]);
    expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
  });

  it('curl: Expect: 100-continue is answered at once (no 1 s wait), and a streamed body ends with trailers', async () => {
    const t0 = Date.now();
    const { stdout } = await run(
      'curl',
      ['-sS', '-H', 'expect: 100-continue', '--data-binary', `@${join(dir, 'up.bin')}`, url('/echo')],
      { encoding: 'buffer', maxBuffer: 8 << 20 },
    );
    expect(sha(stdout)).toBe(sha(upload));
    expect(Date.now() - t0).toBeLessThan(900);
    const { stdout: t } = await run('curl', ['-sS', '--raw', '-i', url('/stream')]);
    // The two parts come in one turn and may leave as one chunk (the relay writes a turn's bytes at once).
    expect(t).toMatch(
      /transfer-encoding: chunked\r\n\r\n(6\r\npart1 \r\n6\r\npart2\n|c\r\npart1 part2\n)\r\n0\r\nx-checksum: abc\r\n\r\n$/,
    );
  });

  it('curl over TLS (ALPN http/1.1)', async () => {
    const { stdout } = await run('curl', [
      '-sS',
      '--cacert',
      certs.caPath,
      `https://localhost:${tlsServer.address.port}/tls`,
    ]);
    expect(stdout).toMatch(/hello GET \/tls 1\.1 localhost:/);
  });

  it('h2load --h1: 20,000 requests on 32 keep-alive connections, none failed', async () => {
    const { stdout } = await run('h2load', ['--h1', '-n', '20000', '-c', '32', url('/load')], { timeout: 60_000 });
    expect(stdout).toMatch(/20000 succeeded, 0 failed, 0 errored, 0 timeout/);
    expect(stdout).toMatch(/status codes: 20000 2xx/);
  });

  it('nginx as a reverse proxy with upstream keepalive in front of it: 40 requests, every answer right, connections reused', async () => {
    const urls = Array.from({ length: 40 }, (_, i) => `https://localhost:${nginx.port}/via/p${i}`);
    const { stdout } = await run('curl', ['-sS', '--cacert', certs.caPath, ...urls]);
    expect(stdout.trim().split('\n')).toEqual(
      urls.map((_, i) => expect.stringMatching(new RegExp(`^hello GET /p${i} 1\\.1 `))),
    );
    expect(proxiedPorts).toHaveLength(40);
    expect(new Set(proxiedPorts).size).toBeLessThanOrEqual(2); // nginx kept its upstream connection
  });
});

/** A socket to talk to step by step: `until(re)` waits for the text received so far to match (or the close, or `ms`). */
function talk(port = server.address.port): {
  s: net.Socket;
  until: (re: RegExp, ms?: number) => Promise<string>;
  closed: () => boolean;
} {
  const s = net.connect(port, '127.0.0.1');
  let text = '';
  let closed = false;
  s.on('data', (d: Buffer) => {
    text += d.toString('latin1');
  });
  s.on('close', () => {
    closed = true;
  });
  s.on('error', () => {});
  const until = async (re: RegExp, ms = 3000): Promise<string> => {
    for (let t = 0; t < ms && !re.test(text) && !closed; t += 10) await new Promise((r) => setTimeout(r, 10));
    return text;
  };
  return { s, until, closed: () => closed };
}

describe('raw wire', () => {
  it("an answer made in the poll phase that reads the client's FIN still leaves, before our side ends", async () => {
    // The FIN ends our side too (allowHalfOpen off: Node calls end() on the next tick after 'end'), and a response
    // held for the turn's end must go before that end, as a corked one did. A client in a process of its own asks
    // /fin-wait; then, while this process's loop is held (Atomics.wait), it sends a byte on a second connection (whose
    // arrival answers /fin-wait) and then its FIN on the first: one poll phase reads both, the byte first.
    let poke: () => void = () => {};
    const poked = new Promise<void>((resolve) => (poke = resolve));
    const signal = net.createServer((c) => c.on('data', () => poke()));
    await new Promise<void>((resolve) => signal.listen(0, '127.0.0.1', resolve));
    poked.then(() => finSignal?.());
    const ports = `${server.address.port}, ${(signal.address() as net.AddressInfo).port}`;
    const client = spawn(
      process.execPath,
      [
        '-e',
        `const net = require('node:net');
         const [port, signalPort] = [${ports}];
         const a = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
         const b = net.connect({ port: signalPort, host: '127.0.0.1' });
         a.write('GET /fin-wait HTTP/1.1\\r\\nhost: a\\r\\n\\r\\n');
         const got = [];
         a.on('data', (d) => got.push(d));
         a.on('close', () => { process.stdout.write(Buffer.concat(got)); process.exit(0); });
         b.on('connect', () => process.stdout.write('ready\\n'));
         process.stdin.once('data', () => { b.write('x'); setTimeout(() => a.end(), 30); });
         setTimeout(() => process.exit(1), 5000);`,
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    try {
      let out = '';
      client.stdout.on('data', (d) => (out += d));
      for (let i = 0; i < 100 && !(out.includes('ready') && finSignal !== null); i++)
        await new Promise((r) => setTimeout(r, 20));
      expect(finSignal).not.toBeNull(); // the request reached its handler
      client.stdin.write('go\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 400); // the byte and the FIN arrive meanwhile
      const code = await new Promise((resolve) => client.on('exit', resolve));
      expect(code).toBe(0);
      expect(out).toMatch(/^ready\n[^]*HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nfin-wait\n$/);
    } finally {
      finSignal = null;
      signal.close();
    }
  });

  it('pipelined requests are answered in order (a slow first one does not let the second overtake)', async () => {
    const r = await raw(
      'GET /slow HTTP/1.1\r\nhost: a\r\n\r\nGET /2 HTTP/1.1\r\nhost: a\r\n\r\nGET /3 HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n',
    );
    const bodies = r.text.split('\r\n\r\n').filter((x) => x.startsWith('slow') || x.startsWith('hello'));
    expect(bodies.map((b) => b.split('\n')[0])).toEqual(['slow', 'hello GET /2 1.1 a', 'hello GET /3 1.1 a']);
    expect(r.text.match(/HTTP\/1\.1 200/g)).toHaveLength(3);
    expect(r.closed).toBe(true);
  });

  // Each: the bytes, the status expected, and a request hidden behind it that must never reach the handler.
  const SMUGGLING: Array<[string, string, number]> = [
    [
      'CL.TE',
      'POST /a HTTP/1.1\r\nhost: a\r\ncontent-length: 13\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: a\r\n\r\n',
      400,
    ],
    [
      'TE.CL',
      'POST /a HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n5c\r\nGET /smuggled HTTP/1.1\r\nhost: a\r\n\r\n0\r\n\r\n',
      400,
    ],
    [
      'TE.TE obfuscated',
      'POST /a HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\ntransfer-encoding: x\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: a\r\n\r\n',
      400,
    ],
    [
      'TE with a space before the colon',
      'POST /a HTTP/1.1\r\nhost: a\r\ntransfer-encoding : chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: a\r\n\r\n',
      400,
    ],
    [
      'two Content-Length',
      'POST /a HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\ncontent-length: 37\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: a\r\n\r\n',
      400,
    ],
    [
      'obs-fold hiding TE',
      'POST /a HTTP/1.1\r\nhost: a\r\nx-a: 1\r\n transfer-encoding: chunked\r\ncontent-length: 0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: a\r\n\r\n',
      400,
    ],
    [
      'a bare LF ending a field',
      'GET /a HTTP/1.1\r\nhost: a\r\nx-a: 1\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: a\r\n\r\n',
      400,
    ],
    [
      'gzip, chunked',
      'POST /a HTTP/1.1\r\nhost: a\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: a\r\n\r\n',
      501,
    ],
    [
      'TE chunked followed by a tab (llhttp: not chunked)',
      'POST /a HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\t\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: a\r\n\r\n',
      400,
    ],
    ['HTTP/2.0 request line', 'GET /a HTTP/2.0\r\nhost: a\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: a\r\n\r\n', 505],
    [
      'header section over the limit',
      `GET /a HTTP/1.1\r\nhost: a\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: a\r\n\r\n`,
      431,
    ],
  ];
  for (const [name, bytes, status] of SMUGGLING) {
    it(`smuggling: ${name} → ${status} and close; nothing behind it reaches the handler`, async () => {
      const before = seen.length;
      const r = await raw(bytes);
      expect(r.text).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
      expect(r.text).toMatch(/connection: close\r\n/);
      expect(r.closed).toBe(true);
      expect(seen.slice(before).filter((x) => x.includes('smuggled'))).toEqual([]);
      expect(seen.slice(before).filter((x) => x === 'POST /a' || x === 'GET /a')).toEqual([]);
    });
  }

  it('smuggling inside a body: a chunk size that overflows ends the connection with 400 after the head’s answer; the hidden request never reaches the handler', async () => {
    const before = seen.length;
    const r = await raw(
      'POST /a HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n10000000000000001\r\nx\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: a\r\n\r\n',
    );
    // The head was valid, so its handler ran (its body then failed); the framing error is answered 400 and the connection ends.
    expect(r.text).toMatch(/HTTP\/1\.1 400 Bad Request\r\n[\s\S]*connection: close\r\n/);
    expect(r.closed).toBe(true);
    expect(seen.slice(before)).toEqual(['POST /a']);
  });

  describe('a request answered before its body is in (RFC 9110 §10.1.1)', () => {
    // A request inside the body: if the dropped bytes were ever taken for requests, the handler would see it.
    const hidden = 'GET /hidden HTTP/1.1\r\nhost: a\r\n\r\n';

    it('content-length: the rest is read and dropped and the connection serves the next request; nothing in it is a request', async () => {
      const before = seen.length;
      const body = Buffer.concat([Buffer.alloc(100_000, 0x61), Buffer.from(hidden), Buffer.alloc(100_000, 0x62)]);
      const c = talk();
      c.s.write(`POST /early HTTP/1.1\r\nhost: a\r\ncontent-length: ${body.length}\r\n\r\n`);
      c.s.write(body.subarray(0, 1000));
      expect(await c.until(/no uploads here\n/)).toMatch(/^HTTP\/1\.1 405 Method Not Allowed\r\n/);
      c.s.write(body.subarray(1000));
      c.s.write('GET /after HTTP/1.1\r\nhost: a\r\n\r\n');
      const text = await c.until(/hello GET \/after/);
      expect(text).toMatch(/hello GET \/after 1\.1 a\n$/);
      expect(text).not.toMatch(/connection: close/);
      expect(c.closed()).toBe(false);
      expect(seen.slice(before)).toEqual(['POST /early', 'GET /after']);
      c.s.destroy();
    });

    it('a reader still at the body after the answer, behind and then gone: the rest is dropped and the next request served', async () => {
      const before = seen.length;
      const body = Buffer.alloc(300_000, 0x61);
      const c = talk();
      c.s.write(`POST /early-then-drop HTTP/1.1\r\nhost: a\r\ncontent-length: ${body.length}\r\n\r\n`);
      c.s.write(body.subarray(0, 1000));
      await c.until(/no uploads here\n/);
      c.s.write(body.subarray(1000));
      c.s.write('GET /after-drop HTTP/1.1\r\nhost: a\r\n\r\n');
      expect(await c.until(/hello GET \/after-drop/, 900)).toMatch(/hello GET \/after-drop 1\.1 a\n$/); // before the 1 s headers timeout
      expect(seen.slice(before)).toEqual(['POST /early-then-drop', 'GET /after-drop']);
      c.s.destroy();
    });

    it('chunked: the same, the chunk framing still read (a hidden request after the last chunk is the next request, not before it)', async () => {
      const before = seen.length;
      const c = talk();
      c.s.write('POST /early HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n');
      await c.until(/no uploads here\n/);
      const piece = Buffer.from(hidden);
      c.s.write(`${piece.length.toString(16)}\r\n`);
      c.s.write(piece);
      c.s.write('\r\n0\r\n\r\nGET /after-chunked HTTP/1.1\r\nhost: a\r\n\r\n');
      expect(await c.until(/hello GET \/after-chunked/)).toMatch(/hello GET \/after-chunked 1\.1 a\n$/);
      expect(seen.slice(before)).toEqual(['POST /early', 'GET /after-chunked']);
      c.s.destroy();
    });

    it('a rest over DISCARD_MAX_BYTES closes the connection after the answer (the client sending all of it, no stall)', async () => {
      const c = talk();
      c.s.write(`POST /early HTTP/1.1\r\nhost: a\r\ncontent-length: ${2 * DISCARD_MAX_BYTES}\r\n\r\n`);
      c.s.write(Buffer.alloc(1000, 0x61));
      expect(await c.until(/no uploads here\n/)).toMatch(/^HTTP\/1\.1 405 /);
      const t0 = Date.now();
      for (let sent = 1000; sent < 2 * DISCARD_MAX_BYTES && !c.closed(); sent += 0x10000) {
        c.s.write(Buffer.alloc(Math.min(0x10000, 2 * DISCARD_MAX_BYTES - sent), 0x61));
        await new Promise((r) => setTimeout(r, 2));
      }
      await c.until(/never/, 600);
      expect(c.closed()).toBe(true);
      expect(Date.now() - t0).toBeLessThan(900); // not the headers timeout (1000 ms)
    });

    it('a chunked rest that goes past DISCARD_MAX_BYTES closes the connection', async () => {
      const c = talk();
      c.s.write('POST /early HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n');
      await c.until(/no uploads here\n/);
      const chunk = Buffer.concat([Buffer.from('10000\r\n'), Buffer.alloc(0x10000, 0x61), Buffer.from('\r\n')]);
      const t0 = Date.now();
      for (let i = 0; i < 20 && !c.closed(); i++) {
        c.s.write(chunk);
        await new Promise((r) => setTimeout(r, 5));
      }
      await c.until(/never/, 600);
      expect(c.closed()).toBe(true);
      expect(Date.now() - t0).toBeLessThan(900); // not the headers timeout (1000 ms)
    });

    it('a rest that stalls is cut at the headers timeout', async () => {
      const t0 = Date.now();
      const c = talk();
      c.s.write('POST /early HTTP/1.1\r\nhost: a\r\ncontent-length: 5000\r\n\r\n');
      c.s.write(Buffer.alloc(100, 0x61));
      await c.until(/no uploads here\n/);
      await c.until(/never/, 4000);
      expect(c.closed()).toBe(true);
      expect(Date.now() - t0).toBeLessThan(2500); // headersTimeoutMs 1000
    });
  });

  it('a streamed body: what arrives in one turn leaves as one chunk (one write), not a chunk per piece', async () => {
    const r = await raw('GET /burst HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n');
    expect(r.text).toMatch(/transfer-encoding: chunked\r\n\r\n10000\r\n/);
    const body = r.text.slice(r.text.indexOf('\r\n\r\n') + 4);
    expect(body.match(/\r\n[0-9a-f]+\r\n/g)?.length ?? 0).toBeLessThanOrEqual(1); // the last chunk only
    expect(body.endsWith('\r\n0\r\n\r\n')).toBe(true);
    let want = '';
    for (let i = 0; i < 16; i++) want += String.fromCharCode(0x61 + i).repeat(4096);
    expect(body).toBe(`10000\r\n${want}\r\n0\r\n\r\n`);
  });

  it('a streamed body to a reader that stops is held back (backpressure), then arrives whole when it reads', async () => {
    const s = net.connect(server.address.port, '127.0.0.1');
    s.pause();
    s.write('GET /big HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n');
    await new Promise((r) => setTimeout(r, 400));
    // Kernel buffers on both ends and the socket's mark: a few MiB at most, not the 64 of the body.
    expect(bigMade).toBeGreaterThan(0);
    expect(bigMade).toBeLessThan(16 << 20);
    let n = 0;
    s.on('data', (d: Buffer) => {
      n += d.length;
    });
    s.resume();
    await new Promise((r) => s.on('close', r));
    expect(n).toBeGreaterThan(64 << 20);
    expect(bigMade).toBe(64 << 20);
  });

  it('a handler that throws gives 500; a response field with CR LF never reaches the wire (no response splitting); the server keeps serving', async () => {
    const a = await raw('GET /throws HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n');
    expect(a.text).toMatch(/^HTTP\/1\.1 500 /);
    const b = await raw('GET /split HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n');
    expect(b.text).not.toMatch(/set-cookie/);
    expect(b.closed).toBe(true);
    const { stdout } = await run('curl', ['-sS', url('/after')]);
    expect(stdout).toMatch(/hello GET \/after/);
  });

  it('a small whole body leaves byte for byte: every byte value, and a string body as UTF-8', async () => {
    const { stdout } = await run('curl', ['-sS', url('/bytes')], { encoding: 'buffer' });
    expect(Buffer.compare(stdout, EVERY_BYTE)).toBe(0);
    const r = await raw('GET /utf8 HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n');
    const bytes = Buffer.from(r.text, 'latin1');
    expect(r.text).toMatch(/\r\ncontent-length: 12\r\n\r\n/);
    expect(bytes.subarray(bytes.length - 12).toString('utf8')).toBe('é € 😀\n');
    // Two requests on one connection: a body that broke its length would run into the second answer.
    const p = await raw(
      'GET /u8stream HTTP/1.1\r\nhost: a\r\n\r\nGET /u8stream HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n',
    );
    const one = 'content-length: 6\r\n\r\nABC\xff\x00\n';
    expect(p.text.split(one).length).toBe(3);
    expect(p.text.endsWith(one)).toBe(true);
  });

  it("checked fields (ServerResponse.checked) are written as given, in order, with the server's own framing in place of theirs", async () => {
    const r = await raw('GET /checked HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n');
    expect(r.text).toBe('HTTP/1.1 200 OK\r\nx-b: 2\r\nx-a: 1\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok');
  });

  it('a head that never completes is cut at the headers timeout; an idle keep-alive connection at its timeout', async () => {
    const t0 = Date.now();
    const r = await raw('GET /slowloris HTTP/1.1\r\nhost: a\r\n', 5000);
    expect(r.closed).toBe(true);
    expect(Date.now() - t0).toBeLessThan(2500);
    const t1 = Date.now();
    const k = await raw('GET /k HTTP/1.1\r\nhost: a\r\n\r\n', 6000);
    expect(k.text).toMatch(/hello GET \/k/);
    expect(Date.now() - t1).toBeGreaterThan(1500);
    expect(Date.now() - t1).toBeLessThan(4500);
  });

  describe('one answer per request, and pipelining by RFC 9112 §9.3.2 and §9.6', () => {
    const statusLines = (text: string): string[] => text.match(/^HTTP\/1\.1 \d{3}/gm) ?? [];

    it('a body that breaks its framing while its handler reads it: one answer (the 400), not the handler’s failure and then a 400', async () => {
      const before = seen.length;
      const r = await raw('POST /echo HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n');
      expect(statusLines(r.text)).toEqual(['HTTP/1.1 400']);
      expect(r.closed).toBe(true);
      expect(seen.slice(before)).toEqual(['POST /echo']);
    });

    it('a body that breaks its framing after its request was answered: the connection just closes (no second response)', async () => {
      const c = talk();
      c.s.write('POST /early HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n');
      expect(await c.until(/no uploads here\n/)).toMatch(/^HTTP\/1\.1 405 /);
      c.s.write('zz\r\n'); // not a chunk size
      const text = await c.until(/$^/, 1500);
      expect(statusLines(text)).toEqual(['HTTP/1.1 405']);
      expect(c.closed()).toBe(true);
    });

    it('an unsafe request pipelined behind another waits for its answer before its handler runs; safe ones run side by side', async () => {
      let before = seen.length;
      let r = await raw(
        'GET /slow-mark HTTP/1.1\r\nhost: a\r\n\r\nPOST /echo HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi',
      );
      expect(statusLines(r.text)).toEqual(['HTTP/1.1 200', 'HTTP/1.1 200']);
      expect(r.text.endsWith('hi')).toBe(true);
      expect(seen.slice(before)).toEqual(['GET /slow-mark', 'slow-mark answered', 'POST /echo']);
      before = seen.length;
      r = await raw(
        'GET /slow-mark HTTP/1.1\r\nhost: a\r\n\r\nGET /side HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n',
      );
      expect(statusLines(r.text)).toEqual(['HTTP/1.1 200', 'HTTP/1.1 200']);
      expect(seen.slice(before)).toEqual(['GET /slow-mark', 'GET /side', 'slow-mark answered']);
    });

    it('behind a response that closes the connection: an unsafe request never reaches its handler, a safe one already running is aborted; one answer', async () => {
      let before = seen.length;
      let r = await raw(
        'GET /closing HTTP/1.1\r\nhost: a\r\n\r\nPOST /pay HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n\r\n$$$',
      );
      expect(statusLines(r.text)).toEqual(['HTTP/1.1 200']);
      expect(r.text).toMatch(/connection: close\r\n/);
      expect(r.closed).toBe(true);
      expect(seen.slice(before)).toEqual(['GET /closing']);
      before = seen.length;
      r = await raw('GET /closing-slow HTTP/1.1\r\nhost: a\r\n\r\nGET /watched HTTP/1.1\r\nhost: a\r\n\r\n');
      expect(statusLines(r.text)).toEqual(['HTTP/1.1 200']);
      expect(r.closed).toBe(true);
      expect(seen.slice(before)).toEqual([
        'GET /closing-slow',
        'GET /watched',
        expect.stringMatching(/^aborted \/watched: connection closed before this pipelined request was answered/),
      ]);
    });

    it('Expect: 100-continue on a pipelined request: its 100 goes out when the request before it is answered', async () => {
      const c = talk();
      c.s.write(
        'GET /slow HTTP/1.1\r\nhost: a\r\n\r\nPUT /echo HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\n',
      );
      const text = await c.until(/HTTP\/1\.1 100 Continue\r\n\r\n/);
      expect(statusLines(text)).toEqual(['HTTP/1.1 200', 'HTTP/1.1 100']);
      c.s.write('abc');
      expect(await c.until(/\r\n\r\nabc$/)).toMatch(
        /HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n[\s\S]*content-length: 3\r\n\r\nabc$/,
      );
      c.s.destroy();
    });

    it('a graceful close answers every pipelined request in flight, the last with connection: close', async () => {
      const own = await startH1Server({ handler });
      const c = talk(own.address.port);
      c.s.write(
        'GET /slow HTTP/1.1\r\nhost: a\r\n\r\nGET /d2 HTTP/1.1\r\nhost: a\r\n\r\nGET /d3 HTTP/1.1\r\nhost: a\r\n\r\n',
      );
      await new Promise((r) => setTimeout(r, 30));
      const closing = own.close(3000);
      const text = await c.until(/hello GET \/d3/);
      await closing;
      expect(statusLines(text)).toEqual(['HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 200']);
      expect(text.match(/connection: close\r\n/g)).toHaveLength(1);
      expect(text).toMatch(/connection: close\r\n[^]*hello GET \/d3 1\.1 a\n$/);
      expect(text).not.toMatch(/connection: close\r\n[^]*hello GET \/d2/);
      expect(c.closed() || (await c.until(/$^/, 500), c.closed())).toBe(true);
    });

    it('a request-target longer than the head limit: 414, not 431 (RFC 9112 §3)', async () => {
      const r = await raw(`GET /${'a'.repeat(20_000)} HTTP/1.1\r\nhost: a\r\n\r\n`);
      expect(r.text).toMatch(/^HTTP\/1\.1 414 URI Too Long\r\n/);
      expect(r.closed).toBe(true);
    });
  });

  it('Content-Length on responses without a body (RFC 9110 §8.6): none on 204, none made up for a 304 or a HEAD, an invalid one never passed on', async () => {
    const head = async (req: string): Promise<string> => {
      const r = await raw(`${req}\r\nhost: a\r\nconnection: close\r\n\r\n`);
      return r.text.slice(0, r.text.indexOf('\r\n\r\n') + 2).toLowerCase();
    };
    expect(await head('GET /204 HTTP/1.1')).not.toMatch(/content-length/);
    expect(await head('GET /304 HTTP/1.1')).not.toMatch(/content-length/);
    expect(await head('GET /304-len HTTP/1.1')).toMatch(/content-length: 1234\r\n/);
    expect(await head('HEAD /streamed-nolen HTTP/1.1')).not.toMatch(/content-length/);
    expect(await head('HEAD /k HTTP/1.1')).toMatch(/content-length: 20\r\n/); // the bytes the handler gave ('hello HEAD /k 1.1 a\n')
    expect(await head('HEAD /bad-len HTTP/1.1')).not.toMatch(/content-length/);
    expect(await head('GET /bad-len HTTP/1.1')).not.toMatch(/content-length/);
  });

  it('HTTP/1.0 with keep-alive and a streamed body of unknown length: the response says the connection closes, and it does', async () => {
    const r = await raw('GET /streamed-nolen HTTP/1.0\r\nconnection: keep-alive\r\n\r\n');
    const head = r.text.slice(0, r.text.indexOf('\r\n\r\n') + 2);
    expect(r.text.endsWith('ab')).toBe(true);
    if (!/content-length: 2\r\n/.test(head)) {
      expect(head).toMatch(/connection: close\r\n/);
      expect(r.closed).toBe(true);
    } else expect(head).toMatch(/connection: keep-alive\r\n/);
  });

  it('Upgrade: a 101 hands the connection to the tunnel, with the bytes sent right after the head', async () => {
    const r = await raw('GET /tunnel HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\nping-1', 800);
    expect(r.text).toMatch(
      /^HTTP\/1\.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\nping-1$/,
    );
  });
});
