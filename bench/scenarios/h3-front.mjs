#!/usr/bin/env node
// `npm run bench -- h3-front`: the HTTP/3 front on every worker (issue 59, docs/workers.md). One run measures
// requests/s through the h3 front and through the TCP front (h1, cleartext) of `serve --workers 2` and of
// `serve --workers 1`, in front of one nginx origin answering 2 bytes. The load generator is the same for both fronts:
// our Agent in a process of its own (bench/lib/front-load.mjs; Debian's h2load is built without HTTP/3), h3:
// BENCH_CONNECTIONS connections with BENCH_STREAMS requests each in flight, h1: as many connections as requests in
// flight; new QUIC connections are spread over the workers by the kernel (the 4-tuple's hash) and stay with their
// worker by connection ID. The generator's CPU is reported: where it saturates a core, it bounds both fronts alike. The table gives each front's scaling (workers 2 ÷ workers 1)
// and the h3 front's scaling over the TCP front's (the goal: ≥ 0.9; this machine has 2 cores and the generator and the
// origin beside the workers, so absolute scaling is not the bound), each the median over the rounds (configurations
// alternate, reversed every other round: the machine drifts). With steering, every worker's share of the h3
// connections and the stray short-header packets (a packet at a worker without its connection: 0 while steering
// works) come from the primary's /metrics.
// Then a soak (BENCH_SOAK_S, 60; 0 skips it): `--workers 2` under BENCH_CONNECTIONS h3 clients that each move to a
// new local port every 2 s (bench/lib/h3-soak-client.mjs; six moves, then a new connection), worker 2 killed
// half-way: stray packets before the kill (0 expected), stray packets and stateless resets after it, connections the
// clients lost and replaced.
// Knobs (env): BENCH_SECONDS (8 per measurement), BENCH_ROUNDS (3), BENCH_CONNECTIONS (16), BENCH_STREAMS (8),
// BENCH_DIST. Needs: nginx (Debian: nginx-light), a built dist/ with the udp addon.
import { execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { makeCerts } from '../lib/certs.mjs';
import { DIST } from '../lib/dist.mjs';
import { freePort, scratch, serviceArgv, stopChild, waitPort } from '../lib/host.mjs';
import { ResultWriter } from '../lib/results.mjs';
import { quantile } from '../lib/stats.mjs';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const env = process.env;
const SECONDS = Number(env.BENCH_SECONDS ?? 8);
const ROUNDS = Number(env.BENCH_ROUNDS ?? 3);
const CONNS = Number(env.BENCH_CONNECTIONS ?? 16);
const STREAMS = Number(env.BENCH_STREAMS ?? 8);
const SOAK = Number(env.BENCH_SOAK_S ?? 60);
for (const [k, ok] of [
  ['BENCH_SECONDS', SECONDS >= 1 && SECONDS <= 600],
  ['BENCH_ROUNDS', Number.isInteger(ROUNDS) && ROUNDS >= 1 && ROUNDS <= 20],
  ['BENCH_CONNECTIONS', Number.isInteger(CONNS) && CONNS >= 2 && CONNS <= 1000],
  ['BENCH_STREAMS', Number.isInteger(STREAMS) && STREAMS >= 1 && STREAMS <= 100],
  ['BENCH_SOAK_S', SOAK === 0 || (SOAK >= 10 && SOAK <= 3600)],
]) {
  if (!ok) {
    console.error(`bench/h3-front: bad ${k}`);
    process.exit(2);
  }
}
for (const bin of ['nginx']) {
  try {
    await run('which', [bin]);
  } catch {
    console.error(`bench/h3-front: ${bin} not found (Debian: nginx-light)`);
    process.exit(2);
  }
}

const { dir, procs } = scratch('ol-h3-front-');
const certs = makeCerts();

// The origin: nginx, two workers, 2 bytes per request, keep-alive without a request limit.
const originPort = await freePort();
writeFileSync(
  join(dir, 'nginx.conf'),
  `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/nginx.err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:${originPort}; location / { return 200 "ok"; } } }
`,
);
const nginx = spawn('nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { stdio: 'ignore' });
procs.push(nginx);
await waitPort(originPort);

/** `serve --workers N` with an http and an h3 front; resolves once the primary serves, with its ports. */
async function serve(workers) {
  const [tcp, udp, admin] = [await freePort(), await freePort(), await freePort()];
  const file = join(dir, `c${workers}.yaml`);
  writeFileSync(
    file,
    `listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: ${tcp} }
  - { name: quic, kind: h3, host: 127.0.0.1, port: ${udp}, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }
admin: { host: 127.0.0.1, port: ${admin} }
logging: { requests: false, level: warn }
origins:
  o: { url: "http://127.0.0.1:${originPort}" }
routes:
  - { path: /, origin: o }
`,
  );
  const p = spawn(...argvOf(['serve', '--config', file, '--workers', String(workers)]), { stdio: 'ignore' });
  procs.push(p);
  await waitPort(admin, 30_000);
  await waitPort(tcp, 30_000);
  return { p, tcp, udp, admin };
}
const argvOf = (args) => {
  const [bin, ...rest] = serviceArgv(DIST);
  return [bin, [...rest, ...args]];
};

/** The generator (bench/lib/front-load.mjs, our Agent in a process of its own) on one front: requests/s, failures. */
async function load(url, h3) {
  const arg = {
    url,
    proto: h3 ? 'h3' : 'h1',
    conns: CONNS,
    inflight: STREAMS,
    seconds: SECONDS,
    warmS: 1,
    ca: certs.caPath,
  };
  const { stdout } = await run(process.execPath, [join(here, '..', 'lib', 'front-load.mjs'), JSON.stringify(arg)], {
    timeout: (SECONDS + 30) * 1000,
    env: { ...env, BENCH_DIST: DIST },
  });
  return JSON.parse(stdout.trim().split('\n').at(-1));
}

/** The primary's /metrics: per-worker h3 counters. */
function h3Counters(admin) {
  return new Promise((resolve) => {
    http
      .get({ host: '127.0.0.1', port: admin, path: '/metrics' }, (res) => {
        let body = '';
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () => {
          const series = (name) =>
            Object.fromEntries(
              [...body.matchAll(new RegExp(`^${name}\\{worker="(\\d+)"\\} (\\d+)`, 'gm'))].map((m) => [
                m[1],
                Number(m[2]),
              ]),
            );
          resolve({
            accepted: series('originlink_worker_h3_accepted_total'),
            stray: series('originlink_worker_h3_stray_packets_total'),
            resets: series('originlink_worker_h3_stateless_resets_total'),
            pids: Object.fromEntries(
              [...body.matchAll(/^originlink_worker_info\{worker="(\d+)",pid="(\d+)"\}/gm)].map((m) => [
                m[1],
                Number(m[2]),
              ]),
            ),
          });
        });
      })
      .on('error', () => resolve(null));
  });
}

const samples = { 1: { tcp: [], h3: [] }, 2: { tcp: [], h3: [] } };
/** The generator's CPU, cores busy, per measurement. */
const gen = { 1: { tcp: [], h3: [] }, 2: { tcp: [], h3: [] } };
const counters = [];
let failed = 0;
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 ? [2, 1] : [1, 2];
  for (const workers of order) {
    const s = await serve(workers);
    for (const kind of round % 2 ? ['h3', 'tcp'] : ['tcp', 'h3']) {
      const r =
        kind === 'tcp'
          ? await load(`http://127.0.0.1:${s.tcp}/`, false)
          : await load(`https://127.0.0.1:${s.udp}/`, true);
      samples[workers][kind].push(r.rps);
      gen[workers][kind].push(r.cpuMs / 1000 / SECONDS);
      failed += r.failed;
      console.log(
        `round ${round + 1}, workers ${workers}, ${kind}: ${r.rps.toFixed(0)} req/s, failed ${r.failed}, generator ${((100 * r.cpuMs) / 1000 / SECONDS).toFixed(0)} % of a core`,
      );
    }
    if (workers === 2) counters.push(await h3Counters(s.admin));
    await stopChild(s.p, 5000);
  }
}

const med = (xs) =>
  quantile(
    [...xs].sort((a, b) => a - b),
    0.5,
  );
const scale = (kind) => med(samples[2][kind]) / med(samples[1][kind]);
const table = {
  tcp: { workers1: med(samples[1].tcp), workers2: med(samples[2].tcp), scaling: scale('tcp') },
  h3: { workers1: med(samples[1].h3), workers2: med(samples[2].h3), scaling: scale('h3') },
};
const ratio = table.h3.scaling / table.tcp.scaling;
console.log(
  `\n| front | --workers 1 req/s | --workers 2 req/s | scaling (2 ÷ 1) |\n|---|---|---|---|\n| TCP (h1) | ${table.tcp.workers1.toFixed(0)} | ${table.tcp.workers2.toFixed(0)} | ${table.tcp.scaling.toFixed(2)} |\n| h3 | ${table.h3.workers1.toFixed(0)} | ${table.h3.workers2.toFixed(0)} | ${table.h3.scaling.toFixed(2)} |\n\nh3 scaling ÷ TCP scaling: ${ratio.toFixed(2)} (goal ≥ 0.9); failed requests ${failed}; generator CPU (cores, median) tcp ${med(gen[1].tcp).toFixed(2)} / ${med(gen[2].tcp).toFixed(2)}, h3 ${med(gen[1].h3).toFixed(2)} / ${med(gen[2].h3).toFixed(2)}`,
);
for (const c of counters)
  console.log(
    `workers 2: h3 connections accepted per worker ${JSON.stringify(c?.accepted)}, stray short-header packets ${JSON.stringify(c?.stray)}`,
  );
// The soak: `serve --workers 2`, migrating clients for BENCH_SOAK_S, worker 2 killed half-way (the primary restarts
// it). Stray short-header packets before the kill must be 0; after it, the killed worker's connections' packets reach
// the other worker or the replacement and are answered with stateless resets.
let soak = null;
if (SOAK > 0) {
  const s = await serve(2);
  const arg = { port: s.udp, ca: certs.caPath, conns: CONNS, seconds: SOAK, moveEveryMs: 2000 };
  const client = run(process.execPath, [join(here, '..', 'lib', 'h3-soak-client.mjs'), JSON.stringify(arg)], {
    timeout: (SOAK + 60) * 1000,
    env: { ...env, BENCH_DIST: DIST },
  });
  await new Promise((r) => setTimeout(r, (SOAK * 1000) / 2));
  const beforeKill = await h3Counters(s.admin);
  const victim = beforeKill?.pids?.['2'];
  if (victim) process.kill(victim, 'SIGKILL');
  const result = JSON.parse((await client).stdout.trim().split('\n').at(-1));
  const atEnd = await h3Counters(s.admin);
  await stopChild(s.p, 5000);
  soak = { seconds: SOAK, killed: victim ?? null, beforeKill, atEnd, client: result };
  console.log(
    `\nsoak ${SOAK} s, ${CONNS} connections each moving to a new port every 2 s, worker 2 (pid ${victim}) killed at ${SOAK / 2} s:\n  before the kill: stray ${JSON.stringify(beforeKill?.stray)}, accepted ${JSON.stringify(beforeKill?.accepted)}\n  at the end: stray ${JSON.stringify(atEnd?.stray)}, stateless resets ${JSON.stringify(atEnd?.resets)} (worker 2 is the replacement)\n  client: ${result.requests} requests, ${result.moves} moves, ${result.renewed} renewed after 6 moves, ${result.failed} connections lost (replaced), errors ${JSON.stringify(result.errors)}`,
  );
}

const w = new ResultWriter('h3-front');
console.log(
  `\nresults: ${w.write({ knobs: { SECONDS, ROUNDS, CONNS, STREAMS, SOAK }, samples, table, ratio, failed, counters, generatorCores: gen, soak })}`,
);
process.exit(0);
