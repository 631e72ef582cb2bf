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
// BENCH_WINDOWS (3), BENCH_RATE_VG (320 req/s), BENCH_DIST. Needs valgrind, nginx, h2load (Debian: valgrind
// nginx-light nghttp2-client).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCerts } from '../lib/certs.mjs';
import { DIST } from '../lib/dist.mjs';
import { Endpoint, originlinkConfig } from '../lib/group-peers.mjs';
import { alive, freePort, stopChild, waitPort } from '../lib/host.mjs';
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
const ONLY = env.BENCH_TARGETS ? new RegExp(env.BENCH_TARGETS, 'i') : null;
for (const [k, ok] of [['BENCH_WARM_REQUESTS', WARM >= 0], ['BENCH_WARM_MAX', WARM_MAX >= WARM], ['BENCH_REQUESTS', REQUESTS >= 100], ['BENCH_WINDOWS', Number.isInteger(WINDOWS) && WINDOWS >= 1], ['BENCH_RATE_VG', RATE >= CONNS]]) {
  if (!ok) { console.error(`bench/group-instructions: bad ${k}`); process.exit(2); }
}
for (const bin of ['valgrind', 'callgrind_control', 'nginx', 'h2load']) {
  try { execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'pipe' }); } catch { console.error(`bench/group-instructions: ${bin} is missing (Debian: valgrind nginx-light nghttp2-client)`); process.exit(2); }
}

/** groups' health interval (1 s at 2000 req/s), stretched to this load: the same checks per request. */
const HEALTH_MS = Math.round(1000 * (2000 / RATE));
const GROUP = `health: { path: /health, intervalMs: ${HEALTH_MS}, timeoutMs: 5000, rise: 1, fall: 2 }, outlier: { consecutiveFailures: 3, maxEjectionPercent: 34 }, retryBudget: { ratio: 0.2, minPerSecond: 10 }`;
// groups' cpu-phase targets and controls, the same names.
const TARGETS = [
  { name: 'originlink, 1 URL', single: true, group: null },
  { name: 'originlink, 1 URL + health (a group of one)', single: true, group: `health: { path: /health, intervalMs: ${HEALTH_MS}, timeoutMs: 5000 }` },
  { name: 'originlink, group p2c', group: GROUP },
  { name: 'originlink, group p2c, one endpoint weight 1000', group: GROUP, weights: [1000, 1, 1] },
  { name: 'originlink, group round-robin', group: `${GROUP}, balance: round-robin` },
  { name: 'originlink, group ewma', group: `${GROUP}, balance: ewma` },
];
const BASE = TARGETS[0].name;
const targets = TARGETS.filter((t) => t.name === BASE || !ONLY || ONLY.test(t.name));

const certs = makeCerts();
const dir = mkdtempSync(join(tmpdir(), 'ol-bench-ginstr-'));
const procs = [];
process.on('exit', () => {
  for (const p of procs) { try { if (alive(p)) process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ } }
  rmSync(dir, { recursive: true, force: true });
});
process.on('SIGINT', () => process.exit(130));
const run = (argv) => {
  const p = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  p.stderr.resume();
  procs.push(p);
  return p;
};
/** valgrind takes its time to write its last dump and exit. */
const stop = (p) => stopChild(p, 20_000);

const origin = new Endpoint(dir, 'cpu', await freePort(), await freePort(), certs, [await freePort(), await freePort()]);
origin.start(run);
await waitPort(origin.port);
const endpoints = origin.ports.map((port) => ({ port, url: `https://127.0.0.1:${port}` }));

/** h2load at RATE over CONNS connections for `n` requests: how many succeeded. */
function load(port, n) {
  const out = execFileSync('h2load', ['--h1', '-c', String(CONNS), `--rps=${Math.max(1, Math.round(RATE / CONNS))}`, '-n', String(n), `http://127.0.0.1:${port}/g/cpu`], { encoding: 'utf8', maxBuffer: 1 << 24 });
  const m = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
  return m ? Number(m[4]) : 0;
}

/** Instructions (Ir) of one dump: the main thread's and the other threads' (callgrind --separate-threads: OUT.N-TT). */
function dumped(base, n) {
  const files = readdirSync(dir).filter((f) => f.startsWith(`${base}.${n}-`));
  let main = 0;
  let rest = 0;
  for (const f of files) {
    const ir = Number(/^summary: (\d+)/m.exec(readFileSync(join(dir, f), 'utf8'))?.[1] ?? 0);
    if (f.endsWith('-01')) main += ir;
    else rest += ir;
  }
  return { main, rest };
}

const results = [];
for (const t of targets) {
  const port = await freePort();
  const conf = join(dir, `ol-${results.length}.yaml`);
  writeFileSync(conf, originlinkConfig({ port, endpoints, caPath: certs.caPath, protocol: 'h1', single: t.single, group: t.group, weights: t.weights }));
  const base = `cg-${results.length}.out`;
  const svc = run(['valgrind', '--tool=callgrind', '--separate-threads=yes', '--smc-check=all-non-file', `--callgrind-out-file=${join(dir, base)}`, process.execPath, join(DIST, 'cli', 'main.js'), 'serve', '--config', conf]);
  await waitPort(port, 120_000);
  let warmed = WARM > 0 ? load(port, WARM) : 0;
  let dumps = 0;
  /** One window of REQUESTS: instructions a request, the main thread's and the others'. */
  const window = () => {
    execFileSync('callgrind_control', ['-z', String(svc.pid)], { stdio: 'ignore' });
    const ok = load(port, REQUESTS);
    execFileSync('callgrind_control', ['-d', String(svc.pid)], { stdio: 'ignore' });
    const { main, rest } = dumped(base, ++dumps);
    return { requests: ok, mainPerReq: main / Math.max(1, ok), restPerReq: rest / Math.max(1, ok) };
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
  const settled = settling.length > 0 && settling[settling.length - 1].restPerReq < SETTLED * settling[settling.length - 1].mainPerReq;
  const windows = [];
  for (let w = 1; w <= WINDOWS; w++) windows.push(window());
  await stop(svc);
  const mains = windows.map((x) => x.mainPerReq).sort((a, b) => a - b);
  results.push({ target: t.name, warmed, settled, settling, windows, main: mains[Math.floor(mains.length / 2)], failed: windows.some((x) => x.requests < REQUESTS) });
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
for (const r of results) out.push(`| ${r.target} | ${k(r.main)} (${r.windows.map((x) => k(x.mainPerReq)).join(', ')}) | ${(r.main / baseRow.main).toFixed(3)} | ${r.windows.map((x) => k(x.restPerReq)).join(', ')} | ${r.warmed} (${r.settled ? 'yes' : '**no**'}) | ${r.failed ? '**no**' : 'yes'} |`);
console.log(out.join('\n'));
const file = new ResultWriter('group-instructions').write({ rate: RATE, connections: CONNS, warmRequests: WARM, warmMax: WARM_MAX, requests: REQUESTS, windows: WINDOWS, healthIntervalMs: HEALTH_MS, results });
console.log(`\nresults: ${file}`);
if (results.some((r) => r.failed || !r.settled)) process.exitCode = 1;
