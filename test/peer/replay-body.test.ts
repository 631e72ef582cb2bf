/**
 * Streamed request bodies sent again after an attempt the origin did not process (RFC 9113 §8.7: a
 * stream refused with REFUSED_STREAM, or above the last stream id of a GOAWAY): the Agent keeps what it
 * read of the body, up to `retryBufferBytes` (agent/replay-body.ts), and the next attempt sends those
 * bytes and then the rest. The origins are Node's own HTTP/2 (nghttp2) over h2c and node:http: each
 * answers with the length and SHA-256 of the body it received, so a byte lost, doubled or reordered
 * across the attempts shows.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { OriginlinkError } from '../../src/errors.js';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';

const CHUNK = 4096;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const digest = (b: Buffer): string => `${b.length} ${createHash('sha256').update(b).digest('hex')}`;

/** The body a test sends: `count` chunks, each its own bytes, a little apart (so an origin can refuse midway). */
function bodyOf(count: number): Buffer {
  return Buffer.concat(Array.from({ length: count }, (_, i) => Buffer.alloc(CHUNK, (i * 7 + 1) & 0xff)));
}
async function* slowly(body: Buffer): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < body.length; off += CHUNK) {
    yield body.subarray(off, off + CHUNK);
    await sleep(3);
  }
}

/** What the h2 origin does with its next request: answer, refuse its stream, or GOAWAY(last id 0), once `after` bytes of it arrived. */
let plan: Array<{ act: 'refuse' | 'goaway'; after: number }> = [];
/** Per stream the origin saw: bytes received and how it ended. */
let streams: Array<{ bytes: number; ended: 'answered' | 'refused' | 'goaway' }> = [];
let sessions = 0;
const live = new Set<http2.ServerHttp2Session>();
let h2: http2.Http2Server;
let h1: http.Server;

beforeAll(async () => {
  h2 = http2.createServer();
  h2.on('session', (ss) => {
    sessions++;
    live.add(ss);
    ss.on('close', () => live.delete(ss));
  });
  h2.on('stream', (stream) => {
    const step = plan.shift() ?? null;
    const seen = { bytes: 0, ended: 'answered' as 'answered' | 'refused' | 'goaway' };
    streams.push(seen);
    const got: Buffer[] = [];
    stream.on('data', (c: Buffer) => {
      got.push(c);
      seen.bytes += c.length;
      if (step && seen.bytes >= step.after && seen.ended === 'answered') {
        if (step.act === 'refuse') {
          seen.ended = 'refused';
          stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        } else {
          seen.ended = 'goaway';
          // RFC 9113 §6.8: last stream id 0, nothing on this connection was processed.
          stream.session?.goaway(http2.constants.NGHTTP2_NO_ERROR, 0);
          stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        }
      }
    });
    stream.on('end', () => {
      if (seen.ended !== 'answered') return;
      stream.respond({ ':status': 200 });
      stream.end(digest(Buffer.concat(got)));
    });
    stream.on('error', () => {});
  });
  h1 = http.createServer((req, res) => {
    const got: Buffer[] = [];
    req.on('data', (c: Buffer) => got.push(c));
    req.on('end', () => res.end(digest(Buffer.concat(got))));
  });
  await Promise.all([
    new Promise<void>((r) => h2.listen(0, '127.0.0.1', r)),
    new Promise<void>((r) => h1.listen(0, '127.0.0.1', r)),
  ]);
});
afterAll(async () => {
  // A node:http2 session that sent GOAWAY stays open after the client's FIN (CLOSE-WAIT): end it here.
  for (const ss of live) ss.destroy();
  await Promise.all([new Promise((r) => h2.close(r)), new Promise((r) => h1.close(r))]);
});
beforeEach(() => {
  plan = [];
  streams = [];
  sessions = 0;
});

const h2Origin = (): string => `http://127.0.0.1:${(h2.address() as AddressInfo).port}`;

describe('Agent: a streamed body sent again after an unprocessed attempt', () => {
  it('refused stream (REFUSED_STREAM) after part of the body: the retry sends every byte once, in order', async () => {
    const agent = new Agent({ protocol: 'h2' });
    try {
      const body = bodyOf(12); // 48 KiB: within the default 256 KiB
      plan = [{ act: 'refuse', after: 2 * CHUNK }];
      const r = await agent.request({ origin: h2Origin(), path: '/up', method: 'POST', body: slowly(body) });
      expect(r.status).toBe(200);
      expect(await r.text()).toBe(digest(body));
      expect(r.attempts).toBe(2);
      expect(streams.map((s) => s.ended)).toEqual(['refused', 'answered']);
      expect(streams[0]!.bytes).toBeGreaterThanOrEqual(2 * CHUNK); // the first attempt did send part of the body
      expect(streams[0]!.bytes).toBeLessThan(body.length);
    } finally {
      await agent.close();
    }
  });

  it('GOAWAY with a lower last stream id: the retry goes on a new connection with the whole body', async () => {
    const agent = new Agent({ protocol: 'h2' });
    try {
      const body = bodyOf(12);
      plan = [{ act: 'goaway', after: 3 * CHUNK }];
      const r = await agent.request({ origin: h2Origin(), path: '/up', method: 'POST', body: slowly(body) });
      expect(r.status).toBe(200);
      expect(await r.text()).toBe(digest(body));
      expect(r.attempts).toBe(2);
      expect(streams.map((s) => s.ended)).toEqual(['goaway', 'answered']);
      expect(sessions).toBe(2);
    } finally {
      await agent.close();
    }
  });

  it('refused twice: the third attempt still has the whole body', async () => {
    const agent = new Agent({ protocol: 'h2' });
    try {
      const body = bodyOf(12);
      plan = [
        { act: 'refuse', after: 2 * CHUNK },
        { act: 'refuse', after: 6 * CHUNK },
      ];
      const r = await agent.request({ origin: h2Origin(), path: '/up', method: 'POST', body: slowly(body) });
      expect(await r.text()).toBe(digest(body));
      expect(r.attempts).toBe(3);
      expect(streams.map((s) => s.ended)).toEqual(['refused', 'refused', 'answered']);
    } finally {
      await agent.close();
    }
  });

  it('a body that outgrew retryBufferBytes before the refusal is not sent again: the refusal is the answer', async () => {
    const agent = new Agent({ protocol: 'h2', retryBufferBytes: CHUNK });
    try {
      plan = [{ act: 'refuse', after: 3 * CHUNK }];
      const err = await agent
        .request({ origin: h2Origin(), path: '/up', method: 'POST', body: slowly(bodyOf(12)) })
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(OriginlinkError);
      expect((err as OriginlinkError).code).toBe('OL_STREAM_RESET');
      expect((err as OriginlinkError).details['attempts']).toBe(1);
      expect(streams).toHaveLength(1);
    } finally {
      await agent.close();
    }
  });

  it('retryBufferBytes 0: streamed bodies are never sent again', async () => {
    const agent = new Agent({ protocol: 'h2', retryBufferBytes: 0 });
    try {
      plan = [{ act: 'refuse', after: CHUNK }];
      await expect(
        agent.request({ origin: h2Origin(), path: '/up', method: 'POST', body: slowly(bodyOf(4)) }),
      ).rejects.toMatchObject({ code: 'OL_STREAM_RESET' });
      expect(streams).toHaveLength(1);
    } finally {
      await agent.close();
    }
  });

  it('rejects a negative or fractional retryBufferBytes', () => {
    expect(() => new Agent({ retryBufferBytes: -1 })).toThrow(/retryBufferBytes/);
    expect(() => new Agent({ retryBufferBytes: 1.5 })).toThrow(/retryBufferBytes/);
  });

  it('large uploads that need no retry arrive whole (h1 and h2, past the bound, with backpressure)', async () => {
    const big = Buffer.concat(Array.from({ length: 256 }, (_, i) => Buffer.alloc(16 * 1024, i))); // 4 MiB
    for (const [protocol, origin] of [
      ['h1', `http://127.0.0.1:${(h1.address() as AddressInfo).port}`],
      ['h2', h2Origin()],
    ] as const) {
      const agent = new Agent({ protocol });
      try {
        async function* chunks(): AsyncGenerator<Uint8Array> {
          for (let off = 0; off < big.length; off += 16 * 1024) yield big.subarray(off, off + 16 * 1024);
        }
        const r = await agent.request({ origin, path: '/big', method: 'PUT', body: chunks() });
        expect(await r.text()).toBe(digest(big));
        expect(r.attempts).toBe(1);
      } finally {
        await agent.close();
      }
    }
  });
});

describe('service: an upload through the front, its h2 origin refusing the first attempt', () => {
  it('is answered by the retry (origins.<name>.retryBufferBytes), and refused with 502 when the field is 0', async () => {
    const svc = await Service.start(
      parseConfig(
        `
listeners: [{ name: plain, kind: http, host: 127.0.0.1, port: 0 }]
admin: false
logging: { requests: false }
origins:
  kept: { url: "${h2Origin()}", protocol: h2 }
  none: { url: "${h2Origin()}", protocol: h2, retryBufferBytes: 0 }
routes:
  - { path: /none/, origin: none }
  - { path: /, origin: kept }
`,
        'test.yaml',
      ),
      { logDestination: { write: () => {} } },
    );
    try {
      const port = svc.addresses()['plain'] as number;
      const body = bodyOf(10);
      const post = (path: string): Promise<{ status: number; text: string; code: string | undefined }> =>
        new Promise((resolve, reject) => {
          const req = http.request(
            { host: '127.0.0.1', port, path, method: 'POST', headers: { 'content-type': 'application/octet-stream' } },
            (res) => {
              const got: Buffer[] = [];
              res.on('data', (c: Buffer) => got.push(c));
              res.on('end', () =>
                resolve({
                  status: res.statusCode as number,
                  text: Buffer.concat(got).toString(),
                  code: res.headers['x-originlink-error'] as string | undefined,
                }),
              );
            },
          );
          req.on('error', reject);
          // Chunked, a piece at a time: the front streams it on (it cannot know the length in advance).
          void (async () => {
            for await (const c of slowly(body)) if (!req.write(c)) await new Promise((r) => req.once('drain', r));
            req.end();
          })();
        });
      plan = [{ act: 'refuse', after: 2 * CHUNK }];
      const ok = await post('/up');
      expect(ok.status).toBe(200);
      expect(ok.text).toBe(digest(body));
      expect(streams.map((s) => s.ended)).toEqual(['refused', 'answered']);

      streams = [];
      plan = [{ act: 'refuse', after: 2 * CHUNK }];
      const refused = await post('/none/up');
      expect(refused.status).toBe(502);
      expect(refused.code).toBe('OL_STREAM_RESET');
      expect(streams).toHaveLength(1);
    } finally {
      await svc.shutdown(1000);
    }
  });
});
