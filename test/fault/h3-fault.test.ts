/**
 * HTTP/3 faults over real UDP: a hand-driven QUIC peer (our raw driver with
 * crafted HTTP/3 bytes) misbehaves against our HTTP/3 client and server.
 * Every failure must surface as a clear OriginlinkError carrying the RFC
 * code, and the server endpoint must keep serving afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { makeCerts, type TestCerts } from '../helpers/certs.js';
import { QuicEndpoint } from '../../src/quic/endpoint.js';
import { buildConfig } from '../../src/quic/config.js';
import type { QuicConnection } from '../../src/quic/connection.js';
import { connectH3 } from '../../src/connect/h3.js';
import type { H3Server } from '../../src/server/h3.js';
import { startTestH3Server } from '../helpers/h3-server.js';
import { CONTROL_WITH_SETTINGS, rawH3Client, type RawH3Client } from '../helpers/h3-raw-client.js';
import { ErrorCode, OriginlinkError } from '../../src/errors.js';
import { encodeFrame, FrameType } from '../../src/codec/h3frame.js';
import { QpackEncoder } from '../../src/codec/qpack/encoder.js';
import type { ConnRequest } from '../../src/http/types.js';

// Crafted HTTP/3 bytes (RFC 9114 §7.2, RFC 9204 §4.5).
const STATUS_200 = Uint8Array.from([0x01, 0x03, 0x00, 0x00, 0xd9]); // HEADERS: RIC 0, base 0, static idx 25 (:status 200)
const TRUNCATED_HEADERS = Uint8Array.from([0x01, 0x10, 0x00, 0x00, 0xd9]); // claims 16 bytes, carries 3, then FIN
const STATIC_OUT_OF_RANGE = Uint8Array.from([0x01, 0x04, 0x00, 0x00, 0xff, 0x40]); // static index 63+64=127 > 98
const data = (n: number): Uint8Array => {
  const body = randomBytes(n);
  return Uint8Array.from([0x00, 0x40 | (n >> 8), n & 0xff, ...body]); // DATA, 2-byte varint length
};

type Mode = 'truncated' | 'qpack-static' | 'close-mid-body' | 'reset-mid-body';
let mode: Mode = 'truncated';
let certs: TestCerts;
let evil: QuicEndpoint;
let ours: H3Server;

function evilServerHandler(conn: QuicConnection): void {
  conn.setHandler({
    onConnected(early) {
      if (early) return;
      const ctl = conn.openUni();
      if (ctl !== null) conn.send(ctl, CONTROL_WITH_SETTINGS, false);
    },
    onStreamData(id, _d, fin) {
      if (id % 4 !== 0 || !fin) return; // answer client bidi requests once complete
      switch (mode) {
        case 'truncated':
          conn.send(id, TRUNCATED_HEADERS, true);
          break;
        case 'qpack-static':
          conn.send(id, STATIC_OUT_OF_RANGE, true);
          break;
        case 'close-mid-body':
          conn.send(id, STATUS_200, false);
          conn.send(id, data(1000), false);
          setTimeout(() => conn.close(0x102, 'going away mid-stream'), 30);
          break;
        case 'reset-mid-body':
          conn.send(id, STATUS_200, false);
          conn.send(id, data(1000), false);
          setTimeout(() => conn.resetStream(id, 0x102), 30);
          break;
      }
    },
    onStreamReset() {},
    onStopSending() {},
    onStreamsAvailable() {},
    onClosed() {},
  });
}

async function readAll(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

function get(port: number): ConnRequest {
  return { method: 'GET', path: '/', authority: `localhost:${port}`, scheme: 'https', headers: [], body: null };
}

beforeAll(async () => {
  certs = makeCerts();
  evil = await QuicEndpoint.bind({
    host: '127.0.0.1',
    server: {
      config: buildConfig('server', { alpn: ['h3'], cert: certs.certPath, key: certs.keyPath }),
      onConnection: evilServerHandler,
    },
  });
  ours = await startTestH3Server({ handler: () => ({ status: 200, body: 'ok' }) });
});

afterAll(async () => {
  await evil?.close();
  await ours?.close(50);
});

describe('our HTTP/3 client against a misbehaving server', () => {
  it('a truncated HEADERS frame at stream end is H3_FRAME_ERROR', async () => {
    mode = 'truncated';
    const c = await connectH3({
      host: '127.0.0.1',
      port: evil.address.port,
      servername: 'localhost',
      ca: certs.caPath,
    });
    const err = (await c.request(get(evil.address.port)).catch((e: unknown) => e)) as OriginlinkError;
    expect(err).toBeInstanceOf(OriginlinkError);
    expect(err.code).toBe(ErrorCode.H3_ERROR);
    expect(err.details['wireCode']).toBe(0x106);
    expect(err.facts?.responseStarted).toBe(false);
    for (let i = 0; i < 50 && c.state !== 'closed'; i++) await new Promise((r) => setTimeout(r, 10));
    expect(c.state).toBe('closed');
  });

  it('a QPACK reference outside the static table is QPACK_DECOMPRESSION_FAILED', async () => {
    mode = 'qpack-static';
    const c = await connectH3({
      host: '127.0.0.1',
      port: evil.address.port,
      servername: 'localhost',
      ca: certs.caPath,
    });
    const err = (await c.request(get(evil.address.port)).catch((e: unknown) => e)) as OriginlinkError;
    expect(err.code).toBe(ErrorCode.QPACK_ERROR);
    expect(err.details['wireCode']).toBe(0x200);
    c.destroy();
  });

  it('a peer that closes the connection mid-body errors the body stream', async () => {
    mode = 'close-mid-body';
    const c = await connectH3({
      host: '127.0.0.1',
      port: evil.address.port,
      servername: 'localhost',
      ca: certs.caPath,
    });
    const r = await c.request(get(evil.address.port));
    expect(r.status).toBe(200);
    const err = (await readAll(r.body).catch((e: unknown) => e)) as OriginlinkError;
    expect(err).toBeInstanceOf(OriginlinkError);
    expect(err.facts?.responseStarted).toBe(true);
    expect(err.retrySafe).toBe(false);
    expect(err.message).toMatch(/0x102|going away/);
    expect(c.state).toBe('closed');
  });

  it('a peer that resets the stream mid-body errors only that body', async () => {
    mode = 'reset-mid-body';
    const c = await connectH3({
      host: '127.0.0.1',
      port: evil.address.port,
      servername: 'localhost',
      ca: certs.caPath,
    });
    const r = await c.request(get(evil.address.port));
    const err = (await readAll(r.body).catch((e: unknown) => e)) as OriginlinkError;
    expect(err.code).toBe(ErrorCode.STREAM_RESET);
    expect(err.facts?.responseStarted).toBe(true);
    expect(c.isUsable()).toBe(true);
    c.destroy();
  });
});

describe('our HTTP/3 server against a misbehaving client', () => {
  const rawClient = (): Promise<RawH3Client> => rawH3Client(ours.address.port, certs.caPath);

  async function stillServes(): Promise<void> {
    const c = await connectH3({
      host: '127.0.0.1',
      port: ours.address.port,
      servername: 'localhost',
      ca: certs.caPath,
    });
    const r = await c.request(get(ours.address.port));
    expect((await readAll(r.body)).toString()).toBe('ok');
    c.destroy();
  }

  it('closes a connection that sends a truncated frame with H3_FRAME_ERROR, keeps serving', async () => {
    const { conn, closed } = await rawClient();
    const id = conn.openBidi()!;
    conn.send(id, TRUNCATED_HEADERS, true);
    const err = (await closed) as OriginlinkError;
    expect(err.details['wireCode']).toBe(0x106);
    expect(err.details['closedBy']).toBe('peer');
    await stillServes();
  });

  it('closes a connection with a bad QPACK reference with QPACK_DECOMPRESSION_FAILED, keeps serving', async () => {
    const { conn, closed } = await rawClient();
    const id = conn.openBidi()!;
    conn.send(id, STATIC_OUT_OF_RANGE, true);
    const err = (await closed) as OriginlinkError;
    expect(err.details['wireCode']).toBe(0x200);
    await stillServes();
  });

  it('survives a client that closes mid-upload', async () => {
    const { conn, closed } = await rawClient();
    const id = conn.openBidi()!;
    // HEADERS for POST / then part of a body, then the connection goes away.
    const hdr = Uint8Array.from([0x01, 0x05, 0x00, 0x00, 0xd4, 0xd7, 0xc1]); // :method POST(20) :scheme https(23) :path /(1)
    conn.send(id, hdr, false);
    conn.send(id, data(500), false);
    await new Promise((r) => setTimeout(r, 30));
    conn.close(0x10c, 'bye');
    await closed;
    await stillServes();
  });

  it('a client whose SETTINGS_MAX_FIELD_SECTION_SIZE (16) is below any response head: the stream is reset with H3_REQUEST_CANCELLED, also when the handler throws, and the server keeps serving (found by the h3-connection fuzz target)', async () => {
    const errors: unknown[] = [];
    const tiny = await startTestH3Server({
      handler: (req) => {
        if (req.path === '/throw') throw new Error('handler failed on purpose');
        return { status: 200, body: 'ok' };
      },
      onError: (e) => errors.push(e),
    });
    try {
      // Control stream: type 0, SETTINGS { MAX_FIELD_SECTION_SIZE (0x06): 16 } (RFC 9114 §7.2.4.1).
      const client = await rawH3Client(
        tiny.address.port,
        certs.caPath,
        Uint8Array.from([0x00, 0x04, 0x02, 0x06, 0x10]),
      );
      const head = (path: string): Uint8Array =>
        encodeFrame(
          FrameType.HEADERS,
          new QpackEncoder().encode([
            [':method', 'GET'],
            [':scheme', 'https'],
            [':authority', 'localhost'],
            [':path', path],
          ]),
        );
      const ok = client.conn.openBidi()!;
      client.conn.send(ok, head('/ok'), true);
      const boom = client.conn.openBidi()!;
      client.conn.send(boom, head('/throw'), true);
      for (let i = 0; i < 100 && client.resets.size < 2; i++) await new Promise((r) => setTimeout(r, 20));
      // Before the fix the 500 head for the throwing handler was itself over the limit: its sendHeaders threw
      // inside the catch, an unhandled rejection that ends a Node process.
      expect([client.resets.get(ok), client.resets.get(boom)]).toEqual([0x10c, 0x10c]);
      expect(errors.some((e) => /handler failed on purpose/.test(String(e)))).toBe(true);
      const c = await connectH3({
        host: '127.0.0.1',
        port: tiny.address.port,
        servername: 'localhost',
        ca: certs.caPath,
      });
      const r = await c.request(get(tiny.address.port));
      expect((await readAll(r.body)).toString()).toBe('ok');
      c.destroy();
      client.conn.close(0x100, 'done');
    } finally {
      await tiny.close(100);
    }
  });

  it('drops random datagrams at the port and keeps serving', async () => {
    const before = ours.stats();
    const s = dgram.createSocket('udp4');
    for (let i = 0; i < 300; i++) s.send(randomBytes(1 + ((i * 131) % 1500)), ours.address.port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 150));
    s.close();
    const after = ours.stats();
    expect(after.datagramsIn - before.datagramsIn).toBeGreaterThan(250);
    await stillServes();
  });
});
