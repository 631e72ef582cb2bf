/**
 * HTTP/3 stream independence on one connection (RFC 9000 §2.2): while a
 * large response is congestion-window limited, small responses on other
 * streams of the same connection must not wait for it at the sender.
 *
 * Client and server talk through an in-test UDP relay on 127.0.0.1 that
 * models a path: 25 ms each way, an 8 MiB/s bottleneck per direction and a
 * seeded 2% loss. The bottleneck spaces the ACKs, so congestion window
 * frees up a little at a time — the case where a sender that hands freed
 * capacity to the bulk stream first starves everything else (measured
 * before the fix in src/quic/write-queue.ts: small p50 132-146 ms, max
 * 324-333 ms; after: p50 72-74 ms, max 86-164 ms, both under CUBIC).
 * What is asserted is a small request's latency less the deepest queue the
 * relay's bottleneck held toward the client while it was out: the path's
 * queue is the congestion controller's doing, not the sender's scheduling
 * (under BBR, our default, this path holds 55 ms p50 and 105 ms at most,
 * small requests p50 146-150 ms; less the queue 48 ms).
 * Knobs for exploration (defaults are the test): PRIO_BULK_MIB, PRIO_SMALL,
 * PRIO_DELAY (one-way ms), PRIO_LOSS (fraction), PRIO_RATE_MIB (0 = no bottleneck), PRIO_CC (the
 * server's congestion controller, default ours), PRIO_PACING=0 (no pacing at either end).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { makeCerts, type TestCerts } from '../helpers/certs.js';
import { connectH3 } from '../../src/connect/h3.js';
import type { H3Server } from '../../src/server/h3.js';
import { startTestH3Server } from '../helpers/h3-server.js';
import { startUdpRelay } from '../helpers/udp-relay.js';
import type { ConnRequest } from '../../src/http/types.js';

const env = process.env;
const BULK = Number(env.PRIO_BULK_MIB ?? 16) * 1024 * 1024;
const SMALL = Number(env.PRIO_SMALL ?? 20);
const INTERVAL_MS = 20;
const DELAY_MS = Number(env.PRIO_DELAY ?? 25);
const LOSS = Number(env.PRIO_LOSS ?? 0.02);
/** Bottleneck rate in bytes per millisecond. */
const RATE = (Number(env.PRIO_RATE_MIB ?? 8) * 1024 * 1024) / 1000;
const RTT_MS = 2 * DELAY_MS;
const CC = env.PRIO_CC as 'cubic' | 'bbr' | 'reno' | undefined;
const PACING = env.PRIO_PACING !== '0';

let certs: TestCerts;
let server: H3Server;
let relay: dgram.Socket;
/** The same path with a bottleneck queue of one RTT (drop-tail). */
let shortQueueRelay: dgram.Socket;
const CHUNK = new Uint8Array(64 * 1024).fill(7);

/** The bulk body as a stream, like a proxied origin response. */
function* chunks(total = BULK): Generator<Uint8Array> {
  for (let off = 0; off < total; off += CHUNK.length) yield CHUNK;
}

async function drain(r: Readable): Promise<number> {
  let n = 0;
  for await (const c of r) n += (c as Buffer).length;
  return n;
}

/** The bottleneck's queue toward the client, sampled per datagram: [time, ms]. */
const downQueue: Array<[number, number]> = [];

/** The deepest queue toward the client sampled between two instants. */
function queueBetween(from: number, to: number): number {
  let m = 0;
  for (const [t, ms] of downQueue) if (t >= from && t <= to && ms > m) m = ms;
  return m;
}

function startRelay(serverPort: number, maxQueueMs = Infinity): Promise<dgram.Socket> {
  return startUdpRelay(serverPort, {
    delayMs: DELAY_MS,
    loss: LOSS,
    rate: RATE,
    maxQueueMs,
    onQueue: (dir, ms) => {
      if (dir === 'down' && downQueue.length < 200_000) downQueue.push([performance.now(), ms]);
    },
  });
}

function req(path: string, headers: ConnRequest['headers'] = []): ConnRequest {
  return { method: 'GET', path, authority: `localhost:${server.address.port}`, scheme: 'https', headers, body: null };
}

beforeAll(async () => {
  certs = makeCerts();
  server = await startTestH3Server({
    ...(CC ? { quic: { cc: CC } } : {}),
    pacing: PACING,
    handler(r) {
      if (r.path === '/bulk')
        return { status: 200, headers: [['content-length', String(BULK)]], body: Readable.from(chunks()) };
      const mib = /^\/mib\/(\d+)/.exec(r.path);
      if (mib) return { status: 200, body: Readable.from(chunks(Number(mib[1]) * 1024 * 1024)) };
      return { status: 200, body: `small ${r.path}` };
    },
  });
  relay = await startRelay(server.address.port);
  shortQueueRelay = await startRelay(server.address.port, RTT_MS);
});

afterAll(async () => {
  relay?.close();
  shortQueueRelay?.close();
  await server?.close(100);
});

describe('HTTP/3 small responses beside a bulk response', () => {
  // Bounds on the p50 and the p90 of 20 samples at 50 ms RTT, not the max: a stall of the test process on a starved
  // machine (the suite beside a busy loop: 431 ms; the full suite: 358–460 ms, twice in one run) lands on one sample,
  // where a real queue behind the bulk holds every small request. One retry, as below.
  it('small requests are not held behind a congestion-limited bulk response on the same connection', {
    timeout: 60_000,
    retry: 1,
  }, async () => {
    const c = await connectH3({
      host: '127.0.0.1',
      port: (relay.address() as AddressInfo).port,
      servername: 'localhost',
      ca: certs.caPath,
      pacing: PACING,
    });
    try {
      const t0 = performance.now();
      let bulkEnd = 0;
      const big = c.request(req('/bulk')).then(async (r) => {
        const n = await drain(r.body);
        bulkEnd = performance.now();
        return n;
      });
      // Let the bulk response fill the congestion window first.
      await new Promise((r) => setTimeout(r, 150));
      const lat: number[] = [];
      /** Latency less the deepest path queue seen while the request was out: what the sender itself added. */
      const held: number[] = [];
      const done: number[] = [];
      const small: Promise<void>[] = [];
      for (let i = 0; i < SMALL; i++) {
        const s0 = performance.now();
        small.push(
          c.request(req(`/s${i}`)).then(async (r) => {
            expect(await drain(r.body)).toBe(`small /s${i}`.length);
            const now = performance.now();
            lat.push(now - s0);
            held.push(now - s0 - queueBetween(s0, now));
            done.push(now);
          }),
        );
        await new Promise((r) => setTimeout(r, INTERVAL_MS));
      }
      await Promise.all(small);
      expect(await big).toBe(BULK);
      const bulkMs = bulkEnd - t0;
      lat.sort((a, b) => a - b);
      held.sort((a, b) => a - b);
      const p50 = held[held.length >> 1]!;
      const p90 = held[Math.ceil(held.length * 0.9) - 1]!;
      const max = held[held.length - 1]!;
      const q = downQueue
        .filter(([t]) => t >= t0 + 150 && t <= bulkEnd)
        .map(([, ms]) => ms)
        .sort((a, b) => a - b);
      console.log(
        `bulk ${bulkMs.toFixed(0)} ms, small p50 ${lat[lat.length >> 1]!.toFixed(1)} ms, max ${lat[lat.length - 1]!.toFixed(1)} ms; ` +
          `less the path's queue p50 ${p50.toFixed(1)} ms, p90 ${p90.toFixed(1)} ms, max ${max.toFixed(1)} ms (RTT ${RTT_MS} ms, queue p50 ${q[q.length >> 1]?.toFixed(1)} max ${q[q.length - 1]?.toFixed(1)} ms)`,
      );
      for (const d of done) expect(d).toBeLessThan(bulkEnd);
      // One RTT plus a little beyond the path's own queue: a loss costs a small request one more RTT, a
      // queue behind the bulk at the sender costs several. The path's queue is the congestion
      // controller's choice (BBR keeps up to its cwnd gain of 2 BDP in flight, ~1 BDP queued in this
      // unbounded buffer; CUBIC under 2% loss keeps almost none), not stream scheduling.
      expect(p50).toBeLessThan(2.2 * RTT_MS);
      expect(p90).toBeLessThan(5 * RTT_MS);
    } finally {
      c.destroy();
    }
  });

  // RFC 9218: a later, larger response marked urgent (u=0) overtakes an
  // earlier, smaller one marked u=7; without the header the smaller one
  // (fewest queued bytes) finishes first.
  // The relay and both ends share the test machine's two cores with the rest of the suite: under that load one
  // run in many saw the urgent response finish late (it passes alone every time). One retry, not a looser bound.
  it('the priority request header orders responses on a congestion-limited connection by urgency', {
    timeout: 60_000,
    retry: 1,
  }, async () => {
    const run = async (withPriority: boolean): Promise<{ lowEnd: number; urgentEnd: number }> => {
      const c = await connectH3({
        host: '127.0.0.1',
        port: (relay.address() as AddressInfo).port,
        servername: 'localhost',
        ca: certs.caPath,
        pacing: PACING,
      });
      try {
        const h = (u: number): ConnRequest['headers'] => (withPriority ? [['priority', `u=${u}`]] : []);
        let lowEnd = 0;
        let urgentEnd = 0;
        const low = c.request(req('/mib/2', h(7))).then(async (r) => {
          await drain(r.body);
          lowEnd = performance.now();
        });
        await new Promise((r) => setTimeout(r, 50));
        const urgent = c.request(req('/mib/4', h(0))).then(async (r) => {
          await drain(r.body);
          urgentEnd = performance.now();
        });
        await Promise.all([low, urgent]);
        return { lowEnd, urgentEnd };
      } finally {
        c.destroy();
      }
    };
    const plain = await run(false);
    const prio = await run(true);
    console.log(
      `without priority: 2 MiB done ${(plain.urgentEnd - plain.lowEnd).toFixed(0)} ms before the 4 MiB; with u=0 / u=7: 4 MiB done ${(prio.lowEnd - prio.urgentEnd).toFixed(0)} ms before the 2 MiB`,
    );
    // The run without the header is the comparison (logged): on a loaded machine its order can flip
    // by tens of ms; with the header the urgent response must win (it fails without setPriority).
    expect(prio.urgentEnd).toBeLessThan(prio.lowEnd);
  });

  // RFC 9218 §7.2: the client raises a response's priority while it flows (PRIORITY_UPDATE on its
  // control stream). A 2 MiB response asked with u=7 starts alone; a 4 MiB one (u=3) then takes the path
  // and the 2 MiB waits for it, unless 150 ms later it is raised to u=0. (Through a bottleneck queue of one
  // RTT, so the server, not the relay, holds what waits.)
  it('a PRIORITY_UPDATE sent while a response flows reorders it', { timeout: 60_000, retry: 1 }, async () => {
    const run = async (
      raise: boolean,
    ): Promise<{ lowEnd: number; urgentEnd: number; frames: number; raised: number }> => {
      const before = server.priorityUpdates();
      const c = await connectH3({
        host: '127.0.0.1',
        port: (shortQueueRelay.address() as AddressInfo).port,
        servername: 'localhost',
        ca: certs.caPath,
        pacing: PACING,
      });
      try {
        let lowEnd = 0;
        let urgentEnd = 0;
        const r2 = await c.request(req('/mib/2', [['priority', 'u=7']]));
        const urgent = drain(r2.body).then(() => {
          urgentEnd = performance.now();
        });
        const low = c.request(req('/mib/4')).then(async (r) => {
          await drain(r.body);
          lowEnd = performance.now();
        });
        await new Promise((r) => setTimeout(r, 150));
        if (raise) r2.reprioritize!('u=0');
        await Promise.all([low, urgent]);
        const after = server.priorityUpdates();
        return {
          lowEnd,
          urgentEnd,
          frames: after.frames - before.frames,
          raised: after.reprioritised - before.reprioritised,
        };
      } finally {
        c.destroy();
      }
    };
    const kept = await run(false);
    const raised = await run(true);
    console.log(
      `u=7 kept: 2 MiB done ${(kept.urgentEnd - kept.lowEnd).toFixed(0)} ms after the 4 MiB; raised to u=0 by PRIORITY_UPDATE: ${(raised.lowEnd - raised.urgentEnd).toFixed(0)} ms before it (frames ${raised.frames}, applied ${raised.raised})`,
    );
    expect({ frames: kept.frames, raised: kept.raised }).toEqual({ frames: 0, raised: 0 });
    expect({ frames: raised.frames, raised: raised.raised }).toEqual({ frames: 1, raised: 1 });
    // Six runs here: kept, the 2 MiB ends 126–251 ms after the 4 MiB; raised, 458–809 ms before it.
    expect(kept.urgentEnd).toBeGreaterThan(kept.lowEnd);
    expect(raised.urgentEnd).toBeLessThan(raised.lowEnd - 2 * RTT_MS);
  });
});
