// `npm run bench -- fleet-link`: what a fleet's member link costs a request over HTTP/2 on TLS (the links between
// instances, docs/fleet.md) against HTTP/3 (issue 56 asks h3 measured as the alternative), both ends on our own
// stack and both with mutual certificates of the fleet's CA. The sender's end: an Agent as the fleet makes a link
// (one connection, no retries), BENCH_CONC requests in flight on it (default 16), each a GET answered BENCH_BYTES
// bytes (default 1024), in this process (process.cpuUsage). The owner's end: our h2 server and our h3 server as the
// member listener is, in a child process of its own (its CPU from /proc, every thread). Blocks of BENCH_N requests
// (default 20,000) in the order h2, h3, h3, h2, BENCH_ROUNDS times (default 3), after a warm-up block of each.
// Prints per protocol the median over blocks of each end's CPU µs per request, both ends summed, and the batch
// latency; then h3 ÷ h2. Knobs: BENCH_CONC, BENCH_BYTES, BENCH_N, BENCH_ROUNDS, BENCH_DIST.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { makeCerts } from '../lib/certs.mjs';
import { dist } from '../lib/dist.mjs';
import { ResultWriter, ROOT } from '../lib/results.mjs';
import { fmt, summarize } from '../lib/stats.mjs';

const CONC = Number(process.env.BENCH_CONC ?? 16);
const BYTES = Number(process.env.BENCH_BYTES ?? 1024);
const N = Number(process.env.BENCH_N ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const TICK_US = 1e6 / 100; // /proc's clock ticks (USER_HZ 100)

const { Agent } = await dist('index.js');
const certs = makeCerts();
const owner = spawn(
  process.execPath,
  [
    join(ROOT, 'bench', 'lib', 'link-owner.mjs'),
    JSON.stringify({ cert: certs.certPath, key: certs.keyPath, ca: certs.caPath, bytes: BYTES }),
  ],
  { stdio: ['ignore', 'pipe', 'inherit'], env: process.env },
);
const ports = await new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error('the owner did not start in 15 s')), 15_000);
  owner.once('exit', (code) => reject(new Error(`the owner exited (${code}) before it listened`)));
  createInterface({ input: owner.stdout }).once('line', (l) => {
    clearTimeout(t);
    resolve(JSON.parse(l));
  });
});
const ownerCpuUs = () => {
  const f = readFileSync(`/proc/${owner.pid}/stat`, 'utf8');
  const v = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(v[11]) + Number(v[12])) * TICK_US; // utime, stime
};

const tls = { ca: readFileSync(certs.caPath), cert: readFileSync(certs.certPath), key: readFileSync(certs.keyPath) };
const links = {
  h2: {
    agent: new Agent({ protocol: 'h2', maxRetries: 0, tfo: false, pool: { maxConnections: 1 }, tls }),
    port: ports.h2,
  },
  h3: { agent: new Agent({ protocol: 'h3', maxRetries: 0, pool: { maxConnections: 1 }, tls }), port: ports.h3 },
};

/** `n` requests, CONC at a time on the link; each end's CPU µs per request and the batches' wall time. */
async function block(proto, n) {
  const { agent, port } = links[proto];
  const url = `https://127.0.0.1:${port}/x`;
  const c0 = process.cpuUsage();
  const o0 = ownerCpuUs();
  const t0 = performance.now();
  let left = n;
  const batchMs = [];
  const one = async () => {
    while (left > 0) {
      left--;
      const t = performance.now();
      const res = await agent.request({ url });
      await res.dump();
      if (res.status !== 200 || res.protocol !== proto) throw new Error(`${res.status} over ${res.protocol}`);
      batchMs.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: CONC }, one));
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return {
    proto,
    senderUs: (c.user + c.system) / n,
    ownerUs: (ownerCpuUs() - o0) / n,
    p50Ms: summarize(batchMs).p50,
    reqPerS: (n / wall) * 1000,
  };
}

const blocks = [];
try {
  for (const p of ['h2', 'h3']) await block(p, Math.min(N, 10_000)); // warm-up: connections, V8's tiers
  for (let r = 0; r < ROUNDS; r++)
    for (const p of ['h2', 'h3', 'h3', 'h2']) {
      blocks.push({ round: r, ...(await block(p, N)) });
      process.stderr.write('.');
    }
  process.stderr.write('\n');
} finally {
  await Promise.all([links.h2.agent.close(), links.h3.agent.close()]);
  owner.kill('SIGTERM');
}

const med = (proto, k) => summarize(blocks.filter((b) => b.proto === proto).map((b) => b[k])).p50;
const rows = ['h2', 'h3'].map((proto) => ({
  proto,
  senderUs: med(proto, 'senderUs'),
  ownerUs: med(proto, 'ownerUs'),
  bothUs: summarize(blocks.filter((b) => b.proto === proto).map((b) => b.senderUs + b.ownerUs)).p50,
  p50Ms: med(proto, 'p50Ms'),
  reqPerS: med(proto, 'reqPerS'),
}));
console.log(
  `\nfleet-link: a member link's cost per request, ${CONC} in flight on one connection, ${BYTES}-byte answers, ${ROUNDS} rounds of ${N} per protocol (medians)\n`,
);
console.log('| link | sender CPU µs/req | owner CPU µs/req | both µs/req | request p50 ms | req/s |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const r of rows)
  console.log(
    `| ${r.proto === 'h2' ? 'HTTP/2 over TLS' : 'HTTP/3 (QUIC)'} | ${fmt(r.senderUs, 1)} | ${fmt(r.ownerUs, 1)} | ${fmt(r.bothUs, 1)} | ${fmt(r.p50Ms, 2)} | ${fmt(r.reqPerS, 0)} |`,
  );
const [a, b] = rows;
console.log(
  `\nh3 ÷ h2: sender ${fmt(b.senderUs / a.senderUs, 2)}, owner ${fmt(b.ownerUs / a.ownerUs, 2)}, both ${fmt(b.bothUs / a.bothUs, 2)}, p50 ${fmt(b.p50Ms / a.p50Ms, 2)}`,
);
const file = new ResultWriter('fleet-link').write({ conc: CONC, bytes: BYTES, n: N, rounds: ROUNDS, rows, blocks });
console.log(`\nresults: ${file}`);
