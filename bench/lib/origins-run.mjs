// The crawler's pattern against one Agent: N distinct origins (names that all
// resolve to one loopback h1 server through the Agent's `lookup`), one request
// each, C at a time, then idle. Prints one JSON line: heap at the start, at the
// peak and after the idle sweep (each after a full GC), and how many origins the
// Agent still tracks. Run with --expose-gc. Used by `npm run bench -- origins`
// and by test/peer/agent-origins.test.ts.
// argv[2]: JSON { agentModule, n, concurrency, idleTimeoutMs, originIdleTimeoutMs, maxOrigins?, settleAfter? }
// settleAfter: after that many origins the run goes idle once (pools forgotten), the heap is read again, then the
// rest run: what the later origins leave beside what the first ones did (bounded state grows no further).
import http from 'node:http';

const o = JSON.parse(process.argv[2]);
const { Agent } = await import(o.agentModule);
if (typeof globalThis.gc !== 'function') throw new Error('run with --expose-gc');

const server = http.createServer((req, res) => {
  // The server closes each connection: TIME_WAIT stays on its side, so 100,000 dials do not exhaust client ports.
  res.setHeader('connection', 'close');
  res.end('ok');
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const port = server.address().port;

const heap = () => {
  globalThis.gc();
  globalThis.gc();
  return process.memoryUsage().heapUsed;
};
const MiB = 1024 * 1024;
const agent = new Agent({
  protocol: 'h1',
  lookup: async () => ['127.0.0.1'],
  pool: { idleTimeoutMs: o.idleTimeoutMs },
  originIdleTimeoutMs: o.originIdleTimeoutMs,
  ...(o.maxOrigins ? { maxOrigins: o.maxOrigins } : {}),
  maxRetries: 0,
});
/** Pools the Agent holds (`pools()` on builds before poolCount existed, for before/after runs). */
const tracked = () => agent.poolCount ?? agent.pools().length;
// Warm the code paths with one origin first, so the start figure is not the JIT's.
await (await agent.request({ url: `http://warm.crawl.test:${port}/` })).text();
const start = heap();
const t0 = performance.now();
let next = 0;
let failed = 0;
let peakTracked = 0;
const idle = () => new Promise((r) => setTimeout(r, o.idleTimeoutMs + o.originIdleTimeoutMs + 1500));
let settled = null;
async function worker(until) {
  for (;;) {
    const i = next;
    if (i >= until) return;
    next++;
    try {
      const r = await agent.request({ url: `http://o${i}.crawl.test:${port}/` });
      await r.text();
    } catch {
      failed++;
    }
    if (i % 1000 === 0) peakTracked = Math.max(peakTracked, tracked());
  }
}
let idleMs = 0;
if (o.settleAfter) {
  await Promise.all(Array.from({ length: o.concurrency }, () => worker(o.settleAfter)));
  const t = performance.now();
  await idle();
  settled = heap();
  idleMs = performance.now() - t;
}
await Promise.all(Array.from({ length: o.concurrency }, () => worker(o.n)));
const elapsedMs = performance.now() - t0 - idleMs;
const peak = heap();
const trackedAfterRun = tracked();
// Idle: connections close after idleTimeoutMs, pools are forgotten after originIdleTimeoutMs (swept each second).
await idle();
const end = heap();
const out = {
  n: o.n,
  concurrency: o.concurrency,
  failed,
  elapsedMs: Math.round(elapsedMs),
  reqPerS: Math.round(o.n / (elapsedMs / 1000)),
  heapStartMiB: +(start / MiB).toFixed(2),
  heapPeakMiB: +(peak / MiB).toFixed(2),
  heapEndMiB: +(end / MiB).toFixed(2),
  heapGrowthMiB: +((end - start) / MiB).toFixed(2),
  ...(settled === null
    ? {}
    : { heapSettledMiB: +(settled / MiB).toFixed(2), heapGrowthSinceSettledMiB: +((end - settled) / MiB).toFixed(2) }),
  poolsAfterRun: trackedAfterRun,
  peakPools: Math.max(peakTracked, trackedAfterRun),
  poolsAfterIdle: tracked(),
  statsRowsAfterIdle: agent.stats().length,
  selectorOrigins: agent.selector.size ?? null,
};
await agent.close();
server.close();
console.log(JSON.stringify(out));
