/**
 * The Agent's pool options reach its HTTP/3 connections: `windowSize` is the
 * QUIC receive window per stream (and 4× for the connection), as it is the
 * h2 window. A raw QUIC server (our endpoint, no HTTP/3) reads the client's
 * transport parameters off the handshake.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCerts, type TestCerts } from '../helpers/certs.js';
import { QuicEndpoint } from '../../src/quic/endpoint.js';
import { buildConfig } from '../../src/quic/config.js';
import type { QuicConnection } from '../../src/quic/connection.js';
import { Agent } from '../../src/agent/agent.js';
import { OriginlinkError } from '../../src/errors.js';
import { startH2Server } from '../../src/server/h2.js';
import { startTestH3Server } from '../helpers/h3-server.js';

let certs: TestCerts;
let server: QuicEndpoint;
const accepted: QuicConnection[] = [];

beforeAll(async () => {
  certs = makeCerts();
  const config = buildConfig('server', { cert: certs.certPath, key: certs.keyPath });
  server = await QuicEndpoint.bind({
    host: '127.0.0.1',
    server: {
      config,
      onConnection(c) {
        accepted.push(c);
        c.setHandler({
          onStreamData() {},
          onStreamReset() {},
          onStopSending() {},
          onStreamsAvailable() {},
          onConnected() {},
          onClosed() {},
        });
      },
    },
  });
});

afterAll(async () => {
  await server?.close();
});

describe('Agent pool options on h3 connections', () => {
  it('windowSize sets the QUIC stream window and 4× the connection window', async () => {
    const agent = new Agent({
      protocol: 'h3',
      tls: { ca: certs.ca },
      maxRetries: 0,
      pool: { windowSize: 300_000, headersTimeoutMs: 300 },
    });
    try {
      // The server never answers: the request times out, the handshake has happened.
      await agent.request({ url: `https://localhost:${server.address.port}/` }).catch(() => null);
      const c = accepted.at(-1)!;
      expect(c.established).toBe(true);
      const peer = c.raw.stats() as unknown as Record<string, number>;
      expect(peer['peerInitialMaxStreamDataBidiLocal']).toBe(300_000);
      expect(peer['peerInitialMaxData']).toBe(1_200_000);
    } finally {
      agent.destroy();
    }
  });

  it('maxHeaderBytes and maxHeaderCount bound a response head from an h3 origin (they were h1 and h2 only) and from an h2 one (the count was h1 only)', async () => {
    const fields = (n: number, size: number): Array<[string, string]> =>
      Array.from({ length: n }, (_, i) => [`x-f${i}`, 'v'.repeat(size)] as [string, string]);
    const handler = (req: { path: string }): { status: number; headers: Array<[string, string]>; body: string } =>
      req.path === '/wide'
        ? { status: 200, headers: fields(60, 10), body: 'w' }
        : req.path === '/large'
          ? { status: 200, headers: fields(20, 400), body: 'l' }
          : { status: 200, headers: [], body: 'ok' };
    const h3 = await startTestH3Server({ handler: handler as never });
    const h2 = await startH2Server({ handler: handler as never, cert: certs.cert, key: certs.key });
    const agents: Agent[] = [];
    try {
      for (const [protocol, port] of [
        ['h3', h3.address.port],
        ['h2', h2.address.port],
      ] as const) {
        const agent = new Agent({
          protocol,
          tls: { ca: certs.ca },
          maxRetries: 0,
          pool: { maxHeaderBytes: 4096, maxHeaderCount: 50, headersTimeoutMs: 2000 },
        });
        agents.push(agent);
        const base = `https://localhost:${port}`;
        expect((await agent.request({ url: `${base}/small` })).status).toBe(200);
        const wide = await agent.request({ url: `${base}/wide` }).catch((e: unknown) => e);
        expect(wide, `${protocol} 60 fields`).toBeInstanceOf(OriginlinkError);
        expect((wide as OriginlinkError).code).toBe('OL_HEADERS_TOO_LARGE');
        // 20 fields of 400 bytes: 8 KiB, over 4096 — h3 tells the origin our SETTINGS_MAX_FIELD_SECTION_SIZE (ours
        // refuses to send such a head), h2 resets the stream past SETTINGS_MAX_HEADER_LIST_SIZE.
        const large = await agent.request({ url: `${base}/large` }).catch((e: unknown) => e);
        expect(large, `${protocol} 8 KiB head`).toBeInstanceOf(OriginlinkError);
        expect((await agent.request({ url: `${base}/small` })).status).toBe(200); // the connection serves on
      }
    } finally {
      for (const a of agents) a.destroy();
      await h3.close(0);
      await h2.close(0);
    }
  });
});
