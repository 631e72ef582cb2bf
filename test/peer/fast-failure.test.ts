/**
 * Issue 45, "a dead origin answers in milliseconds": an origin whose port refuses and one whose certificate we do
 * not trust, five requests each through the module and through the service, every answer within 1 s. Before, each
 * request waited out the pool's connect backoff and was retried (a certificate failure too): 2 → 28 s per request
 * through the service, 0.3 → 19 s through the module. The origins are real sockets: a refused loopback port, and
 * Node's own TLS server with a certificate from a CA nobody here trusts.
 */
import https from 'node:https';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { ErrorCode, OriginlinkError } from '../../src/errors.js';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { makeCerts } from '../helpers/certs.js';
import { CLOSED_PORT } from '../helpers/ports.js';
import { get } from '../helpers/serve-child.js';

const TRIES = 5;
const WITHIN_MS = 1000;

const trusted = makeCerts();
const stranger = makeCerts({ fresh: true });
let untrusted: https.Server;
let untrustedPort = 0;
const refusedUrl = `http://127.0.0.1:${CLOSED_PORT}`;
const untrustedUrl = (): string => `https://localhost:${untrustedPort}`;

beforeAll(async () => {
  untrusted = https.createServer({ cert: stranger.cert, key: stranger.key }, (_req, res) =>
    res.end('should never be reached\n'),
  );
  await new Promise<void>((r) => untrusted.listen(0, '127.0.0.1', r));
  untrustedPort = (untrusted.address() as net.AddressInfo).port;
});
afterAll(() => {
  untrusted?.close();
});

/** Milliseconds each of `TRIES` calls took, one after another. */
async function timed(fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < TRIES; i++) {
    const t0 = performance.now();
    await fn();
    out.push(Math.round(performance.now() - t0));
  }
  return out;
}

describe('the module: a dead origin fails at once, every time', () => {
  const agents: Agent[] = [];
  afterAll(async () => {
    for (const a of agents) await a.destroy();
  });

  it(`a refused port: ${TRIES} requests, each OL_CONNECT_FAILED within ${WITHIN_MS} ms, one attempt each (never retried against the same URL)`, async () => {
    const agent = new Agent({ pool: { connectTimeoutMs: 5000 } });
    agents.push(agent);
    const errors: OriginlinkError[] = [];
    const ms = await timed(() =>
      agent.request({ url: `${refusedUrl}/` }).catch((e: unknown) => {
        errors.push(e as OriginlinkError);
      }),
    );
    expect(
      ms.every((t) => t < WITHIN_MS),
      `times ${ms.join(', ')} ms`,
    ).toBe(true);
    expect(errors.map((e) => [e.code, e.details['attempts'], e.details['origin']])).toEqual(
      Array(TRIES).fill([ErrorCode.CONNECT_FAILED, 1, refusedUrl]),
    );
    expect(agent.stats()[0]?.retries).toBe(0);
  });

  it(`an untrusted certificate: ${TRIES} requests, each OL_CERT_INVALID within ${WITHIN_MS} ms, naming the host and tls.ca, never retried`, async () => {
    const agent = new Agent({ tls: { ca: trusted.ca } });
    agents.push(agent);
    const errors: OriginlinkError[] = [];
    const ms = await timed(() =>
      agent.request({ url: `${untrustedUrl()}/` }).catch((e: unknown) => {
        errors.push(e as OriginlinkError);
      }),
    );
    expect(
      ms.every((t) => t < WITHIN_MS),
      `times ${ms.join(', ')} ms`,
    ).toBe(true);
    for (const e of errors) {
      expect(e).toBeInstanceOf(OriginlinkError);
      expect([e.code, e.details['attempts']]).toEqual([ErrorCode.CERT_INVALID, 1]);
      expect(e.message).toContain(`localhost (127.0.0.1:${untrustedPort})`);
      expect(e.message).toContain('tls.ca');
    }
    expect(errors).toHaveLength(TRIES);
    expect(agent.stats()[0]?.retries).toBe(0);
  });

  it('an ordered failover still moves past a dead URL to a live one', async () => {
    const live = https.createServer({ cert: trusted.cert, key: trusted.key }, (_req, res) => res.end('live\n'));
    await new Promise<void>((r) => live.listen(0, '127.0.0.1', r));
    try {
      const agent = new Agent({ tls: { ca: trusted.ca } });
      agents.push(agent);
      const livePort = (live.address() as net.AddressInfo).port;
      for (let i = 0; i < 3; i++) {
        const r = await agent.request({ origin: [untrustedUrl(), `https://localhost:${livePort}`], path: '/' });
        expect([r.status, await r.text(), r.attempts]).toEqual([200, 'live\n', 2]);
      }
    } finally {
      live.close();
    }
  });
});

describe('the service: 502 at once, every time', () => {
  let svc: Service;
  let port = 0;
  beforeAll(async () => {
    const yaml = `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
admin: false
origins:
  refused: { url: "${refusedUrl}" }
  untrusted: { url: "${untrustedUrl()}", tls: { ca: ${trusted.caPath} } }
routes:
  - { path: /refused, origin: refused }
  - { path: /untrusted, origin: untrusted }
`;
    svc = await Service.start(parseConfig(yaml, 'fast.yaml', trusted.dir), { logDestination: { write: () => {} } });
    port = svc.addresses()['plain'] as number;
  });
  afterAll(async () => {
    await svc?.shutdown(1000);
  });

  for (const path of ['/refused', '/untrusted']) {
    it(`${path}: ${TRIES} requests, each 502 within ${WITHIN_MS} ms`, async () => {
      const statuses: number[] = [];
      const ms = await timed(async () => {
        statuses.push((await get(port, path)).status);
      });
      expect(
        ms.every((t) => t < WITHIN_MS),
        `times ${ms.join(', ')} ms`,
      ).toBe(true);
      expect(statuses).toEqual(Array(TRIES).fill(502));
    });
  }
});
