/**
 * The QPACK dynamic table both ways (RFC 9204, issue 17): with `qpack`
 * limits offered, independent encoders insert into our decoder's table and
 * our encoder into theirs, and every field still arrives intact. Peers:
 * headless Chromium (Google QUICHE's encoder) and ngtcp2's gtlsclient
 * (nghttp3's, which leaves the table unused) against our server; ngtcp2's gtlsserver (nghttp3) against our
 * client; our client and server against each other with a table small
 * enough to evict, blocked streams allowed.
 */
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectH3 } from '../../src/connect/h3.js';
import { startH3Server, type H3Server } from '../../src/server/h3.js';
import type { RequestHandler } from '../../src/server/request.js';
import { makeCerts } from '../helpers/certs.js';
import { launchChromium, PAGE_LIB, spki, type Browser } from '../helpers/chromium.js';
import { runClient, startNgtcp2Server, type Peer } from '../helpers/h3-peers.js';
import { freeTcpUdpPort } from '../helpers/ports.js';

const certs = makeCerts();
/** What each request's `x-token` header decoded to, by path. */
const tokens = new Map<string, string>();
const handler: RequestHandler = (req) => {
  const tok = req.headers.find(([n]) => n === 'x-token')?.[1] ?? '';
  tokens.set(req.path, tok);
  // Repeated response fields, so our encoder has something worth inserting.
  return {
    status: 200,
    headers: [
      ['content-type', 'text/plain'],
      ['cache-control', 'no-store'],
      ['x-served-by', 'ol-qpack'],
      ['access-control-allow-origin', '*'],
    ],
    body: `${req.path} ${tok}`,
  };
};
let server: H3Server;

beforeAll(async () => {
  server = await startH3Server({
    cert: certs.certPath,
    key: certs.keyPath,
    handler,
    qpack: { maxTableCapacity: 4096, blockedStreams: 16 },
  });
});

afterAll(async () => {
  await server?.close(100);
});

describe('QPACK dynamic table', () => {
  it('headless Chromium inserts into our decoder table; 40 requests with a repeated token header all decode', async () => {
    const before = server.qpackInserts().decoder;
    const port = server.address.port;
    let b: Browser | null = null;
    try {
      b = await launchChromium({
        flags: [
          '--enable-quic',
          `--origin-to-force-quic-on=localhost:${port}`,
          `--ignore-certificate-errors-spki-list=${spki(certs.cert)}`,
        ],
      });
      await b.cdp.navigate(`https://localhost:${port}/`);
      const r = await b.cdp.eval<{ texts: string[]; protos: string[] }>(
        `(async () => {
        ${PAGE_LIB}
        const texts = [];
        for (let i = 0; i < 40; i++) {
          const res = await fetch('/t/' + i, { headers: { 'x-token': 'tok-' + (i % 4) + '-abcdefghijklmnopqrstuvwxyz' }, cache: 'no-store' });
          texts.push(await res.text());
        }
        return { texts, protos: [...new Set(performance.getEntriesByType('resource').map((e) => e.nextHopProtocol))] };
      })()`,
        60_000,
      );
      expect(r.protos).toEqual(['h3']);
      expect(r.texts).toEqual(Array.from({ length: 40 }, (_, i) => `/t/${i} tok-${i % 4}-abcdefghijklmnopqrstuvwxyz`));
      const inserted = server.qpackInserts().decoder - before;
      console.log(`qpack table, Chromium → our server: ${inserted} entries inserted into our decoder table`);
      expect(inserted).toBeGreaterThan(0);
    } finally {
      await b?.close();
    }
  }, 90_000);

  it('ngtcp2 gtlsclient (nghttp3) with our table offered: 100 requests on one connection, all answered', async () => {
    const before = server.qpackInserts().decoder;
    const port = server.address.port;
    const dl = mkdtempSync(join(tmpdir(), 'ol-qpack-'));
    try {
      const n = await runClient('gtlsclient', [
        '-q',
        '--exit-on-all-streams-close',
        '-n',
        '100',
        '--download',
        dl,
        '127.0.0.1',
        String(port),
        `https://localhost:${port}/many`,
      ]);
      expect(n.code, n.output).toBe(0);
      expect(readFileSync(join(dl, 'many'), 'utf8')).toBe('/many ');
      // Debian's gtlsclient (nghttp3 0.8) does not insert into the table it is offered (0 seen): only that
      // the offer changes nothing for a client that leaves it unused is checked here.
      console.log(
        `qpack table, nghttp3 client → our server: ${server.qpackInserts().decoder - before} entries inserted`,
      );
    } finally {
      rmSync(dl, { recursive: true, force: true });
    }
  }, 60_000);

  it('our client offering a table to ngtcp2 gtlsserver (nghttp3 encoder): responses decode, entries inserted', async () => {
    const root = mkdtempSync(join(tmpdir(), 'ol-qpack-root-'));
    writeFileSync(join(root, 'small.txt'), 'small file\n');
    let peer: Peer | null = null;
    const port = await freeTcpUdpPort();
    try {
      peer = await startNgtcp2Server({ port, certFile: certs.certPath, keyFile: certs.keyPath, root });
      const c = await connectH3({
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        ca: certs.caPath,
        qpack: { maxTableCapacity: 4096 },
      });
      try {
        const texts: string[] = [];
        for (let i = 0; i < 20; i++) {
          const r = await c.request({
            method: 'GET',
            path: '/small.txt',
            authority: `localhost:${port}`,
            scheme: 'https',
            headers: [],
            body: null,
          });
          let t = '';
          for await (const x of r.body) t += String(x);
          texts.push(`${r.status} ${t}`);
        }
        expect(new Set(texts)).toEqual(new Set(['200 small file\n']));
        const q = c.h3Stats().qpack;
        console.log(
          `qpack table, nghttp3 → our client: ${q.decoderInsertCount} entries inserted, table ${q.decoderTableSize} bytes`,
        );
        expect(q.decoderInsertCount).toBeGreaterThan(0);
      } finally {
        c.destroy();
      }
    } finally {
      await peer?.stop();
      rmSync(root, { recursive: true, force: true });
    }
  }, 60_000);

  it('our client and server, both tables at 256 bytes (entries evicted), 16 blocked streams: 300 concurrent requests over 60 tokens then 40 fresh ones, each twice in a row (entries evicted), every field intact both ways', async () => {
    // Acknowledgments at once (ackDelayMs 0): entries become evictable as soon as the peer has them. Every section that
    // can refers to the table (minReferenceSaving 0): by default these short fields would stay literals.
    const small = await startH3Server({
      cert: certs.certPath,
      key: certs.keyPath,
      handler,
      qpack: { maxTableCapacity: 256, blockedStreams: 16, ackDelayMs: 0, minReferenceSaving: 0 },
    });
    const c = await connectH3({
      host: '127.0.0.1',
      port: small.address.port,
      servername: 'localhost',
      ca: certs.caPath,
      qpack: { maxTableCapacity: 256, blockedStreams: 16, ackDelayMs: 0, minReferenceSaving: 0 },
    });
    try {
      const bad: string[] = [];
      for (let round = 0; round < 10; round++) {
        await Promise.all(
          Array.from({ length: 30 }, async (_, k) => {
            const i = round * 30 + k;
            const tok = `token-${i % 60}-${'x'.repeat(i % 7)}`;
            const r = await c.request({
              method: 'GET',
              path: `/e/${i}`,
              authority: 'localhost',
              scheme: 'https',
              headers: [['x-token', tok]],
              body: null,
            });
            let t = '';
            for await (const x of r.body) t += String(x);
            const servedBy = r.headers.find(([n]) => n === 'x-served-by')?.[1];
            if (t !== `/e/${i} ${tok}` || servedBy !== 'ol-qpack') bad.push(`${i}: ${t} / ${servedBy}`);
          }),
        );
      }
      // Then one at a time, each fresh token twice (our encoder inserts a field the second time it sends it):
      // each insert evicts an acknowledged entry (256 bytes hold at most 4).
      for (let i = 0; i < 80; i++) {
        const tok = `seq-${i >> 1}`;
        const r = await c.request({
          method: 'GET',
          path: `/s/${i}`,
          authority: 'localhost',
          scheme: 'https',
          headers: [['x-token', tok]],
          body: null,
        });
        let t = '';
        for await (const x of r.body) t += String(x);
        if (t !== `/s/${i} ${tok}`) bad.push(`seq ${i}: ${t}`);
      }
      const q = c.h3Stats().qpack;
      const s = small.qpackInserts();
      console.log(
        `qpack table 256 B both ways: client decoder ${q.decoderInsertCount} inserts, encoder ${q.encoderInsertCount}; server decoder ${s.decoder}, encoder ${s.encoder}`,
      );
      expect(bad).toEqual([]);
      expect(s.decoder).toBeGreaterThan(0);
      expect(q.encoderInsertCount).toBeGreaterThan(20); // far more than the table holds: entries were evicted
      expect(q.decoderInsertCount).toBeGreaterThan(0);
    } finally {
      c.destroy();
      await small.close(100);
    }
  }, 60_000);

  it('limits out of range are a typed config error', async () => {
    await expect(
      startH3Server({ cert: certs.certPath, key: certs.keyPath, handler, qpack: { maxTableCapacity: 1 << 21 } }),
    ).rejects.toMatchObject({ code: 'OL_INVALID_CONFIG' });
    await expect(
      connectH3({
        host: '127.0.0.1',
        port: server.address.port,
        servername: 'localhost',
        ca: certs.caPath,
        qpack: { blockedStreams: -1 },
      }),
    ).rejects.toMatchObject({ code: 'OL_INVALID_CONFIG' });
    await expect(
      startH3Server({ cert: certs.certPath, key: certs.keyPath, handler, qpack: { minReferenceSaving: 1.5 } }),
    ).rejects.toMatchObject({ code: 'OL_INVALID_CONFIG', message: /minReferenceSaving/ });
  });
});
