#!/usr/bin/env node
// `npm run bench -- calls`: how many JavaScript function calls a proxied request makes — ours, Node's and the npm
// packages' — counted, not sampled. A count does not drift with the machine: where the paired CPU bench (bench/proxy.mjs
// BENCH_PAIRED) resolves ±2 % in twelve rounds on a drifting VM, this says exactly which functions a change added to or
// took from a request's path, and how often each runs.
//
// How: the service (`serve`, cleartext HTTP/1.1 front, one origin over TLS: nginx serving a 1 KiB file, as in
// bench/proxy.mjs) runs under NODE_V8_COVERAGE with bench/lib/coverage-trigger.cjs preloaded; h2load sends
// BENCH_WARMUP_REQUESTS (2,000), SIGUSR2 writes and resets V8's counters, h2load sends BENCH_REQUESTS (20,000) over 8
// connections, SIGUSR2 again: that second report holds the counted requests' calls alone. V8 counts a call of a
// function inlined by the optimizer too: these are the source's calls, not machine-level ones; a count says how much
// code a request runs, not what it costs (a small function inlined is nearly free).
//
// The service runs from tsc's modules (dist/cli/main.js), not from dist/bundle/: the bundle's functions are compiled
// from its V8 code cache, which holds no coverage counters, so most of them would count nothing. The same source either way.
//
// Knobs (env): BENCH_REQUESTS (20000), BENCH_WARMUP_REQUESTS (2000), BENCH_UPSTREAMS (h1,h2), BENCH_ANCHOR_DIST (another
// build's dist/, e.g. a worktree of an earlier commit: counted the same way, and the functions whose calls a request
// differ most listed), BENCH_TOP (functions listed, 25). Needs nginx and h2load. Writes bench/out/calls-DATE.json.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { alive, freePort, scratch, stopChild, waitPort } from '../lib/host.mjs';
import { ResultWriter, ROOT } from '../lib/results.mjs';

const N = Number(process.env.BENCH_REQUESTS ?? 20_000);
const WARM = Number(process.env.BENCH_WARMUP_REQUESTS ?? 2_000);
const UPSTREAMS = (process.env.BENCH_UPSTREAMS ?? 'h1,h2').split(',');
const TOP = Number(process.env.BENCH_TOP ?? 25);
const ANCHOR = process.env.BENCH_ANCHOR_DIST ? resolve(process.env.BENCH_ANCHOR_DIST) : null;
const THIS = join(ROOT, 'dist');
if (!Number.isInteger(N) || N < 100 || !Number.isInteger(WARM) || WARM < 0) {
  console.error('bench/calls: BENCH_REQUESTS is a whole number ≥ 100, BENCH_WARMUP_REQUESTS ≥ 0');
  process.exit(2);
}
if (UPSTREAMS.some((u) => u !== 'h1' && u !== 'h2')) {
  console.error('bench/calls: BENCH_UPSTREAMS is a list of h1 and h2');
  process.exit(2);
}
for (const d of [THIS, ...(ANCHOR ? [ANCHOR] : [])])
  if (!existsSync(join(d, 'cli', 'main.js'))) {
    console.error(`bench/calls: no ${join(d, 'cli', 'main.js')} (build first: npx tsc -p .)`);
    process.exit(2);
  }
for (const bin of ['nginx', 'h2load'])
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'pipe' });
  } catch {
    console.error(`bench/calls: ${bin} is missing (Debian: nginx-light nghttp2-client)`);
    process.exit(2);
  }

const { dir, procs } = scratch('ol-bench-calls-');
const CERTS = join(ROOT, 'config', 'demo-certs');
const TRIGGER = join(ROOT, 'bench', 'lib', 'coverage-trigger.cjs');

// --- the origin: nginx, h1 and h2 over TLS, a 1 KiB file.
const originPort = await freePort();
mkdirSync(join(dir, 'www'));
writeFileSync(join(dir, 'www', 'small.txt'), 'x'.repeat(1024));
const temps = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${dir}/${t};`).join(' ');
writeFileSync(
  join(dir, 'origin.conf'),
  `daemon off; master_process on; worker_processes 1; user root;
pid ${dir}/origin.pid; error_log ${dir}/origin-error.log warn;
events { worker_connections 1024; }
http {
  access_log off; ${temps}
  keepalive_timeout 300s; keepalive_requests 100000000;
  server {
    listen 127.0.0.1:${originPort} ssl http2;
    ssl_certificate ${CERTS}/leaf.pem; ssl_certificate_key ${CERTS}/leaf.key;
    root ${dir}/www;
  }
}
`,
);
const origin = spawn('nginx', ['-p', dir, '-c', join(dir, 'origin.conf'), '-e', join(dir, 'origin-error.log')], {
  stdio: 'ignore',
});
procs.push(origin);
await waitPort(originPort);

/** h2load --h1 sending `n` requests over 8 connections to the front; throws unless every one succeeded. */
const load = (port, n) => {
  const out = execFileSync('h2load', ['--h1', '-n', String(n), '-c', '8', `http://127.0.0.1:${port}/small.txt`], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  const ok = Number(/(\d+) succeeded/.exec(out)?.[1] ?? -1);
  const good = Number(/status codes: (\d+) 2xx/.exec(out)?.[1] ?? -1);
  if (ok !== n || good !== n) throw new Error(`bench/calls: ${ok} of ${n} requests succeeded, ${good} with 2xx`);
};

/** Signal the service to write its coverage, and wait for the report it writes (a new file in `covDir`). */
const takeCoverage = async (p, covDir) => {
  const before = new Set(readdirSync(covDir));
  process.kill(p.pid, 'SIGUSR2');
  for (let i = 0; i < 200; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const fresh = readdirSync(covDir).filter((f) => !before.has(f));
    // Written whole once its size holds between two looks.
    if (fresh.length === 1) {
      const file = join(covDir, fresh[0]);
      const size = statSync(file).size;
      await new Promise((r) => setTimeout(r, 100));
      if (size > 0 && statSync(file).size === size) return JSON.parse(readFileSync(file, 'utf8'));
    }
  }
  throw new Error('bench/calls: the service wrote no coverage report within 10 s');
};

/** Calls a request by function: ours (the build's dist/), Node's built-ins, the npm packages'. */
const count = (report, dist) => {
  const distUrl = `${pathToFileURL(dist).href}/`;
  const fns = new Map();
  const sums = { ours: 0, node: 0, packages: 0 };
  for (const s of report.result) {
    const kind = s.url.startsWith('node:')
      ? 'node'
      : s.url.startsWith(distUrl)
        ? 'ours'
        : s.url.includes('/node_modules/')
          ? 'packages'
          : null;
    if (kind === null) continue;
    const file = kind === 'ours' ? s.url.slice(distUrl.length) : s.url.replace(/^.*\/node_modules\//, '');
    for (const f of s.functions) {
      const c = f.ranges[0]?.count ?? 0;
      if (c === 0) continue;
      sums[kind] += c;
      const key = `${f.functionName || '(anonymous)'}\t${kind}\t${file}`;
      fns.set(key, (fns.get(key) ?? 0) + c);
    }
  }
  return { sums, fns };
};

const measure = async (dist, upstream) => {
  const port = await freePort();
  const config = join(dir, `calls-${port}.yaml`);
  writeFileSync(
    config,
    `listeners: [{ name: front, kind: http, host: 127.0.0.1, port: ${port} }]
admin: false
logging: { level: warn, requests: false }
origins:
  o: { url: "https://127.0.0.1:${originPort}", protocol: ${upstream}, tls: { ca: ${CERTS}/ca.pem, servername: localhost }, pool: { maxConnections: 64 } }
routes: [{ path: /, origin: o }]
`,
  );
  const covDir = join(dir, `coverage-${port}`);
  mkdirSync(covDir);
  let flags = [];
  try {
    flags = readFileSync(join(dist, '..', 'bin', 'service-node-flags'), 'utf8')
      .split(/\s+/)
      .filter(Boolean);
  } catch {
    /* a build without the flags file */
  }
  const p = spawn(
    process.execPath,
    [...flags, '--require', TRIGGER, join(dist, 'cli', 'main.js'), 'serve', '--config', config],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_V8_COVERAGE: covDir } },
  );
  procs.push(p);
  let err = '';
  p.stderr.on('data', (d) => {
    err += d;
  });
  try {
    await waitPort(port);
    if (WARM > 0) load(port, WARM);
    await takeCoverage(p, covDir);
    load(port, N);
    const c = count(await takeCoverage(p, covDir), dist);
    const perReq = (x) => +(x / N).toFixed(2);
    return {
      dist,
      upstream,
      calls: { ours: perReq(c.sums.ours), node: perReq(c.sums.node), packages: perReq(c.sums.packages) },
      // Every function that ran at least once in 100 requests, by calls a request.
      functions: [...c.fns]
        .filter(([, v]) => v >= N / 100)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => {
          const [fn, kind, file] = k.split('\t');
          return { fn, kind, file, calls: perReq(v) };
        }),
    };
  } finally {
    if (!alive(p) && err) console.error(err.slice(-600));
    await stopChild(p);
  }
};

const runs = [];
for (const upstream of UPSTREAMS)
  for (const dist of [THIS, ...(ANCHOR ? [ANCHOR] : [])]) {
    process.stderr.write(`counting: ${dist === THIS ? 'this build' : ANCHOR}, ${upstream} upstream\n`);
    runs.push(await measure(dist, upstream));
  }
await stopChild(origin);

const name = (d) => (d === THIS ? 'this build' : `anchor (${d})`);
const lines = [
  `Calls a proxied request makes (${N} requests over 8 h1 connections after ${WARM} unmeasured; V8 coverage counts)`,
  '',
  '| build | upstream | ours | Node built-ins | npm packages | all |',
  '|---|---|---:|---:|---:|---:|',
  ...runs.map(
    (r) =>
      `| ${name(r.dist)} | ${r.upstream} | ${r.calls.ours} | ${r.calls.node} | ${r.calls.packages} | ${(r.calls.ours + r.calls.node + r.calls.packages).toFixed(2)} |`,
  ),
];
for (const upstream of UPSTREAMS) {
  const mine = runs.find((r) => r.dist === THIS && r.upstream === upstream);
  const other = runs.find((r) => r.dist === ANCHOR && r.upstream === upstream);
  lines.push('');
  if (!other) {
    lines.push(`${upstream} upstream, this build: the ${TOP} functions called most a request`, '');
    lines.push('| calls a request | function and file |', '|---:|---|');
    for (const f of mine.functions.slice(0, TOP)) lines.push(`| ${f.calls} | \`${f.fn}\` ${f.file} |`);
    continue;
  }
  // By name and kind (ours, node, packages) without the file: a function that moved between modules is the same one.
  const byName = (fns) => {
    const m = new Map();
    for (const f of fns) {
      const n = `\`${f.fn}\` (${f.kind})`;
      m.set(n, (m.get(n) ?? 0) + f.calls);
    }
    return m;
  };
  const a = byName(mine.functions);
  const b = byName(other.functions);
  const diff = [...new Set([...a.keys(), ...b.keys()])]
    .map((k) => [k, a.get(k) ?? 0, b.get(k) ?? 0])
    .filter(([, x, y]) => Math.abs(x - y) >= 0.5)
    .sort((x, y) => Math.abs(y[1] - y[2]) - Math.abs(x[1] - x[2]) || x[0].localeCompare(y[0]));
  lines.push(`${upstream} upstream: the functions whose calls a request differ most (by name)`, '');
  lines.push('| function (whose) | this build | anchor |', '|---|---:|---:|');
  for (const [k, x, y] of diff.slice(0, TOP)) lines.push(`| ${k} | ${x.toFixed(2)} | ${y.toFixed(2)} |`);
}
console.log(lines.join('\n'));
const file = new ResultWriter('calls').write({ requests: N, warmupRequests: WARM, runs });
console.log(`\nwrote ${file}`);
