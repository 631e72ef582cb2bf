#!/usr/bin/env node
// `npm run bench -- group-instructions`: the groups bench's cpu phase counted in instructions, not time. Each target
// of that phase runs alone under valgrind's callgrind (one at a time, the same configuration as there: three ports of
// one TLS nginx process, h1 upstream, health checks, outlier ejection, retry budget), is warmed until V8 has
// compiled what it will, then measured over BENCH_WINDOWS windows of BENCH_REQUESTS requests: instructions executed
// per request by the main thread (JavaScript, the runtime, OpenSSL, libuv: what a request costs in user space) and
// by the other threads (TurboFan compiling, GC helpers). Deterministic where time is not: this machine's speed and a
// process's speed for its life vary by ±10 %, the goal's margin (bench/RESULTS.md groups); an instruction count
// varies by what runs, not by how fast. What it cannot see: the kernel (about half a proxied request here), cache
// and TLB misses, and so a cost that is memory, not work. Read it beside the time ratio of `groups`, not instead.
// Under valgrind a request is some 50× slower, so the load is BENCH_RATE_VG req/s and the health interval is
// stretched by the same factor against groups' 2000 req/s (one check per endpoint per 2000 requests either way).
// Knobs: BENCH_TARGETS (a regexp on target names), BENCH_WARM_REQUESTS (30000; then windows until V8 has settled, up to
// BENCH_WARM_MAX, 90000), BENCH_REQUESTS (2000 a window),
// BENCH_WINDOWS (3), BENCH_RATE_VG (320 req/s), BENCH_DIST, BENCH_CACHE_SIM (1: callgrind also simulates this
// machine's caches and branch predictor — L1d 48 KiB 12-way, L1i 32 KiB 8-way, and its 1 MiB L2 per core as the last
// level, the L3 being shared with whatever else runs on the host — and the table gains L1 and L2 misses and mispredicted
// branches a request: what an instruction count cannot see, simulated, so a cost that is memory shows; some 2× slower
// again), BENCH_KEEP (a folder: the callgrind dumps are copied there, for callgrind_annotate, with V8's perf map of
// each process — node runs with --perf-basic-prof — to name the JIT's addresses). Needs valgrind, nginx,
// h2load (Debian: valgrind nginx-light nghttp2-client).
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeCerts } from '../lib/certs.mjs';
import { DIST } from '../lib/dist.mjs';
import { Endpoint, originlinkConfig } from '../lib/group-peers.mjs';
import { freePort, scratch, stopChild, waitPort } from '../lib/host.mjs';
import { ResultWriter } from '../lib/results.mjs';

const env = process.env;
const WARM = Number(env.BENCH_WARM_REQUESTS ?? 30_000);
const WARM_MAX = Number(env.BENCH_WARM_MAX ?? 90_000);
/** Settled: the threads beside the main one (TurboFan above all) ran under this share of its instructions in a window. */
const SETTLED = 0.05;
const REQUESTS = Number(env.BENCH_REQUESTS ?? 2000);
const WINDOWS = Number(env.BENCH_WINDOWS ?? 3);
const RATE = Number(env.BENCH_RATE_VG ?? 320);
const CONNS = 8;
const CACHE_SIM = env.BENCH_CACHE_SIM === '1';
const KEEP = env.BENCH_KEEP ?? null;
const ONLY = env.BENCH_TARGETS ? new RegExp(env.BENCH_TARGETS, 'i') : null;
for (const [k, ok] of [
  ['BENCH_WARM_REQUESTS', WARM >= 0],
  ['BENCH_WARM_MAX', WARM_MAX >= WARM],
  ['BENCH_REQUESTS', REQUESTS >= 100],
  ['BENCH_WINDOWS', Number.isInteger(WINDOWS) && WINDOWS >= 1],
  ['BENCH_RATE_VG', RATE >= CONNS],
]) {
  if (!ok) {
    console.error(`bench/group-instructions: bad ${k}`);
    process.exit(2);
  }
}
for (const bin of ['valgrind', 'callgrind_control', 'nginx', 'h2load']) {
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'pipe' });
  } catch {
    console.error(`bench/group-instructions: ${bin} is missing (Debian: valgrind nginx-light nghttp2-client)`);
    process.exit(2);
  }
}

/** groups' health interval (1 s at 2000 req/s), stretched to this load: the same checks per request. */
const HEALTH_MS = Math.round(1000 * (2000 / RATE));
const GROUP = `health: { path: /health, intervalMs: ${HEALTH_MS}, timeoutMs: 5000, rise: 1, fall: 2 }, outlier: { consecutiveFailures: 3, maxEjectionPercent: 34 }, retryBudget: { ratio: 0.2, minPerSecond: 10 }`;
// groups' cpu-phase targets and controls, the same names.
const TARGETS = [
  { name: 'originlink, 1 URL', single: true, group: null },
  {
    name: 'originlink, 1 URL + health (a group of one)',
    single: true,
    group: `health: { path: /health, intervalMs: ${HEALTH_MS}, timeoutMs: 5000 }`,
  },
  { name: 'originlink, group p2c', group: GROUP },
  { name: 'originlink, group p2c, one endpoint weight 1000', group: GROUP, weights: [1000, 1, 1] },
  { name: 'originlink, group round-robin', group: `${GROUP}, balance: round-robin` },
  { name: 'originlink, group ewma', group: `${GROUP}, balance: ewma` },
];
const BASE = TARGETS[0].name;
const targets = TARGETS.filter((t) => t.name === BASE || !ONLY || ONLY.test(t.name));

const certs = makeCerts();
const { dir, procs } = scratch('ol-bench-ginstr-');
const run = (argv) => {
  const p = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  p.stderr.resume();
  procs.push(p);
  return p;
};
/** valgrind takes its time to write its last dump and exit. */
const stop = (p) => stopChild(p, 20_000);

const origin = new Endpoint(dir, 'cpu', await freePort(), await freePort(), certs, [
  await freePort(),
  await freePort(),
]);
origin.start(run);
await waitPort(origin.port);
const endpoints = origin.ports.map((port) => ({ port, url: `https://127.0.0.1:${port}` }));

/** h2load at RATE over CONNS connections for `n` requests: how many succeeded. */
function load(port, n) {
  const out = execFileSync(
    'h2load',
    [
      '--h1',
      '-c',
      String(CONNS),
      `--rps=${Math.max(1, Math.round(RATE / CONNS))}`,
      '-n',
      String(n),
      `http://127.0.0.1:${port}/g/cpu`,
    ],
    { encoding: 'utf8', maxBuffer: 1 << 24 },
  );
  const m = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
  return m ? Number(m[4]) : 0;
}

/** The cache simulation's options: this machine's L1s, and its per-core L2 as the last level (see BENCH_CACHE_SIM). */
const SIM = CACHE_SIM
  ? ['--cache-sim=yes', '--branch-sim=yes', '--D1=49152,12,64', '--I1=32768,8,64', '--LL=1048576,16,64']
  : [];

/**
 * One dump's counts: the main thread's instructions (Ir), the other threads' (callgrind --separate-threads: OUT.N-TT),
 * and with the cache simulation the main thread's L1 misses (instruction and data), L2 misses and mispredicted branches.
 */
function dumped(base, n) {
  const files = readdirSync(dir).filter((f) => f.startsWith(`${base}.${n}-`));
  const c = { main: 0, rest: 0, l1: 0, l2: 0, bm: 0 };
  for (const f of files) {
    const text = readFileSync(join(dir, f), 'utf8');
    if (KEEP) copyFileSync(join(dir, f), join(KEEP, f));
    const names = (/^events: (.+)$/m.exec(text)?.[1] ?? 'Ir').trim().split(/\s+/);
    const values = (/^summary: (.+)$/m.exec(text)?.[1] ?? '0').trim().split(/\s+/).map(Number);
    const ev = (...ks) => ks.reduce((a, k) => a + (values[names.indexOf(k)] ?? 0), 0);
    if (!f.endsWith('-01')) {
      c.rest += ev('Ir');
      continue;
    }
    c.main += ev('Ir');
    c.l1 += ev('I1mr', 'D1mr', 'D1mw');
    c.l2 += ev('ILmr', 'DLmr', 'DLmw');
    c.bm += ev('Bcm', 'Bim');
  }
  return c;
}
if (KEEP) mkdirSync(KEEP, { recursive: true });

const results = [];
for (const t of targets) {
  const port = await freePort();
  const conf = join(dir, `ol-${results.length}.yaml`);
  writeFileSync(
    conf,
    originlinkConfig({
      port,
      endpoints,
      caPath: certs.caPath,
      protocol: 'h1',
      single: t.single,
      group: t.group,
      weights: t.weights,
    }),
  );
  const base = `cg-${results.length}.out`;
  const svc = run([
    'valgrind',
    '--tool=callgrind',
    '--separate-threads=yes',
    '--smc-check=all-non-file',
    ...SIM,
    `--callgrind-out-file=${join(dir, base)}`,
    process.execPath,
    ...(KEEP ? ['--perf-basic-prof'] : []),
    join(DIST, 'cli', 'main.js'),
    'serve',
    '--config',
    conf,
  ]);
  await waitPort(port, 120_000);
  let warmed = WARM > 0 ? load(port, WARM) : 0;
  let dumps = 0;
  /** One window of REQUESTS: instructions a request, the main thread's and the others'. */
  const window = () => {
    execFileSync('callgrind_control', ['-z', String(svc.pid)], { stdio: 'ignore' });
    const ok = load(port, REQUESTS);
    execFileSync('callgrind_control', ['-d', String(svc.pid)], { stdio: 'ignore' });
    const c = dumped(base, ++dumps);
    const per = (x) => x / Math.max(1, ok);
    return {
      requests: ok,
      mainPerReq: per(c.main),
      restPerReq: per(c.rest),
      ...(CACHE_SIM ? { l1PerReq: per(c.l1), l2PerReq: per(c.l2), mispredictPerReq: per(c.bm) } : {}),
    };
  };
  // Then on until V8 has settled: a window whose other threads ran under SETTLED of the main thread's instructions
  // (under valgrind, whose threads take turns, TurboFan's work lands late and in bursts: 30,000 requests were not
  // always enough). Bounded by BENCH_WARM_MAX requests.
  const settling = [];
  while (warmed < WARM_MAX) {
    const w = window();
    warmed += w.requests;
    settling.push(w);
    if (w.restPerReq < SETTLED * w.mainPerReq) break;
  }
  const settled =
    settling.length > 0 &&
    settling[settling.length - 1].restPerReq < SETTLED * settling[settling.length - 1].mainPerReq;
  const windows = [];
  for (let w = 1; w <= WINDOWS; w++) windows.push(window());
  await stop(svc);
  if (KEEP) {
    try {
      copyFileSync(`/tmp/perf-${svc.pid}.map`, join(KEEP, `${base}.perf.map`));
      rmSync(`/tmp/perf-${svc.pid}.map`);
    } catch {
      /* none written */
    }
  }
  const mid = (k) => windows.map((x) => x[k]).sort((a, b) => a - b)[Math.floor(windows.length / 2)];
  results.push({
    target: t.name,
    warmed,
    settled,
    settling,
    windows,
    main: mid('mainPerReq'),
    ...(CACHE_SIM ? { l1: mid('l1PerReq'), l2: mid('l2PerReq'), mispredict: mid('mispredictPerReq') } : {}),
    failed: windows.some((x) => x.requests < REQUESTS),
  });
  process.stderr.write(`done: ${t.name}\n`);
}
await stop(origin.proc);

const baseRow = results.find((r) => r.target === BASE);
const k = (x) => (x / 1000).toFixed(1);
const out = [
  `Instructions per request under callgrind, one target at a time (three ports of one TLS nginx process, h1; ${RATE} req/s over ${CONNS} h2load connections; ${WARM} requests of warm-up and on until V8 settled, then ${WINDOWS} windows of ${REQUESTS}; health every ${HEALTH_MS} ms)`,
  '',
  '| target | main thread, thousand instructions a request: median (windows) | ÷ 1 URL | other threads (TurboFan, GC helpers) a request, windows | requests before the windows (settled) | all answered |',
  '|---|---:|---:|---:|---:|---|',
];
for (const r of results)
  out.push(
    `| ${r.target} | ${k(r.main)} (${r.windows.map((x) => k(x.mainPerReq)).join(', ')}) | ${(r.main / baseRow.main).toFixed(3)} | ${r.windows.map((x) => k(x.restPerReq)).join(', ')} | ${r.warmed} (${r.settled ? 'yes' : '**no**'}) | ${r.failed ? '**no**' : 'yes'} |`,
  );
if (CACHE_SIM) {
  out.push(
    '',
    'Main thread, simulated (L1d 48 KiB, L1i 32 KiB, L2 1 MiB as the last level): misses and mispredicted branches a request, median of the windows',
    '',
    '| target | L1 misses (I + D) | ÷ 1 URL | L2 misses | ÷ 1 URL | mispredicted branches | ÷ 1 URL |',
    '|---|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of results)
    out.push(
      `| ${r.target} | ${Math.round(r.l1)} | ${(r.l1 / baseRow.l1).toFixed(3)} | ${Math.round(r.l2)} | ${(r.l2 / baseRow.l2).toFixed(3)} | ${Math.round(r.mispredict)} | ${(r.mispredict / baseRow.mispredict).toFixed(3)} |`,
    );
}
console.log(out.join('\n'));
const file = new ResultWriter('group-instructions').write({
  rate: RATE,
  connections: CONNS,
  cacheSim: CACHE_SIM ? SIM : null,
  warmRequests: WARM,
  warmMax: WARM_MAX,
  requests: REQUESTS,
  windows: WINDOWS,
  healthIntervalMs: HEALTH_MS,
  results,
});
console.log(`\nresults: ${file}`);
if (results.some((r) => r.failed || !r.settled)) process.exitCode = 1;
