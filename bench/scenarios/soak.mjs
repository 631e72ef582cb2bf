#!/usr/bin/env node
// `npm run bench -- soak`: the connector (`originlink serve`, its own process) under steady mixed
// load for BENCH_SOAK_SECONDS (default 600): HTTP/1.1 through the http front (wrk, or h2load --h1 at a
// fixed rate), HTTP/2 through the h2c front (h2load), clients that give up mid-request (curl -m), to
// the demo origins over TLS h1, h2 and h3; POSTs with a unique id each to a counting origin (every id
// must arrive exactly once); and every BENCH_SOAK_ROTATE seconds (default 120; 0: never) the demo
// origins are restarted blue/green: new ones start, the config is rewritten and reloaded (SIGHUP),
// then the old ones close (GOAWAY on h2/h3, connection close on h1) — no idempotent request may fail.
// BENCH_SOAK_RATE (req/s per front, default: as fast as it goes) keeps the load moderate so the soak
// can share the machine. Every BENCH_SOAK_SAMPLE seconds (default 10) it reads the connector's RSS,
// heap, open fds and active handles (its /metrics: prom-client's process series) and its front
// gauges. Prints the trend after the first minute (first, min, max, last) and the failures; writes
// bench/out/soak-DATE.json and a chart (soak-DATE-memory.svg).
import { execFile, spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeCerts } from '../lib/certs.mjs';
import { dist, DIST } from '../lib/dist.mjs';
import { serviceArgv } from '../lib/host.mjs';
import { ResultWriter } from '../lib/results.mjs';

const run = promisify(execFile);
const SECONDS = Number(process.env.BENCH_SOAK_SECONDS ?? 600);
const SAMPLE = Number(process.env.BENCH_SOAK_SAMPLE ?? 10);
const ROTATE = Number(process.env.BENCH_SOAK_ROTATE ?? 120);
const RATE = process.env.BENCH_SOAK_RATE ? Number(process.env.BENCH_SOAK_RATE) : null;
const certs = makeCerts();
const dir = mkdtempSync(join(tmpdir(), 'ol-soak-'));
const { startDemoOrigins } = await dist('service/demo-origins.js');
const tlsFiles = { cert: readFileSync(certs.certPath), key: readFileSync(certs.keyPath) };
let origins = await startDemoOrigins({ ...tlsFiles, ports: { h1: 0, h2: 0, h3: 0 } });
// The counting origin: every POST's id, how many times it arrived (a non-idempotent request must never be replayed).
const seen = new Map();
const counter = https.createServer(tlsFiles, (req, res) => {
  const id = req.headers['x-soak-id'];
  if (id) seen.set(id, (seen.get(id) ?? 0) + 1);
  req.resume();
  req.on('end', () => res.end('counted\n'));
});
await new Promise((r) => counter.listen(0, '127.0.0.1', r));
const free = () =>
  new Promise((r) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => r(p));
    });
  });
const [http, h2c, admin] = [await free(), await free(), await free()];
const file = join(dir, 'soak.yaml');
const writeConfig = () => {
  const port = (n) => origins.find((o) => o.name === n).port;
  writeFileSync(
    file,
    `
listeners:
  - { name: http, kind: http, host: 127.0.0.1, port: ${http} }
  - { name: h2c, kind: h2c, host: 127.0.0.1, port: ${h2c} }
admin: { host: 127.0.0.1, port: ${admin} }
logging: { level: warn, requests: false }
origins:
  d1: { url: "https://localhost:${port('h1')}", protocol: h1, tls: { ca: ${certs.caPath} } }
  d2: { url: "https://localhost:${port('h2')}", protocol: h2, tls: { ca: ${certs.caPath} } }
  d3: { url: "https://localhost:${port('h3')}", protocol: h3, tls: { ca: ${certs.caPath} } }
  dc: { url: "https://localhost:${counter.address().port}", protocol: h1, tls: { ca: ${certs.caPath} } }
routes:
  - { path: /h1, origin: d1, stripPrefix: true }
  - { path: /h2, origin: d2, stripPrefix: true }
  - { path: /h3, origin: d3, stripPrefix: true }
  - { path: /count, origin: dc }
`,
  );
};
writeConfig();
const [node, ...nodeArgv] = serviceArgv(DIST);
const proc = spawn(node, [...nodeArgv, 'serve', '--config', file], { stdio: ['ignore', 'ignore', 'inherit'] });
const stop = () => {
  try {
    proc.kill('SIGKILL');
  } catch {}
  rmSync(dir, { recursive: true, force: true });
};
process.on('exit', stop);
for (let i = 0; i < 100; i++) {
  if (
    await fetch(`http://127.0.0.1:${admin}/healthz`).then(
      (r) => r.ok,
      () => false,
    )
  )
    break;
  await new Promise((r) => setTimeout(r, 100));
}

const totals = {
  wrk: { requests: 0, errors: 0 },
  h2load: { requests: 0, failed: 0 },
  aborted: 0,
  posts: { sent: 0, ok: 0, failed: 0, failures: {} },
  rotations: 0,
  reloadsFailed: 0,
};
const metric = (text, name) =>
  Number((new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, 'm').exec(text) ?? [])[1] ?? NaN);
const samples = [];
async function sample(t) {
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'))[1]) / 1024;
  const fds = readdirSync(`/proc/${proc.pid}/fd`).length;
  const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  samples.push({
    t,
    rssMiB: rss,
    fds,
    heapUsedMiB: metric(text, 'nodejs_heap_size_used_bytes') / 2 ** 20,
    handles: metric(text, 'nodejs_active_handles_total'),
    inflight: metric(text, 'originlink_front_inflight'),
    connections: metric(text, 'originlink_front_connections'),
  });
}

// Blue/green origin restart: new origins, config rewritten and reloaded, then the old ones close.
async function rotate() {
  const old = origins;
  origins = await startDemoOrigins({ ...tlsFiles, ports: { h1: 0, h2: 0, h3: 0 } });
  writeConfig();
  const reloads = async () =>
    metric(
      await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text(),
      'originlink_config_reloads_total\\{result="ok"\\}',
    );
  const before = await reloads();
  proc.kill('SIGHUP');
  let ok = false;
  for (let i = 0; i < 100 && !ok; i++) {
    await new Promise((r) => setTimeout(r, 50));
    ok = (await reloads()) > (before || 0);
  }
  if (!ok) totals.reloadsFailed++;
  // The reload drains the old upstreams' pools; give in-flight requests a moment, then close the old origins.
  await new Promise((r) => setTimeout(r, 1000));
  for (const o of old) await o.close();
  totals.rotations++;
}

// POSTs, 4 at a time, each with its own id, through the h1 front to the counting origin.
let posting = true;
let nextId = 0;
const poster = async () => {
  while (posting) {
    const id = `p${nextId++}`;
    totals.posts.sent++;
    try {
      const r = await fetch(`http://127.0.0.1:${http}/count`, {
        method: 'POST',
        headers: { 'x-soak-id': id },
        body: 'x'.repeat(256),
      });
      await r.text();
      if (r.status === 200) totals.posts.ok++;
      else {
        totals.posts.failed++;
        totals.posts.failures[r.status] = (totals.posts.failures[r.status] ?? 0) + 1;
      }
    } catch (e) {
      totals.posts.failed++;
      totals.posts.failures[e.code ?? 'error'] = (totals.posts.failures[e.code ?? 'error'] ?? 0) + 1;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
};
const posters = Array.from({ length: 4 }, poster);

const t0 = Date.now();
let next = 0;
let rotatedAt = 0;
const perClient = (n) => (RATE === null ? [] : [`--rps=${Math.max(1, Math.round(RATE / n))}`]);
while ((Date.now() - t0) / 1000 < SECONDS) {
  const round = next++;
  const path = ['/h1/', '/h2/bytes/4096', '/h3/'][round % 3];
  const elapsed = (Date.now() - t0) / 1000;
  const load = [
    RATE === null
      ? run('wrk', ['-t1', '-c16', `-d${Math.min(5, SECONDS)}s`, `http://127.0.0.1:${http}${path}`], {
          timeout: 30_000,
        }).then(({ stdout }) => {
          totals.wrk.requests += Number(/(\d+) requests in/.exec(stdout)?.[1] ?? 0);
          totals.wrk.errors +=
            Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0) +
            Number(
              /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/
                .exec(stdout)
                ?.slice(1)
                .reduce((a, b) => a + Number(b), 0) ?? 0,
            );
        })
      : run(
          'h2load',
          ['--h1', '-c16', ...perClient(16), '-D', String(Math.min(5, SECONDS)), `http://127.0.0.1:${http}${path}`],
          { timeout: 30_000 },
        ).then(({ stdout }) => {
          const m = /(\d+) succeeded, (\d+) failed, (\d+) errored/.exec(stdout);
          const c = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(stdout);
          totals.wrk.requests += Number(m?.[1] ?? 0);
          totals.wrk.errors += Number(m?.[2] ?? 0) + Number(m?.[3] ?? 0) + Number(c?.[3] ?? 0) + Number(c?.[4] ?? 0);
        }),
    run(
      'h2load',
      [
        ...(RATE === null ? ['-n', '3000'] : ['-D', String(Math.min(5, SECONDS)), ...perClient(8)]),
        '-c',
        '8',
        '-m',
        '10',
        `http://127.0.0.1:${h2c}${['/h2/', '/h3/bytes/1024', '/h1/'][round % 3]}`,
      ],
      { timeout: 30_000 },
    ).then(({ stdout }) => {
      const m = /(\d+) succeeded, (\d+) failed/.exec(stdout);
      totals.h2load.requests += Number(m?.[1] ?? 0);
      totals.h2load.failed += Number(m?.[2] ?? 0);
    }),
    // Clients that leave mid-response (a 16 MiB body, 50 ms allowed).
    ...[0, 1, 2, 3].map(() =>
      run('curl', ['-s', '-o', '/dev/null', '-m', '0.05', `http://127.0.0.1:${http}/h2/bytes/16777216`]).catch(() => {
        totals.aborted++;
      }),
    ),
  ];
  if (ROTATE > 0 && elapsed - rotatedAt >= ROTATE && elapsed > 1) {
    rotatedAt = elapsed;
    load.push(rotate());
  }
  await Promise.all(load);
  if ((Date.now() - t0) / 1000 >= (samples.length ? samples.at(-1).t + SAMPLE : 0))
    await sample(Math.round((Date.now() - t0) / 1000));
  process.stderr.write(
    `\rsoak: ${Math.round((Date.now() - t0) / 1000)}/${SECONDS}s, ${totals.wrk.requests + totals.h2load.requests} requests, ${totals.posts.sent} posts, ${totals.rotations} origin restarts   `,
  );
}
posting = false;
await Promise.all(posters);
await new Promise((r) => setTimeout(r, 2000));
await sample(Math.round((Date.now() - t0) / 1000));
process.stderr.write('\n');
proc.kill('SIGTERM');
await new Promise((r) => proc.once('exit', r));
for (const o of origins) await o.close();
counter.close();

// Every POST answered 200 arrived once; none arrived twice (a replay would show as a count of 2).
const duplicated = [...seen.values()].filter((n) => n > 1).length;
const answeredButMissing = totals.posts.ok - [...seen.keys()].length;
const steady = samples.filter((s) => s.t >= Math.min(60, SECONDS / 3));
const trend = (k) => ({
  first: steady[0]?.[k],
  min: Math.min(...steady.map((s) => s[k])),
  max: Math.max(...steady.map((s) => s[k])),
  last: steady.at(-1)?.[k],
});
const spread = (k) => {
  const t = trend(k);
  return t.first ? +(((t.max - t.min) / t.first) * 100).toFixed(1) : null;
};
const summary = {
  seconds: SECONDS,
  rate: RATE,
  rotateSeconds: ROTATE,
  rssMiB: trend('rssMiB'),
  heapUsedMiB: trend('heapUsedMiB'),
  fds: trend('fds'),
  handles: trend('handles'),
  spreadPercent: { rss: spread('rssMiB'), heap: spread('heapUsedMiB'), fds: spread('fds') },
  inflightAtEnd: samples.at(-1)?.inflight,
  totals,
  postsDuplicated: duplicated,
  postsAnsweredButNotSeen: answeredButMissing,
};
const f = (x) => (typeof x === 'number' ? x.toFixed(1) : '-');
console.log(
  `soak: ${SECONDS}s of mixed load (${RATE === null ? 'wrk' : `h2load --h1 at ${RATE} req/s`} h1 front, h2load h2c front${RATE === null ? '' : ` at ${RATE} req/s`}, clients leaving mid-body, POSTs counted at the origin${ROTATE > 0 ? `, origins restarted every ${ROTATE}s` : ''}) to h1/h2/h3 demo origins over TLS\n`,
);
console.log('| measure (after the first minute) | first | min | max | last |\n|---|---:|---:|---:|---:|');
console.log(
  `| RSS MiB | ${f(summary.rssMiB.first)} | ${f(summary.rssMiB.min)} | ${f(summary.rssMiB.max)} | ${f(summary.rssMiB.last)} |`,
);
console.log(
  `| heap used MiB | ${f(summary.heapUsedMiB.first)} | ${f(summary.heapUsedMiB.min)} | ${f(summary.heapUsedMiB.max)} | ${f(summary.heapUsedMiB.last)} |`,
);
console.log(`| open fds | ${summary.fds.first} | ${summary.fds.min} | ${summary.fds.max} | ${summary.fds.last} |`);
console.log(
  `| active handles | ${summary.handles.first} | ${summary.handles.min} | ${summary.handles.max} | ${summary.handles.last} |`,
);
console.log(
  `\nrequests: h1 front ${totals.wrk.requests} (errors ${totals.wrk.errors}), h2c front ${totals.h2load.requests} (failed ${totals.h2load.failed}); clients that left: ${totals.aborted}; front inflight at the end: ${summary.inflightAtEnd}`,
);
console.log(
  `POSTs: ${totals.posts.sent} sent, ${totals.posts.ok} answered 200, ${totals.posts.failed} failed ${JSON.stringify(totals.posts.failures)}, ${duplicated} arrived twice at the origin, ${answeredButMissing} answered but never seen there`,
);
console.log(`origin restarts: ${totals.rotations} (reloads not confirmed: ${totals.reloadsFailed})`);
const w = new ResultWriter('soak');
await w.chart('memory', {
  width: 640,
  height: 240,
  data: {
    values: samples.flatMap((s) => [
      { t: s.t, series: 'RSS MiB', v: s.rssMiB },
      { t: s.t, series: 'heap used MiB', v: s.heapUsedMiB },
      { t: s.t, series: 'open fds', v: s.fds },
      { t: s.t, series: 'active handles', v: s.handles },
    ]),
  },
  mark: 'line',
  encoding: {
    x: { field: 't', type: 'quantitative', title: 'seconds' },
    y: { field: 'v', type: 'quantitative', title: null },
    color: { field: 'series', type: 'nominal' },
  },
});
console.log(`wrote ${w.write({ summary, samples })}`);
