/**
 * Timeouts of ≥ 1 s ride one shared ticker (transport/exchange.ts: no Timer
 * per request on multiplexed connections); they must still fire, at most a
 * tick (250 ms) late, and the idle body deadline must move with each chunk.
 * Origin: node:http2 over TLS, answering per path — silent, a head then
 * silence, or chunks every 600 ms.
 */
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, OriginlinkError } from '../../src/index.js';
import { makeCerts } from '../helpers/certs.js';

const certs = makeCerts();
let origin: http2.Http2SecureServer;
let base = '';
const timers = new Set<NodeJS.Timeout>();
const later = (ms: number, fn: () => void): void => { const t = setTimeout(() => { timers.delete(t); fn(); }, ms); timers.add(t); };

beforeAll(async () => {
  origin = http2.createSecureServer({ cert: certs.cert, key: certs.key });
  origin.on('stream', (s, h) => {
    s.on('error', () => {});
    const path = h[':path'];
    if (path === '/silent') return; // no head, ever
    s.respond({ ':status': 200 });
    if (path === '/stall') { s.write('first'); return; } // a head and one chunk, then nothing
    let n = 0;
    const tick = (): void => { if (s.destroyed) return; s.write(`c${n}`); if (++n < 3) later(600, tick); else s.end(); };
    tick(); // /drip: 3 chunks 600 ms apart, 1.2 s in all
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  base = `https://localhost:${(origin.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const t of timers) clearTimeout(t);
  await new Promise((r) => origin.close(r));
});

describe('exchange deadlines on the shared ticker (h2, 1 s)', () => {
  const agentOf = (): Agent => new Agent({ protocol: 'h2', tls: { ca: certs.ca }, maxRetries: 0, pool: { headersTimeoutMs: 1000, bodyTimeoutMs: 1000 } });

  it('no head: OL_HEADERS_TIMEOUT between 1.0 and 1.4 s', async () => {
    const agent = agentOf();
    try {
      const t0 = performance.now();
      const err = await agent.request({ url: `${base}/silent` }).catch((e: unknown) => e);
      const ms = performance.now() - t0;
      expect(err).toBeInstanceOf(OriginlinkError);
      expect((err as OriginlinkError).code).toBe('OL_HEADERS_TIMEOUT');
      expect(ms).toBeGreaterThanOrEqual(990);
      expect(ms).toBeLessThan(1400);
    } finally {
      await agent.destroy();
    }
  });

  it('a body that stops: OL_BODY_TIMEOUT 1.0–1.4 s after its last chunk; one that drips every 600 ms completes', async () => {
    const agent = agentOf();
    try {
      const r = await agent.request({ url: `${base}/stall` });
      const t0 = performance.now();
      const err = await r.text().catch((e: unknown) => e);
      const ms = performance.now() - t0;
      expect((err as OriginlinkError).code).toBe('OL_BODY_TIMEOUT');
      expect(ms).toBeGreaterThanOrEqual(950);
      expect(ms).toBeLessThan(1400);
      // Idle 600 ms at a time, 1.2 s in all: the deadline follows the chunks.
      expect(await (await agent.request({ url: `${base}/drip` })).text()).toBe('c0c1c2');
    } finally {
      await agent.destroy();
    }
  });
});
