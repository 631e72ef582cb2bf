#!/usr/bin/env node
// `npm run bench -- clients`: originlink vs undici 7 on the same nginx origin,
// h1 and h2 over TLS, same concurrency, in one run — each client's own request
// API (our Agent's `request`, undici Pool's `request`), and Node's global
// `fetch()` with each as its `dispatcher` (our Agent, undici 7's Agent): what a
// program that only swaps the dispatcher gets. Prints req/s and p50/p99 with
// ratios (originlink / undici, per pair) and writes bench/out/clients-DATE.json.
//
// Knobs (env): BENCH_SECONDS (per measurement, default 5), BENCH_CONCURRENCY
// (default 32), BENCH_ROUNDS (default 2; clients alternate A B B A per round),
// BENCH_PATH (default /1k.bin, a 1 KiB file), BENCH_BULK_MIB (one-stream h2 bulk,
// default 64; 0 skips it), BENCH_BULK_ROUNDS (default 4, alternating A B B A).
// The bulk compares our h2 client with node:http2's client (the anchor for one
// stream over one connection; undici's h2 wraps node:http2 too).
// For profiling: BENCH_PROTOCOLS (default h1,h2), BENCH_CLIENTS (default
// originlink,undici,originlink-fetch,undici-fetch), e.g. `BENCH_PROTOCOLS=h2 BENCH_CLIENTS=originlink
// BENCH_BULK_MIB=0 node --cpu-prof bench/scenarios/clients.mjs`.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import http2 from 'node:http2';
import * as undici from 'undici';
import { dist } from '../lib/dist.mjs';

const { Agent } = await dist('index.js');

const here = dirname(fileURLToPath(import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const C = Number(process.env.BENCH_CONCURRENCY ?? 32);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const PATH = process.env.BENCH_PATH ?? '/1k.bin';
const BULK_MIB = Number(process.env.BENCH_BULK_MIB ?? 64);
const BULK_ROUNDS = Number(process.env.BENCH_BULK_ROUNDS ?? 4);
const PROTOCOLS = (process.env.BENCH_PROTOCOLS ?? 'h1,h2').split(',');
const CLIENTS = (process.env.BENCH_CLIENTS ?? 'originlink,undici,originlink-fetch,undici-fetch').split(',');
/** The pairs compared: each API with our client and with undici's. */
const PAIRS = [
  ['originlink', 'undici', 'undici 7', 'originlink'],
  ['originlink-fetch', 'undici-fetch', 'fetch() + undici 7 Agent', 'fetch() + originlink Agent'],
];

const dir = mkdtempSync(join(tmpdir(), 'ol-bench-clients-'));
let nginx = null;
// nginx workers outlive a killed master: end the workers (its children) first, then the master.
const cleanup = () => {
  if (nginx?.pid) {
    let workers = [];
    try {
      workers = execFileSync('pgrep', ['-P', String(nginx.pid)], { encoding: 'utf8' })
        .split('\n')
        .filter(Boolean)
        .map(Number);
    } catch {}
    for (const pid of [...workers, nginx.pid]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
  }
  rmSync(dir, { recursive: true, force: true });
};
process.on('exit', cleanup);
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(130));

function certs() {
  const o = (...a) => execFileSync('openssl', a, { cwd: dir, stdio: 'pipe' });
  o(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=bench CA',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign',
  );
  writeFileSync(
    join(dir, 'leaf.ext'),
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n',
  );
  o(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-subj',
    '/CN=localhost',
    '-keyout',
    'leaf.key',
    '-out',
    'leaf.csr',
  );
  o(
    'x509',
    '-req',
    '-in',
    'leaf.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    'leaf.ext',
    '-out',
    'leaf.pem',
  );
  return readFileSync(join(dir, 'ca.pem'));
}

async function freePort() {
  return new Promise((r) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => r(p));
    });
  });
}

async function startNginx(port) {
  mkdirSync(join(dir, 'www'));
  mkdirSync(join(dir, 'tmp'));
  writeFileSync(join(dir, 'www', '1k.bin'), Buffer.alloc(1024, 120));
  writeFileSync(join(dir, 'www', '64k.bin'), Buffer.alloc(65536, 121));
  if (BULK_MIB > 0) writeFileSync(join(dir, 'www', 'bulk.bin'), Buffer.alloc(BULK_MIB * 1024 * 1024, 122));
  writeFileSync(
    join(dir, 'nginx.conf'),
    `daemon off; user root; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 10000000; keepalive_timeout 75s; default_type application/octet-stream;
  client_body_temp_path ${dir}/tmp/b; proxy_temp_path ${dir}/tmp/p; fastcgi_temp_path ${dir}/tmp/f; uwsgi_temp_path ${dir}/tmp/u; scgi_temp_path ${dir}/tmp/s;
  http2_max_concurrent_streams 256;
  server { listen 127.0.0.1:${port} ssl http2; ssl_certificate ${dir}/leaf.pem; ssl_certificate_key ${dir}/leaf.key; root ${dir}/www; } }`,
  );
  nginx = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((r) => {
      const c = net.connect(port, '127.0.0.1', () => {
        c.destroy();
        r(true);
      });
      c.on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('nginx did not start');
}

/** Closed-loop load: C workers, each sends the next request when the previous body is read. */
async function measure(oneRequest, seconds) {
  const lat = [];
  const deadline = performance.now() + seconds * 1000;
  let errors = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: C }, async () => {
      for (let n = 0; n < 10_000_000 && performance.now() < deadline; n++) {
        const s = performance.now();
        try {
          await oneRequest();
          lat.push(performance.now() - s);
        } catch {
          errors++;
        }
      }
    }),
  );
  const dt = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  lat.sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.ceil(p * lat.length) - 1)] ?? 0;
  return {
    requests: lat.length,
    errors,
    seconds: dt,
    rps: lat.length / dt,
    p50: q(0.5),
    p99: q(0.99),
    cpuUsPerReq: (cpu.user + cpu.system) / Math.max(1, lat.length),
  };
}

function clients(origin, ca, protocol) {
  const ol = new Agent({ protocol, tls: { ca }, pool: { maxConnections: protocol === 'h1' ? C : 1 } });
  const un =
    protocol === 'h1'
      ? new undici.Pool(origin, { connections: C, connect: { ca } })
      : new undici.Pool(origin, { connections: 1, allowH2: true, maxConcurrentStreams: 256, connect: { ca } });
  // fetch() reads the body as a web stream either way: the dispatcher's part is what differs.
  const unAgent =
    protocol === 'h1'
      ? new undici.Agent({ connections: C, connect: { ca } })
      : new undici.Agent({ connections: 1, allowH2: true, maxConcurrentStreams: 256, connect: { ca } });
  const url = origin + PATH;
  const viaFetch = (dispatcher) => async () => {
    const r = await fetch(url, { dispatcher });
    const b = await r.arrayBuffer();
    if (r.status !== 200 || b.byteLength === 0) throw new Error(`fetch: ${r.status}, ${b.byteLength} bytes`);
  };
  return {
    // Both clients get the origin once and a path per request (undici's pool.request({ path }) form).
    originlink: {
      run: async () => {
        const r = await ol.request({ origin, path: PATH });
        await r.dump();
      },
      close: () => ol.close(),
    },
    undici: {
      run: async () => {
        const r = await un.request({ path: PATH, method: 'GET' });
        await r.body.dump();
      },
      close: () => un.close(),
    },
    'originlink-fetch': { run: viaFetch(ol), close: async () => {} },
    'undici-fetch': { run: viaFetch(unAgent), close: () => unAgent.close() },
  };
}

const ca = certs();
const port = await freePort();
await startNginx(port);
const origin = `https://localhost:${port}`;
const results = [];
const bar = (s) => process.stderr.write(`\r${s.padEnd(70)}`);
for (const protocol of PROTOCOLS) {
  const cs = clients(origin, ca, protocol);
  for (const name of CLIENTS) await measure(cs[name].run, 1); // warm up (connections, JIT)
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? CLIENTS : [...CLIENTS].reverse();
    for (const name of order) {
      bar(`clients: ${protocol} round ${round + 1}/${ROUNDS} ${name} (${SECONDS}s)`);
      results.push({ protocol, client: name, round, ...(await measure(cs[name].run, SECONDS)) });
    }
  }
  for (const name of Object.keys(cs)) await cs[name].close();
}

/** One 64 MiB stream over one connection: MiB/s, median of rounds, both clients on a warm connection. */
const bulk = { originlink: [], 'node:http2': [] };
if (BULK_MIB > 0) {
  const ol = new Agent({ protocol: 'h2', tls: { ca }, pool: { maxConnections: 1 } });
  const session = http2.connect(origin, { ca, settings: { initialWindowSize: 4 * 1024 * 1024 } });
  session.on('connect', () => session.setLocalWindowSize(16 * 1024 * 1024));
  const runs = {
    originlink: async () => {
      const r = await ol.request({ origin, path: '/bulk.bin' });
      return r.dump();
    },
    'node:http2': () =>
      new Promise((resolve, reject) => {
        const st = session.request({ ':path': '/bulk.bin' });
        let n = 0;
        st.on('data', (c) => {
          n += c.length;
        });
        st.on('end', () => resolve(n));
        st.on('error', reject);
      }),
  };
  for (const name of Object.keys(runs)) await runs[name](); // warm
  for (let round = 0; round < BULK_ROUNDS; round++) {
    const order = round % 2 === 0 ? ['originlink', 'node:http2'] : ['node:http2', 'originlink'];
    for (const name of order) {
      bar(`clients: h2 bulk round ${round + 1}/${BULK_ROUNDS} ${name}`);
      const t = performance.now();
      const n = await runs[name]();
      if (n !== BULK_MIB * 1024 * 1024) throw new Error(`${name} bulk: ${n} bytes`);
      bulk[name].push(BULK_MIB / ((performance.now() - t) / 1000));
    }
  }
  await ol.close();
  session.close();
}
process.stderr.write('\n');

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
};
const agg = (protocol, client) => {
  const rs = results.filter((r) => r.protocol === protocol && r.client === client);
  return {
    rps: median(rs.map((r) => r.rps)),
    p50: median(rs.map((r) => r.p50)),
    p99: median(rs.map((r) => r.p99)),
    cpu: median(rs.map((r) => r.cpuUsPerReq)),
    errors: rs.reduce((a, r) => a + r.errors, 0),
  };
};
const f = (n, d = 2) => n.toFixed(d);
const lines = [
  `clients: ${PATH} from nginx over TLS, concurrency ${C}, ${SECONDS}s x ${ROUNDS} rounds per client (median of rounds)`,
  '',
  '| protocol | client | req/s | p50 ms | p99 ms | CPU µs/req | errors | req/s ratio | p50 ratio | p99 ratio |',
  '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
];
const summary = {};
for (const protocol of PROTOCOLS)
  for (const [ours, theirs, theirLabel, ourLabel] of PAIRS) {
    if (!CLIENTS.includes(ours) || !CLIENTS.includes(theirs)) continue;
    const o = agg(protocol, ours);
    const u = agg(protocol, theirs);
    // The request APIs' pair keeps its keys of before (summary.h1.originlink …); fetch()'s is summary.h1.fetch.
    const row = { originlink: o, undici: u, rpsRatio: o.rps / u.rps, p50Ratio: o.p50 / u.p50, p99Ratio: o.p99 / u.p99 };
    if (ours === 'originlink') summary[protocol] = { ...summary[protocol], ...row };
    else summary[protocol] = { ...summary[protocol], fetch: row };
    lines.push(
      `| ${protocol} | ${theirLabel} | ${f(u.rps, 0)} | ${f(u.p50)} | ${f(u.p99)} | ${f(u.cpu, 0)} | ${u.errors} | 1.00 | 1.00 | 1.00 |`,
    );
    lines.push(
      `| ${protocol} | ${ourLabel} | ${f(o.rps, 0)} | ${f(o.p50)} | ${f(o.p99)} | ${f(o.cpu, 0)} | ${o.errors} | **${f(o.rps / u.rps)}×** | ${f(o.p50 / u.p50)}× | ${f(o.p99 / u.p99)}× |`,
    );
  }
lines.push('', 'req/s ratio > 1 is better for originlink; latency ratios < 1 are better.');
if (BULK_MIB > 0) {
  const o = median(bulk.originlink);
  const n = median(bulk['node:http2']);
  summary.bulk = { mib: BULK_MIB, originlink: o, nodeHttp2: n, ratio: o / n };
  lines.push(
    '',
    `h2 one-stream bulk (${BULK_MIB} MiB, median of ${BULK_ROUNDS}): originlink ${f(o, 0)} MiB/s, node:http2 ${f(n, 0)} MiB/s, ratio **${f(o / n)}×**`,
  );
}
console.log(lines.join('\n'));
const date = new Date().toISOString().replace(/[:.]/g, '-');
mkdirSync(join(here, '..', 'out'), { recursive: true });
const out = join(here, '..', 'out', `clients-${date}.json`);
writeFileSync(
  out,
  JSON.stringify(
    {
      scenario: 'clients',
      date: new Date().toISOString(),
      command: 'npm run bench -- clients',
      knobs: { SECONDS, C, ROUNDS, PATH, BULK_MIB, BULK_ROUNDS },
      machine: {
        cpus: cpus().length,
        model: cpus()[0]?.model,
        kernel: release(),
        node: process.version,
        undici: undici.VERSION ?? null,
      },
      summary,
      samples: results,
      bulk,
    },
    null,
    2,
  ),
);
console.log(`\nwrote ${out}`);
process.exit(0);
