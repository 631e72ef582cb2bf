/**
 * Requests our h3 front accepts in 0-RTT early data reach the origin marked `Early-Data: 1` (RFC 8470 §5.1), and
 * the origin's 425 (Too Early) is handled as §5.2 says (issue 54, finding 5): sent again once the client's handshake
 * completed, unless the client marked the request itself — then the 425 is its answer.
 *
 * Client: our QUIC client resuming a ticket with its request in 0-RTT. Origin: a cleartext HTTP/1.1 server that
 * records the Early-Data field of every request and answers 425 to a marked request under /strict.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { H3Response } from '../../src/client/h3.js';
import { connectH3 } from '../../src/connect/h3.js';
import type { ConnRequest } from '../../src/http/types.js';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { MemorySessionStore } from '../../src/store/session-store.js';
import { makeCerts } from '../helpers/certs.js';

const certs = makeCerts();
let origin: http.Server;
let svc: Service;
let quic = 0;
/** What the origin saw: path and its Early-Data value ('-' for none). */
const seen: Array<[string, string]> = [];

beforeAll(async () => {
  origin = http.createServer((req, res) => {
    const mark = String(req.headers['early-data'] ?? '-');
    seen.push([req.url as string, mark]);
    if (req.url?.startsWith('/strict') && mark === '1') {
      res.writeHead(425);
      res.end('too early\n');
      return;
    }
    res.end(`ok ${req.url} early-data=${mark}\n`);
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  svc = await Service.start(
    parseConfig(
      `
listeners:
  - { name: quic, kind: h3, host: 127.0.0.1, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }
logging: { requests: false }
admin: false
origins:
  o: { url: "http://127.0.0.1:${(origin.address() as AddressInfo).port}", protocol: h1 }
routes:
  - { path: /, origin: o }
`,
      'early.yaml',
    ),
    { logDestination: { write: () => {} } },
  );
  quic = svc.addresses()['quic'] as number;
});
afterAll(async () => {
  await svc?.shutdown(500);
  await new Promise((r) => origin?.close(r));
});

async function text(r: Readable): Promise<string> {
  let s = '';
  for await (const c of r) s += String(c);
  return s;
}

const req = (path: string, headers: Array<[string, string]> = []): ConnRequest => ({
  method: 'GET',
  path,
  authority: `localhost:${quic}`,
  scheme: 'https',
  headers,
  body: null,
  allowEarlyData: true,
});

/** A resumed connection to the front whose first request goes as 0-RTT. */
/** A connection to the front keeping its tickets in `store`. */
const front = (store: MemorySessionStore) =>
  connectH3({
    host: '127.0.0.1',
    port: quic,
    servername: 'localhost',
    ca: certs.caPath,
    sessionStore: store,
    sessionKey: 'front',
  });

async function early(
  store: MemorySessionStore,
  path: string,
  headers: Array<[string, string]> = [],
): Promise<{ status: number; body: string; earlyData: boolean }> {
  const c = await front(store);
  try {
    const r = (await c.request(req(path, headers))) as H3Response;
    return { status: r.status, body: await text(r.body), earlyData: r.earlyData };
  } finally {
    c.destroy();
  }
}

describe('the h3 front forwards 0-RTT requests as RFC 8470 asks', () => {
  const store = new MemorySessionStore();

  beforeAll(async () => {
    // A full handshake leaves a ticket in the store.
    const c = await front(store);
    const r = await c.request({ ...req('/prime'), allowEarlyData: false });
    expect(await text(r.body)).toBe('ok /prime early-data=-\n');
    c.destroy();
  });

  it('a GET in early data reaches the origin with Early-Data: 1 (§5.1); after the handshake, none', async () => {
    const r = await early(store, '/page');
    expect(r.earlyData).toBe(true);
    expect(r.body).toBe('ok /page early-data=1\n');
  });

  it("the origin's 425 to a request we marked: sent again once the client's handshake completed, unmarked (§5.2)", async () => {
    const before = seen.length;
    const r = await early(store, '/strict/a');
    expect(r.earlyData).toBe(true);
    expect([r.status, r.body]).toEqual([200, 'ok /strict/a early-data=-\n']);
    expect(seen.slice(before)).toEqual([
      ['/strict/a', '1'],
      ['/strict/a', '-'],
    ]);
  });

  it('a request the client marked Early-Data: 1 itself: the 425 is passed on, not retried (§5.2 MUST)', async () => {
    const before = seen.length;
    const r = await early(store, '/strict/b', [['early-data', '1']]);
    expect(r.status).toBe(425);
    // The front never sent it on unmarked. Our client itself sends a request refused with 425 once more after its
    // handshake (RFC 8470 §5.2, a user agent's retry), still carrying its own mark: that one is 425 too.
    const at = seen.slice(before);
    expect(at.length).toBeGreaterThanOrEqual(1);
    expect(at.length).toBeLessThanOrEqual(2);
    expect(at.every(([p, m]) => p === '/strict/b' && m === '1')).toBe(true);
  });
});
