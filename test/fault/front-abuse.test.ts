/**
 * The failures issue 19 found in the connector, as tests against our own
 * fronts (h1 and h2 servers, one forwarder): a cancelled h2 request always
 * ends (gauge back, a 499 log line, the origin's stream reset); a request
 * body that breaks its framing aborts its upstream request at once; a rapid
 * reset flood costs the origin (almost) nothing; methods keep their case
 * (RFC 9110 §9.1); HTTP/1.0 with Transfer-Encoding is refused (RFC 9112
 * §6.1); a valid request followed by junk gets its answer, then the 400.
 */
import http2 from 'node:http2';
import net from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  encodeHeaders,
  encodeRstStream,
  encodeSettings,
  CLIENT_PREFACE,
  FRAME_HEADER,
} from '../../src/codec/h2frame.js';
import { H2ErrorCode } from '../../src/codec/errors.js';
import { HpackEncoder } from '../../src/codec/hpack/encoder.js';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { startH1Server, type H1Server } from '../../src/server/h1.js';
import { startH2Server, type H2Server } from '../../src/server/h2.js';
import type { RequestHandler } from '../../src/server/request.js';
import { makeCerts } from '../helpers/certs.js';
import { rawFrame } from '../helpers/h2-raw.js';

const certs = makeCerts();
let h2origin: H2Server;
let h1origin: H1Server;
let svc: Service;
let plain = 0;
let h2c = 0;
const seen: Array<{ method: string; path: string; aborted: boolean; bodyError: string | null; at: number }> = [];
const logs: Array<Record<string, unknown>> = [];

const BIG = Buffer.alloc(48 * 1024 * 1024, 0x62);

const handler: RequestHandler = async (req) => {
  if (req.path === '/dr/trickle') {
    // 4 KiB now, 8 KiB 300 ms later (chunked): a client that leaves after the first bytes leaves 8 KiB to drain.
    const body = new Readable({ read() {} });
    body.push(Buffer.alloc(4096, 0x61));
    setTimeout(() => {
      body.push(Buffer.alloc(8192, 0x62));
      body.push(null);
    }, 300);
    return { status: 200, body };
  }
  if (req.method === 'CONNECT')
    seen.push({ method: 'CONNECT', path: req.path, aborted: false, bodyError: null, at: Date.now() });
  if (req.path.startsWith('/nb/big'))
    return { status: 200, headers: [['content-type', 'application/octet-stream']], body: BIG };
  const rec = { method: req.method, path: req.path, aborted: false, bodyError: null as string | null, at: Date.now() };
  seen.push(rec);
  req.onAbort(() => {
    rec.aborted = true;
  });
  if (req.path.startsWith('/h2/slow') || req.path.startsWith('/h1/slow')) {
    // /h2/slow is cancelled by its test: held long enough that no busy machine answers it first.
    await new Promise((r) => setTimeout(r, req.path.startsWith('/h2/') ? 5000 : 500));
    return { status: 200, body: 'slow\n' };
  }
  if (req.path.startsWith('/h1/upload')) {
    try {
      for await (const _ of req.body) {
        /* read */
      }
    } catch (e) {
      rec.bodyError = (e as Error).message;
      rec.at = Date.now() - rec.at;
      throw e;
    }
    rec.at = Date.now() - rec.at;
    return { status: 200, body: 'got it\n' };
  }
  return { status: 200, body: `${req.method} ${req.path}\n` };
};

beforeAll(async () => {
  h2origin = await startH2Server({ handler, cert: certs.cert, key: certs.key });
  h1origin = await startH1Server({ handler });
  const yaml = `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
  - { name: clear2, kind: h2c, host: 127.0.0.1, port: 0 }
admin: false
logging: { requests: true }
limits: { clientSendTimeoutMs: 500 }
origins:
  two: { url: "https://localhost:${h2origin.address.port}", protocol: h2, tls: { ca: ${certs.caPath} }, retries: 0 }
  one: { url: "http://127.0.0.1:${h1origin.address.port}", protocol: h1, retries: 0, timeouts: { headersMs: 30000 } }
  narrow: { url: "http://127.0.0.1:${h1origin.address.port}", protocol: h1, retries: 0, pool: { maxConnections: 2 } }
  drip: { url: "http://127.0.0.1:${h1origin.address.port}", protocol: h1, retries: 0 }
routes:
  - { path: /dr, origin: drip }
  - { path: /h2, origin: two }
  - { path: /h1, origin: one }
  - { path: /nb, origin: narrow }
`;
  svc = await Service.start(parseConfig(yaml, 'abuse.yaml', certs.dir), {
    logDestination: {
      write: (line: string) => {
        logs.push(JSON.parse(line));
      },
    },
  });
  plain = svc.addresses()['plain'] as number;
  h2c = svc.addresses()['clear2'] as number;
});

afterAll(async () => {
  await svc?.shutdown(200);
  await h2origin?.close(100);
  await h1origin?.close(100);
});

async function until(ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

function raw(port: number, bytes: string | Buffer, ms = 3000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    const t = setTimeout(() => {
      s.destroy();
      resolve({ text: Buffer.concat(got).toString('latin1'), closed: false });
    }, ms);
    s.on('data', (d) => got.push(d));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(t);
      resolve({ text: Buffer.concat(got).toString('latin1'), closed: true });
    });
    s.write(bytes);
  });
}

/** The server's frames (RFC 9113 §4.1) in what a raw client read: streams reset (and their codes), streams answered, GOAWAY's code. */
function walk(text: string): { resets: Map<number, number>; answered: Set<number>; goaway: number | null } {
  const bytes = Buffer.from(text, 'latin1');
  const resets = new Map<number, number>();
  const answered = new Set<number>();
  let goaway: number | null = null;
  for (let at = 0; at + FRAME_HEADER <= bytes.length; ) {
    // each pass moves on by at least a frame header
    const len = bytes.readUIntBE(at, 3);
    const type = bytes[at + 3] as number;
    const id = bytes.readUInt32BE(at + 5) & 0x7fffffff;
    if (type === 3 && at + 13 <= bytes.length) resets.set(id, bytes.readUInt32BE(at + 9));
    if (type === 1) answered.add(id);
    if (type === 7 && at + 17 <= bytes.length) goaway = bytes.readUInt32BE(at + 13);
    at += FRAME_HEADER + len;
  }
  return { resets, answered, goaway };
}

describe('issue 19 bugs, fixed on our fronts', () => {
  it('cancelled h2 requests with an h2 upstream end: the gauge returns, 499 is logged, the origin sees its stream reset', async () => {
    const before = seen.length;
    const c = http2.connect(`http://127.0.0.1:${h2c}`);
    const streams = Array.from({ length: 5 }, (_, i) => {
      const s = c.request({ ':path': `/h2/slow/${i}` });
      s.on('error', () => {});
      return s;
    });
    // Cancelled once the origin holds all five (a fixed delay raced the upstream connection's setup on a busy machine).
    await until(() => seen.length - before === 5, 5000);
    for (const s of streams) s.close(http2.constants.NGHTTP2_CANCEL);
    await until(() => seen.slice(before).every((r) => r.aborted), 3000);
    await until(() => svc.metrics.inflight === 0, 3000);
    await until(
      () => logs.filter((l) => String(l['path']).startsWith('/h2/slow/') && l['status'] === 499).length === 5,
      3000,
    );
    c.close();
  });

  it('an h2 request body shorter than its content-length aborts the upstream h1 request at once; others are not held up', async () => {
    const c = http2.connect(`http://127.0.0.1:${h2c}`);
    // Past proxy.maxRequestTempFileBytes (1 MiB), so streamed: the origin has the head before the body.
    const s = c.request({ ':method': 'POST', ':path': '/h1/upload', 'content-length': '2000000' });
    s.on('error', () => {});
    // The head first (the origin starts reading the upload), then 5 of the 2,000,000 bytes and the end.
    await until(() => seen.some((r) => r.path === '/h1/upload'), 3000);
    s.end(Buffer.from('12345'));
    await until(() => seen.some((r) => r.path === '/h1/upload' && r.bodyError !== null), 3000);
    const rec = seen.find((r) => r.path === '/h1/upload')!;
    expect(rec.at).toBeLessThan(1500); // the upload's whole life at the origin: aborted at once, not at a 30 s headers timeout
    const t0 = Date.now();
    const r = await fetch(`http://127.0.0.1:${plain}/h1/fast`);
    expect(await r.text()).toBe('GET /h1/fast\n');
    expect(Date.now() - t0).toBeLessThan(1000);
    c.close();
  });

  it('a short body that arrives with its head: the origin sees nothing, or an upload that fails at once', async () => {
    const before = seen.length;
    const c = http2.connect(`http://127.0.0.1:${h2c}`);
    const s = c.request({ ':method': 'POST', ':path': '/h1/upload/short', 'content-length': '10' });
    s.on('error', () => {});
    s.end(Buffer.from('12345'));
    await new Promise((r) => s.on('close', r));
    c.close();
    await new Promise((r) => setTimeout(r, 300));
    // In one read (the usual case) the stream is reset before its handler runs; split across reads, the upload fails.
    expect(seen.slice(before).every((r) => r.bodyError !== null)).toBe(true);
  });

  it('rapid reset: 1,000 HEADERS + RST_STREAM pairs cost the origin (almost) nothing, and the connection gets GOAWAY', async () => {
    const before = seen.filter((r) => r.path.startsWith('/h2/rr')).length;
    const enc = new HpackEncoder();
    const frames: Uint8Array[] = [CLIENT_PREFACE, encodeSettings([])];
    for (let i = 0, id = 1; i < 1000; i++, id += 2) {
      frames.push(
        ...encodeHeaders(
          id,
          enc.encode([
            [':method', 'GET'],
            [':scheme', 'http'],
            [':authority', 'x'],
            [':path', `/h2/rr/${i}`],
          ]),
          true,
          16_384,
        ),
      );
      frames.push(encodeRstStream(id, H2ErrorCode.CANCEL));
    }
    const r = await raw(h2c, Buffer.concat(frames), 3000);
    expect(r.closed).toBe(true);
    await new Promise((res) => setTimeout(res, 300));
    const reached = seen.filter((x) => x.path.startsWith('/h2/rr')).length - before;
    expect(reached).toBeLessThanOrEqual(10);
    const ok = await fetch(`http://127.0.0.1:${plain}/h2/after`);
    expect(ok.status).toBe(200);
  });

  it('Expect: 100-continue: no 100 for a request refused before its body is wanted (404 here); a routed one gets its 100, then its answer', async () => {
    // Before: the 100 went out with the head parsed, the 404 (or 413) after it, and the client sent its body for nothing.
    const refused = await raw(
      plain,
      'POST /nowhere HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 4000000\r\n\r\n',
      1500,
    );
    expect(refused.text).toMatch(/^HTTP\/1\.1 404 /);
    expect(refused.text).not.toContain('100 Continue');
    const s = net.connect(plain, '127.0.0.1');
    try {
      let text = '';
      s.on('data', (d: Buffer) => {
        text += d.toString('latin1');
      });
      s.write('POST /h1/cont HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n');
      await until(() => text.includes('\r\n\r\n'));
      expect(text).toBe('HTTP/1.1 100 Continue\r\n\r\n');
      s.write('hello');
      await until(() => /\r\n\r\n[^]*POST \/h1\/cont/.test(text.slice(25)));
      expect(text.slice(25)).toMatch(/^HTTP\/1\.1 200 /);
    } finally {
      s.destroy();
    }
  });

  it('methods keep their case end to end (a `get` is not a GET)', async () => {
    const c = http2.connect(`http://127.0.0.1:${h2c}`);
    const s = c.request({ ':method': 'get', ':path': '/h2/case' });
    let body = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      body += d;
    });
    await new Promise((r) => s.on('end', r));
    c.close();
    expect(body).toBe('get /h2/case\n');
  });

  it('a client that leaves with 8 KiB of an h1 response still to come: the rest is drained, the origin connection kept for the next request', async () => {
    expect(await (await fetch(`http://127.0.0.1:${plain}/dr/small`)).text()).toBe('GET /dr/small\n');
    const drip = (): { open: number; opened: number } =>
      svc.summary().find((o) => o.origin === 'drip') as { open: number; opened: number };
    expect(drip()).toMatchObject({ open: 1, opened: 1 });
    await new Promise<void>((resolve) => {
      const s = net.connect(plain, '127.0.0.1', () => s.write('GET /dr/trickle HTTP/1.1\r\nhost: x\r\n\r\n'));
      s.on('error', () => {});
      s.once('data', () => {
        s.destroy();
        resolve();
      }); // the head and the first 4 KiB
    });
    await until(() => logs.some((l) => l['path'] === '/dr/trickle' && l['status'] === 499));
    await new Promise((r) => setTimeout(r, 600)); // the rest came 300 ms after the first bytes
    expect(await (await fetch(`http://127.0.0.1:${plain}/dr/small?again`)).text()).toBe('GET /dr/small?again\n');
    expect(logs.find((l) => l['path'] === '/dr/small?again')).toMatchObject({ status: 200, reused: true });
    // Closed on the client's leaving, the next request would have dialled a second connection.
    expect(drip()).toMatchObject({ open: 1, opened: 1 });
  });

  it('clients that stop reading hold no origin connection (their responses go to temporary files) and are cut after clientSendTimeoutMs; a 499 is logged; others get through', async () => {
    const stalled: net.Socket[] = [];
    for (let i = 0; i < 3; i++) {
      const s = net.connect(plain, '127.0.0.1', () => s.write(`GET /nb/big/${i} HTTP/1.1\r\nhost: x\r\n\r\n`));
      s.on('error', () => {});
      s.pause(); // never reads: the kernel buffers fill, then our writes stall
      stalled.push(s);
    }
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    const r = await fetch(`http://127.0.0.1:${plain}/nb/small`);
    expect(await r.text()).toBe('GET /nb/small\n');
    expect(Date.now() - t0).toBeLessThan(3000);
    await until(
      () => logs.filter((l) => String(l['path']).startsWith('/nb/big/') && l['status'] === 499).length >= 2,
      5000,
    );
    for (const s of stalled) s.destroy();
  });

  it('an h2 client that keeps its window shut: the stream is reset after clientSendTimeoutMs, the origin connection freed', async () => {
    const c = http2.connect(`http://127.0.0.1:${h2c}`, { settings: { initialWindowSize: 0 } });
    const streams = [0, 1].map((i) => {
      const s = c.request({ ':path': `/nb/big/h2-${i}` });
      s.on('error', () => {});
      return new Promise<number | undefined>((r) => s.on('close', () => r(s.rstCode)));
    });
    const codes = await Promise.all(streams);
    expect(codes).toEqual([http2.constants.NGHTTP2_CANCEL, http2.constants.NGHTTP2_CANCEL]);
    const r = await fetch(`http://127.0.0.1:${plain}/nb/small2`);
    expect(r.status).toBe(200);
    c.close();
  });

  it('HTTP/1.0 with Transfer-Encoding is refused (400) and never forwarded', async () => {
    const before = seen.length;
    const r = await raw(plain, 'POST /h1/te10 HTTP/1.0\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n');
    expect(r.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(seen.length).toBe(before);
  });

  it('a field value with a control character never reaches the origin: 400 over HTTP/1.1, a reset stream over HTTP/2 (the connection serves on)', async () => {
    // The forwarder does not check values itself (ServerRequest.headers): the servers' refusals are all there is.
    const before = seen.length;
    const r1 = await raw(plain, 'GET /h1/ctl HTTP/1.1\r\nhost: x\r\nx-bad: a\x01b\r\n\r\n');
    expect(r1.text).toMatch(/^HTTP\/1\.1 400 /);
    const enc = new HpackEncoder();
    const frames: Uint8Array[] = [CLIENT_PREFACE, encodeSettings([])];
    const req = (id: number, path: string, extra: Array<[string, string]>): void => {
      frames.push(
        ...encodeHeaders(
          id,
          enc.encode([[':method', 'GET'], [':scheme', 'http'], [':authority', 'x'], [':path', path], ...extra]),
          true,
          16_384,
        ),
      );
    };
    req(1, '/h2/ctl', [['x-bad', 'a\x01b']]);
    req(3, '/h2/ctl', [['x-bad', 'a\x7fb']]);
    req(5, '/h2/ctl-ok', []);
    const r2 = await raw(h2c, Buffer.concat(frames), 1500);
    // Streams 1 and 3 reset with PROTOCOL_ERROR, stream 5 answered.
    const w = walk(r2.text);
    expect(w.resets.get(1)).toBe(H2ErrorCode.PROTOCOL_ERROR);
    expect(w.resets.get(3)).toBe(H2ErrorCode.PROTOCOL_ERROR);
    expect(w.answered.has(5)).toBe(true);
    expect(seen.slice(before).map((x) => x.path)).toEqual(['/h2/ctl-ok']);
  });

  describe('HTTP/2 front review (2026-11-25), each reproduced first', () => {
    const get = (
      enc: HpackEncoder,
      id: number,
      path: string,
      extra: Array<[string, string]> = [],
      method = 'GET',
    ): Uint8Array[] =>
      encodeHeaders(
        id,
        enc.encode([[':method', method], [':scheme', 'http'], [':authority', 'x'], [':path', path], ...extra]),
        true,
        16_384,
      );

    it('a frame that breaks only its stream’s rule costs only that stream: the frames before and after it in the same read are handled (RFC 9113 §5.4.2)', async () => {
      const before = seen.length;
      const enc = new HpackEncoder();
      const frames: Uint8Array[] = [CLIENT_PREFACE, encodeSettings([])];
      frames.push(...get(enc, 1, '/h2/mixed-1', [['x-tag', 'indexed']])); // x-tag enters both HPACK tables
      frames.push(rawFrame(2, 0, 3, new Uint8Array(4))); // PRIORITY of 4 bytes: FRAME_SIZE_ERROR on stream 3
      frames.push(rawFrame(8, 0, 1, new Uint8Array(4))); // WINDOW_UPDATE of 0 on stream 1: PROTOCOL_ERROR on stream 1
      frames.push(...get(enc, 5, '/h2/mixed-5', [['x-tag', 'indexed']])); // refers to the table entry
      const w = walk((await raw(h2c, Buffer.concat(frames), 1500)).text);
      expect(w.goaway).toBeNull();
      expect(w.resets.get(3)).toBe(H2ErrorCode.FRAME_SIZE_ERROR);
      expect(w.resets.get(1)).toBe(H2ErrorCode.PROTOCOL_ERROR);
      expect(w.answered.has(5)).toBe(true);
      expect(seen.slice(before).map((x) => x.path)).toContain('/h2/mixed-5');
    });

    it('resets the client makes us send count as its own (MadeYouReset, CVE-2025-8671): GOAWAY ENHANCE_YOUR_CALM, the origin (almost) untouched', async () => {
      const before = seen.filter((r) => r.path.startsWith('/h2/myr')).length;
      const enc = new HpackEncoder();
      const frames: Uint8Array[] = [CLIENT_PREFACE, encodeSettings([])];
      for (let i = 0, id = 1; i < 1000; i++, id += 2) {
        frames.push(...get(enc, id, `/h2/myr/${i}`));
        frames.push(rawFrame(8, 0, id, new Uint8Array(4))); // WINDOW_UPDATE 0: a stream error of the client's making
      }
      const r = await raw(h2c, Buffer.concat(frames), 3000);
      expect(walk(r.text).goaway).toBe(H2ErrorCode.ENHANCE_YOUR_CALM);
      expect(r.closed).toBe(true);
      await new Promise((res) => setTimeout(res, 300));
      expect(seen.filter((x) => x.path.startsWith('/h2/myr')).length - before).toBeLessThanOrEqual(10);
    });

    it('frames on a stream the client reset, answered with RST_STREAM each, are counted too (CVE-2019-9514’s shape): GOAWAY', async () => {
      const enc = new HpackEncoder();
      const frames: Uint8Array[] = [
        CLIENT_PREFACE,
        encodeSettings([]),
        ...encodeHeaders(
          1,
          enc.encode([
            [':method', 'POST'],
            [':scheme', 'http'],
            [':authority', 'x'],
            [':path', '/h2/rst-then-data'],
          ]),
          false,
          16_384,
        ),
      ];
      frames.push(encodeRstStream(1, H2ErrorCode.CANCEL));
      for (let i = 0; i < 5000; i++) frames.push(rawFrame(0, 0, 1, Uint8Array.of(0x61)));
      const r = await raw(h2c, Buffer.concat(frames), 3000);
      const w = walk(r.text);
      expect(w.goaway).toBe(H2ErrorCode.ENHANCE_YOUR_CALM);
      expect(r.closed).toBe(true);
    });

    it('malformed requests never reach the origin (RFC 9113 §8.1.1, §8.2.1, §8.3.1): whitespace or a fragment in :path, a :method that is no token, an :authority with userinfo, a value with edge whitespace', async () => {
      const before = seen.length;
      const enc = new HpackEncoder();
      const frames: Uint8Array[] = [CLIENT_PREFACE, encodeSettings([])];
      frames.push(...get(enc, 1, '/h2/a\tHTTP/1.0'));
      frames.push(...get(enc, 3, '/h2/x?y=1 z'));
      frames.push(...get(enc, 5, '/h2/a#frag'));
      frames.push(...get(enc, 7, '/h2/m', [], 'G(E)T'));
      frames.push(
        ...encodeHeaders(
          9,
          enc.encode([
            [':method', 'GET'],
            [':scheme', 'http'],
            [':authority', 'user@x'],
            [':path', '/h2/userinfo'],
          ]),
          true,
          16_384,
        ),
      );
      frames.push(...get(enc, 11, '/h2/ws', [['x-v', ' padded ']]));
      frames.push(...get(enc, 13, '/h2/fine'));
      const w = walk((await raw(h2c, Buffer.concat(frames), 1500)).text);
      for (const id of [1, 3, 5, 7, 9, 11]) expect(w.resets.get(id), `stream ${id}`).toBe(H2ErrorCode.PROTOCOL_ERROR);
      expect(w.answered.has(13)).toBe(true);
      expect(w.goaway).toBeNull();
      expect(seen.slice(before).map((x) => x.path)).toEqual(['/h2/fine']);
    });

    it('a plain CONNECT (no :protocol) is refused with 400 on the h2 front as on the h1 front, never forwarded', async () => {
      const before = seen.length;
      const enc = new HpackEncoder();
      const frames: Uint8Array[] = [CLIENT_PREFACE, encodeSettings([])];
      frames.push(
        ...encodeHeaders(
          1,
          enc.encode([
            [':method', 'CONNECT'],
            [':authority', 'h1.test:443'],
          ]),
          false,
          16_384,
        ),
      );
      const r = await raw(h2c, Buffer.concat(frames), 1000);
      expect(r.text).toMatch(/CONNECT is not supported/);
      const h1 = await raw(plain, 'CONNECT h1.test:443 HTTP/1.1\r\nhost: h1.test:443\r\n\r\n');
      expect(h1.text).toMatch(/^HTTP\/1\.1 400 /);
      expect(seen.slice(before).filter((x) => x.method === 'CONNECT')).toEqual([]);
    });
  });

  it('a valid POST followed by junk: the POST’s answer first, then 400, then the connection closes', async () => {
    const r = await raw(
      plain,
      'POST /h1/echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nokGARBAGE\x01 / HTTP/1.1\r\n\r\n',
    );
    expect(r.text).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*POST \/h1\/echo\n[\s\S]*HTTP\/1\.1 400 Bad Request\r\n/);
    expect(r.closed).toBe(true);
  });
});

describe('limits.maxUpstreamPerClient', () => {
  it('one h2 client with 16 streams has at most 4 upstream at a time; another client is not held up; a waiting stream the client cancels never reaches the origin', {
    timeout: 20_000,
  }, async () => {
    const yaml = `
listeners: [ { name: clear2, kind: h2c, host: 127.0.0.1, port: 0 } ]
admin: false
logging: { requests: true }
limits: { maxUpstreamPerClient: 4 }
origins:
  one: { url: "http://127.0.0.1:${h1origin.address.port}", protocol: h1, retries: 0 }
routes: [ { path: /h1, origin: one } ]
`;
    const mine: Array<Record<string, unknown>> = [];
    const s = await Service.start(parseConfig(yaml, 'slots.yaml', certs.dir), {
      logDestination: {
        write: (line: string) => {
          mine.push(JSON.parse(line));
        },
      },
    });
    const port = s.addresses()['clear2'] as number;
    const a = http2.connect(`http://127.0.0.1:${port}`);
    const b = http2.connect(`http://127.0.0.1:${port}`);
    const get = (
      c: http2.ClientHttp2Session,
      path: string,
    ): { done: Promise<number>; stream: http2.ClientHttp2Stream } => {
      const stream = c.request({ ':path': path });
      const done = new Promise<number>((resolve) => {
        let status = 0;
        stream.on('response', (h) => {
          status = Number(h[':status']);
        });
        stream.on('data', () => {});
        stream.on('close', () => resolve(status));
        stream.on('error', () => {});
      });
      stream.end();
      return { done, stream };
    };
    try {
      const tag = `slots${Date.now()}`;
      const t0 = Date.now();
      const reqs = Array.from({ length: 16 }, (_, i) => get(a, `/h1/slow/${tag}/a${i}`));
      await until(() => seen.filter((x) => x.path.includes(`${tag}/a`)).length >= 4);
      await new Promise((r) => setTimeout(r, 100));
      // Four at the origin, twelve waiting at the front.
      expect(seen.filter((x) => x.path.includes(`${tag}/a`)).length).toBe(4);
      // Client B is another connection: its request goes at once (one origin round, not four).
      const tb = Date.now();
      expect(await get(b, `/h1/slow/${tag}/b0`).done).toBe(200);
      expect(Date.now() - tb).toBeLessThan(1200);
      // Two of A's waiting streams are cancelled: they never reach the origin, and are logged as 499.
      reqs[15]!.stream.close(http2.constants.NGHTTP2_CANCEL);
      reqs[14]!.stream.close(http2.constants.NGHTTP2_CANCEL);
      const statuses = await Promise.all(reqs.map((r) => r.done));
      expect(statuses.filter((x) => x === 200).length).toBe(14);
      const atOrigin = seen.filter((x) => x.path.includes(`${tag}/a`));
      expect(atOrigin.map((x) => x.path).sort()).toEqual(
        Array.from({ length: 14 }, (_, i) => `/h1/slow/${tag}/a${i}`).sort(),
      );
      // Never more than four at once: 14 requests of 500 ms in rounds of four take at least four rounds.
      expect(Date.now() - t0).toBeGreaterThanOrEqual(4 * 500 - 50);
      const starts = atOrigin.map((x) => x.at).sort((p, q) => p - q);
      for (let i = 4; i < starts.length; i++) expect(starts[i]! - starts[i - 4]!).toBeGreaterThanOrEqual(450);
      await until(
        () => mine.filter((l) => l['status'] === 499 && String(l['path']).includes(`${tag}/a1`)).length === 2,
      );
      expect(mine.some((l) => typeof l['clientWaitMs'] === 'number' && l['status'] === 200)).toBe(true);
    } finally {
      a.close();
      b.close();
      await s.shutdown(200);
    }
  });
});

describe('proxy.responseBufferBytes', () => {
  it('a response that fits the buffer is read whole from the origin: a client that does not read holds no origin connection, and still gets every byte later', {
    timeout: 30_000,
  }, async () => {
    const yaml = `
listeners: [ { name: plain, kind: http, host: 127.0.0.1, port: 0 } ]
admin: false
logging: { requests: false }
limits: { clientSendTimeoutMs: 60000 }
proxy: { responseBufferBytes: 67108864 }
origins:
  narrow: { url: "http://127.0.0.1:${h1origin.address.port}", protocol: h1, retries: 0, pool: { maxConnections: 1 } }
routes: [ { path: /nb, origin: narrow } ]
`;
    const s = await Service.start(parseConfig(yaml, 'buffer.yaml', certs.dir), { logDestination: { write: () => {} } });
    const port = s.addresses()['plain'] as number;
    const got: Buffer[] = [];
    const stalled = net.connect(port, '127.0.0.1', () =>
      stalled.write('GET /nb/big/buffered HTTP/1.1\r\nhost: x\r\n\r\n'),
    );
    stalled.on('error', () => {});
    stalled.on('data', (d) => got.push(d));
    stalled.pause(); // reads nothing: the kernel buffers fill (a few MiB), the rest waits in the connector's buffer
    try {
      await new Promise((r) => setTimeout(r, 500));
      // The only origin connection is free again: 48 MiB were read into the buffer without the client.
      const t0 = Date.now();
      const r = await fetch(`http://127.0.0.1:${port}/nb/small-after-buffer`);
      expect(await r.text()).toBe('GET /nb/small-after-buffer\n');
      expect(Date.now() - t0).toBeLessThan(3000);
      // The slow client then reads its whole response.
      stalled.resume();
      await until(() => Buffer.concat(got).length >= BIG.length, 15_000);
      const all = Buffer.concat(got);
      const body = all.subarray(all.indexOf('\r\n\r\n') + 4);
      expect(body.length).toBe(BIG.length);
      expect(body.equals(BIG)).toBe(true);
    } finally {
      stalled.destroy();
      await s.shutdown(200);
    }
  });
});
