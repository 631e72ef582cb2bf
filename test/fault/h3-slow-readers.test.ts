/**
 * A few slow-reading HTTP/3 clients never lock other clients out (issue 54, finding 7). Each attacker connection
 * opens 100 requests of 2 MB with stream windows of 1 KiB that it never opens (it stops reading the streams). Before:
 * the server read each response ahead up to 256 KiB per stream, whatever the client's flow control took (100 MiB
 * for four such connections), spent the listener's memory budget and refused every new client. Now what a
 * connection holds queued is bounded (src/wire/h3-body.ts: 2 MiB a connection above 16 KiB a stream) and the
 * response source is paced instead; a client opening a fresh connection every 250 ms is served each time.
 */
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeFrame, FrameType } from '../../src/codec/h3frame.js';
import { QpackEncoder } from '../../src/codec/qpack/encoder.js';
import { connectH3 } from '../../src/connect/h3.js';
import type { H3Server } from '../../src/server/h3.js';
import { startH3Server } from '../../src/server/h3.js';
import { makeCerts } from '../helpers/certs.js';
import { rawH3Client, type RawH3Client, CONTROL_WITH_SETTINGS } from '../helpers/h3-raw-client.js';

const certs = makeCerts();
let srv: H3Server;
const CHUNK = Buffer.alloc(16 * 1024, 0x61);

/** `/big`: 2 MB made as it is read (what the server holds is what it read ahead); anything else: a line. */
function bigOrOk(req: { path: string }): { status: number; body: string | Readable } {
  if (req.path !== '/big') return { status: 200, body: 'ok\n' };
  return {
    status: 200,
    body: Readable.from(
      (function* () {
        for (let i = 0; i < 128; i++) yield CHUNK;
      })(),
    ),
  };
}

beforeAll(async () => {
  srv = await startH3Server({
    host: '127.0.0.1',
    cert: certs.certPath,
    key: certs.keyPath,
    memoryBudgetBytes: 32 * 1024 * 1024,
    handler: bigOrOk,
  });
});
afterAll(async () => {
  await srv?.close(50);
});

const HEAD = encodeFrame(
  FrameType.HEADERS,
  new QpackEncoder({ maxTableCapacity: 0 }).encode([
    [':method', 'GET'],
    [':scheme', 'https'],
    [':authority', 'localhost'],
    [':path', '/big'],
  ]),
);

/** `n` connections from `from`, each opening 100 GETs of /big whose 1 KiB windows it never opens. */
async function attack(server: H3Server, n: number, from: string): Promise<RawH3Client[]> {
  const attackers: RawH3Client[] = [];
  for (let c = 0; c < n; c++) {
    const raw = await rawH3Client(
      server.address.port,
      certs.caPath,
      CONTROL_WITH_SETTINGS,
      { maxStreamData: 1024 },
      from,
    );
    attackers.push(raw);
    for (let i = 0; i < 100; i++) {
      const id = raw.conn.openBidi();
      if (id === null) break;
      raw.conn.send(id, HEAD, true);
      raw.conn.pauseStream(id); // never read: its window stays at 1 KiB
    }
  }
  return attackers;
}

/** A fresh connection (from 127.0.0.1) and a GET every 250 ms, 16 times: the times of those served, the failures. */
async function monitor(server: H3Server, each?: () => void): Promise<{ served: number[]; failed: string[] }> {
  const served: number[] = [];
  const failed: string[] = [];
  for (let i = 0; i < 16; i++) {
    await new Promise((r) => setTimeout(r, 250));
    each?.();
    const t0 = performance.now();
    try {
      const c = await connectH3({
        host: '127.0.0.1',
        port: server.address.port,
        servername: 'localhost',
        ca: certs.caPath,
      });
      const r = await c.request({
        method: 'GET',
        path: '/small',
        authority: 'localhost',
        scheme: 'https',
        headers: [],
        body: null,
      });
      let text = '';
      for await (const x of r.body) text += String(x);
      c.destroy();
      if (text !== 'ok\n') failed.push(`body ${text}`);
      served.push(performance.now() - t0);
    } catch (e) {
      failed.push(`${(e as { code?: string }).code ?? ''} ${(e as Error).message}`);
    }
  }
  return { served, failed };
}

describe('slow-reading h3 clients', () => {
  it('four connections × 100 streams of 2 MB with 1 KiB windows never opened: queued bytes stay bounded, a new client each 250 ms is served within 1 s', {
    timeout: 30_000,
  }, async () => {
    const attackers = await attack(srv, 4, '127.0.0.1');
    let maxQueued = 0;
    let m: { served: number[]; failed: string[] };
    try {
      m = await monitor(srv, () => {
        maxQueued = Math.max(maxQueued, srv.queuedBytes);
      });
    } finally {
      for (const a of attackers) a.conn.close(0x100, 'done');
    }
    expect(m.failed).toEqual([]);
    expect(Math.max(...m.served)).toBeLessThan(1000);
    // Per connection: 2 MiB, plus what each stream may keep (16 KiB and the chunk that crossed it), plus one stream's 256 KiB.
    expect(maxQueued).toBeLessThan(4 * (2 * 1024 * 1024 + 100 * 48 * 1024 + 320 * 1024));
  });

  it('one address past its share of the memory budget is refused alone: others are admitted while it holds more than the whole budget', {
    timeout: 30_000,
  }, async () => {
    // 6 MiB budget, swept every 500 ms; the attacker's four connections hold more than that from 127.0.0.2.
    const small = await startH3Server({
      host: '127.0.0.1',
      cert: certs.certPath,
      key: certs.keyPath,
      memoryBudgetBytes: 6 * 1024 * 1024,
      headersTimeoutMs: 1000,
      handler: bigOrOk,
    });
    const attackers = await attack(small, 4, '127.0.0.2');
    let maxQueued = 0;
    let m: { served: number[]; failed: string[] };
    try {
      m = await monitor(small, () => {
        maxQueued = Math.max(maxQueued, small.queuedBytes);
      });
    } finally {
      for (const a of attackers) a.conn.close(0x100, 'done');
      await small.close(50);
    }
    expect(maxQueued).toBeGreaterThan(6 * 1024 * 1024);
    expect(m.failed).toEqual([]);
    expect(Math.max(...m.served)).toBeLessThan(1000);
  });
});
