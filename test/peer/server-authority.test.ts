/**
 * One reading of a multiplexed request's pseudo-header fields for our HTTP/2
 * and HTTP/3 servers (server/request.ts readRequestFields). RFC 9113 §8.3.1
 * and RFC 9114 §4.3.1 say the same about `:authority` and Host: a request
 * may carry either; when both are there they name the same host. Before,
 * the h2 server fell back to Host without `:authority` and the h3 server
 * handed its handler an empty authority.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeHeaders, encodeSettings, CLIENT_PREFACE } from '../../src/codec/h2frame.js';
import { encodeFrame, FrameType } from '../../src/codec/h3frame.js';
import { HpackEncoder } from '../../src/codec/hpack/encoder.js';
import { QpackEncoder } from '../../src/codec/qpack/encoder.js';
import type { HeaderList } from '../../src/http/types.js';
import { startH2Server, type H2Server } from '../../src/server/h2.js';
import { startH3Server, type H3Server } from '../../src/server/h3.js';
import type { ServerRequest } from '../../src/server/request.js';
import { makeCerts } from '../helpers/certs.js';
import { rawH3Client } from '../helpers/h3-raw-client.js';

const certs = makeCerts();
const seen: Array<{ kind: string; path: string; authority: string; scheme: string }> = [];
const handler = (req: ServerRequest): { status: number; body: string } => {
  seen.push({ kind: req.version, path: req.path, authority: req.authority, scheme: req.scheme });
  return { status: 200, body: `${req.authority}\n` };
};
let h2: H2Server;
let h3: H3Server;

beforeAll(async () => {
  h2 = await startH2Server({ handler });
  h3 = await startH3Server({ host: '127.0.0.1', cert: certs.certPath, key: certs.keyPath, handler });
});

afterAll(async () => {
  await h2?.close(100);
  await h3?.close(100);
});

/** One h2c request with exactly these fields; the :status it got, or 'reset' / 'none'. */
async function h2Request(fields: HeaderList): Promise<string> {
  const enc = new HpackEncoder();
  const bytes = Buffer.concat([
    CLIENT_PREFACE,
    encodeSettings([]),
    ...encodeHeaders(1, enc.encode(fields), true, 16_384),
  ]);
  const s = net.connect(h2.address.port, '127.0.0.1');
  let got = Buffer.alloc(0);
  s.on('data', (d: Buffer) => {
    got = Buffer.concat([got, d]);
  });
  s.on('error', () => {});
  s.write(bytes);
  await new Promise((r) => setTimeout(r, 300));
  s.destroy();
  // Walk the frames: HEADERS (0x1) on stream 1 is an answer, RST_STREAM (0x3) a refusal.
  for (let off = 0; off + 9 <= got.length; ) {
    const len = got.readUIntBE(off, 3);
    const type = got[off + 3];
    const id = got.readUInt32BE(off + 5) & 0x7fffffff;
    if (id === 1 && type === 0x1) return 'answered';
    if (id === 1 && type === 0x3) return 'reset';
    off += 9 + len;
  }
  return 'none';
}

/** One h3 request with exactly these fields: answered (bytes came back) or reset. */
async function h3Request(fields: HeaderList): Promise<string> {
  const raw = await rawH3Client(h3.address.port, certs.caPath);
  try {
    const id = raw.conn.openBidi()!;
    raw.conn.send(id, encodeFrame(FrameType.HEADERS, new QpackEncoder({ maxTableCapacity: 0 }).encode(fields)), true);
    const t0 = Date.now();
    while (!raw.resets.has(id) && !(raw.received.get(id) ?? 0) && Date.now() - t0 < 3000)
      await new Promise((r) => setTimeout(r, 20));
    return raw.resets.has(id) ? 'reset' : (raw.received.get(id) ?? 0) > 0 ? 'answered' : 'none';
  } finally {
    raw.conn.close(0x100, 'done');
  }
}

const base = (scheme: string, path: string): HeaderList => [
  [':method', 'GET'],
  [':scheme', scheme],
  [':path', path],
];

describe(':authority and Host, read once for h2 and h3', () => {
  it('Host without :authority: both servers take the authority from Host', async () => {
    expect(await h2Request([...base('http', '/host-only'), ['host', 'example.test:8080']])).toBe('answered');
    expect(await h3Request([...base('https', '/host-only'), ['host', 'example.test:8443']])).toBe('answered');
    const got = seen.filter((s) => s.path === '/host-only').map((s) => [s.kind, s.authority]);
    expect(got).toEqual([
      ['2', 'example.test:8080'],
      ['3', 'example.test:8443'],
    ]);
  });

  it(':authority alone, and both naming the same host: the authority is :authority', async () => {
    expect(
      await h2Request([
        [':method', 'GET'],
        [':scheme', 'http'],
        [':authority', 'a.test'],
        [':path', '/both'],
      ]),
    ).toBe('answered');
    expect(
      await h3Request([
        [':method', 'GET'],
        [':scheme', 'https'],
        [':authority', 'a.test'],
        [':path', '/both'],
        ['host', 'A.TEST:443'],
      ]),
    ).toBe('answered');
    expect(seen.filter((s) => s.path === '/both').map((s) => [s.kind, s.authority, s.scheme])).toEqual([
      ['2', 'a.test', 'http'],
      ['3', 'a.test', 'https'],
    ]);
  });

  it('both present and different, or neither: refused on both, never handed to the handler', async () => {
    const n = seen.length;
    expect(
      await h2Request([
        [':method', 'GET'],
        [':scheme', 'http'],
        [':authority', 'a.test'],
        [':path', '/differ'],
        ['host', 'b.test'],
      ]),
    ).toBe('reset');
    expect(
      await h3Request([
        [':method', 'GET'],
        [':scheme', 'https'],
        [':authority', 'a.test'],
        [':path', '/differ'],
        ['host', 'b.test'],
      ]),
    ).toBe('reset');
    expect(await h2Request(base('http', '/neither'))).toBe('reset');
    expect(await h3Request(base('https', '/neither'))).toBe('reset');
    expect(seen.length).toBe(n);
  });
});
