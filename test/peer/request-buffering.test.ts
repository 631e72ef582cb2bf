/**
 * Request buffering (nginx's proxy_request_buffering): a body of a declared length up to `proxy.requestBufferBytes`
 * is read whole in memory, one up to `proxy.maxRequestTempFileBytes` through a temporary file, before the origin is
 * asked; a route with `requestBuffering: false` streams every body. The origin is nginx, which logs when it got
 * each request (`$request_time` runs from its first byte), so a slow client's pause shows up at the origin only
 * when the body was streamed; a client that leaves mid-body, or stalls, never reaches it at all. A body of unknown
 * length is never held back: an exchange fed both ways (node:http as the application, answering the first piece)
 * would otherwise deadlock.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { Agent } from '../../src/agent/agent.js';
import { makeCerts } from '../helpers/certs.js';
import { Nginx } from '../helpers/nginx.js';
import { freePort } from '../helpers/ports.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const certs = makeCerts();
let nginx: Nginx;
let buffered: Service;
let streamed: Service;

interface Seen {
  tag: string;
  seconds: number;
  length: number;
  status: number;
}
/** The origin's log lines for /upload: which request (its ?t= tag), how long nginx had it, its length, status. */
function seen(): Seen[] {
  let text = '';
  try {
    text = readFileSync(join(nginx.dir, 'upload.log'), 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [uri, t, len, status] = l.split(' ');
      return {
        tag: new URL(uri as string, 'http://x').searchParams.get('t') ?? '',
        seconds: Number(t),
        length: Number(len),
        status: Number(status),
      };
    });
}
async function seenTag(tag: string, waitMs = 2000): Promise<Seen | undefined> {
  for (let t = 0; t < waitMs / 20; t++) {
    const s = seen().find((x) => x.tag === tag);
    if (s) return s;
    await sleep(20);
  }
  return undefined;
}

/** `null`: the defaults, with maxRequestTempFileBytes 64 KiB; a number: requestBufferBytes, and no temporary files. */
function start(requestBufferBytes: number | null): Promise<Service> {
  return Service.start(
    parseConfig(
      `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
  - { name: h2c, kind: h2c, host: 127.0.0.1, port: 0 }
  - { name: quic, kind: h3, host: 127.0.0.1, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }
logging: { requests: false }
admin: false
${requestBufferBytes === null ? 'proxy: { maxRequestTempFileBytes: 65536 }' : `proxy: { requestBufferBytes: ${requestBufferBytes}, maxRequestTempFileBytes: 0 }`}
origins:
  o: { url: "http://127.0.0.1:${nginx.port}", protocol: h1, timeouts: { bodyMs: 1000 } }
routes:
  - { host: streaming.test, path: /, origin: o, requestBuffering: false }
  - { path: /, origin: o }
`,
      'test.yaml',
      certs.dir,
    ),
    { logDestination: { write: () => {} } },
  );
}

/** One HTTP/1.1 exchange on a raw socket: `parts` written with `gapMs` between them; the answer, or '' if none. */
function raw(
  port: number,
  parts: string[],
  gapMs: number,
  o: { leaveAfter?: number; waitMs?: number } = {},
): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    const done = (): void => {
      s.destroy();
      resolve(text);
    };
    s.on('data', (d) => {
      text += d.toString('latin1');
      if (/\r\n\r\n/.test(text) && /content-length: (\d+)/i.test(text)) {
        const n = Number(/content-length: (\d+)/i.exec(text)![1]);
        if (text.length >= text.indexOf('\r\n\r\n') + 4 + n) done();
      }
    });
    s.on('close', () => resolve(text));
    s.on('error', () => resolve(text));
    void (async () => {
      for (let i = 0; i < parts.length; i++) {
        if (i > 0) await sleep(gapMs);
        if (s.destroyed) return;
        s.write(parts[i] as string);
        if (o.leaveAfter === i) {
          s.destroy();
          return;
        }
      }
      setTimeout(done, o.waitMs ?? 3000);
    })();
  });
}

const post = (tag: string, length: number): string =>
  `POST /upload?t=${tag} HTTP/1.1\r\nhost: a\r\ncontent-type: application/octet-stream\r\ncontent-length: ${length}\r\n\r\n`;

beforeAll(async () => {
  const sink = await freePort();
  nginx = await Nginx.start({
    tls: false,
    httpExtra: `log_format rt '$request_uri $request_time $request_length $status';
  server { listen 127.0.0.1:${sink}; access_log off; location / { return 200 "taken\\n"; } }`,
    // nginx reads the whole body (its own request buffering) before it passes the request on to the sink.
    // (A relative log path is nginx's prefix: Nginx.dir.)
    serverExtra: `location = /upload { access_log upload.log rt; client_max_body_size 1m; proxy_pass http://127.0.0.1:${sink}/; }`,
  });
  buffered = await start(null);
  streamed = await start(0);
}, 30_000);
afterAll(async () => {
  await buffered?.shutdown(1000);
  await streamed?.shutdown(1000);
  await nginx?.stop();
});

describe('proxy.requestBufferBytes', () => {
  it('a slow client: with the default (16 KiB) the origin gets the request when its body is in; streamed (0), at its head', async () => {
    const body = 'b'.repeat(1024);
    const a = await raw(buffered.addresses()['plain'] as number, [post('slow-buffered', 1024), body], 400);
    expect(a).toMatch(/^HTTP\/1\.1 200 /);
    const b = await raw(streamed.addresses()['plain'] as number, [post('slow-streamed', 1024), body], 400);
    expect(b).toMatch(/^HTTP\/1\.1 200 /);
    const sa = await seenTag('slow-buffered');
    const sb = await seenTag('slow-streamed');
    expect(sa?.status).toBe(200);
    expect(sb?.status).toBe(200);
    expect(sa!.length).toBeGreaterThan(1024);
    expect(sa!.seconds).toBeLessThan(0.2);
    expect(sb!.seconds).toBeGreaterThanOrEqual(0.35);
  });

  it('a body past requestBufferBytes and within maxRequestTempFileBytes is read whole through a temporary file; one past that streams', async () => {
    const filed = await raw(
      buffered.addresses()['plain'] as number,
      [post('filed', 40_000), 'c'.repeat(20_000), 'c'.repeat(20_000)],
      400,
    );
    expect(filed).toMatch(/^HTTP\/1\.1 200 /);
    const f = await seenTag('filed');
    expect(f!.length).toBeGreaterThan(40_000);
    expect(f!.seconds).toBeLessThan(0.2);
    const big = await raw(
      buffered.addresses()['plain'] as number,
      [post('big', 70_000), 'c'.repeat(35_000), 'c'.repeat(35_000)],
      400,
    );
    expect(big).toMatch(/^HTTP\/1\.1 200 /);
    expect((await seenTag('big'))!.seconds).toBeGreaterThanOrEqual(0.35);
  });

  it("a route with requestBuffering: false streams every body, a small one too (nginx's proxy_request_buffering off)", async () => {
    const r = await raw(
      buffered.addresses()['plain'] as number,
      [post('route-off', 1024).replace('host: a', 'host: streaming.test'), 'b'.repeat(1024)],
      400,
    );
    expect(r).toMatch(/^HTTP\/1\.1 200 /);
    expect((await seenTag('route-off'))!.seconds).toBeGreaterThanOrEqual(0.35);
  });

  it('a client that leaves mid-body never reaches the origin; the service goes on serving', async () => {
    const port = buffered.addresses()['plain'] as number;
    await raw(port, [post('left', 1024), 'd'.repeat(500)], 100, { leaveAfter: 1 });
    // The same with streaming reaches the origin (as a request cut short): the difference is the buffering.
    await raw(streamed.addresses()['plain'] as number, [post('left-streamed', 1024), 'd'.repeat(500)], 100, {
      leaveAfter: 1,
    });
    expect(await seenTag('left-streamed')).toBeDefined();
    expect(await seenTag('left', 500)).toBeUndefined();
    const ok = await raw(port, [post('after', 3), 'xyz'], 0);
    expect(ok).toMatch(/^HTTP\/1\.1 200 /);
  });

  it("a body that stalls: 408 OL_REQUEST_BODY_TIMEOUT after the origin's timeouts.bodyMs, the connection closed, the origin never asked", async () => {
    const t0 = Date.now();
    const r = await raw(buffered.addresses()['plain'] as number, [post('stall', 1024), 'e'.repeat(100)], 50, {
      waitMs: 4000,
    });
    expect(r).toMatch(/^HTTP\/1\.1 408 /);
    expect(r).toMatch(/x-originlink-error: OL_REQUEST_BODY_TIMEOUT/i);
    expect(r).toMatch(/connection: close/i);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(await seenTag('stall', 300)).toBeUndefined();
  });

  it('a body of unknown length is never held back: a client that waits for the answer before sending the rest gets it', async () => {
    // An origin that answers as soon as the first piece is in, and ends once the body ended (an exchange fed both ways).
    const origin = http.createServer((req, res) => {
      req.once('data', (c: Buffer) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write(`got ${c.toString()}\n`);
      });
      req.on('end', () => res.end('done\n'));
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const svc = await Service.start(
      parseConfig(
        `
listeners: [{ name: plain, kind: http, host: 127.0.0.1, port: 0 }]
logging: { requests: false }
admin: false
origins:
  o: { url: "http://127.0.0.1:${(origin.address() as net.AddressInfo).port}", protocol: h1 }
routes: [{ path: /, origin: o }]
`,
        'test.yaml',
      ),
      { logDestination: { write: () => {} } },
    );
    try {
      const text = await new Promise<string>((resolve, reject) => {
        const s = net.connect(svc.addresses()['plain'] as number, '127.0.0.1');
        let got = '';
        let sentRest = false;
        const timer = setTimeout(() => {
          s.destroy();
          reject(new Error(`no answer to the first piece: ${JSON.stringify(got)}`));
        }, 3000);
        s.on('data', (d: Buffer) => {
          got += d.toString('latin1');
          if (!sentRest && got.includes('got hello')) {
            sentRest = true;
            s.write('5\r\nworld\r\n0\r\n\r\n');
          }
          if (got.includes('done')) {
            clearTimeout(timer);
            s.destroy();
            resolve(got);
          }
        });
        s.on('error', reject);
        s.write('POST /chat HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n');
      });
      expect(text).toMatch(/^HTTP\/1\.1 200 /);
      expect(text).toContain('got hello');
    } finally {
      await svc.shutdown(1000);
      origin.close();
    }
  });

  it('h3 front (its body read by events, not collected): a 12 KiB body in three pieces, the origin asked once it was in', async () => {
    const agent = new Agent({ protocol: 'h3', tls: { ca: certs.ca } });
    try {
      async function* pieces(): AsyncGenerator<Buffer> {
        for (let i = 0; i < 3; i++) {
          if (i > 0) await sleep(150);
          yield Buffer.alloc(4096, 0x67);
        }
      }
      const r = await agent.request({
        origin: `https://localhost:${buffered.addresses()['quic'] as number}`,
        path: '/upload?t=h3',
        method: 'POST',
        headers: [['content-length', '12288']],
        body: pieces(),
      });
      expect(r.status).toBe(200);
      await r.dump();
      const s = await seenTag('h3');
      expect(s!.length).toBeGreaterThan(12_288);
      expect(s!.seconds).toBeLessThan(0.2);
    } finally {
      await agent.close();
    }
  });

  it('h2c front: a 12 KiB body in three pieces arrives whole, the origin asked once it was in', async () => {
    const c = http2.connect(`http://127.0.0.1:${buffered.addresses()['h2c'] as number}`);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const s = c.request({ ':method': 'POST', ':path': '/upload?t=h2', 'content-length': '12288' });
        let st = 0;
        s.on('response', (h) => {
          st = Number(h[':status']);
        });
        s.on('error', reject);
        s.on('end', () => resolve(st));
        s.resume();
        void (async () => {
          for (let i = 0; i < 3; i++) {
            s.write(Buffer.alloc(4096, 0x66));
            await sleep(150);
          }
          s.end();
        })();
      });
      expect(status).toBe(200);
      const seenH2 = await seenTag('h2');
      expect(seenH2!.length).toBeGreaterThan(12_288);
      expect(seenH2!.seconds).toBeLessThan(0.2);
    } finally {
      c.close();
    }
  });
});
