#!/usr/bin/env node
// `npm run bench -- calls`: how many JavaScript function calls a request makes — ours, Node's and the npm packages' —
// counted, not sampled, through the service (proxied) and through our Agent alone. A count hardly drifts with the
// machine: where the paired CPU bench (bench/proxy.mjs BENCH_PAIRED) resolves ±2 % in twelve rounds on a drifting VM,
// this says exactly which functions a change added to or took from a request's path, and how often each runs.
//
// How: V8's coverage counters (NODE_V8_COVERAGE), which Node writes at a process's exit, counted from its start. Each
// count is two processes: one serves BENCH_WARMUP_REQUESTS (2,000) and exits, the other the same and BENCH_REQUESTS
// (20,000) more; the difference, function by function, divided by BENCH_REQUESTS, is what a request runs once warm
// (start-up and warm-up cancel). Not v8.takeCoverage() between the phases in one process: after its reset, calls
// inlined into code optimized before it are no longer counted (a test here: a small function called 3 million times
// inlined read 0), so the counts fell with the warm-up's length. Counted from the start, inlined calls count too.
// The service: `serve` (cleartext HTTP/1.1 front, one origin over TLS: nginx serving a 1 KiB file, as in
// bench/proxy.mjs), loaded by h2load over 8 connections, stopped by SIGTERM (it drains and exits). The Agent: one Agent
// in a process of its own (bench/lib/calls-client.mjs) sending sequential requests for /small (100 bytes) — HTTP/1.1
// and HTTP/2 to a node:http2 origin, HTTP/3 to ours (bench/lib/origin.mjs). A count moves by a call or so a request
// between runs (timers, ACKs, a connection opened or not fall differently).
//
// These are the source's calls, inlined ones too: a count says how much JavaScript a request runs, not what it costs
// (a small function inlined is nearly free), and nothing of what native code (TLS, quiche, the kernel) spends.
//
// The service runs from tsc's modules (dist/cli/main.js), not from dist/bundle/: the bundle's functions are compiled
// from its V8 code cache, which holds no coverage counters, so most of them would count nothing. The same source either way.
//
// Knobs (env): BENCH_REQUESTS (20000), BENCH_WARMUP_REQUESTS (2000), BENCH_UPSTREAMS (the service's origin protocols,
// h1,h2; empty: none), BENCH_CLIENTS (the Agent's protocols, h2,h3; empty: none), BENCH_ANCHOR_DIST (another build's
// dist/, e.g. a worktree of an earlier commit: counted the same way, and the functions whose calls a request differ
// most listed), BENCH_TOP (functions listed, 25). Needs nginx and h2load. Writes bench/out/calls-DATE.json.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { freePort, oneOriginConfig, scratch, serviceArgv, stopChild, waitPort } from '../lib/host.mjs';
import { ResultWriter, ROOT } from '../lib/results.mjs';

const N = Number(process.env.BENCH_REQUESTS ?? 20_000);
const WARM = Number(process.env.BENCH_WARMUP_REQUESTS ?? 2_000);
const UPSTREAMS = (process.env.BENCH_UPSTREAMS ?? 'h1,h2').split(',').filter(Boolean);
const CLIENTS = (process.env.BENCH_CLIENTS ?? 'h2,h3').split(',').filter(Boolean);
const TOP = Number(process.env.BENCH_TOP ?? 25);
const ANCHOR = process.env.BENCH_ANCHOR_DIST ? resolve(process.env.BENCH_ANCHOR_DIST) : null;
const THIS = join(ROOT, 'dist');
if (!Number.isInteger(N) || N < 100 || !Number.isInteger(WARM) || WARM < 0) {
  console.error('bench/calls: BENCH_REQUESTS is a whole number ≥ 100, BENCH_WARMUP_REQUESTS ≥ 0');
  process.exit(2);
}
if (UPSTREAMS.some((u) => u !== 'h1' && u !== 'h2') || CLIENTS.some((c) => c !== 'h1' && c !== 'h2' && c !== 'h3')) {
  console.error('bench/calls: BENCH_UPSTREAMS is a list of h1 and h2 (may be empty), BENCH_CLIENTS of h1, h2 and h3');
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

/** The coverage report a process wrote to `covDir` at its exit. */
const report = (covDir) => {
  const files = readdirSync(covDir);
  if (files.length !== 1) throw new Error(`bench/calls: ${files.length} coverage reports in ${covDir}, not one`);
  return JSON.parse(readFileSync(join(covDir, files[0]), 'utf8'));
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

/** Counts `a` less counts `b`: the longer process's less the warm-up-only one's. */
const minus = (a, b) => {
  const fns = new Map();
  for (const [k, v] of a.fns) {
    const d = v - (b.fns.get(k) ?? 0);
    if (d !== 0) fns.set(k, d);
  }
  for (const [k, v] of b.fns) if (!a.fns.has(k)) fns.set(k, -v);
  const sums = {};
  for (const k of Object.keys(a.sums)) sums[k] = a.sums[k] - b.sums[k];
  return { sums, fns };
};

/** Calls a request from counts over N requests: the sums, and every function that ran once in 100 requests or more. */
const summarize = (c, facts) => {
  const perReq = (x) => +(x / N).toFixed(2);
  return {
    ...facts,
    calls: { ours: perReq(c.sums.ours), node: perReq(c.sums.node), packages: perReq(c.sums.packages) },
    functions: [...c.fns]
      .filter(([, v]) => Math.abs(v) >= N / 100)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => {
        const [fn, kind, file] = k.split('\t');
        return { fn, kind, file, calls: perReq(v) };
      }),
  };
};

/** The service of `dist` with an `upstream` origin: its coverage counts over `n` requests after the warm-up. */
const serviceCounts = async (dist, upstream, n) => {
  const port = await freePort();
  const config = join(dir, `calls-${port}.yaml`);
  writeFileSync(
    config,
    oneOriginConfig({
      port,
      origin: `url: "https://127.0.0.1:${originPort}", protocol: ${upstream}, tls: { ca: ${CERTS}/ca.pem, servername: localhost }, pool: { maxConnections: 64 }`,
    }),
  );
  const covDir = join(dir, `coverage-${port}`);
  mkdirSync(covDir);
  // As the launcher starts `serve` (its node flags), but from tsc's modules: see the header.
  const [node, ...args] = serviceArgv(dist);
  args[args.length - 1] = join(dist, 'cli', 'main.js');
  const p = spawn(node, [...args, 'serve', '--config', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, NODE_V8_COVERAGE: covDir },
  });
  procs.push(p);
  let err = '';
  p.stderr.on('data', (d) => {
    err += d;
  });
  try {
    await waitPort(port);
    if (WARM > 0) load(port, WARM);
    if (n > 0) load(port, n);
  } finally {
    // SIGTERM: the service drains and exits, and Node writes the report then (a SIGKILL would write none).
    await stopChild(p, 10_000);
  }
  if (p.exitCode !== 0)
    throw new Error(`bench/calls: the service exited ${p.exitCode ?? p.signalCode}: ${err.slice(-600)}`);
  return count(report(covDir), dist);
};

const measure = async (dist, upstream) =>
  summarize(minus(await serviceCounts(dist, upstream, N), await serviceCounts(dist, upstream, 0)), {
    dist,
    side: 'service',
    proto: upstream,
  });

let clientRuns = 0;
/** Our Agent alone in a process (bench/lib/calls-client.mjs), `proto` to a local origin: its counts over `n`. */
const clientCounts = (dist, proto, port, n) => {
  const covDir = join(dir, `coverage-client-${proto}-${++clientRuns}`);
  mkdirSync(covDir);
  const url = `https://127.0.0.1:${port}/small`;
  const arg = JSON.stringify({ url, ca: join(CERTS, 'ca.pem'), proto, warm: WARM, n });
  const out = execFileSync(process.execPath, [join(ROOT, 'bench', 'lib', 'calls-client.mjs'), arg], {
    encoding: 'utf8',
    timeout: 300_000,
    env: { ...process.env, NODE_V8_COVERAGE: covDir, BENCH_DIST: dist },
  });
  const res = JSON.parse(out.trim().split('\n').at(-1));
  if (res.error) throw new Error(`bench/calls: the ${proto} client failed: ${res.error}`);
  return count(report(covDir), dist);
};

const measureClient = (dist, proto, port) =>
  summarize(minus(clientCounts(dist, proto, port, N), clientCounts(dist, proto, port, 0)), {
    dist,
    side: 'client',
    proto,
  });

const runs = [];
for (const upstream of UPSTREAMS)
  for (const dist of [THIS, ...(ANCHOR ? [ANCHOR] : [])]) {
    process.stderr.write(`counting: ${dist === THIS ? 'this build' : ANCHOR}, the service, ${upstream} upstream\n`);
    runs.push(await measure(dist, upstream));
  }
await stopChild(origin);

// Our Agent alone: HTTP/1.1 and HTTP/2 to a node:http2 origin, HTTP/3 to ours (bench/lib/origin.mjs), /small (100 B).
if (CLIENTS.length > 0) {
  const origins = {};
  for (const kind of new Set(CLIENTS.map((p) => (p === 'h3' ? 'h3' : 'tcp')))) {
    const o = spawn(
      process.execPath,
      [
        join(ROOT, 'bench', 'lib', 'origin.mjs'),
        JSON.stringify({
          kind,
          host: '127.0.0.1',
          port: 0,
          cert: join(CERTS, 'leaf.pem'),
          key: join(CERTS, 'leaf.key'),
        }),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    procs.push(o);
    origins[kind] = {
      proc: o,
      port: await new Promise((resolvePort, reject) => {
        let buf = '';
        const t = setTimeout(() => reject(new Error(`bench/calls: the ${kind} origin did not start`)), 20_000);
        o.stdout.on('data', (d) => {
          buf += d;
          const m = /"event":"ready".*?"port":(\d+)/.exec(buf);
          if (m) {
            clearTimeout(t);
            resolvePort(Number(m[1]));
          }
        });
      }),
    };
  }
  for (const proto of CLIENTS)
    for (const dist of [THIS, ...(ANCHOR ? [ANCHOR] : [])]) {
      process.stderr.write(`counting: ${dist === THIS ? 'this build' : ANCHOR}, the Agent, ${proto}\n`);
      runs.push(await measureClient(dist, proto, origins[proto === 'h3' ? 'h3' : 'tcp'].port));
    }
  for (const o of Object.values(origins)) await stopChild(o.proc);
}

const name = (d) => (d === THIS ? 'this build' : `anchor (${d})`);
const what = (r) => (r.side === 'service' ? `the service, ${r.proto} upstream` : `the Agent, ${r.proto}`);
const lines = [
  `Calls a request makes (${N} counted after ${WARM} unmeasured; V8 coverage counts): the service's over 8 h1 connections from h2load, the Agent's one at a time`,
  '',
  '| build | what | ours | Node built-ins | npm packages | all |',
  '|---|---|---:|---:|---:|---:|',
  ...runs.map(
    (r) =>
      `| ${name(r.dist)} | ${what(r)} | ${r.calls.ours} | ${r.calls.node} | ${r.calls.packages} | ${(r.calls.ours + r.calls.node + r.calls.packages).toFixed(2)} |`,
  ),
];
// By name and kind (ours, node, packages) without the file: a function that moved between modules is the same one.
const byName = (fns) => {
  const m = new Map();
  for (const f of fns) {
    const n = `\`${f.fn}\` (${f.kind})`;
    m.set(n, (m.get(n) ?? 0) + f.calls);
  }
  return m;
};
const diffTable = (title, a, b, left, right) => {
  const x = byName(a.functions);
  const y = byName(b.functions);
  const rows = [...new Set([...x.keys(), ...y.keys()])]
    .map((k) => [k, x.get(k) ?? 0, y.get(k) ?? 0])
    .filter(([, p, q]) => Math.abs(p - q) >= 0.5)
    .sort((p, q) => Math.abs(q[1] - q[2]) - Math.abs(p[1] - p[2]) || p[0].localeCompare(q[0]));
  lines.push('', title, '', `| function (whose) | ${left} | ${right} |`, '|---|---:|---:|');
  for (const [k, p, q] of rows.slice(0, TOP)) lines.push(`| ${k} | ${p.toFixed(2)} | ${q.toFixed(2)} |`);
};
for (const mine of runs.filter((r) => r.dist === THIS)) {
  const other = runs.find((r) => r.dist === ANCHOR && r.side === mine.side && r.proto === mine.proto);
  if (other) {
    diffTable(
      `${what(mine)}: the functions whose calls a request differ most (by name)`,
      mine,
      other,
      'this build',
      'anchor',
    );
    continue;
  }
  lines.push('', `${what(mine)}, this build: the ${TOP} functions called most a request`, '');
  lines.push('| calls a request | function and file |', '|---:|---|');
  for (const f of mine.functions.slice(0, TOP)) lines.push(`| ${f.calls} | \`${f.fn}\` ${f.file} |`);
}
// Issue 58's question of the h3 client: what it runs that the h2 one does not.
const h3 = runs.find((r) => r.dist === THIS && r.side === 'client' && r.proto === 'h3');
const h2 = runs.find((r) => r.dist === THIS && r.side === 'client' && r.proto === 'h2');
if (h3 && h2) diffTable("the Agent's h3 request against its h2 one, this build", h3, h2, 'h3', 'h2');
console.log(lines.join('\n'));
const file = new ResultWriter('calls').write({ requests: N, warmupRequests: WARM, runs });
console.log(`\nwrote ${file}`);
