#!/usr/bin/env node
// Proxy benchmark: the originlink connector vs nginx (upstream keepalive) vs
// HAProxy (http-reuse always) vs Node's floor (a minimal net+tls relay, h1 front
// only: bench/lib/node-floor-proxy.mjs), each pinned to one core, in front of the same
// nginx origin over TLS. Load: wrk (cleartext HTTP/1.1 to the proxy) on the
// other core, for a bounded time per target. Reports req/s, the proxy's CPU
// time per request (its process tree, from /proc: less sensitive to a busy
// machine than req/s), added latency
// p50/p99 over going direct, and connections seen at the origin (from its
// access log). Prints a Markdown table and writes bench/out/proxy-DATE.json.
//
// Knobs (env): BENCH_DURATION seconds per target (default 5), BENCH_WARMUP seconds of unmeasured load
// before it (default 3; 1 before 2026-11-23 16:15; with BENCH_RATE, 12,800 requests' worth since 2026-11-27 14:45), BENCH_CONNECTIONS
// wrk connections (default 32), BENCH_PATH (default /small.txt, 1 KiB; /100k.bin, 100 KiB),
// BENCH_TARGETS a regexp on target names (default all; `direct` always runs),
// BENCH_FRONT `h1` (default: wrk, cleartext HTTP/1.1 fronts) or `h2c` (h2load
// with BENCH_STREAMS streams per connection, default 10, to cleartext HTTP/2
// fronts: originlink's `h2c` listener, nginx `listen … http2`, HAProxy
// `proto h2`), BENCH_DIST this build's dist/ (default dist/), BENCH_ANCHOR_DIST another build's dist/ (e.g. a worktree of an
// earlier commit) run as one more target, "originlink (previous)", BENCH_NODE_ARGS
// node flags for the originlink processes (e.g. `--cpu-prof --cpu-prof-dir=DIR`, or `--trace-gc-nvp` with
// BENCH_STDOUT=FILE, where the started processes' standard output is appended), BENCH_WORKERS a
// list such as `1,2`: more targets, `originlink serve --workers N` (h2 upstream); one
// worker is pinned to the proxy core like the others, two or more get every core
// (the load generator's too: on a 2-core machine that is a shared core, say so), BENCH_RATE a fixed
// total request rate (h2load --rps, h1 or h2c) so every target is measured at the same load (BENCH_SPREAD=G: from G
// generators started apart; G = BENCH_CONNECTIONS: every request alone), BENCH_ACCESS_LOG=1
// a log line per request from originlink and nginx (off by default), BENCH_ROUNDS every target that many times,
// interleaved (default 1): medians, and each target's req/s and CPU ratios to nginx's run in the same round.
// BENCH_UPLOAD=BYTES: every request a POST of that many bytes to /upload (h2load -d, also with the h1 front),
// which the origin reads whole before it answers 1 KiB; nginx buffers it in memory (its default request
// buffering, client_body_buffer_size 1m), the floor target is left out (it relays no request bodies).
// BENCH_UPLOAD_PATH: where the uploads go instead of /upload — a static file (/small.txt) makes the origin answer
// 405 before the body is in and, over h2, end connections that sent it much more than it read with GOAWAY:
// what a proxy does with uploads an origin refused unprocessed (the errors column counts 4xx and 5xx; 5xx apart).
// BENCH_PAIRED=1 (with BENCH_ANCHOR_DIST): this build and the anchor build at the same time instead of the table: both
// on the proxy core, each loaded by its own generator on the load core, BENCH_ROUNDS times (default 12; the order they start in
// alternating); each one's CPU per request and their ratio per round. A slow phase of the machine then lands on both
// alike: differences of 1–2 % that sequential runs cannot resolve show. BENCH_PAIRED_UPSTREAM h1 (default) or h2.
// BENCH_PAIRED_ANCHOR=floor (no BENCH_ANCHOR_DIST): Node's floor is the other side instead of a build — issue 58's ratio
// to the floor, with BENCH_RATE at a fixed rate each (sequential rounds drift ±15 % between targets at 320 req/s).
// BENCH_PAIRED_CLIENT_CERT=1: the origin asks for a client certificate (ssl_verify_client optional) and this build shows
// one (origins.o.tls.cert/key, a self-signed clientAuth certificate the origin trusts), the anchor none: what mutual
// TLS to the origin costs a request (give the same dist to both sides for that alone).
// Needs: nginx, haproxy, wrk, h2load, taskset (Debian: nginx-light haproxy wrk nghttp2-client util-linux), a built dist/.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { openSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { haproxyConfig } from './lib/haproxy.mjs';
import { alive, freePort, oneOriginConfig, serviceArgv, stopChild, treeCpuUs, waitPort } from './lib/host.mjs';
import { quantile } from './lib/stats.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DURATION = Number(process.env.BENCH_DURATION ?? 5);
const CONNS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const UPLOAD = Number(process.env.BENCH_UPLOAD ?? 0);
if (!Number.isInteger(UPLOAD) || UPLOAD < 0 || UPLOAD > 64 << 20) {
  console.error('bench/proxy: BENCH_UPLOAD is a byte count, 0 … 64 MiB');
  process.exit(2);
}
const PATH = UPLOAD > 0 ? (process.env.BENCH_UPLOAD_PATH ?? '/upload') : (process.env.BENCH_PATH ?? '/small.txt');
const FRONT = process.env.BENCH_FRONT ?? 'h1';
// Rounds over all targets, interleaved (see the loop below); the table gives medians and per-round ratios to nginx.
// Paired (BENCH_PAIRED), 12 by default: an A/A on the Intel machine spread ±8 % a round (bench/RESULTS.md `proxy`,
// 2026-11-29), so fewer rounds leave a median good to ±4 % only.
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (process.env.BENCH_PAIRED === '1' ? 12 : 1));
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) {
  console.error('bench/proxy: BENCH_ROUNDS is a whole number ≥ 1');
  process.exit(2);
}
const STREAMS = Number(process.env.BENCH_STREAMS ?? 10);
const ANCHOR_DIST = process.env.BENCH_ANCHOR_DIST ?? null;
// Extra node flags for the originlink processes, e.g. BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile them.
const NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
// BENCH_RATE: a fixed offered load (total req/s, h2load --rps over the connections) instead of as fast as each
// target goes: CPU per request is then compared at the same request rate (a proxy that saturates its CPU
// also keeps the load generator idle, so each response pays a wake-up that a faster one does not). h2load paces every
// connection on the same tick: the requests come in bursts of BENCH_CONNECTIONS every BENCH_CONNECTIONS ÷ BENCH_RATE s
// (an h2 upstream carries a burst in a write or two, an h1 upstream and the floor in one write per connection).
const RATE = process.env.BENCH_RATE ? Number(process.env.BENCH_RATE) : null;
if (RATE !== null && !(RATE >= CONNS)) {
  console.error('bench/proxy: BENCH_RATE is a total request rate ≥ BENCH_CONNECTIONS');
  process.exit(2);
}
// BENCH_SPREAD=G (with BENCH_RATE): the connections split over G load generators started apart, so the requests come in
// G bursts of BENCH_CONNECTIONS ÷ G per interval instead of one; G = BENCH_CONNECTIONS makes every request arrive
// alone, each waking the proxy by itself (issue 58's lone request). Default 1, h2load's own pacing.
const SPREAD = Number(process.env.BENCH_SPREAD ?? 1);
if (!(Number.isInteger(SPREAD) && SPREAD >= 1 && CONNS % SPREAD === 0)) {
  console.error('bench/proxy: BENCH_SPREAD is a whole number that divides BENCH_CONNECTIONS');
  process.exit(2);
}
// Seconds of load before each target's measured run, same for every target: its connections to the origin open and V8
// brings the request path to its optimizing tier. A function reaches that tier after a number of calls, not of seconds:
// at saturation 3 s are tens of thousands of requests, at a fixed low rate they are a few hundred and the window would
// measure the compilers still at work (a fresh process's cost, bench startup's subject, not a request's). So with
// BENCH_RATE the default is the time WARMUP_REQUESTS take at that rate (40 s at 320/s), never under 3 s.
const WARMUP_REQUESTS = 12_800;
const WARMUP = Number(process.env.BENCH_WARMUP ?? (RATE === null ? 3 : Math.max(3, Math.ceil(WARMUP_REQUESTS / RATE))));
// BENCH_ACCESS_LOG=1: one log line per request, as deployed: originlink with `logging.requests` (the default; its
// standard output is /dev/null unless BENCH_STDOUT names a file), nginx `access_log /dev/null` (HAProxy stays unlogged).
const ACCESS_LOG = process.env.BENCH_ACCESS_LOG === '1';
const WORKERS = (process.env.BENCH_WORKERS ?? '').split(',').filter(Boolean).map(Number);
if (WORKERS.some((n) => !Number.isInteger(n) || n < 1)) {
  console.error('bench/proxy: BENCH_WORKERS is a list of worker counts, e.g. 1,2');
  process.exit(2);
}
if (FRONT !== 'h1' && FRONT !== 'h2c') {
  console.error('bench/proxy: BENCH_FRONT is h1 or h2c');
  process.exit(2);
}
const PAIRED = process.env.BENCH_PAIRED === '1';
const PAIRED_UPSTREAM = process.env.BENCH_PAIRED_UPSTREAM ?? 'h1';
/** BENCH_PAIRED_ANCHOR=floor: this build beside Node's floor instead of another build. */
const PAIRED_FLOOR = process.env.BENCH_PAIRED_ANCHOR === 'floor';
if (
  PAIRED &&
  ((!ANCHOR_DIST && !PAIRED_FLOOR) ||
    (PAIRED_UPSTREAM !== 'h1' && PAIRED_UPSTREAM !== 'h2') ||
    (PAIRED_FLOOR && (FRONT !== 'h1' || UPLOAD !== 0)))
) {
  console.error(
    'bench/proxy: BENCH_PAIRED=1 needs BENCH_ANCHOR_DIST or BENCH_PAIRED_ANCHOR=floor (h1 front, no uploads), and BENCH_PAIRED_UPSTREAM is h1 or h2',
  );
  process.exit(2);
}
const CERTS = join(ROOT, 'config', 'demo-certs');
const CLIENT_CERT = process.env.BENCH_PAIRED_CLIENT_CERT === '1';
if (CLIENT_CERT && !PAIRED) {
  console.error('bench/proxy: BENCH_PAIRED_CLIENT_CERT=1 is a paired run (BENCH_PAIRED=1)');
  process.exit(2);
}
const PROXY_CPU = '1';
const LOAD_CPU = '0';

const WRK = FRONT === 'h1' && RATE === null && UPLOAD === 0;
for (const bin of ['nginx', 'haproxy', WRK ? 'wrk' : 'h2load', 'taskset']) {
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'pipe' });
  } catch {
    console.error(`bench/proxy: ${bin} is missing (Debian: nginx-light haproxy wrk util-linux)`);
    process.exit(2);
  }
}
if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
  console.error('bench/proxy: build first (npx tsc -p .)');
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), 'ol-bench-proxy-'));
const procs = [];
const cleanup = () => {
  // SIGTERM, not SIGKILL: an nginx master stops its workers only when it is not killed outright.
  for (const p of procs) {
    try {
      if (alive(p)) process.kill(p.pid, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  rmSync(dir, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

const start = (cpu, cmd, args) => {
  const p = spawn('taskset', ['-c', cpu, cmd, ...args], {
    stdio: ['ignore', process.env.BENCH_STDOUT ? openSync(process.env.BENCH_STDOUT, 'a') : 'ignore', 'pipe'],
  });
  let err = '';
  p.stderr.on('data', (d) => {
    err += d;
  });
  p.on('exit', (code) => {
    if (code && code !== 0 && !p.killedByUs) console.error(`${cmd} exited ${code}: ${err.slice(-400)}`);
  });
  procs.push(p);
  return p;
};
const stop = (p) => stopChild(p);

const nginxTemp = (name) =>
  ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${dir}/${name}-${t};`).join('\n  ');

// --- the origin: nginx, TLS for the proxies, cleartext for the direct baseline.
const originTls = await freePort();
const originPlain = await freePort();
const originH2c = await freePort();
const originSink = await freePort();
mkdirSync(join(dir, 'www'));
writeFileSync(join(dir, 'www', 'small.txt'), 'x'.repeat(1024));
// A larger object (BENCH_PATH=/100k.bin): the relay of a body that takes several reads and writes.
writeFileSync(join(dir, 'www', '100k.bin'), Buffer.alloc(100 * 1024, 0x78));
if (UPLOAD > 0) writeFileSync(join(dir, 'upload.bin'), Buffer.alloc(UPLOAD, 0x75));
if (CLIENT_CERT)
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2']
      .concat(['-subj', '/CN=bench edge', '-keyout', 'client.key', '-out', 'client.pem'])
      .concat(['-addext', 'keyUsage=critical,digitalSignature', '-addext', 'extendedKeyUsage=clientAuth']),
    { cwd: dir, stdio: 'pipe' },
  );
writeFileSync(
  join(dir, 'origin.conf'),
  `
daemon off; master_process on; worker_processes 1; user root;
pid ${dir}/origin.pid; error_log ${dir}/origin-error.log warn;
events { worker_connections 8192; }
http {
  log_format ol '$connection $request_uri';
  access_log ${dir}/origin-access.log ol buffer=64k flush=200ms;
  ${nginxTemp('origin')}
  keepalive_timeout 300s; keepalive_requests 100000000;
  server {
    listen 127.0.0.1:${originTls} ssl http2;
    listen 127.0.0.1:${originPlain};
    listen 127.0.0.1:${originH2c} http2;
    ssl_certificate ${CERTS}/leaf.pem; ssl_certificate_key ${CERTS}/leaf.key;
    ${CLIENT_CERT ? `ssl_client_certificate ${dir}/client.pem; ssl_verify_client optional;` : ''}
    root ${dir}/www;
    # BENCH_UPLOAD: read the whole body (request buffering), then answer with small.txt through a GET to itself.
    location = /upload {
      client_max_body_size 64m; client_body_buffer_size 1m;
      proxy_method GET; proxy_pass_request_body off; proxy_set_header Content-Length "";
      proxy_pass http://127.0.0.1:${originSink}/small.txt;
    }
  }
  # Its own server, unlogged: the origin's log counts the connections of the proxies only.
  server { listen 127.0.0.1:${originSink}; access_log off; root ${dir}/www; }
}`,
);
const origin = start(LOAD_CPU, 'nginx', [
  '-p',
  dir,
  '-c',
  join(dir, 'origin.conf'),
  '-e',
  join(dir, 'origin-error.log'),
]);
await waitPort(originTls);

// --- the proxies, each on its own core.
const targets = [];
targets.push({
  name: 'direct (no proxy)',
  upstream: '-',
  port: FRONT === 'h1' ? originPlain : originH2c,
  launch: null,
});
// This build: dist/, or the snapshot BENCH_DIST names (as every other scenario takes it: bench/lib/dist.mjs).
const THIS_DIST = process.env.BENCH_DIST ? resolve(ROOT, process.env.BENCH_DIST) : join(ROOT, 'dist');
const builds = [['originlink', THIS_DIST], ...(ANCHOR_DIST ? [['originlink (previous)', ANCHOR_DIST]] : [])];
const originlinkTarget = (label, dist, proto, workers, clientCert = false) => ({
  name: `${label} (${proto} upstream)`,
  upstream: `TLS ${proto}`,
  launch: async () => {
    const port = await freePort();
    const file = join(dir, `originlink-${proto}-${port}.yaml`);
    writeFileSync(
      file,
      oneOriginConfig({
        port,
        front: FRONT === 'h1' ? 'http' : 'h2c',
        logging: ACCESS_LOG ? '{ level: info, requests: true }' : '{ level: warn, requests: false }',
        // Request bodies up to 1 MiB read whole in memory, as the nginx anchor's client_body_buffer_size 1m (by
        // default, past 16 KiB both would go through a temporary file).
        extra: 'proxy: { requestBufferBytes: 1048576 }\n',
        origin: `url: "https://127.0.0.1:${originTls}", protocol: ${proto}, tls: { ca: ${CERTS}/ca.pem, servername: localhost${clientCert ? `, cert: ${dir}/client.pem, key: ${dir}/client.key` : ''} }, pool: { maxConnections: 64 }`,
      }),
    );
    const cpu = workers > 1 ? `${LOAD_CPU},${PROXY_CPU}` : PROXY_CPU;
    const [node, ...args] = serviceArgv(dist, NODE_ARGS);
    return {
      port,
      proc: start(cpu, node, [...args, 'serve', '--config', file, ...(workers ? ['--workers', String(workers)] : [])]),
    };
  },
});
for (const [label, dist] of builds)
  for (const proto of ['h2', 'h1']) targets.push(originlinkTarget(label, dist, proto, 0));
for (const n of WORKERS)
  targets.push(originlinkTarget(`originlink --workers ${n}${n > 1 ? ', all cores' : ''}`, THIS_DIST, 'h2', n));
// Idle origin connections nginx and HAProxy may keep: at least the requests in flight (with the h2c front,
// connections × streams), else every request past the cap opens (and closes) an origin connection.
const ANCHOR_POOL = Math.max(64, FRONT === 'h2c' ? CONNS * STREAMS : CONNS);
targets.push({
  name: 'nginx (upstream keepalive)',
  upstream: 'TLS h1',
  launch: async () => {
    const port = await freePort();
    writeFileSync(
      join(dir, 'proxy-nginx.conf'),
      `
daemon off; master_process on; worker_processes 1; user root;
pid ${dir}/proxy.pid; error_log ${dir}/proxy-error.log warn;
events { worker_connections 8192; }
http {
  access_log ${ACCESS_LOG ? '/dev/null' : 'off'};
  ${nginxTemp('proxy')}
  upstream origin { server 127.0.0.1:${originTls}; keepalive ${ANCHOR_POOL}; keepalive_requests 100000000; keepalive_timeout 300s; }
  server {
    listen 127.0.0.1:${port}${FRONT === 'h2c' ? ' http2' : ''};
    keepalive_requests 100000000;
    client_max_body_size 64m; client_body_buffer_size 1m;
    location / {
      proxy_pass https://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_server_name on; proxy_ssl_name localhost;
      proxy_ssl_verify on; proxy_ssl_trusted_certificate ${CERTS}/ca.pem;
      proxy_ssl_session_reuse on;
    }
  }
}`,
    );
    return {
      port,
      proc: start(PROXY_CPU, 'nginx', [
        '-p',
        dir,
        '-c',
        join(dir, 'proxy-nginx.conf'),
        '-e',
        join(dir, 'proxy-error.log'),
      ]),
    };
  },
});
targets.push({
  name: 'HAProxy (http-reuse always)',
  upstream: 'TLS h1',
  launch: async () => {
    const port = await freePort();
    writeFileSync(
      join(dir, 'haproxy.cfg'),
      haproxyConfig({
        port,
        bindExtra: FRONT === 'h2c' ? 'proto h2' : '',
        origin: `127.0.0.1:${originTls}`,
        caPath: `${CERTS}/ca.pem`,
        poolMaxConn: ANCHOR_POOL,
      }),
    );
    return { port, proc: start(PROXY_CPU, 'haproxy', ['-f', join(dir, 'haproxy.cfg'), '-db']) };
  },
});

// Node's floor (h1 front only): the least JavaScript that relays this traffic on net and tls
// (bench/lib/node-floor-proxy.mjs) — what a proxy written on Node pays per request before any logic of its own.
if (FRONT === 'h1' && UPLOAD === 0)
  targets.push({
    name: 'node floor (minimal net+tls relay)',
    upstream: 'TLS h1',
    launch: async () => {
      const port = await freePort();
      return {
        port,
        proc: start(PROXY_CPU, process.execPath, [
          join(ROOT, 'bench', 'lib', 'node-floor-proxy.mjs'),
          String(port),
          '127.0.0.1',
          String(originTls),
          `${CERTS}/ca.pem`,
          'localhost',
        ]),
      };
    },
  });

const parseDur = (s) => {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(s);
  if (!m) return NaN;
  return Number(m[1]) * { us: 0.001, ms: 1, s: 1000, m: 60_000 }[m[2]];
};
// h2load prints only a mean latency; its per-request log (--log-file: start, status, µs to the response's end)
// gives the percentiles — at a fixed rate the only fair latency comparison (saturated, latency is queueing).
const run = promisify(execFile);
const h2load = async (port, tag, seconds) => {
  const groups = RATE === null ? 1 : SPREAD;
  const each = CONNS / groups;
  // BENCH_SPREAD: the connections in `groups` h2load processes, each started a `groups`-th of the pacing interval after
  // the one before (every connection sends one request per CONNS ÷ RATE s): bursts of CONNS ÷ groups requests.
  const stepMs = RATE === null ? 0 : (1000 * CONNS) / RATE / groups;
  const runs = await Promise.all(
    Array.from({ length: groups }, (_, g) =>
      new Promise((r) => setTimeout(r, g * stepMs)).then(() => h2loadOne(port, tag, g, seconds, each)),
    ),
  );
  const ms = runs.flatMap((r) => r.ms).sort((a, b) => a - b);
  const sum = (f) => runs.reduce((a, r) => a + f(r), 0);
  const failed = sum((r) => r.failed);
  return {
    rps: sum((r) => r.rps),
    requests: sum((r) => r.requests),
    p50: quantile(ms, 0.5),
    p99: quantile(ms, 0.99),
    non2xx: sum((r) => r.non2xx),
    s5xx: sum((r) => r.s5xx),
    socketErrors: failed ? `${failed} failed` : '',
  };
};
const h2loadOne = async (port, tag, group, seconds, conns) => {
  const shape = FRONT === 'h1' ? ['--h1'] : ['-m', String(STREAMS)];
  const rate = RATE === null ? [] : [`--rps=${Math.max(1, Math.round(RATE / CONNS))}`];
  if (UPLOAD > 0) rate.push('-d', join(dir, 'upload.bin'));
  const log = join(dir, `h2load-${tag}-${group}.log`);
  const { stdout: out } = await run(
    'taskset',
    [
      '-c',
      LOAD_CPU,
      'h2load',
      '-c',
      String(conns),
      ...shape,
      ...rate,
      '-D',
      String(seconds),
      `--log-file=${log}`,
      `http://127.0.0.1:${port}${PATH}?b=${tag}`,
    ],
    { encoding: 'utf8', maxBuffer: 1 << 24 },
  );
  const ms = readFileSync(log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => Number(l.split('\t')[2]) / 1000);
  rmSync(log, { force: true });
  const m = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  return {
    ms,
    rps: Number(/finished in [\d.]+s, ([\d.]+) req\/s/.exec(out)?.[1]),
    requests: m ? Number(m[3]) : 0,
    failed: m ? Number(m[5]) + Number(m[6]) : Number.NaN,
    non2xx: codes ? Number(codes[3]) + Number(codes[4]) : Number.NaN,
    s5xx: codes ? Number(codes[4]) : Number.NaN,
  };
};
const load = (port, tag, seconds) => (WRK ? wrk(port, tag, seconds) : h2load(port, tag, seconds));
const wrk = async (port, tag, seconds) => {
  const { stdout: out } = await run(
    'taskset',
    [
      '-c',
      LOAD_CPU,
      'wrk',
      '-t1',
      `-c${CONNS}`,
      `-d${seconds}s`,
      '--latency',
      `http://127.0.0.1:${port}${PATH}?b=${tag}`,
    ],
    { encoding: 'utf8' },
  );
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const p50 = parseDur(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? '');
  const p99 = parseDur(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? '');
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? '0';
  const sock = /Socket errors: (.*)/.exec(out)?.[1] ?? '';
  return { rps, requests, p50, p99, non2xx: Number(errors), socketErrors: sock };
};
const originConnections = (tag) => {
  const f = join(dir, 'origin-access.log');
  if (!existsSync(f)) return 0;
  const seen = new Set();
  for (const line of readFileSync(f, 'utf8').split('\n')) {
    const [conn, uri] = line.split(' ');
    if (uri?.endsWith(`?b=${tag}`)) seen.add(conn);
  }
  return seen.size;
};

const only = process.env.BENCH_TARGETS ? new RegExp(process.env.BENCH_TARGETS, 'i') : null;
const chosen = [...targets.entries()].filter(([i, t]) => i === 0 || !only || only.test(t.name));
/** One target once: a fresh process, warm-up, a measured run. */
async function measure(i, t, round) {
  const tag = `t${i}r${round}`;
  let launched = null;
  if (t.launch) {
    launched = await t.launch();
    await waitPort(launched.port);
  }
  const port = launched ? launched.port : t.port;
  await load(port, `${tag}w`, WARMUP); // warm-up: connections to the origin are opened here, JIT compilers reach their top tier
  const c0 = launched ? treeCpuUs(launched.proc.pid) : null;
  const r = await load(port, tag, DURATION);
  // taskset execs the proxy, so the spawned pid is the proxy's own.
  if (launched) r.cpuUsPerReq = (treeCpuUs(launched.proc.pid) - c0) / Math.max(1, r.requests);
  await new Promise((res) => setTimeout(res, 400)); // origin log buffer flush
  if (launched) await stop(launched.proc);
  process.stderr.write(`done: ${t.name}${ROUNDS > 1 ? ` (round ${round + 1} of ${ROUNDS})` : ''}\n`);
  return { ...r, originConnections: originConnections(tag) };
}
/** BENCH_PAIRED: the anchor build and this one at once, ROUNDS times; CPU per request of each and their ratio. */
async function paired() {
  const pair = [
    PAIRED_FLOOR
      ? (targets.find((t) => t.name.startsWith('node floor')) ?? null)
      : originlinkTarget('originlink (previous)', ANCHOR_DIST, PAIRED_UPSTREAM, 0),
    originlinkTarget('originlink', THIS_DIST, PAIRED_UPSTREAM, 0, CLIENT_CERT),
  ];
  const anchorName = PAIRED_FLOOR ? "Node's floor" : ANCHOR_DIST;
  const other = PAIRED_FLOOR ? 'floor' : 'previous';
  const rounds = [];
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 ? [1, 0] : [0, 1];
    const up = [];
    for (const k of order) {
      const l = await pair[k].launch();
      await waitPort(l.port);
      up[k] = l;
    }
    await Promise.all(up.map((l, k) => load(l.port, `p${round}-${k}w`, WARMUP)));
    const c0 = up.map((l) => treeCpuUs(l.proc.pid));
    const rs = await Promise.all(up.map((l, k) => load(l.port, `p${round}-${k}`, DURATION)));
    const cpu = up.map((l, k) => (treeCpuUs(l.proc.pid) - c0[k]) / Math.max(1, rs[k].requests));
    for (const l of up) await stop(l.proc);
    rounds.push({
      previousCpuUsPerReq: cpu[0],
      cpuUsPerReq: cpu[1],
      ratio: cpu[1] / cpu[0],
      rps: [rs[0].rps, rs[1].rps],
      errors: [rs[0].non2xx, rs[1].non2xx],
    });
    process.stderr.write(
      `paired round ${round + 1} of ${ROUNDS}: ${cpu[1].toFixed(2)} / ${cpu[0].toFixed(2)} µs = ${(cpu[1] / cpu[0]).toFixed(3)}\n`,
    );
  }
  await stop(origin);
  const med = (xs) => {
    const v = [...xs].sort((a, b) => a - b);
    return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  };
  console.log(
    [
      `Paired: this build${CLIENT_CERT ? ' (showing the origin a client certificate)' : ''} and ${anchorName} at the same time on CPU ${PROXY_CPU} (${PAIRED_UPSTREAM} upstream), each loaded by its own ${WRK ? `wrk -c${CONNS}` : `h2load -c${CONNS}${RATE !== null ? ` at ${RATE} req/s${SPREAD > 1 ? ` in ${SPREAD} generators started apart` : ''}` : ''}`} on CPU ${LOAD_CPU}, ${DURATION}s per round after ${WARMUP}s of warm-up, ${PATH}`,
      '',
      `| round | ${other} CPU µs/req | this build CPU µs/req | this ÷ ${other} | req/s (${other}, this) | errors |`,
      '|---:|---:|---:|---:|---:|---:|',
      ...rounds.map(
        (r, i) =>
          `| ${i + 1} | ${r.previousCpuUsPerReq.toFixed(2)} | ${r.cpuUsPerReq.toFixed(2)} | ${r.ratio.toFixed(3)} | ${Math.round(r.rps[0])}, ${Math.round(r.rps[1])} | ${r.errors[0] + r.errors[1]} |`,
      ),
      `| median | ${med(rounds.map((r) => r.previousCpuUsPerReq)).toFixed(2)} | ${med(rounds.map((r) => r.cpuUsPerReq)).toFixed(2)} | **${med(rounds.map((r) => r.ratio)).toFixed(3)}** | | |`,
    ].join('\n'),
  );
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  mkdirSync(join(ROOT, 'bench', 'out'), { recursive: true });
  const outFile = join(ROOT, 'bench', 'out', `paired-${stamp}.json`);
  writeFileSync(
    outFile,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        durationS: DURATION,
        warmupS: WARMUP,
        rounds,
        connections: CONNS,
        path: PATH,
        front: FRONT,
        upstream: PAIRED_UPSTREAM,
        anchorDist: PAIRED_FLOOR ? null : ANCHOR_DIST,
        anchor: PAIRED_FLOOR ? 'floor' : 'build',
        rate: RATE,
        spread: RATE === null ? undefined : SPREAD,
        clientCert: CLIENT_CERT,
        cpus: { proxy: PROXY_CPU, load: LOAD_CPU },
        node: process.version,
      },
      null,
      2,
    ),
  );
  console.log(`\nwrote ${outFile}`);
}
if (PAIRED) {
  await paired();
  process.exit(0);
}

// Rounds interleave the targets (every target once per round, in order), so a slow phase of this shared
// machine lands on all of them rather than on one; ratios to nginx are taken within each round.
const runs = chosen.map(() => []);
for (let round = 0; round < ROUNDS; round++) {
  for (const [k, [i, t]] of chosen.entries()) runs[k].push(await measure(i, t, round));
}
await stop(origin);

const median = (xs) => {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return v.length === 0 ? NaN : v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
const nginxAt = chosen.findIndex(([, t]) => t.name.startsWith('nginx'));
const rows = chosen.map(([, t], k) => {
  const rs = runs[k];
  const d = runs[0];
  const row = {
    target: t.name,
    upstream: t.upstream,
    rps: median(rs.map((r) => r.rps)),
    requests: median(rs.map((r) => r.requests)),
    cpuUsPerReq: t.launch ? median(rs.map((r) => r.cpuUsPerReq)) : undefined,
    p50: median(rs.map((r) => r.p50)),
    p99: median(rs.map((r) => r.p99)),
    addedP50Ms: k === 0 ? 0 : median(rs.map((r, j) => r.p50 - d[j].p50)),
    addedP99Ms: k === 0 ? 0 : median(rs.map((r, j) => r.p99 - d[j].p99)),
    originConnections: median(rs.map((r) => r.originConnections)),
    non2xx: rs.reduce((a, r) => a + r.non2xx, 0),
    s5xx: rs.reduce((a, r) => a + (r.s5xx ?? 0), 0),
    socketErrors: rs
      .map((r) => r.socketErrors)
      .filter(Boolean)
      .join('; '),
  };
  // Per-round ratios to nginx's run of the same round.
  if (nginxAt >= 0 && k !== nginxAt && t.launch) {
    const n = runs[nginxAt];
    row.rpsVsNginx = rs.map((r, j) => r.rps / n[j].rps);
    row.cpuVsNginx = rs.map((r, j) => r.cpuUsPerReq / n[j].cpuUsPerReq);
  }
  if (ROUNDS > 1) row.rounds = rs;
  return row;
});
const direct = rows[0];
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-');
/** A ratio per round: the median, with the range when there are several rounds. */
const ratio = (xs) =>
  xs === undefined
    ? '-'
    : `${median(xs).toFixed(2)}×${xs.length > 1 ? ` (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})` : ''}`;
const lines = [
  `Proxy benchmark: ${DURATION}s per target after ${WARMUP}s of warm-up${ROUNDS > 1 ? `, ${ROUNDS} interleaved rounds (medians; ratios to nginx per round: median (min–max))` : ''}, ${RATE !== null ? `h2load -c${CONNS} ${FRONT === 'h1' ? '--h1' : `-m${STREAMS} (h2c)`} at a fixed ${RATE} req/s${SPREAD > 1 ? ` from ${SPREAD} generators started apart` : ''}` : WRK ? `wrk -c${CONNS} (cleartext h1)` : FRONT === 'h1' ? `h2load -c${CONNS} --h1` : `h2load -c${CONNS} -m${STREAMS} (h2c)`} on CPU ${LOAD_CPU}, proxy on CPU ${PROXY_CPU}, nginx origin over TLS, ${UPLOAD > 0 ? `POST ${UPLOAD} bytes to ` : ''}${PATH}`,
  '',
  '| target | upstream | req/s | proxy CPU µs/req | req/s ÷ nginx | CPU ÷ nginx | p50 ms | p99 ms | added p50 ms | added p99 ms | origin conns | errors |',
  '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...rows.map(
    (r) =>
      `| ${r.target} | ${r.upstream} | ${Math.round(r.rps)} | ${r.cpuUsPerReq === undefined ? '-' : r.cpuUsPerReq.toFixed(1)} | ${ratio(r.rpsVsNginx)} | ${ratio(r.cpuVsNginx)} | ${f2(r.p50)} | ${f2(r.p99)} | ${r === direct ? '-' : f2(r.addedP50Ms)} | ${r === direct ? '-' : f2(r.addedP99Ms)} | ${r.originConnections} | ${r.non2xx}${r.s5xx ? ` (${r.s5xx} 5xx)` : ''}${r.socketErrors ? ` (${r.socketErrors})` : ''} |`,
  ),
];
console.log(lines.join('\n'));
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
mkdirSync(join(ROOT, 'bench', 'out'), { recursive: true });
const outFile = join(ROOT, 'bench', 'out', `proxy-${stamp}.json`);
writeFileSync(
  outFile,
  JSON.stringify(
    {
      date: new Date().toISOString(),
      durationS: DURATION,
      warmupS: WARMUP,
      rounds: ROUNDS,
      rate: RATE ?? undefined,
      spread: RATE === null ? undefined : SPREAD,
      connections: CONNS,
      path: PATH,
      upload: UPLOAD || undefined,
      accessLog: ACCESS_LOG || undefined,
      front: FRONT,
      streams: FRONT === 'h2c' ? STREAMS : undefined,
      anchorDist: ANCHOR_DIST ?? undefined,
      cpus: { proxy: PROXY_CPU, load: LOAD_CPU },
      node: process.version,
      results: rows,
    },
    null,
    2,
  ),
);
console.log(`\nwrote ${outFile}`);
