/**
 * A burst to an HTTP/2 origin with a small SETTINGS_MAX_CONCURRENT_STREAMS (issue 54, finding 3). The origin is
 * node:http2 (nghttp2), which refuses a stream over its limit with RST_STREAM(REFUSED_STREAM). Before: a new
 * connection took streams at an assumed 100 until the origin's SETTINGS came, the extra ones were refused, and
 * their retries met new connections refused the same way — 12 of 20 requests failed with OL_STREAM_RESET. Now a
 * new connection carries one stream until the SETTINGS arrive (RFC 9113 §5.1.2), and a refused stream goes back to
 * its queue without spending a retry (RFC 9113 §8.7).
 */
import http2 from 'node:http2';
import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../src/index.js';
import { makeCerts } from '../helpers/certs.js';

const certs = makeCerts();
let server: http2.Http2SecureServer | null = null;
let agent: Agent | null = null;

afterEach(async () => {
  await agent?.close();
  agent = null;
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = null;
});

/** An origin that allows `limit` streams and answers each after 20 ms. */
async function origin(limit: number): Promise<{ url: string }> {
  server = http2.createSecureServer({ cert: certs.cert, key: certs.key, settings: { maxConcurrentStreams: limit } });
  server.on('stream', (stream) => {
    setTimeout(() => {
      if (!stream.destroyed) {
        stream.respond({ ':status': 200 });
        stream.end('ok');
      }
    }, 20);
  });
  await new Promise<void>((r) => (server as http2.Http2SecureServer).listen(0, '127.0.0.1', r));
  return { url: `https://127.0.0.1:${((server as http2.Http2SecureServer).address() as net.AddressInfo).port}/` };
}

/** 20 requests at once through `agent`, each read whole: how each settled. */
function burst(url: string): Promise<Array<PromiseSettledResult<number>>> {
  return Promise.allSettled(
    Array.from({ length: 20 }, () =>
      (agent as Agent).request({ url }).then(async (r) => {
        await r.text();
        return r.status;
      }),
    ),
  );
}

describe('HTTP/2: a burst to an origin with a small stream limit', () => {
  it.each([1, 2])('limit %i: one warm request, then 20 at once: 20 of 20 answered', async (limit) => {
    const o = await origin(limit);
    agent = new Agent({ protocol: 'h2', tls: { ca: certs.ca } });
    expect((await agent.request({ url: o.url })).status).toBe(200);
    const res = await burst(o.url);
    const failed = res
      .filter((r) => r.status === 'rejected')
      .map((r) => String((r as PromiseRejectedResult).reason?.code));
    expect(failed, failed.join(', ')).toEqual([]);
  });

  it('from cold, 20 at once to a limit of 2: every new connection waits for the SETTINGS before its second stream', async () => {
    const o = await origin(2);
    agent = new Agent({ protocol: 'h2', tls: { ca: certs.ca } });
    const res = await burst(o.url);
    expect(res.filter((r) => r.status === 'rejected')).toEqual([]);
  });

  it('from cold, 20 at once to an origin without a small limit: one connection carries them all (no dial while its SETTINGS are on the way)', async () => {
    const o = await origin(100);
    let sessions = 0;
    (server as http2.Http2SecureServer).on('session', () => {
      sessions++;
    });
    agent = new Agent({ protocol: 'h2', tls: { ca: certs.ca } });
    const res = await burst(o.url);
    expect(res.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(sessions).toBe(1);
  });

  it('an origin that refuses every stream still fails fast: OL_STREAM_RESET after a bounded number of requeues', async () => {
    server = http2.createSecureServer({ cert: certs.cert, key: certs.key });
    let streams = 0;
    server.on('stream', (stream) => {
      streams++;
      stream.on('error', () => {});
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    });
    await new Promise<void>((r) => (server as http2.Http2SecureServer).listen(0, '127.0.0.1', r));
    const url = `https://127.0.0.1:${((server as http2.Http2SecureServer).address() as net.AddressInfo).port}/`;
    agent = new Agent({ protocol: 'h2', tls: { ca: certs.ca } });
    const t0 = performance.now();
    const err = await agent.request({ url }).then(
      () => null,
      (e: unknown) => e as { code: string },
    );
    expect(err?.code).toBe('OL_STREAM_RESET');
    expect(performance.now() - t0).toBeLessThan(5000);
    // 8 requeues (policy.ts MAX_REQUEUES), then the first attempt and its 2 retries: 11 streams.
    expect(streams).toBe(11);
  });
});
