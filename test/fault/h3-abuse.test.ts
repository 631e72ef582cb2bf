/**
 * Abuse of the connector's HTTP/3 front (issue 19): a client that opens
 * request streams and resets them at once (HTTP/2's rapid reset,
 * CVE-2023-44487, over QUIC) costs the origin at most the reset limit (a
 * request opened and reset in one receive pass never reaches the handler) and
 * loses its connection with H3_EXCESSIVE_LOAD (RFC 9114 §8.1), while other
 * clients are served. Before: 78 of 1,000 reached the origin and the
 * connection stayed up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { startH1Server, type H1Server } from '../../src/transport/h1-server.js';
import { connectH3 } from '../../src/transport/h3.js';
import type { ConnRequest } from '../../src/http/types.js';
import { makeCerts } from '../helpers/certs.js';

const certs = makeCerts();
let origin: H1Server;
let svc: Service;
let quicPort = 0;
const seen: string[] = [];

beforeAll(async () => {
  origin = await startH1Server({
    handler: async (req) => {
      seen.push(req.path);
      await new Promise((r) => setTimeout(r, 100));
      return { status: 200, body: `ok ${req.path}\n` };
    },
  });
  const yaml = `
listeners:
  - { name: q, kind: h3, host: 127.0.0.1, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }
admin: false
logging: { requests: false }
origins:
  o: { url: "http://127.0.0.1:${origin.address.port}", protocol: h1, retries: 0 }
routes: [ { path: /, origin: o } ]
`;
  svc = await Service.start(parseConfig(yaml, 'h3-abuse.yaml', certs.dir), { logDestination: { write: () => {} } });
  quicPort = svc.addresses()['q'] as number;
});

afterAll(async () => {
  await svc?.shutdown(200);
  await origin?.close(100);
});

const get = (path: string, signal?: AbortSignal): ConnRequest => ({ method: 'GET', path, authority: 'localhost', scheme: 'https', headers: [], body: null, ...(signal ? { signal } : {}) });

describe('the h3 front under abuse', () => {
  it('rapid reset over QUIC: of 1,000 requests each reset as it is sent, at most the reset limit reach the origin, the connection is closed with H3_EXCESSIVE_LOAD, others are served', { timeout: 30_000 }, async () => {
    const c = await connectH3({ host: '127.0.0.1', port: quicPort, servername: 'localhost', ca: certs.caPath });
    let closeError: Error | null = null;
    c.on((ev) => { if (ev.type === 'close') closeError = ev.error; });
    const settled: Array<Promise<unknown>> = [];
    try {
      for (let i = 0; i < 1000 && c.state !== 'closed'; i++) {
        const ac = new AbortController();
        const p = c.request(get(`/rr/${i}`, ac.signal)).catch(() => {});
        ac.abort();
        settled.push(p);
        if (i % 50 === 49) await new Promise((r) => setImmediate(r));
      }
      await Promise.allSettled(settled);
      await new Promise((r) => setTimeout(r, 500));
      const reached = seen.filter((p) => p.startsWith('/rr/')).length;
      console.log(`rapid reset over h3: ${reached} of 1000 reached the origin; connection ${c.state}: ${(closeError as Error | null)?.message}`);
      // Each pair that lands in one receive pass never reaches the handler; the others are bounded by the
      // reset limit (100 per second, as on HTTP/2), after which the connection is gone.
      expect(reached).toBeLessThanOrEqual(100);
      expect(c.state).toBe('closed');
      expect(String((closeError as Error | null)?.message)).toMatch(/0x107|EXCESSIVE_LOAD|reset per second/i);
    } finally {
      c.destroy();
    }
    // Another client is served.
    const d = await connectH3({ host: '127.0.0.1', port: quicPort, servername: 'localhost', ca: certs.caPath });
    try {
      const r = await d.request(get('/after'));
      let text = '';
      for await (const x of r.body) text += String(x);
      expect([r.status, text]).toEqual([200, 'ok /after\n']);
    } finally {
      d.destroy();
    }
  });
});
