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
        c.setHandler({ onStreamData() {}, onStreamReset() {}, onStopSending() {}, onStreamsAvailable() {}, onConnected() {}, onClosed() {} });
      },
    },
  });
});

afterAll(async () => {
  await server?.close();
});

describe('Agent pool options on h3 connections', () => {
  it('windowSize sets the QUIC stream window and 4× the connection window', async () => {
    const agent = new Agent({ protocol: 'h3', tls: { ca: certs.ca }, maxRetries: 0, pool: { windowSize: 300_000, headersTimeoutMs: 300 } });
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
});
