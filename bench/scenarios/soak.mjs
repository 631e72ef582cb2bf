#!/usr/bin/env node
// `npm run bench -- soak`: the connector (`originlink serve`, its own process) under steady mixed
// load for BENCH_SOAK_SECONDS (default 600): HTTP/1.1 through the http front (wrk), HTTP/2 through
// the h2c front (h2load), clients that give up mid-request (curl -m), to the demo origins over TLS
// h1, h2 and h3. Every BENCH_SOAK_SAMPLE seconds (default 10) it reads the connector's RSS and open
// file descriptors from /proc and its front gauges from /metrics. Prints the trend after the first
// minute (first, min, max, last) and the failures; writes bench/results/soak-DATE.json.
import { execFile, spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeCerts } from '../lib/certs.mjs';
import { dist, DIST } from '../lib/dist.mjs';
import { ResultWriter } from '../lib/results.mjs';

const run = promisify(execFile);
const SECONDS = Number(process.env.BENCH_SOAK_SECONDS ?? 600);
const SAMPLE = Number(process.env.BENCH_SOAK_SAMPLE ?? 10);
const certs = makeCerts();
const dir = mkdtempSync(join(tmpdir(), 'ol-soak-'));
const { startDemoOrigins } = await dist('service/demo-origins.js');
const origins = await startDemoOrigins({ cert: readFileSync(certs.certPath), key: readFileSync(certs.keyPath), ports: { h1: 0, h2: 0, h3: 0 } });
const port = (n) => origins.find((o) => o.name === n).port;
const free = () => new Promise((r) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });
const [http, h2c, admin] = [await free(), await free(), await free()];
const file = join(dir, 'soak.yaml');
writeFileSync(file, `
listeners:
  - { name: http, kind: http, host: 127.0.0.1, port: ${http} }
  - { name: h2c, kind: h2c, host: 127.0.0.1, port: ${h2c} }
admin: { host: 127.0.0.1, port: ${admin} }
logging: { level: warn, requests: false }
origins:
  d1: { url: "https://localhost:${port('h1')}", protocol: h1, tls: { ca: ${certs.caPath} } }
  d2: { url: "https://localhost:${port('h2')}", protocol: h2, tls: { ca: ${certs.caPath} } }
  d3: { url: "https://localhost:${port('h3')}", protocol: h3, tls: { ca: ${certs.caPath} } }
routes:
  - { path: /h1, origin: d1, stripPrefix: true }
  - { path: /h2, origin: d2, stripPrefix: true }
  - { path: /h3, origin: d3, stripPrefix: true }
`);
const proc = spawn(process.execPath, [join(DIST, 'cli', 'main.js'), 'serve', '--config', file], { stdio: ['ignore', 'ignore', 'inherit'] });
const stop = () => { try { proc.kill('SIGKILL'); } catch {} rmSync(dir, { recursive: true, force: true }); };
process.on('exit', stop);
for (let i = 0; i < 100; i++) {
  if (await fetch(`http://127.0.0.1:${admin}/healthz`).then((r) => r.ok, () => false)) break;
  await new Promise((r) => setTimeout(r, 100));
}

const totals = { wrk: { requests: 0, errors: 0 }, h2load: { requests: 0, failed: 0 }, aborted: 0 };
const metric = (text, name) => Number((new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, 'm').exec(text) ?? [])[1] ?? NaN);
const samples = [];
async function sample(t) {
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'))[1]) / 1024;
  const fds = readdirSync(`/proc/${proc.pid}/fd`).length;
  const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  samples.push({ t, rssMiB: rss, fds, inflight: metric(text, 'originlink_front_inflight'), connections: metric(text, 'originlink_front_connections') });
}

const t0 = Date.now();
let next = 0;
while ((Date.now() - t0) / 1000 < SECONDS) {
  const round = next++;
  const path = ['/h1/', '/h2/bytes/4096', '/h3/'][round % 3];
  const load = [
    run('wrk', ['-t1', '-c16', `-d${Math.min(5, SECONDS)}s`, `http://127.0.0.1:${http}${path}`], { timeout: 30_000 }).then(({ stdout }) => {
      totals.wrk.requests += Number(/(\d+) requests in/.exec(stdout)?.[1] ?? 0);
      totals.wrk.errors += Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0) + Number(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout)?.slice(1).reduce((a, b) => a + Number(b), 0) ?? 0);
    }),
    run('h2load', ['-n', '3000', '-c', '8', '-m', '10', `http://127.0.0.1:${h2c}${['/h2/', '/h3/bytes/1024', '/h1/'][round % 3]}`], { timeout: 30_000 }).then(({ stdout }) => {
      const m = /(\d+) succeeded, (\d+) failed/.exec(stdout);
      totals.h2load.requests += Number(m?.[1] ?? 0);
      totals.h2load.failed += Number(m?.[2] ?? 0);
    }),
    // Clients that leave mid-response (a 16 MiB body, 50 ms allowed).
    ...[0, 1, 2, 3].map(() => run('curl', ['-s', '-o', '/dev/null', '-m', '0.05', `http://127.0.0.1:${http}/h2/bytes/16777216`]).catch(() => { totals.aborted++; })),
  ];
  await Promise.all(load);
  if ((Date.now() - t0) / 1000 >= (samples.length ? samples.at(-1).t + SAMPLE : 0)) await sample(Math.round((Date.now() - t0) / 1000));
  process.stderr.write(`\rsoak: ${Math.round((Date.now() - t0) / 1000)}/${SECONDS}s, ${totals.wrk.requests + totals.h2load.requests} requests   `);
}
await new Promise((r) => setTimeout(r, 2000));
await sample(Math.round((Date.now() - t0) / 1000));
process.stderr.write('\n');
proc.kill('SIGTERM');
await new Promise((r) => proc.once('exit', r));
for (const o of origins) await o.close();

const steady = samples.filter((s) => s.t >= Math.min(60, SECONDS / 3));
const trend = (k) => ({ first: steady[0]?.[k], min: Math.min(...steady.map((s) => s[k])), max: Math.max(...steady.map((s) => s[k])), last: steady.at(-1)?.[k] });
const summary = { seconds: SECONDS, rssMiB: trend('rssMiB'), fds: trend('fds'), inflightAtEnd: samples.at(-1)?.inflight, totals };
const f = (x) => (typeof x === 'number' ? x.toFixed(1) : '-');
console.log(`soak: ${SECONDS}s of mixed load (wrk h1 front, h2load h2c front, clients leaving mid-body) to h1/h2/h3 demo origins over TLS\n`);
console.log('| measure (after the first minute) | first | min | max | last |\n|---|---:|---:|---:|---:|');
console.log(`| RSS MiB | ${f(summary.rssMiB.first)} | ${f(summary.rssMiB.min)} | ${f(summary.rssMiB.max)} | ${f(summary.rssMiB.last)} |`);
console.log(`| open fds | ${summary.fds.first} | ${summary.fds.min} | ${summary.fds.max} | ${summary.fds.last} |`);
console.log(`\nrequests: wrk ${totals.wrk.requests} (errors ${totals.wrk.errors}), h2load ${totals.h2load.requests} (failed ${totals.h2load.failed}); clients that left: ${totals.aborted}; front inflight at the end: ${summary.inflightAtEnd}`);
console.log(`wrote ${new ResultWriter('soak').write({ summary, samples })}`);
