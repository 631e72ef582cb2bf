#!/usr/bin/env node
// `npm run bench -- group-path`: what an origin group adds to a request's CPU in the Agent itself, without sockets:
// the Agent and its pools over connections of this script (`connect`) that answer every request at once, whole (as
// a small response the Agent takes with takeComplete). Three origins, each driven by BENCH_CONCURRENCY loops for
// BENCH_REQUESTS requests per round, the rounds interleaved (a slow phase of the machine lands on all of them):
//   plain      one URL, no group field (the path every origin took before groups)
//   group of 1 the same URL with `retryBudget` (a group: the budget counts, the pick is the endpoint itself)
//   group of 3 three endpoints, p2c (two draws, two pool loads), the budget
// Prints ns of CPU (process.cpuUsage, GC included) per request, the median over rounds, and each's ratio to plain
// within a round. Knobs: BENCH_REQUESTS (200000), BENCH_ROUNDS (7), BENCH_CONCURRENCY (16), BENCH_DIST.
import { Readable } from 'node:stream';
import { dist } from '../lib/dist.mjs';
import { ResultWriter } from '../lib/results.mjs';

const N = Number(process.env.BENCH_REQUESTS ?? 200_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const CONC = Number(process.env.BENCH_CONCURRENCY ?? 16);
const { Agent } = await dist('index.js');

const BYTES = Buffer.from('ok');
const NO_FIELDS = [];
const facts = {
  protocol: 'h2',
  alpn: 'h2',
  remoteAddress: '127.0.0.1',
  remotePort: 443,
  localAddress: '127.0.0.1',
  localPort: 1,
  connectMs: 0,
  tlsMs: 0,
  tlsVersion: 'TLSv1.3',
  resumed: false,
  earlyData: false,
  tfo: false,
  keepAliveHintMs: null,
  peerMaxConcurrentStreams: 1000,
  rttMs: null,
};
let ids = 0;
/** An h2-like connection of 1000 streams answering at once: a response already whole, its slot freed when taken. */
class Instant {
  id = ++ids;
  protocol = 'h2';
  facts = facts;
  createdAt = performance.now();
  lastActiveAt = this.createdAt;
  active = 0;
  state = 'ready';
  capacity = 1000;
  #listeners = [];
  peerCertificate() {
    return null;
  }
  isUsable() {
    return this.state === 'ready';
  }
  on(l) {
    this.#listeners.push(l);
  }
  ping() {
    return Promise.resolve(1);
  }
  drain() {
    this.destroy();
  }
  destroy() {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const l of this.#listeners) l({ type: 'close', error: null });
  }
  request() {
    this.active++;
    this.lastActiveAt = performance.now();
    let taken = false;
    const done = () => {
      if (taken) return;
      taken = true;
      this.active--;
      for (const l of this.#listeners) l({ type: 'capacity' });
    };
    return Promise.resolve({
      status: 200,
      headers: NO_FIELDS,
      get body() {
        done();
        return Readable.from([BYTES]);
      },
      trailers: Promise.resolve(NO_FIELDS),
      takeComplete: () => {
        done();
        return { bytes: BYTES, trailers: NO_FIELDS };
      },
    });
  }
}

const connect = () => Promise.resolve(new Instant());
const make = {
  plain: () => new Agent({ protocol: 'h2', connect }),
  'group of 1': () =>
    new Agent({
      protocol: 'h2',
      connect,
      origins: { 'https://api.test': { retryBudget: { ratio: 0.2, minPerSecond: 10 } } },
    }),
  'group of 3': () =>
    new Agent({
      protocol: 'h2',
      connect,
      origins: {
        'https://api.test': {
          endpoints: [{ url: 'https://a.test' }, { url: 'https://b.test' }, { url: 'https://c.test' }],
          retryBudget: { ratio: 0.2, minPerSecond: 10 },
        },
      },
    }),
};

async function drive(agent, n) {
  let left = n;
  const loop = async () => {
    while (left-- > 0) {
      const r = await agent.request({ origin: 'https://api.test', path: '/x' });
      await r.bytes();
    }
  };
  await Promise.all(Array.from({ length: CONC }, loop));
}

const agents = Object.fromEntries(Object.entries(make).map(([k, f]) => [k, f()]));
for (const a of Object.values(agents)) await drive(a, 20_000); // warm: every path at V8's top tier
const rows = Object.fromEntries(Object.keys(make).map((k) => [k, []]));
for (let round = 0; round < ROUNDS; round++) {
  const order = Object.keys(make);
  if (round % 2) order.reverse();
  for (const k of order) {
    globalThis.gc?.();
    const c0 = process.cpuUsage();
    await drive(agents[k], N);
    const c = process.cpuUsage(c0);
    rows[k].push(((c.user + c.system) * 1000) / N);
  }
}
for (const a of Object.values(agents)) await a.close();

const median = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
console.log(
  `Agent CPU per request, no sockets: ${ROUNDS} rounds × ${N} requests, ${CONC} at a time (median; ratio to plain per round: median, min–max)\n`,
);
console.log('| origin | ns/request | ÷ plain |');
console.log('|---|---:|---:|');
const out = {};
for (const [k, xs] of Object.entries(rows)) {
  const ratios = xs.map((x, i) => x / rows.plain[i]);
  out[k] = { nsPerRequest: xs, ratioToPlain: ratios };
  console.log(
    `| ${k} | ${Math.round(median(xs))} | ${k === 'plain' ? '-' : `${median(ratios).toFixed(3)} (${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)})`} |`,
  );
}
const file = new ResultWriter('group-path').write({ requests: N, rounds: ROUNDS, concurrency: CONC, results: out });
console.log(`\nresults: ${file}`);
