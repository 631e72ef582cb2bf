#!/usr/bin/env node
// `npm run bench -- groups`: origin groups (docs/origin-groups.md) held against issue 43's goals, beside nginx
// (`upstream` with `max_fails`, `proxy_next_upstream`) and HAProxy (`check`, `observe layer7`, `retry-on`,
// `redispatch`), three TLS nginx endpoints behind each (bench/lib/group-peers.mjs). Every phase starts a fresh proxy
// (one phase's ejections or marked-down servers never reach the next), pinned to CPU 1; endpoints, the delay server,
// h2load and this process's own load loops share CPU 0. Phases:
//   steady    all healthy: h2load --h1 at a fixed rate; proxy CPU µs per request, p50/p99, each endpoint's share;
//             BENCH_STEADY_ROUNDS rounds over the targets, interleaved, the order reversed every other round
//   cpu       each originlink group target (and controls: one URL with 24 warm connections, a group with its load on
//             one endpoint, the group in round robin, the single URL beside itself, the single URL on node without the
//             launcher's flags) and the single-URL origin at the same time, both on the proxy core, each
//             loaded by its own h2load at the fixed rate: CPU per request of each and their ratio, BENCH_CPU_ROUNDS
//             times (which starts first alternating). This machine's speed drifts by tens of percent within
//             minutes; run side by side, the drift hits both alike (bench/README.md, proxy's BENCH_PAIRED). The
//             endpoints here are one nginx process on three ports (BENCH_CPU_ORIGIN)
//   slow      e0 answers 100 ms later than the others (through the delay server); the same load; its p50/p99 against
//             the same process's healthy windows just before and after (averaged)
//   collapse  100 identical GETs at once of a 200 ms resource; requests at the endpoints (their access logs)
//   kill      6 GET + 2 POST loops; e1 SIGKILLed at 2 s, started again at 5 s, to 8 s: failed GETs and POSTs, when
//             the proxy said e1 was out (its log), when e1's access log saw traffic again after its restart
//   outage-*  8 GET loops; every endpoint closing each connection unanswered (`close`, nginx 444) or answering 503
//             for BENCH_OUTAGE_S: client requests vs requests at the endpoints (access logs) in that window
// Knobs (env): BENCH_RATE (2000 req/s), BENCH_CONNECTIONS (16, h2load), BENCH_DURATION (5 s per measured h2load
// run), BENCH_WARMUP (2 s of h2load before each phase; BENCH_CPU_WARMUP, 30 s, before each cpu round), BENCH_STEADY_ROUNDS (1), BENCH_CPU_ROUNDS (6; even: each order as often), BENCH_OUTAGE_S (5), BENCH_UPSTREAM (h1 or h2: originlink to
// the endpoints; the anchors speak h1), BENCH_ANCHOR_BALANCE (roundrobin, or leastconn: nginx least_conn, HAProxy
// leastconn), BENCH_TARGETS (a regexp on target names), BENCH_PHASES (a list, default all), BENCH_CPU_ORIGIN (`one`:
// the cpu phase's endpoints are three ports of one nginx process, the default — see there; `three`: the three
// endpoint processes), BENCH_CPU_PAIRING (`side`: the pair loaded at once, the default; `alternate`: each warmed and
// measured alone in turn), BENCH_PSTAT (a folder: for each cpu round, `perf stat` counts of both processes — connects, closes,
// reads, writes, context switches, page faults, major faults), BENCH_PERF (a folder: for each cpu round, `perf record -e cpu-clock -g` of both processes of the pair
// over the measured run, `<target>-<round>-target.data` / `…-single.data`, and each process's output lines, prefixed by ms
// since the measured run began — with BENCH_NODE_ARGS=--perf-basic-prof perf names the JIT frames, with
// `--trace-opt --trace-deopt` the lines say what V8 compiled when), BENCH_DIST.
// Needs: nginx, haproxy, h2load, taskset (Debian: nginx-light haproxy nghttp2-client util-linux), a built dist/.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { makeCerts } from '../lib/certs.mjs';
import { DIST } from '../lib/dist.mjs';
import { burst, closedLoop } from '../lib/group-load.mjs';
import {
  Endpoint,
  haproxyConfig,
  nginxConfig,
  originlinkConfig,
  outMarker,
  startDelayServer,
} from '../lib/group-peers.mjs';
import { alive, freePort, mainCpuNs, scratch, serviceArgv, stopChild, treeCpuNs, waitPort } from '../lib/host.mjs';
import { ResultWriter } from '../lib/results.mjs';
import { quantile } from '../lib/stats.mjs';

const env = process.env;
const RATE = Number(env.BENCH_RATE ?? 2000);
const CONNS = Number(env.BENCH_CONNECTIONS ?? 16);
const DURATION = Number(env.BENCH_DURATION ?? 5);
const WARMUP = Number(env.BENCH_WARMUP ?? 2);
/**
 * The cpu phase's warm-up: long enough that what a process does once after its start is not in the measure — the
 * steady state the goal names. With 2 s, the group processes' one mark-compact of startup growth (heap ~23 → 13 MB,
 * at 2.5–2.8 s of their life, the single URL's process has none) fell in the measured window (RESULTS.md, groups,
 * 2026-11-25 20:19); with 5 s, p2c's three pools each still had their first surplus close dialled again in it (the
 * regret that keeps their connections: 3 dials in every 15 s window, none with 30 s; RESULTS.md, groups, 2026-11-26).
 */
const CPU_WARMUP = Number(env.BENCH_CPU_WARMUP ?? 30);
const OUTAGE_S = Number(env.BENCH_OUTAGE_S ?? 5);
const STEADY_ROUNDS = Number(env.BENCH_STEADY_ROUNDS ?? 1);
const CPU_ROUNDS = Number(env.BENCH_CPU_ROUNDS ?? 6);
const UPSTREAM = env.BENCH_UPSTREAM ?? 'h1';
const CPU_ORIGIN = env.BENCH_CPU_ORIGIN ?? 'one';
/**
 * How the cpu phase's two processes share the proxy core: `side` (default), both loaded at once; `alternate`, both
 * started and warmed, then loaded one after the other, alone on the core while measured (the order turns each round).
 */
const CPU_PAIRING = env.BENCH_CPU_PAIRING ?? 'side';
const ANCHOR_BALANCE = env.BENCH_ANCHOR_BALANCE ?? 'roundrobin';
const PHASES = ['steady', 'cpu', 'slow', 'collapse', 'kill', 'outage-close', 'outage-503'];
const WANT = env.BENCH_PHASES ? env.BENCH_PHASES.split(',') : PHASES;
const ONLY = env.BENCH_TARGETS ? new RegExp(env.BENCH_TARGETS, 'i') : null;
/** The active checks' interval of originlink and HAProxy (nginx has none): the goal for "back after its restart". */
const HEALTH_MS = Number(env.BENCH_HEALTH_MS ?? 1000);
/** Extra node flags for our service (a profile: `--cpu-prof --cpu-prof-dir=DIR`), as bench/proxy.mjs takes them. */
const NODE_ARGS = (env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
/** Every originlink process without the launcher's node flags (BENCH_BARE_NODE=1). */
const BARE_NODE = env.BENCH_BARE_NODE === '1';
const PROXY_CPU = '1';
const LOAD_CPU = '0';
for (const [k, ok] of [
  ['BENCH_RATE', RATE >= CONNS],
  ['BENCH_DURATION', DURATION > 0],
  ['BENCH_STEADY_ROUNDS', Number.isInteger(STEADY_ROUNDS) && STEADY_ROUNDS >= 1],
  ['BENCH_CPU_ROUNDS', Number.isInteger(CPU_ROUNDS) && CPU_ROUNDS >= 2 && CPU_ROUNDS % 2 === 0],
  ['BENCH_OUTAGE_S', OUTAGE_S > 0],
  ['BENCH_UPSTREAM', UPSTREAM === 'h1' || UPSTREAM === 'h2'],
  ['BENCH_CPU_ORIGIN', CPU_ORIGIN === 'one' || CPU_ORIGIN === 'three'],
  ['BENCH_CPU_PAIRING', CPU_PAIRING === 'side' || CPU_PAIRING === 'alternate'],
  ['BENCH_ANCHOR_BALANCE', ANCHOR_BALANCE === 'roundrobin' || ANCHOR_BALANCE === 'leastconn'],
  ['BENCH_PHASES', WANT.every((p) => PHASES.includes(p))],
]) {
  if (!ok) {
    console.error(`bench/groups: bad ${k}`);
    process.exit(2);
  }
}
for (const bin of ['nginx', 'haproxy', 'h2load', 'taskset']) {
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'pipe' });
  } catch {
    console.error(`bench/groups: ${bin} is missing (Debian: nginx-light haproxy nghttp2-client util-linux)`);
    process.exit(2);
  }
}

const certs = makeCerts();
const { dir, procs } = scratch('ol-bench-groups-');
// This process's load loops on the load core, beside the endpoints.
try {
  execFileSync('taskset', ['-p', '-c', LOAD_CPU, String(process.pid)], { stdio: 'ignore' });
} catch {
  /* unpinned */
}

/** A child on `cpu` (taskset execs it: its pid is the command's). `lines`: its output lines, each with its arrival time. */
function run(argv, cpu = LOAD_CPU, lines = null) {
  const p = spawn('taskset', ['-c', cpu, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(p);
  for (const s of [p.stdout, p.stderr]) {
    if (lines) createInterface({ input: s }).on('line', (line) => lines.push({ at: Date.now(), line }));
    else s.resume();
  }
  return p;
}
const stop = (p) => stopChild(p);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- the endpoints
const delay = await startDelayServer(run);
const endpoints = [];
for (let i = 0; i < 3; i++) {
  const e = new Endpoint(dir, i, await freePort(), delay.port, certs);
  e.start(run);
  endpoints.push(e);
}
for (const e of endpoints) await waitPort(e.port);
const [e0, e1] = endpoints;

// --- the targets
const GROUP = `health: { path: /health, intervalMs: ${HEALTH_MS}, timeoutMs: 500, rise: 1, fall: 2 }, outlier: { consecutiveFailures: 3, maxEjectionPercent: 34 }, retryBudget: { ratio: 0.2, minPerSecond: 10 }`;
const anchorBalance = ANCHOR_BALANCE === 'leastconn' ? 'least conn' : 'round robin';
const targets = [
  { name: 'originlink, 1 URL', kind: 'originlink', single: true, group: null, phases: ['steady'] },
  {
    name: 'originlink, 1 URL + health (a group of one)',
    kind: 'originlink',
    single: true,
    group: `health: { path: /health, intervalMs: ${HEALTH_MS}, timeoutMs: 500 }`,
    phases: ['steady', 'cpu'],
  },
  { name: 'originlink, group p2c', kind: 'originlink', group: GROUP, phases: PHASES, goals: true },
  // A control for the cpu phase: the group p2c's code with its load on one endpoint (p2c's cost is load ÷ weight: e0
  // always wins), to tell the group's per-request code from spreading one load over three pools (19:57: 1.053×
  // against p2c's 1.083×).
  {
    name: 'originlink, group p2c, one endpoint weight 1000',
    kind: 'originlink',
    group: GROUP,
    weights: [1000, 1, 1],
    phases: ['cpu'],
    cpuGoal: false,
  },
  // A control for the cpu phase: three endpoints in turn, without p2c's draws and load reads.
  {
    name: 'originlink, group round-robin',
    kind: 'originlink',
    group: `${GROUP}, balance: round-robin`,
    phases: ['cpu'],
    cpuGoal: false,
  },
  // The single URL beside itself: the pairing's own spread (what two processes of one build differ by).
  {
    name: 'originlink, 1 URL beside itself (A/A)',
    kind: 'originlink',
    single: true,
    group: null,
    phases: ['cpu'],
    cpuGoal: false,
  },
  // The single URL started without the launcher's node flags (bin/service-node-flags) beside the single URL as
  // started: what the flags save a plain origin.
  {
    name: "originlink, 1 URL, node without the launcher's flags",
    kind: 'originlink',
    single: true,
    group: null,
    bareNode: true,
    phases: ['cpu'],
    cpuGoal: false,
  },
  // The group with node's own code on 2 MiB pages (`--use-largepages=silent`, the launcher's default until
  // 2026-11-28): what huge pages do for the group's excess over the single URL on this machine.
  {
    name: 'originlink, group p2c, node code on 2 MiB pages',
    kind: 'originlink',
    group: GROUP,
    nodeArgs: ['--use-largepages=silent'],
    phases: ['cpu'],
    cpuGoal: false,
  },
  // Another: one pool holding as many connections as a group's three keep (16 / 21 / 27 in the steady phase). At
  // 1.005× (19:41, RESULTS) connections alone are not what a group costs.
  {
    name: 'originlink, 1 URL, 24 warm',
    kind: 'originlink',
    single: true,
    group: null,
    minWarm: 24,
    phases: ['cpu'],
    cpuGoal: false,
  },
  // Hedging sends more attempts by design (p95: one in twenty) and cancels the losers: over h2 by RST_STREAM; over h1
  // a loser's connection closes (a TLS handshake per hedge), which is not what anyone should hedge over.
  // With p2c a hedge hides the slow endpoint (its cancelled attempts leave its count in flight): shown, not recommended.
  {
    name: 'originlink, group ewma',
    kind: 'originlink',
    group: `${GROUP}, balance: ewma`,
    phases: ['steady', 'cpu', 'slow'],
    slowGoal: true,
  },
  {
    name: 'originlink, group ewma + hedge p95 (h2)',
    kind: 'originlink',
    protocol: 'h2',
    group: `${GROUP}, balance: ewma, hedge: { percentile: 95 }`,
    phases: ['steady', 'slow'],
    slowGoal: true,
    cpuGoal: false,
  },
  {
    name: 'originlink, group p2c + hedge p95 (h2)',
    kind: 'originlink',
    protocol: 'h2',
    group: `${GROUP}, hedge: { percentile: 95 }`,
    phases: ['steady', 'slow'],
    slowGoal: true,
    cpuGoal: false,
  },
  { name: `nginx (${anchorBalance}, max_fails, proxy_next_upstream)`, kind: 'nginx', phases: PHASES, cpuGoal: false },
  {
    name: `HAProxy (${anchorBalance}, check, observe layer7, retry-on, redispatch)`,
    kind: 'haproxy',
    phases: PHASES.filter((p) => p !== 'cpu'),
  },
].filter((t) => !ONLY || ONLY.test(t.name));

/** A fresh proxy of `t` on the proxy core, in front of `eps` (the endpoints, or their views): its port, process and output lines. */
async function launch(t, eps = endpoints) {
  const port = await freePort();
  const lines = [];
  let argv;
  if (t.kind === 'originlink') {
    const file = join(dir, `originlink-${port}.yaml`);
    writeFileSync(
      file,
      originlinkConfig({
        port,
        endpoints: eps,
        caPath: certs.caPath,
        protocol: t.protocol ?? UPSTREAM,
        group: t.group,
        single: t.single === true,
        minWarm: t.minWarm,
        weights: t.weights,
      }),
    );
    argv = [
      ...serviceArgv(DIST, [...NODE_ARGS, ...(t.nodeArgs ?? [])], !(t.bareNode || BARE_NODE)),
      'serve',
      '--config',
      file,
    ];
  } else if (t.kind === 'nginx') {
    const file = join(dir, `proxy-nginx-${port}.conf`);
    writeFileSync(
      file,
      nginxConfig({
        dir,
        port,
        endpoints: t.one ? eps.slice(0, 1) : eps,
        caPath: certs.caPath,
        balance: ANCHOR_BALANCE,
      }),
    );
    argv = ['nginx', '-p', dir, '-c', file, '-e', 'stderr'];
  } else {
    const file = join(dir, `haproxy-${port}.cfg`);
    writeFileSync(file, haproxyConfig({ port, endpoints: eps, caPath: certs.caPath, balance: ANCHOR_BALANCE }));
    argv = ['haproxy', '-f', file, '-db'];
  }
  const proc = run(argv, PROXY_CPU, lines);
  await waitPort(port);
  return { port, proc, lines };
}

// --- h2load at a fixed rate; latency from its per-request log (µs from a request's start to its response's end)
const exec = promisify(execFile);
let runs = 0;
async function h2load(port, path, seconds) {
  const log = join(dir, `h2load-${runs++}.log`);
  const { stdout: out } = await exec(
    'taskset',
    [
      '-c',
      LOAD_CPU,
      'h2load',
      '--h1',
      '-c',
      String(CONNS),
      `--rps=${Math.max(1, Math.round(RATE / CONNS))}`,
      '-D',
      String(seconds),
      `--log-file=${log}`,
      `http://127.0.0.1:${port}${path}`,
    ],
    { encoding: 'utf8', maxBuffer: 1 << 24 },
  );
  const ms = readFileSync(log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => Number(l.split('\t')[2]) / 1000)
    .sort((a, b) => a - b);
  rmSync(log, { force: true });
  const m = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  return {
    rps: Number(/finished in [\d.]+s, ([\d.]+) req\/s/.exec(out)?.[1]),
    requests: m ? Number(m[3]) : 0,
    errors: (m ? Number(m[5]) + Number(m[6]) : 0) + (codes ? Number(codes[3]) + Number(codes[4]) : 0),
    p50: quantile(ms, 0.5),
    p99: quantile(ms, 0.99),
  };
}

const marks = () => endpoints.map((e) => e.log().length);
/** Requests at each endpoint since `from` whose target starts with `prefix` (access logs; checks are /health). */
const seen = (from, prefix, keep = () => true) =>
  endpoints.map(
    (e, i) =>
      e
        .log()
        .slice(from[i])
        .filter((l) => l.uri.startsWith(prefix) && keep(l)).length,
  );
const sum = (xs) => xs.reduce((a, b) => a + b, 0);

const phases = {
  async steady(t, L) {
    const from = marks();
    const c0 = treeCpuNs(L.proc.pid);
    const r = await h2load(L.port, '/g/steady', DURATION);
    const cpuUsPerReq = (treeCpuNs(L.proc.pid) - c0) / 1000 / Math.max(1, r.requests);
    await sleep(300);
    // Connections the endpoints saw this phase's requests on (their logs' $connection): churn shows here.
    const conns = sum(
      endpoints.map(
        (e, i) =>
          new Set(
            e
              .log()
              .slice(from[i])
              .filter((l) => l.uri.startsWith('/g/'))
              .map((l) => l.connection),
          ).size,
      ),
    );
    return { ...r, cpuUsPerReq, share: seen(from, '/g/'), conns };
  },
  // The slow window between two healthy windows of the same process, the same length: "healthy" is their p50 and p99
  // averaged (a process keeps a speed of its own for its life, and the steady phase's process is another one; its p99
  // against this one's moved the ratio by ±0.2 run to run). The second healthy window starts once e0's requests of
  // the slow window are answered (its last ones take 100 ms).
  async slow(t, L) {
    // Warmed longer first: after the phase's 2 s a process's p99 still fell by half over the next windows (V8 settling).
    await h2load(L.port, '/g/warm', 10);
    const healthy = [await h2load(L.port, '/g/healthy', DURATION)];
    e0.set('slow', true);
    let r;
    let from;
    try {
      // The proxy meets the slow endpoint first: 5 s, the steady state with it. Measured from 1 s on, ewma's p99 read
      // 1.26–1.41× healthy (the EWMA learning it, e1's and e2's pools growing to their new share), from 5 s 0.59–0.80×.
      await h2load(L.port, '/g/slow-warm', 5);
      from = marks();
      r = await h2load(L.port, '/g/slow', DURATION);
      await sleep(300);
    } finally {
      e0.set('slow', false);
    }
    const share = seen(from, '/g/');
    await h2load(L.port, '/g/healthy-warm', Math.max(1, WARMUP / 2)); // e0 fast again, and found so
    healthy.push(await h2load(L.port, '/g/healthy', DURATION));
    const mean = (k) => (healthy[0][k] + healthy[1][k]) / 2;
    return { ...r, share, healthy: { p50: mean('p50'), p99: mean('p99'), p99s: healthy.map((h) => h.p99) } };
  },
  async collapse(t, L) {
    const from = marks();
    const path = `/c/thing-${runs++}`;
    const res = await burst(L.port, 100, path);
    await sleep(300);
    return {
      clients: res.length,
      origin: sum(seen(from, path)),
      ok: res.every((r) => r.status === 200),
      oneBody: new Set(res.map((r) => r.text)).size === 1,
    };
  },
  async kill(t, L) {
    const load = closedLoop(L.port, 8000, { gets: 6, posts: 2, tag: 'kill' });
    await sleep(2000);
    const killedAt = Date.now();
    await e1.kill();
    const deadAt = Date.now(); // a request started from here on cannot have been held by e1
    await sleep(3000);
    e1.start(run);
    await waitPort(e1.port); // polled every 50 ms: the restart is known up to 50 ms late
    const restartedAt = Date.now();
    const res = await load;
    await sleep(300);
    const out = L.lines.find((l) => l.at >= killedAt && outMarker(t.kind, e1)(l.line));
    const back = e1.log().find((l) => l.at >= restartedAt && l.uri.startsWith('/g/'));
    const gets = res.filter((r) => r.method === 'GET');
    const posts = res.filter((r) => r.method === 'POST');
    return {
      gets: gets.length,
      failedGets: gets.filter((r) => r.status !== 200).length,
      posts: posts.length,
      failedPosts: posts.filter((r) => r.status !== 200).length,
      failedPostsAfter: posts.filter((r) => r.status !== 200 && r.t0 > deadAt).length,
      outMs: out ? out.at - killedAt : null,
      backMs: back ? Math.max(0, back.at - restartedAt) : null,
      restartWindowMs: 3000,
    };
  },
  'outage-close': (t, L) => outage(L, 'down'),
  'outage-503': (t, L) => outage(L, '503'),
};

async function outage(L, flag) {
  const from = marks();
  const load = closedLoop(L.port, 4000 + OUTAGE_S * 1000, { gets: 8, tag: `outage-${flag}` });
  await sleep(2000);
  const downAt = Date.now();
  for (const e of endpoints) e.set(flag, true);
  await sleep(OUTAGE_S * 1000);
  const upAt = Date.now();
  for (const e of endpoints) e.set(flag, false);
  const res = await load;
  await sleep(300);
  const clients = res.filter((r) => r.t0 >= downAt && r.t0 < upAt).length;
  const origin = sum(seen(from, '/g/', (l) => l.at >= downAt && l.at < upAt));
  return {
    clients,
    origin,
    ratio: origin / Math.max(1, clients),
    bound: 1.2 * clients + 10 * OUTAGE_S,
    failedAfter: res.filter((r) => r.t0 >= upAt + 1000 && r.status !== 200).length,
  };
}

// --- run: every phase of every target on a fresh proxy, warmed up first; the steady rounds first, interleaved
async function runPhase(t, phase) {
  const L = await launch(t);
  try {
    await h2load(L.port, '/g/warm', WARMUP);
    return {
      target: t.name,
      kind: t.kind,
      goals: t.goals === true,
      slowGoal: t.slowGoal === true,
      cpuGoal: t.cpuGoal !== false,
      phase,
      ...(await phases[phase](t, L)),
    };
  } finally {
    await stop(L.proc);
    for (const e of endpoints) for (const f of ['slow', 'down', '503']) e.set(f, false);
    process.stderr.write(`done: ${t.name} — ${phase}\n`);
  }
}
const steadyRounds = [];
if (WANT.includes('steady')) {
  for (let round = 0; round < STEADY_ROUNDS; round++) {
    const rs = [];
    const ts = targets.filter((x) => x.phases.includes('steady'));
    for (const t of round % 2 ? [...ts].reverse() : ts) rs.push(await runPhase(t, 'steady'));
    steadyRounds.push(round % 2 ? rs.reverse() : rs);
  }
}
const median = (xs) => {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return v.length === 0 ? NaN : v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
const results = [];
const single = 'originlink, 1 URL';
for (const [k, first] of (steadyRounds[0] ?? []).entries()) {
  const rs = steadyRounds.map((round) => round[k]);
  results.push({
    ...first,
    rps: median(rs.map((r) => r.rps)),
    cpuUsPerReq: median(rs.map((r) => r.cpuUsPerReq)),
    p50: median(rs.map((r) => r.p50)),
    p99: median(rs.map((r) => r.p99)),
    errors: sum(rs.map((r) => r.errors)),
    share: [0, 1, 2].map((i) => sum(rs.map((r) => r.share[i]))),
    conns: sum(rs.map((r) => r.conns ?? 0)),
    rounds: rs,
  });
}
/** What BENCH_PSTAT counts per process: the syscalls of a proxied request and of a dial, context switches, page faults (and the major ones). */
const PSTAT_EVENTS =
  'syscalls:sys_enter_connect,syscalls:sys_enter_close,syscalls:sys_enter_write,syscalls:sys_enter_read,context-switches,page-faults,major-faults';
/** `t` and the single-URL origin on the proxy core (side by side, or one after the other: CPU_PAIRING), each under its own h2load: CPU per request of each. */
async function paired(t, round, eps) {
  // nginx's row: the same upstream with one server against three — what spreading costs a proxy that is not ours.
  const base =
    t.kind === 'nginx'
      ? { name: 'nginx, one server', kind: 'nginx', one: true }
      : (targets.find((x) => x.name === single) ?? { name: single, kind: 'originlink', single: true, group: null });
  const order = round % 2 ? [t, base] : [base, t];
  const up = [];
  for (const x of order) up.push(await launch(x, eps));
  try {
    const side = CPU_PAIRING === 'side';
    if (side) await Promise.all(up.map((L) => h2load(L.port, '/g/warm', CPU_WARMUP)));
    const t0 = Date.now();
    const stem = (i) => `${t.name.replace(/\W+/g, '_')}-${round}-${order[i] === t ? 'target' : 'single'}`;
    const traced = (i) => join(env.BENCH_PERF, stem(i));
    // Tracers of both processes over the measured runs (BENCH_PERF: samples; BENCH_PSTAT: syscall and event counts;
    // with BENCH_CPU_PAIRING=alternate they span both runs).
    const tracers = [
      ...(env.BENCH_PERF
        ? up.map((L, i) =>
            spawn(
              'perf',
              [
                'record',
                '-q',
                '-e',
                'cpu-clock',
                '-F',
                '1999',
                '-g',
                '-p',
                String(L.proc.pid),
                '-o',
                `${traced(i)}.data`,
              ],
              { stdio: 'ignore' },
            ),
          )
        : []),
      ...(env.BENCH_PSTAT
        ? up.map((L, i) =>
            spawn(
              'perf',
              [
                'stat',
                '-x',
                ',',
                '-e',
                PSTAT_EVENTS,
                '-p',
                String(L.proc.pid),
                '-o',
                join(env.BENCH_PSTAT, `${stem(i)}.txt`),
              ],
              { stdio: 'ignore' },
            ),
          )
        : []),
    ];
    /** One process's measured run: its CPU per request over it. `alternate`: warmed first, alone on the core. */
    const measure = async (L) => {
      if (!side) await h2load(L.port, '/g/warm', CPU_WARMUP);
      const c0 = treeCpuNs(L.proc.pid);
      const m0 = mainCpuNs(L.proc.pid);
      const r = await h2load(L.port, '/g/cpu', DURATION);
      const n = Math.max(1, r.requests);
      return {
        errors: r.errors,
        cpu: (treeCpuNs(L.proc.pid) - c0) / 1000 / n,
        main: (mainCpuNs(L.proc.pid) - m0) / 1000 / n,
      };
    };
    const rs = [];
    if (side) rs.push(...(await Promise.all(up.map(measure))));
    else for (const L of up) rs.push(await measure(L));
    for (const p of tracers)
      if (alive(p)) {
        const done = new Promise((r) => p.once('exit', r));
        p.kill('SIGINT');
        await Promise.race([done, sleep(5000)]);
      }
    if (env.BENCH_PERF)
      up.forEach((L, i) => writeFileSync(`${traced(i)}.log`, L.lines.map((x) => `${x.at - t0} ${x.line}`).join('\n')));
    const [b, g] = round % 2 ? [rs[1], rs[0]] : [rs[0], rs[1]];
    return {
      single: b.cpu,
      target: g.cpu,
      ratio: g.cpu / b.cpu,
      singleMain: b.main,
      targetMain: g.main,
      mainRatio: g.main / b.main,
      errors: rs[0].errors + rs[1].errors,
    };
  } finally {
    for (const L of up) await stop(L.proc);
    process.stderr.write(`done: ${t.name} — cpu round ${round + 1}\n`);
  }
}
/**
 * The ratio of a pair's rounds: their geometric mean. Whichever of the two processes started first costs 10–20 %
 * more in that round (seen in every pair, the group of one included: 72.1 vs 61.9 µs, then 64.3 vs 77.5 with the
 * order turned); the order alternates, so the geometric mean of an even number of rounds cancels that factor,
 * where the median of such two-valued ratios jumped between its high and low pairs.
 */
const geomean = (xs) => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);
if (WANT.includes('cpu') && targets.some((x) => x.phases.includes('cpu'))) {
  // BENCH_CPU_ORIGIN=one (default): the group's three endpoints are three ports of one nginx process, the single URL
  // the first of them. With three nginx processes (`three`, as every other phase) each is idle a third more often and
  // a write to it pays the receiver's wakeup in the sender's system time: measured with a closed-loop Agent, system
  // µs per request 5.5–6.9 to one process, 9.4–9.7 to two, user time the same — a cost of three servers sharing this
  // machine's two CPUs with us, not of the group (remote endpoints are a NIC away, whatever their number).
  const cpuOrigin =
    CPU_ORIGIN === 'one'
      ? new Endpoint(dir, 'cpu', await freePort(), delay.port, certs, [await freePort(), await freePort()])
      : null;
  if (cpuOrigin) {
    cpuOrigin.start(run);
    await waitPort(cpuOrigin.port);
  }
  const eps = cpuOrigin ? cpuOrigin.ports.map((port) => ({ port, url: `https://127.0.0.1:${port}` })) : endpoints;
  for (const t of targets.filter((x) => x.phases.includes('cpu'))) {
    const rounds = [];
    for (let round = 0; round < CPU_ROUNDS; round++) rounds.push(await paired(t, round, eps));
    results.push({
      target: t.name,
      kind: t.kind,
      phase: 'cpu',
      cpuOrigin: CPU_ORIGIN,
      cpuPairing: CPU_PAIRING,
      cpuGoal: t.cpuGoal !== false,
      rounds,
      single: median(rounds.map((r) => r.single)),
      cpuUsPerReq: median(rounds.map((r) => r.target)),
      ratios: rounds.map((r) => r.ratio),
      ratio: geomean(rounds.map((r) => r.ratio)),
      mainRatios: t.kind === 'originlink' ? rounds.map((r) => r.mainRatio) : null,
      mainRatio: t.kind === 'originlink' ? geomean(rounds.map((r) => r.mainRatio)) : null,
      errors: sum(rounds.map((r) => r.errors)),
    });
  }
  await cpuOrigin?.kill();
}
for (const t of targets)
  for (const phase of t.phases.filter((p) => p !== 'steady' && p !== 'cpu' && WANT.includes(p)))
    results.push(await runPhase(t, phase));

// --- tables and goals
const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const of = (phase) => results.filter((r) => r.phase === phase);
const out = [
  `Origin groups: three TLS nginx endpoints behind each proxy (proxy on CPU ${PROXY_CPU}; endpoints and load on CPU ${LOAD_CPU}), originlink to them over ${UPSTREAM}, anchors over h1; h2load --h1 -c${CONNS} at ${RATE} req/s, ${DURATION} s after ${WARMUP} s of warm-up`,
];
/** A ratio with the range of its rounds. */
const spread = (x, xs) => `${f(x, 3)}${xs.length > 1 ? ` (${f(Math.min(...xs), 3)}–${f(Math.max(...xs), 3)})` : ''}`;
/** Ratios per round: the median, with the range when there are several. */
if (of('steady').length) {
  out.push(
    '',
    `### steady (all healthy${STEADY_ROUNDS > 1 ? `; medians of ${STEADY_ROUNDS} interleaved rounds` : ''})`,
    '',
    '| target | req/s | proxy CPU µs/req | p50 ms | p99 ms | errors | requests e0 / e1 / e2 | connections at the endpoints |',
    '|---|---:|---:|---:|---:|---:|---|---:|',
  );
  for (const r of of('steady'))
    out.push(
      `| ${r.target} | ${Math.round(r.rps)} | ${f(r.cpuUsPerReq)} | ${f(r.p50, 2)} | ${f(r.p99, 2)} | ${r.errors} | ${r.share.join(' / ')} | ${r.conns} |`,
    );
}
if (of('cpu').length) {
  out.push(
    '',
    `### cpu (${CPU_PAIRING === 'side' ? 'side by side' : 'one after the other'} with the single-URL origin on CPU ${PROXY_CPU}, each at ${RATE} req/s; ${CPU_ROUNDS} rounds; endpoints: ${CPU_ORIGIN === 'one' ? 'three ports of one nginx process' : 'three nginx processes'})`,
    '',
    "| target | CPU µs/req | single URL µs/req (nginx: one server) | ÷ single URL: geometric mean of the rounds (min–max) | main thread alone ÷ single URL's | errors |",
    '|---|---:|---:|---:|---:|---:|',
  );
  for (const r of of('cpu'))
    out.push(
      `| ${r.target} | ${f(r.cpuUsPerReq)} | ${f(r.single)} | ${spread(r.ratio, r.ratios)} | ${r.mainRatio === null ? '–' : spread(r.mainRatio, r.mainRatios)} | ${r.errors} |`,
    );
}
if (of('slow').length) {
  out.push(
    '',
    '### slow (e0 answers 100 ms later; healthy: the same process before and after, averaged)',
    '',
    '| target | req/s | p50 ms | p99 ms | healthy p99 ms (before, after) | p50 ÷ healthy | p99 ÷ healthy | share of e0 | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of of('slow')) {
    const s = r.healthy;
    out.push(
      `| ${r.target} | ${Math.round(r.rps)} | ${f(r.p50, 2)} | ${f(r.p99, 2)} | ${f(s.p99s[0], 2)}, ${f(s.p99s[1], 2)} | ${f(r.p50 / s.p50, 2)} | ${f(r.p99 / s.p99, 2)} | ${f((100 * r.share[0]) / Math.max(1, sum(r.share)), 2)} % | ${r.errors} |`,
    );
  }
}
if (of('collapse').length) {
  out.push(
    '',
    '### collapse (100 identical GETs at once, 200 ms resource)',
    '',
    '| target | clients | requests at the endpoints | all 200 |',
    '|---|---:|---:|---|',
  );
  for (const r of of('collapse')) out.push(`| ${r.target} | ${r.clients} | ${r.origin} | ${r.ok ? 'yes' : 'no'} |`);
}
if (of('kill').length) {
  out.push(
    '',
    '### kill (e1 SIGKILLed at 2 s, started again 3 s later; 6 GET + 2 POST loops)',
    '',
    "| target | GETs | failed GETs | POSTs | failed POSTs (started after e1 was dead) | out after (ms, the proxy's log) | traffic again after restart (ms, e1's log) |",
    '|---|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of of('kill'))
    out.push(
      `| ${r.target} | ${r.gets} | ${r.failedGets} | ${r.posts} | ${r.failedPosts} (${r.failedPostsAfter}) | ${r.outMs ?? 'not said'} | ${r.backMs ?? `> ${r.restartWindowMs}`} |`,
    );
}
for (const phase of ['outage-close', 'outage-503']) {
  if (!of(phase).length) continue;
  out.push(
    '',
    `### ${phase} (every endpoint ${phase === 'outage-close' ? 'closing each connection unanswered' : 'answering 503'} for ${OUTAGE_S} s; 8 GET loops)`,
    '',
    '| target | client requests | requests at the endpoints | ÷ client | bound 1.2 × client + 10/s | failed ≥ 1 s after |',
    '|---|---:|---:|---:|---:|---:|',
  );
  for (const r of of(phase))
    out.push(
      `| ${r.target} | ${r.clients} | ${r.origin} | ${f(r.ratio, 2)} | ${Math.round(r.bound)} | ${r.failedAfter} |`,
    );
}

const goals = [];
const goal = (what, value, met) => goals.push({ what, value, met });
const group = (phase) => of(phase).find((r) => r.goals);
const k = group('kill');
if (k) {
  goal('kill: 0 failed GETs', `${k.failedGets} of ${k.gets}`, k.failedGets === 0);
  goal(
    'kill: POSTs lost only those the dead endpoint held (none started after it was dead)',
    `${k.failedPosts} of ${k.posts} failed, ${k.failedPostsAfter} of them started after`,
    k.failedPostsAfter === 0,
  );
  goal(
    'kill: out of rotation within 1 s',
    k.outMs === null ? 'not said' : `${k.outMs} ms`,
    k.outMs !== null && k.outMs <= 1000,
  );
  // The check that finds it may start up to one interval after the restart; its answer and the next request to the
  // endpoint take a few ms more (50 allowed).
  goal(
    `kill: back within one health interval (${HEALTH_MS} ms, + 50 ms for the check's answer and the next request) of its restart`,
    k.backMs === null ? 'not back' : `${k.backMs} ms`,
    k.backMs !== null && k.backMs <= HEALTH_MS + 50,
  );
}
for (const r of of('slow').filter((x) => x.slowGoal)) {
  const s = r.healthy;
  goal(
    `slow, ${r.target}: p99 ≤ 1.2 × all-healthy p99`,
    `${f(r.p99, 2)} vs ${f(s.p99, 2)} ms (${f(r.p99 / s.p99, 2)}×)`,
    r.p99 <= 1.2 * s.p99,
  );
  // Unchanged: within 10 %, or 0.25 ms (sub-millisecond medians of two runs on this machine differ by that alone).
  goal(
    `slow, ${r.target}: p50 unchanged (within 10 % or 0.25 ms)`,
    `${f(r.p50, 2)} vs ${f(s.p50, 2)} ms`,
    r.p50 <= Math.max(1.1 * s.p50, s.p50 + 0.25),
  );
}
for (const phase of ['outage-close', 'outage-503']) {
  const o = group(phase);
  if (o)
    goal(
      `${phase}: requests at the endpoints ≤ 1.2 × client + 10/s`,
      `${o.origin} vs ${Math.round(o.bound)} (${o.clients} client requests)`,
      o.origin <= o.bound,
    );
}
const c = group('collapse');
if (c)
  goal(
    'collapse: 1 request at the endpoints for 100 identical GETs',
    `${c.origin}${c.oneBody ? '' : ' (bodies differ)'}`,
    c.origin === 1 && c.ok && c.oneBody,
  );
// The A/A control's reading, when it ran: what the same ratio reads of two processes of one config in this run.
const aa = of('cpu').find((x) => x.target.endsWith('(A/A)'));
for (const r of of('cpu').filter((x) => x.cpuGoal)) {
  goal(
    `CPU, ${r.target}: within 1.05 × a single-URL origin (${CPU_PAIRING === 'side' ? 'side by side' : 'one after the other'})`,
    `${f(r.cpuUsPerReq)} vs ${f(r.single)} µs/req, ${spread(r.ratio, r.ratios)}× (geometric mean of ${r.ratios.length} rounds${aa ? `; the single URL beside itself: ${spread(aa.ratio, aa.ratios)}×` : ''})`,
    r.ratio <= 1.05,
  );
}
if (goals.length) {
  out.push('', '### goals (issue 43)', '', '| goal | measured | met |', '|---|---|---|');
  for (const g of goals) out.push(`| ${g.what} | ${g.value} | ${g.met ? 'yes' : '**no**'} |`);
}
console.log(out.join('\n'));

for (const e of endpoints) await e.kill();
await stop(delay.proc);
const file = new ResultWriter('groups').write({
  rate: RATE,
  connections: CONNS,
  durationS: DURATION,
  warmupS: WARMUP,
  cpuWarmupS: CPU_WARMUP,
  outageS: OUTAGE_S,
  upstream: UPSTREAM,
  anchorBalance: ANCHOR_BALANCE,
  healthIntervalMs: HEALTH_MS,
  cpuOrigin: CPU_ORIGIN,
  cpuPairing: CPU_PAIRING,
  cpus: { proxy: PROXY_CPU, load: LOAD_CPU },
  results,
  goals,
});
console.log(`\nresults: ${file}`);
