#!/usr/bin/env node
// `npm run bench -- origins`: one Agent meets many origins, one request each,
// then idles (a crawler's pattern). Reports heap growth and origins tracked.
// Anchor: the Agent's own memory at the start of the run.
// Knobs (env): BENCH_ORIGINS (5000,100000), BENCH_CONCURRENCY (64),
// BENCH_IDLE_MS (pool idleTimeoutMs, 1000), BENCH_ORIGIN_IDLE_MS (originIdleTimeoutMs, 2000),
// BENCH_ANCHOR_DIST (another build's dist folder, e.g. of the previous release: run too, as the anchor).
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DIST } from '../lib/dist.mjs';
import { ResultWriter } from '../lib/results.mjs';

const env = process.env;
const script = fileURLToPath(new URL('../lib/origins-run.mjs', import.meta.url));
const runs = (env.BENCH_ORIGINS ?? '5000,100000').split(',').map(Number);
const builds = [['this build', DIST], ...(env.BENCH_ANCHOR_DIST ? [['anchor', env.BENCH_ANCHOR_DIST]] : [])];
const rows = [];
for (const n of runs)
  for (const [build, dist] of builds) {
    const args = {
      agentModule: pathToFileURL(join(dist, 'index.js')).href,
      n,
      concurrency: Number(env.BENCH_CONCURRENCY ?? 64),
      idleTimeoutMs: Number(env.BENCH_IDLE_MS ?? 1000),
      originIdleTimeoutMs: Number(env.BENCH_ORIGIN_IDLE_MS ?? 2000),
    };
    const out = execFileSync(process.execPath, ['--expose-gc', script, JSON.stringify(args)], {
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    });
    rows.push({ build, dist, ...JSON.parse(out.trim().split('\n').pop()) });
  }
console.log(
  '| build | origins | req/s | failed | heap start MiB | peak MiB | after idle MiB | growth MiB | pools after run | pools after idle | stats rows | selector origins |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(
    `| ${r.build} | ${r.n} | ${r.reqPerS} | ${r.failed} | ${r.heapStartMiB} | ${r.heapPeakMiB} | ${r.heapEndMiB} | ${r.heapGrowthMiB} | ${r.poolsAfterRun} | ${r.poolsAfterIdle} | ${r.statsRowsAfterIdle} | ${r.selectorOrigins} |`,
  );
}
const file = new ResultWriter('origins').write({ rows });
console.log(`\nresults: ${file}`);
