/**
 * A captured 0-RTT first flight is served once by the whole fleet, not once per instance (issue 57; RFC 8446 §8:
 * any instance that can open the ticket accepts 0-RTT for the same handshake at most once). Two `Service`s hold the
 * same ticket secret (tickets.secretFile), so a ticket from A resumes at B — and a flight captured on its way to A
 * opens at B too. With the stores' Redis, each new 0-RTT ClientHello is recorded there (SET NX) before its early
 * data is taken (service/early-data-record.ts): B finds A's and refuses the copy's early data, and the request
 * reaches the origin once. Without Redis B has only its own register and serves the copy again: the limitation the
 * service warns about. Redis down: early data is refused, requests are answered after the handshake.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { H3Response } from '../../src/client/h3.js';
import type { ConnRequest } from '../../src/http/types.js';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { ensureH3 } from '../../src/service/upstream.js';
import { MemorySessionStore } from '../../src/store/session-store.js';
import { makeCerts } from '../helpers/certs.js';
import { dialResuming as dial, getAt, recordFirstFlight, replayFlight, text } from '../helpers/first-flight.js';
import { startRedis, type RedisPeer } from '../helpers/redis.js';
import { until } from '../helpers/wait.js';

const certs = makeCerts();
let dir: string;
let redis: RedisPeer;
let origin: http.Server;
const hits = new Map<string, number>();
/** The stores' key prefix, one for the fleet of this file's tests. */
const PREFIX = `t${randomBytes(4).toString('hex')}:`;

beforeAll(async () => {
  await ensureH3();
  dir = mkdtempSync(join(tmpdir(), 'ol-0rtt-fleet-'));
  writeFileSync(join(dir, 'ticket.secret'), randomBytes(32).toString('hex'));
  redis = await startRedis();
  origin = http.createServer((q, s) => {
    hits.set(q.url ?? '', (hits.get(q.url ?? '') ?? 0) + 1);
    s.end(`ok ${q.url}\n`);
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
}, 30_000);
afterAll(async () => {
  await redis?.stop();
  origin?.close();
  rmSync(dir, { recursive: true, force: true });
});

function config(stores: boolean): string {
  return `
listeners:
  - { name: quic, kind: h3, host: 127.0.0.1, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }
admin: false
logging: { requests: false }
origins:
  o: { url: "http://127.0.0.1:${(origin.address() as AddressInfo).port}" }
routes:
  - { path: /, origin: o }
tickets: { secretFile: ${join(dir, 'ticket.secret')} }
${stores ? `stores: { sessions: "${redis.url}", prefix: "${PREFIX}" }` : ''}
`;
}

const portOf = (s: Service): number => s.addresses()['quic'] as number;
const req = (path: string): ConnRequest => getAt(path, true);

/** A ticket from `a`, then a 0-RTT GET of `path` to `a` recorded on its way; the copy sent 3 times to `b`. */
async function captureAtAReplayAtB(a: Service, b: Service, path: string): Promise<void> {
  const store = new MemorySessionStore();
  const c0 = await dial(portOf(a), store);
  await text((await c0.request(req('/prime'))).body);
  c0.destroy();
  const rec = await recordFirstFlight(portOf(a));
  try {
    const c1 = await dial(rec.port, store);
    const r = (await c1.request(req(path))) as H3Response;
    expect(r.earlyData).toBe(true);
    expect(await text(r.body)).toBe(`ok ${path}\n`);
    await until(() => rec.afterAnswer() > 0, 2000);
    c1.destroy();
  } finally {
    rec.close();
  }
  expect(rec.flight.length).toBeGreaterThan(0);
  await replayFlight(rec.flight, portOf(b), 3);
}

describe('0-RTT anti-replay across instances sharing ticket keys', () => {
  it('with the stores Redis: a flight captured at A and replayed at B gets no early data there; the origin sees the request once', async () => {
    const a = await Service.start(parseConfig(config(true), 'a.yaml', certs.dir));
    const b = await Service.start(parseConfig(config(true), 'b.yaml', certs.dir));
    try {
      await captureAtAReplayAtB(a, b, '/fleet-once');
      expect(hits.get('/fleet-once')).toBe(1);

      // The record does not hold back a client with its own ticket: A's ticket gets 0-RTT at B, once per handshake.
      const store = new MemorySessionStore();
      const c0 = await dial(portOf(a), store);
      await text((await c0.request(req('/prime'))).body);
      c0.destroy();
      for (let i = 0; i < 2; i++) {
        const c = await dial(portOf(b), store);
        const r = (await c.request(req(`/own/${i}`))) as H3Response;
        expect({ early: r.earlyData, body: await text(r.body) }).toEqual({ early: true, body: `ok /own/${i}\n` });
        c.destroy();
      }
    } finally {
      await a.shutdown(0);
      await b.shutdown(0);
    }
  }, 30_000);

  it('without a shared record (tickets by file, no Redis) B serves the copy again: what the service warns about', async () => {
    const a = await Service.start(parseConfig(config(false), 'a.yaml', certs.dir));
    const b = await Service.start(parseConfig(config(false), 'b.yaml', certs.dir));
    try {
      await captureAtAReplayAtB(a, b, '/per-instance');
      expect(hits.get('/per-instance')).toBe(2);
    } finally {
      await a.shutdown(0);
      await b.shutdown(0);
    }
  }, 30_000);

  it('Redis down: early data refused (nothing unrecorded), the requests answered after the handshake', async () => {
    const a = await Service.start(parseConfig(config(true), 'a.yaml', certs.dir));
    try {
      const store = new MemorySessionStore();
      const c0 = await dial(portOf(a), store);
      await text((await c0.request(req('/prime'))).body);
      c0.destroy();
      await redis.kill();
      const seen: Array<{ early: boolean; body: string }> = [];
      // The link notices the close at once; a dial or two may still go out before it does.
      for (let i = 0; i < 20 && seen.at(-1)?.early !== false; i++) {
        const c = await dial(portOf(a), store);
        const r = (await c.request(req(`/down/${i}`))) as H3Response;
        seen.push({ early: r.earlyData === true, body: await text(r.body) });
        c.destroy();
      }
      expect(seen.at(-1)?.early).toBe(false);
      expect(seen.every((s, i) => s.body === `ok /down/${i}\n`)).toBe(true);
    } finally {
      await a.shutdown(0);
      await redis.restart();
    }
  }, 30_000);
});
