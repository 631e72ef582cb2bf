/**
 * Uploads an origin answers before their bodies are in (an early 401/405/413), through the service's fronts to an
 * HTTP/1.1 origin (node:http, which reads and drops the rest itself and keeps its connection). HTTP/1.1 cannot cancel
 * one request: the origin connection serves again only if the whole body reaches it. So after the answer the front
 * keeps reading the client's body for the origin request still sending it (bounded: 1 MiB, and the headers timeout
 * on h1), instead of stopping the client — which cost an origin connection per upload.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';

const PIECE = 16 * 1024;
const PIECES = 12; // 192 KiB
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let origin: http.Server;
let originConnections = 0;
let originBytes = 0;
let svc: Service;
/** An origin that answers 413 after 1 MB of an upload and closes its connection (raw, not node:http). */
let closer: net.Server;

beforeAll(async () => {
  origin = http.createServer((req, res) => {
    res.writeHead(405, { 'content-type': 'text/plain' });
    res.end('no uploads here\n');
    req.on('data', (c: Buffer) => {
      originBytes += c.length;
    });
  });
  origin.on('connection', () => {
    originConnections++;
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  closer = net.createServer((s) => {
    let n = 0;
    let text = '';
    let answered = false;
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      n += d.length;
      if (text.length < 200) text += d.toString('latin1', 0, 200);
      if (text.startsWith('GET') && text.includes('\r\n\r\n')) {
        text = '';
        s.write('HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nsecond\n');
      } else if (!answered && n > 1_000_000) {
        answered = true;
        s.end('HTTP/1.1 413 Content Too Large\r\nconnection: close\r\ncontent-length: 4\r\n\r\nbig\n');
      }
    });
  });
  await new Promise<void>((r) => closer.listen(0, '127.0.0.1', r));
  svc = await Service.start(
    parseConfig(
      `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
  - { name: h2c, kind: h2c, host: 127.0.0.1, port: 0 }
admin: false
logging: { requests: false }
origins:
  o: { url: "http://127.0.0.1:${(origin.address() as AddressInfo).port}", protocol: h1 }
  closer: { url: "http://127.0.0.1:${(closer.address() as AddressInfo).port}", protocol: h1, retries: 0 }
routes: [{ path: /closer, origin: closer }, { path: /, origin: o }]
`,
      'test.yaml',
    ),
    { logDestination: { write: () => {} } },
  );
});
afterAll(async () => {
  await svc?.shutdown(1000);
  await new Promise((r) => origin.close(r));
  await new Promise((r) => closer.close(r));
});
beforeEach(() => {
  originConnections = 0;
  originBytes = 0;
});

describe('an upload answered early, to an HTTP/1.1 origin', () => {
  it('h1 front: five uploads, one or two origin connections (not five); every body reaches the origin whole', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 5; i++) {
        const status = await new Promise<number>((resolve, reject) => {
          const req = http.request(
            { agent, host: '127.0.0.1', port: svc.addresses()['plain'] as number, path: '/up', method: 'POST' },
            (res) => {
              res.resume();
              res.on('end', () => resolve(res.statusCode as number));
            },
          );
          req.on('error', reject);
          void (async () => {
            for (let k = 0; k < PIECES; k++) {
              req.write(Buffer.alloc(PIECE, 0x61)); // chunked: the front cannot know the length
              await sleep(2);
            }
            req.end();
          })();
        });
        expect(status).toBe(405);
      }
      for (let t = 0; t < 100 && originBytes < 5 * PIECE * PIECES; t++) await sleep(10);
      expect(originBytes).toBe(5 * PIECE * PIECES);
      // One, or two when the next upload came while the last body was still leaving (was: one per upload).
      expect(originConnections).toBeLessThanOrEqual(2);
    } finally {
      agent.destroy();
    }
  });

  it('h2c front: five uploads, one or two origin connections (not five); the client is not told to stop while the origin still takes the body', async () => {
    const session = http2.connect(`http://127.0.0.1:${svc.addresses()['h2c'] as number}`);
    try {
      for (let i = 0; i < 5; i++) {
        const r = await new Promise<{ status: number; rst: number }>((resolve, reject) => {
          const req = session.request({ ':method': 'POST', ':path': '/up' });
          let status = 0;
          req.on('response', (h) => {
            status = Number(h[':status']);
          });
          req.on('error', reject);
          req.resume();
          req.on('close', () => resolve({ status, rst: req.rstCode ?? 0 }));
          void (async () => {
            for (let k = 0; k < PIECES && !req.closed; k++) {
              req.write(Buffer.alloc(PIECE, 0x61));
              await sleep(2);
            }
            if (!req.closed) req.end();
          })();
        });
        expect(r.status).toBe(405);
      }
      for (let t = 0; t < 100 && originBytes < 5 * PIECE * PIECES; t++) await sleep(10);
      expect(originBytes).toBe(5 * PIECE * PIECES);
      expect(originConnections).toBeLessThanOrEqual(2);
    } finally {
      session.close();
    }
  });
});

describe('an upload answered early by an origin that then closes its connection', () => {
  it('h1 front: the rest of the body (under 1 MiB) is read and dropped, and the same client connection serves the next request', async () => {
    const TOTAL = 1_900_000;
    const FIRST = 1_100_000;
    const c = net.connect(svc.addresses()['plain'] as number, '127.0.0.1');
    let text = '';
    let closed = false;
    c.on('data', (d: Buffer) => {
      text += d.toString('latin1');
    });
    c.on('close', () => {
      closed = true;
    });
    c.on('error', () => {});
    const until = async (re: RegExp): Promise<void> => {
      for (let t = 0; t < 400 && !re.test(text) && !closed; t++) await sleep(10);
    };
    try {
      c.write(`POST /closer/up HTTP/1.1\r\nhost: x\r\ncontent-length: ${TOTAL}\r\n\r\n`);
      c.write(Buffer.alloc(FIRST, 1));
      await until(/big\n$/);
      expect(text).toMatch(/^HTTP\/1\.1 413 /);
      // The origin request's body pump was waiting for a drain when its connection went: it must let go.
      c.write(Buffer.alloc(TOTAL - FIRST, 1));
      c.write('GET /closer/second HTTP/1.1\r\nhost: x\r\n\r\n');
      await until(/second\n$/);
      expect(text).toMatch(/big\nHTTP\/1\.1 200 OK\r\n[^]*second\n$/);
      expect(closed).toBe(false);
    } finally {
      c.destroy();
    }
  });
});
