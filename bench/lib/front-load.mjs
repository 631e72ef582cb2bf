#!/usr/bin/env node
// Closed-loop load on one front for the `h3-front` scenario: `node front-load.mjs JSON` with { url, proto: 'h1' |
// 'h3', conns, inflight, seconds, warmS, ca }. `conns` Agents of ours, each held to one connection (so each has a
// source port of its own: new QUIC connections spread over the workers by the 4-tuple's hash), each running
// `inflight` request loops (h1: one request per connection at a time, so `conns × inflight` connections of one loop
// each). Counts 2xx answers after `warmS` for `seconds`; prints one JSON line { rps, ok, failed, cpuMs }.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { dist } from './dist.mjs';

const o = JSON.parse(process.argv[2]);
const { Agent } = await dist('index.js');
const agents = [];
const loops = o.proto === 'h3' ? [o.conns, o.inflight] : [o.conns * o.inflight, 1];
for (let i = 0; i < loops[0]; i++)
  agents.push(
    new Agent({
      protocol: o.proto,
      ...(o.ca ? { tls: { ca: readFileSync(o.ca) } } : {}),
      pool: { maxConnections: 1, maxPending: 100_000 },
    }),
  );
let counting = false;
let stop = false;
let ok = 0;
let failed = 0;
const loop = async (agent) => {
  while (!stop) {
    try {
      const r = await agent.request({ url: o.url });
      await r.bytes();
      if (counting) r.status < 300 ? ok++ : failed++;
    } catch {
      if (counting) failed++;
    }
  }
};
const running = agents.flatMap((a) => Array.from({ length: loops[1] }, () => loop(a)));
await new Promise((r) => setTimeout(r, o.warmS * 1000));
counting = true;
const t0 = performance.now();
const cpu0 = process.cpuUsage();
await new Promise((r) => setTimeout(r, o.seconds * 1000));
counting = false;
const secs = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
stop = true;
await Promise.race([Promise.all(running), new Promise((r) => setTimeout(r, 5000))]);
process.stdout.write(`${JSON.stringify({ rps: ok / secs, ok, failed, cpuMs: (cpu.user + cpu.system) / 1000 })}\n`);
await Promise.all(agents.map((a) => a.close().catch(() => {})));
process.exit(0);
