#!/usr/bin/env node
// `npm run bench -- gc`: what the young generation costs per request. Each target runs in a node
// with --trace-gc-nvp pinned to CPU 1 while the load runs on CPU 0, and reports req/s, CPU per
// request, scavenges (count, pause per 1,000 requests) and the bytes V8 promoted to the old
// generation per request — objects that outlive a request there cost a copy in every scavenge and
// then a major GC. A request's objects should die young: promoted bytes per request near zero.
// Targets (BENCH_GC_TARGETS, default all): server-h1 / server-h2 (our HTTP/1.1 and cleartext HTTP/2
// servers answering 1 KiB, loaded by wrk -c32 / h2load -c32 -m1), server-h2m (the HTTP/2 server with 16
// streams on each of 4 connections, h2load -c4 -m16), client-h1 / client-h2 (an Agent with 32
// requests in flight against our server of that protocol, which runs on CPU 0), service-h1 (`originlink serve`:
// an h1 front loaded by wrk -c32, forwarding to our HTTP/2 server over TLS on CPU 0). BENCH_DURATION seconds
// per target (5); BENCH_ANCHOR_DIST another build's dist/ run as "previous" beside this one.
// Needs: wrk, h2load, taskset (Debian: wrk nghttp2-client util-linux), a built dist/.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCerts } from '../lib/certs.mjs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DIST } from '../lib/dist.mjs';
import { freePort, oneOriginConfig, serviceArgv, treeCpuUs, waitPort } from '../lib/host.mjs';
import { ResultWriter } from '../lib/results.mjs';
import { fmt } from '../lib/stats.mjs';

const run = promisify(execFile);
const DURATION = Number(process.env.BENCH_DURATION ?? 5);
const TARGETS = (process.env.BENCH_GC_TARGETS ?? 'server-h1,server-h2,server-h2m,client-h1,client-h2,service-h1')
  .split(',')
  .filter(Boolean);
const BUILDS = [
  ['this build', DIST],
  ...(process.env.BENCH_ANCHOR_DIST ? [['previous', process.env.BENCH_ANCHOR_DIST]] : []),
];
// BENCH_NODE_ARGS: more node/V8 flags for the measured process (e.g. `--max-semi-space-size=32`).
const NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
const PEER = fileURLToPath(new URL('../lib/gc-peer.mjs', import.meta.url));

/** Start a peer; resolves once it printed `ready` (server) — or at once (client). `stdout` collects --trace-gc-nvp lines. */
function startPeer(cpu, args, { trace, ready, script = PEER, dist = null }) {
  const nodeArgs = trace ? ['--trace-gc-nvp', ...NODE_ARGS] : [];
  // The service as its launcher starts it (bin/service-node-flags: pretenuring off among them); other peers bare.
  const argv = dist !== null ? serviceArgv(dist, nodeArgs) : [process.execPath, ...nodeArgs, script];
  const p = spawn('taskset', ['-c', String(cpu), ...argv, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = [];
  let err = '';
  p.stdout.on('data', (d) => out.push(d));
  const readyP = new Promise((resolve, reject) => {
    p.stderr.on('data', (d) => {
      err += d;
      if (ready && err.includes('ready')) resolve();
    });
    p.once('exit', (code) => {
      if (ready) reject(new Error(`peer exited ${code}: ${err.slice(-400)}`));
      else resolve();
    });
  });
  const exited = new Promise((resolve) => p.once('exit', resolve));
  return { p, readyP, exited, stdout: () => Buffer.concat(out).toString(), stderr: () => err };
}

/** Sum the scavenges and other GCs of a --trace-gc-nvp log. */
function gcOf(log) {
  let scavenges = 0,
    scavengeMs = 0,
    promoted = 0,
    others = 0,
    otherMs = 0;
  for (const line of log.split('\n')) {
    const kind = /\bgc=(\S+)/.exec(line)?.[1];
    if (!kind) continue;
    const pause = Number(/\bpause=([\d.]+)/.exec(line)?.[1] ?? 0);
    if (kind === 's') {
      scavenges++;
      scavengeMs += pause;
      promoted += Number(/\bpromoted=(\d+)/.exec(line)?.[1] ?? 0);
    } else {
      others++;
      otherMs += pause;
    }
  }
  return { scavenges, scavengeMs, promotedBytes: promoted, otherGcs: others, otherGcMs: otherMs };
}

async function serverTarget(dist, proto, multiplexed) {
  const port = await freePort();
  const srv = startPeer(1, [dist, 'server', proto, String(port)], { trace: true, ready: true });
  await srv.readyP;
  const t0 = treeCpuUs(srv.p.pid);
  const url = `http://127.0.0.1:${port}/x`;
  let requests;
  if (proto === 'h1') {
    const { stdout } = await run('taskset', ['-c', '0', 'wrk', '-t1', '-c32', `-d${DURATION}s`, url], {
      timeout: (DURATION + 30) * 1000,
    });
    requests = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? 0);
  } else {
    const shape = multiplexed ? ['-c4', '-m16'] : ['-c32', '-m1'];
    const { stdout } = await run('taskset', ['-c', '0', 'h2load', ...shape, '-D', String(DURATION), url], {
      timeout: (DURATION + 30) * 1000,
    });
    requests = Number(/requests: \d+ total, \d+ started, (\d+) done/.exec(stdout)?.[1] ?? 0);
  }
  const cpuUs = treeCpuUs(srv.p.pid) - t0;
  srv.p.kill('SIGTERM');
  await srv.exited;
  return { requests, cpuUs, seconds: DURATION, ...gcOf(srv.stdout()) };
}

async function clientTarget(dist, proto) {
  const port = await freePort();
  const srv = startPeer(0, [dist, 'server', proto, String(port)], { trace: false, ready: true });
  await srv.readyP;
  const cli = startPeer(1, [dist, 'client', proto, String(port), String(DURATION * 1000)], {
    trace: true,
    ready: false,
  });
  await cli.exited;
  srv.p.kill('SIGTERM');
  await srv.exited;
  const line = cli
    .stderr()
    .split('\n')
    .find((l) => l.startsWith('{"requests"'));
  if (!line) throw new Error(`client printed no result: ${cli.stderr().slice(-400)}`);
  const r = JSON.parse(line);
  return { requests: r.requests, cpuUs: r.cpuUs, seconds: DURATION, ...gcOf(cli.stdout()) };
}

/** `originlink serve` with an h1 front, forwarding to our HTTP/2 server over TLS; measured like a server target. */
async function serviceTarget(dist) {
  const certs = makeCerts();
  const originPort = await freePort();
  const origin = startPeer(0, [dist, 'server', 'h2s', String(originPort), '0', certs.certPath, certs.keyPath], {
    trace: false,
    ready: true,
  });
  await origin.readyP;
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ol-gc-'));
  const config = join(dir, 'service.yaml');
  writeFileSync(
    config,
    oneOriginConfig({
      port,
      origin: `url: "https://127.0.0.1:${originPort}", protocol: h2, tls: { ca: ${certs.caPath}, servername: localhost }`,
    }),
  );
  const svc = startPeer(1, ['serve', '--config', config], { trace: true, ready: false, dist });
  try {
    await waitPort(port);
    const t0 = treeCpuUs(svc.p.pid);
    const { stdout } = await run(
      'taskset',
      ['-c', '0', 'wrk', '-t1', '-c32', `-d${DURATION}s`, `http://127.0.0.1:${port}/x`],
      { timeout: (DURATION + 30) * 1000 },
    );
    const requests = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? 0);
    const cpuUs = treeCpuUs(svc.p.pid) - t0;
    return { requests, cpuUs, seconds: DURATION, ...gcOf(svc.stdout()) };
  } finally {
    svc.p.kill('SIGTERM');
    origin.p.kill('SIGTERM');
    await Promise.all([svc.exited, origin.exited]);
    rmSync(dir, { recursive: true, force: true });
  }
}

const rows = [];
for (const target of TARGETS) {
  const [role, kind] = target.split('-');
  const proto = kind.slice(0, 2);
  for (const [build, dist] of BUILDS) {
    process.stderr.write(`gc: ${target} (${build})\n`);
    const r =
      role === 'service'
        ? await serviceTarget(dist)
        : role === 'server'
          ? await serverTarget(dist, proto, kind.endsWith('m'))
          : await clientTarget(dist, proto);
    rows.push({
      target,
      build,
      ...r,
      reqPerS: r.requests / r.seconds,
      cpuUsPerReq: r.cpuUs / r.requests,
      scavengeMsPer1k: (r.scavengeMs / r.requests) * 1000,
      promotedBytesPerReq: r.promotedBytes / r.requests,
    });
  }
}

const lines = [
  `gc: ${DURATION} s per target, measured process pinned to CPU 1, load on CPU 0, node ${process.version}`,
  '',
  '| target | build | req/s | CPU µs/req | scavenges | scavenge ms per 1k req | promoted bytes/req | other GCs (ms) |',
  '|---|---|---:|---:|---:|---:|---:|---:|',
  ...rows.map(
    (r) =>
      `| ${r.target} | ${r.build} | ${fmt(r.reqPerS, 0)} | ${fmt(r.cpuUsPerReq, 1)} | ${r.scavenges} | ${fmt(r.scavengeMsPer1k, 2)} | ${fmt(r.promotedBytesPerReq, 0)} | ${r.otherGcs} (${fmt(r.otherGcMs, 0)}) |`,
  ),
];
const w = new ResultWriter('gc');
const file = w.write({ durationS: DURATION, builds: BUILDS.map(([b, d]) => ({ build: b, dist: d })), rows });
console.log([...lines, '', `wrote ${file}`].join('\n'));
process.exit(0);
