#!/usr/bin/env node
// bench/scenarios/calls.mjs's client side: `node calls-client.mjs JSON` with { url, ca, proto, warm, n }, started with
// NODE_V8_COVERAGE=DIR (and BENCH_DIST naming the build, bench/lib/dist.mjs). One Agent sends `warm` sequential
// requests, V8's counters are written and reset (v8.takeCoverage), then `n` more and the counters written again: that
// second report holds exactly the `n` requests' calls. Prints one JSON line: { ok: true } or { error }.
import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import { dist } from './dist.mjs';

const o = JSON.parse(process.argv[2]);
const { Agent } = await dist('index.js');
const agent = new Agent({ protocol: o.proto, tls: { ca: readFileSync(o.ca) } });
const once = async () => {
  const res = await agent.request({ url: o.url });
  await res.text();
  if (res.status !== 200 || res.protocol !== o.proto) throw new Error(`${res.status} over ${res.protocol}`);
};
try {
  for (let i = 0; i < o.warm; i++) await once();
  v8.takeCoverage();
  for (let i = 0; i < o.n; i++) await once();
  v8.takeCoverage();
  console.log(JSON.stringify({ ok: true }));
} catch (e) {
  console.log(JSON.stringify({ error: String(e?.message ?? e) }));
} finally {
  await agent.close();
}
