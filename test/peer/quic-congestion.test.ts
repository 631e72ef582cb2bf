/**
 * The QUIC congestion controller is a choice per Agent, per origin and per h3
 * listener (issue 17), and it reaches quiche: through a lossy relay a
 * loss-based controller (cubic) crawls where BBR does not. The default is
 * DEFAULT_CC, chosen with the loss bench (bench/RESULTS.md `loss`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/index.js';
import { DEFAULT_CC } from '../../src/quic/cc.js';
import { quicEngine } from '../../src/quic/quiche.js';
import { parseConfig } from '../../src/service/config.js';
import type { H3Server } from '../../src/server/h3.js';
import type { QuicStatsSnapshot } from '../../src/quic/connection.js';
import { connectH3 } from '../../src/connect/h3.js';
import { makeCerts } from '../helpers/certs.js';
import { startTestH3Server } from '../helpers/h3-server.js';
import { startUdpRelay } from '../helpers/udp-relay.js';
import type { AddressInfo } from 'node:net';

const certs = makeCerts();
let server: H3Server;

beforeAll(async () => {
  server = await startTestH3Server({
    port: 0,
    handler: async (req) => {
      let n = 0;
      for await (const c of req.body) n += (c as Buffer).length;
      return { status: 200, body: `${n}\n` };
    },
  });
});

afterAll(async () => {
  await server?.close(100);
});

describe('QUIC congestion control', () => {
  it('reaches quiche: a 1 MiB response in 1350-byte datagrams through a relay with 50 ms RTT and 2 % loss takes a cubic server several times longer than a BBR one', {
    timeout: 60_000,
  }, async () => {
    // Loss-based controllers shrink their window on each loss (at 2 % random loss they are held near
    // MSS/RTT × 1.22/√p ≈ 230 KB/s, the Mathis bound); BBR follows the measured bandwidth. Datagrams are
    // 1350 bytes as on a real path (on loopback they would be up to 64 KB, and losses 40× rarer per byte).
    const body = Buffer.alloc(1024 * 1024, 0x61);
    const ms: Record<string, number> = {};
    for (const cc of ['cubic', 'bbr'] as const) {
      let conn: { quicStats(): QuicStatsSnapshot } | null = null;
      const origin = await startTestH3Server({
        port: 0,
        quic: { cc, maxUdpPayload: 1350 },
        handler: (req) => {
          conn = req.connection as typeof conn;
          return { status: 200, body };
        },
      });
      const relay = await startUdpRelay(origin.address.port, { delayMs: 25, loss: 0.02 });
      const c = await connectH3({
        host: '127.0.0.1',
        port: (relay.address() as AddressInfo).port,
        servername: 'localhost',
        ca: certs.caPath,
        quic: { maxUdpPayload: 1350 },
        headersTimeoutMs: 50_000,
        bodyTimeoutMs: 50_000,
      });
      try {
        const t0 = performance.now();
        const r = await c.request({
          method: 'GET',
          path: '/down',
          authority: 'localhost',
          scheme: 'https',
          headers: [],
          body: null,
        });
        let n = 0;
        for await (const d of r.body) n += (d as Buffer).length;
        ms[cc] = performance.now() - t0;
        expect(n).toBe(body.length);
        // The handler sees its connection's transport state (what the loss bench traces): the relay's RTT, the losses, the bytes.
        const st = conn!.quicStats();
        expect(st.bytesSent).toBeGreaterThan(body.length);
        expect(st.rttMs).toBeGreaterThanOrEqual(45);
        expect(st.cwnd).toBeGreaterThan(0);
        expect(st.lost).toBeGreaterThan(0);
        // Our engine (this file runs in the default project only) also tells BBR's bandwidth estimate (null for cubic)
        // and the flow-control blocks.
        expect(quicEngine().binding).toBe('originlink-quic');
        if (cc === 'bbr') expect(st.bandwidth).toBeGreaterThan(100_000);
        else expect(st.bandwidth).toBeNull();
        expect(st.flowBlocked).toEqual({ sent: expect.any(Number), received: expect.any(Number) });
      } finally {
        c.destroy();
        relay.close();
        await origin.close(100);
      }
    }
    console.log(`1 MiB response at 2 % loss, 50 ms RTT: ${JSON.stringify(ms)}`);
    // The same controller on both would give about 1×; measured 4.3–5.7× (cubic 2.7–3.3 s, BBR 0.5–0.65 s).
    expect(ms['cubic']).toBeGreaterThan(2 * (ms['bbr'] ?? 0));
  });

  it("the Agent's choice (and the default) is on every h3 connection it opens; an unknown one is a typed error", async () => {
    for (const cc of [undefined, 'bbr', 'reno'] as const) {
      const agent = new Agent({ protocol: 'h3', tls: { ca: certs.ca }, ...(cc ? { quicCongestionControl: cc } : {}) });
      try {
        const r = await agent.request({ url: `https://localhost:${server.address.port}/x` });
        await r.text();
        expect(r.connection.congestionControl).toBe(cc ?? DEFAULT_CC);
      } finally {
        await agent.close();
      }
    }
    expect(() => new Agent({ quicCongestionControl: 'vegas' as never })).toThrow(
      expect.objectContaining({ code: 'OL_INVALID_CONFIG' }),
    );
  });

  it('service config: quic.congestionControl per origin and per h3 listener; a bad value names its field', () => {
    const yaml = (origin: string, listener: string): string => `
listeners:
  - { name: q, kind: h3, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} }${listener} }
origins:
  a: { url: "https://localhost:1"${origin} }
routes: [ { origin: a } ]
`;
    const c = parseConfig(
      yaml(', quic: { congestionControl: bbr }', ', quic: { congestionControl: reno }'),
      'x.yaml',
      certs.dir,
    );
    expect(c.origins.get('a')!.congestionControl).toBe('bbr');
    expect(c.listeners[0]!.congestionControl).toBe('reno');
    expect(parseConfig(yaml('', ''), 'x.yaml', certs.dir).origins.get('a')!.congestionControl).toBeNull();
    const bad = (text: string): string => {
      try {
        parseConfig(text, 'x.yaml', certs.dir);
        return 'parsed';
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(bad(yaml(', quic: { congestionControl: vegas }', ''))).toMatch(/origins\.a\.quic\.congestionControl/);
    expect(bad(yaml('', ', quic: { pacing: true }'))).toMatch(/quic/);
    expect(
      bad(
        'listeners: [ { kind: http, port: 0, quic: { congestionControl: bbr } } ]\norigins: { a: { url: "https://localhost:1" } }\nroutes: [ { origin: a } ]\n',
      ),
    ).toMatch(/quic: only for kind h3/);

    // BBR's tuning (quic.bbr.lossThreshold, 0.001–0.2) per origin and per h3 listener.
    const tuned = parseConfig(
      yaml(
        ', quic: { bbr: { lossThreshold: 0.05 } }',
        ', quic: { congestionControl: bbr2, bbr: { lossThreshold: 0.015 } }',
      ),
      'x.yaml',
      certs.dir,
    );
    expect(tuned.origins.get('a')!.bbr).toEqual({ lossThreshold: 0.05 });
    expect(tuned.listeners[0]).toMatchObject({ congestionControl: 'bbr2', bbr: { lossThreshold: 0.015 } });
    expect(bad(yaml(', quic: { bbr: { lossThreshold: 0.5 } }', ''))).toMatch(
      /origins\.a\.quic\.bbr\.lossThreshold: must be between 0\.001 and 0\.2/,
    );
    expect(bad(yaml('', ', quic: { bbr: { gain: 2 } }'))).toMatch(/quic\.bbr\.gain/);
    // How loss lowers BBR's short-term bounds (quiche's BbrBwLoReductionStrategy by name).
    const lo = parseConfig(yaml(', quic: { bbr: { bwLoReduction: minrtt } }', ''), 'x.yaml', certs.dir);
    expect(lo.origins.get('a')!.bbr).toEqual({ bwLoReduction: 'minrtt' });
    expect(bad(yaml(', quic: { bbr: { bwLoReduction: fast } }', ''))).toMatch(
      /origins\.a\.quic\.bbr\.bwLoReduction: must be one of default, minrtt, inflight, cwnd/,
    );
  });
});
