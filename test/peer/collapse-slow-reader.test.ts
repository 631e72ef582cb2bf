/**
 * A collapsed reader that falls behind never paces the others (issue 54, finding 1): with temporary files off
 * (`proxy.maxTempFileBytes: 0`), a client that stopped reading held every sharer of its collapsed response to its
 * own pace. Now a sharer more than 1 MiB behind (agent/collapse.ts LAG_BYTES) leaves the shared body and gets the
 * rest by a request of its own (Range from the bytes it has, If-Range on nginx's ETag), spliced on only when it is
 * the same representation. The origin is nginx serving a static file (strong ETag, byte ranges).
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { makeCerts } from '../helpers/certs.js';
import { Nginx } from '../helpers/nginx.js';

const certs = makeCerts();
const BIG = randomBytes(24 * 1024 * 1024);
const BIG_SHA = createHash('sha256').update(BIG).digest('hex');
let nginx: Nginx;
let svc: Service;
let port = 0;

beforeAll(async () => {
  nginx = await Nginx.start({ files: { 'big.bin': BIG } });
  svc = await Service.start(
    parseConfig(
      `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
admin: false
logging: { requests: false }
proxy: { maxTempFileBytes: 0 }
origins:
  g:
    endpoints: [ { url: "https://localhost:${nginx.port}" } ]
    protocol: h1
    tls: { ca: ${certs.caPath} }
    collapse: true
routes:
  - { path: /, origin: g }
`,
      'collapse-slow.yaml',
      certs.dir,
    ),
    { logDestination: { write: () => {} } },
  );
  port = svc.addresses()['plain'] as number;
});
afterAll(async () => {
  await svc?.shutdown(500);
  await nginx?.stop();
});

interface Got {
  sha: string;
  bytes: number;
  ms: number;
}

/** GET /big.bin; `stallMs`: read nothing for that long after the head (its socket buffers fill), then all. */
function get(stallMs: number): Promise<Got> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    http
      .get({ host: '127.0.0.1', port, path: '/big.bin', agent: false }, (res) => {
        const h = createHash('sha256');
        let bytes = 0;
        if (stallMs > 0) {
          res.pause();
          setTimeout(() => res.resume(), stallMs);
        }
        res.on('data', (c: Buffer) => {
          h.update(c);
          bytes += c.length;
        });
        res.on('end', () => resolve({ sha: h.digest('hex'), bytes, ms: performance.now() - t0 }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

describe('a collapsed reader that falls behind', () => {
  it('leaves the shared body: the fast client is not held to the stalled one, and both get the whole file', async () => {
    const before = nginx.log().length;
    const [slow, fast] = await Promise.all([get(4000), get(0)]);
    expect(fast.sha).toBe(BIG_SHA);
    expect(slow.sha).toBe(BIG_SHA);
    // Alone the fast one takes well under a second here; paced by the stalled one it took the stall and more.
    expect(fast.ms).toBeLessThan(2500);
    // One shared request, and one of its own for the rest (a 206).
    const lines = nginx
      .log()
      .slice(before)
      .filter((l) => l.uri === '/big.bin');
    expect(lines.map((l) => l.status).sort()).toEqual([200, 206]);
  }, 30_000);
});
