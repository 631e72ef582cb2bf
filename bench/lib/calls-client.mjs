#!/usr/bin/env node
// bench/scenarios/calls.mjs's client side: `node calls-client.mjs JSON` with { url, ca, proto, warm, n }, started with
// NODE_V8_COVERAGE=DIR (and BENCH_DIST naming the build, bench/lib/dist.mjs). One Agent sends `warm` then `n`
// sequential requests and the process exits, Node writing its coverage counts then; the scenario runs it with n = 0
// too and takes the difference. Prints one JSON line: { ok: true } or { error }.
import { readFileSync } from 'node:fs';
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
  for (let i = 0; i < o.warm + o.n; i++) await once();
  console.log(JSON.stringify({ ok: true }));
} catch (e) {
  console.log(JSON.stringify({ error: String(e?.message ?? e) }));
} finally {
  await agent.close();
}
