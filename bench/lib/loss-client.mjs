#!/usr/bin/env node
// Client half of the `loss` scenario, run in the lab's client namespace:
// `node loss-client.mjs JSON` with { base, ca, proto, bulkBytes, smallCount,
// intervalMs, capS }. One warm connection (pool of 1); a bulk download starts,
// and `smallCount` small requests are issued every `intervalMs` on the same
// connection. The bulk is cut at `capS` seconds. Prints one {"event":"result"}.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { dist } from './dist.mjs';

const { Agent } = await dist('index.js');
const o = JSON.parse(process.argv[2]);
const print = (j) => process.stdout.write(`${JSON.stringify(j)}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Host-wide monotonic clock in ms, comparable with the origin's arrival times. */
const hrMs = () => +(Number(process.hrtime.bigint()) / 1e6).toFixed(3);
const agent = new Agent({
  protocol: o.proto,
  tls: { ca: readFileSync(o.ca) },
  maxRetries: 0,
  pool: {
    maxConnections: 1,
    pingIntervalMs: 0,
    bodyTimeoutMs: o.capS * 1000 + 5000,
    headersTimeoutMs: o.capS * 1000 + 5000,
    ...(o.windowSize ? { windowSize: o.windowSize } : {}),
  },
});

const warm = await agent.request({ url: `${o.base}/small?tag=warm` });
await warm.bytes();
const connId = warm.connectionId;
const cap = new AbortController();
const capTimer = setTimeout(() => cap.abort(), o.capS * 1000);
const t0 = performance.now();
let bulkBytes = 0;
let firstByteMs = null;
const timeline = []; // [ms since start, bytes] every ~100 ms
let lastMark = 0;

const bulk = (async () => {
  const res = await agent.request({ url: `${o.base}/bytes?n=${o.bulkBytes}&tag=bulk`, signal: cap.signal });
  try {
    for await (const chunk of res.body) {
      if (firstByteMs === null) firstByteMs = performance.now() - t0;
      bulkBytes += chunk.length;
      const now = performance.now() - t0;
      if (now - lastMark >= 100) {
        lastMark = now;
        timeline.push([Math.round(now), bulkBytes]);
      }
    }
    return { finished: bulkBytes === o.bulkBytes, error: null, connectionId: res.connectionId };
  } catch (e) {
    return {
      finished: false,
      error: cap.signal.aborted ? 'capped' : String(e?.code ?? e?.message ?? e),
      connectionId: res.connectionId,
    };
  }
})().catch((e) => ({ finished: false, error: String(e?.code ?? e?.message ?? e), connectionId: null }));

const small = [];
const smallDone = [];
for (let i = 0; i < o.smallCount; i++) {
  const due = t0 + i * o.intervalMs;
  const wait = due - performance.now();
  if (wait > 0) await sleep(wait);
  const s0 = performance.now();
  const sentHrMs = hrMs();
  smallDone.push(
    agent.request({ url: `${o.base}/small?tag=small&trace=1` }).then(
      async (res) => {
        const headHrMs = hrMs();
        await res.bytes();
        small.push({
          i,
          startMs: s0 - t0,
          ms: performance.now() - s0,
          connectionId: res.connectionId,
          error: null,
          sentHrMs,
          headHrMs,
        });
      },
      (e) =>
        small.push({ i, startMs: s0 - t0, ms: null, connectionId: null, error: String(e?.code ?? e?.message ?? e) }),
    ),
  );
}
await Promise.all(smallDone);
print({ event: 'progress', note: `${o.proto}: small requests done` });
const b = await bulk;
const elapsedMs = performance.now() - t0;
clearTimeout(capTimer);
timeline.push([Math.round(elapsedMs), bulkBytes]);
const conn = agent.pools()[0]?.connections()[0];
const quic = typeof conn?.quicStats === 'function' ? conn.quicStats() : null;
print({
  event: 'result',
  proto: o.proto,
  bulk: {
    bytes: bulkBytes,
    target: o.bulkBytes,
    finished: b.finished,
    error: b.error,
    elapsedMs,
    firstByteMs,
    bytesPerS: bulkBytes / (elapsedMs / 1000),
    timeline,
  },
  small: small.sort((x, y) => x.i - y.i),
  sameConnection: b.connectionId === connId && small.every((s) => s.connectionId === null || s.connectionId === connId),
  connectionsOpened: agent.stats()[0]?.connectionsOpened ?? null,
  quicStats: quic,
});
agent.destroy();
process.exit(0);
