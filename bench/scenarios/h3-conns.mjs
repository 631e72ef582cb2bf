#!/usr/bin/env node
// `npm run bench -- h3-conns`: what idle HTTP/3 connections cost `originlink serve`, and what they do to
// other clients. An attacker (bench/lib/h3-flood-client.mjs, quiche's client over one UDP socket) opens
// BENCH_CONNS connections to the service's h3 listener, completes each handshake, never opens a stream
// and keeps every connection alive with a PING every 5 s, for BENCH_HOLD_S seconds. Meanwhile a probe
// client (our Agent over h3, one connection) sends a request every BENCH_PROBE_MS ms.
// Prints, per phase (before; while the connections open; while they are held; after the attacker left),
// the probe's p50 / p99 / max latency and the service's RSS; how many connections the service admitted
// and refused; and how long it held the idle ones. Writes bench/out/h3-conns-STAMP.json.
// Loopback only (this namespace). Knobs (env): BENCH_CONNS (4000), BENCH_HOLD_S (30), BENCH_PROBE_MS (20),
// BENCH_DIST (the service's build: bench/lib/dist.mjs), BENCH_SERVE_ARGS (extra YAML for `limits:`, e.g.
// "h3MemoryBytes: 0" to run without a budget).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DIST, dist } from '../lib/dist.mjs';
import { freePort, serviceArgv } from '../lib/host.mjs';
import { ResultWriter, ROOT } from '../lib/results.mjs';
import { fmt, summarize } from '../lib/stats.mjs';

const env = process.env;
const CONNS = Number(env.BENCH_CONNS ?? 4000);
const HOLD_S = Number(env.BENCH_HOLD_S ?? 30);
const PROBE_MS = Number(env.BENCH_PROBE_MS ?? 20);
const EXTRA_LIMITS = env.BENCH_SERVE_ARGS ?? '';
const CERTS = join(ROOT, 'config', 'demo-certs');
const ATTACKER = fileURLToPath(new URL('../lib/h3-flood-client.mjs', import.meta.url));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const dir = mkdtempSync(join(tmpdir(), 'ol-bench-h3conns-'));
const children = [];
const cleanup = () => {
  for (const c of children)
    if (c.exitCode === null) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  rmSync(dir, { recursive: true, force: true });
};
process.once('exit', cleanup);
process.once('SIGINT', () => process.exit(130));

const origin = http.createServer((_q, s) => s.end('ok'));
await new Promise((r) => origin.listen(0, '127.0.0.1', r));
const h3Port = await freePort();
const adminPort = await freePort();
writeFileSync(
  join(dir, 'serve.yaml'),
  `listeners:
  - { name: q, kind: h3, host: 127.0.0.1, port: ${h3Port}, tls: { cert: ${CERTS}/leaf.pem, key: ${CERTS}/leaf.key } }
admin: { host: 127.0.0.1, port: ${adminPort} }
logging: { level: warn, requests: false }
${EXTRA_LIMITS ? `limits: { ${EXTRA_LIMITS} }\n` : ''}origins:
  o: { url: "http://127.0.0.1:${origin.address().port}", protocol: h1 }
routes:
  - { path: /, origin: o }
`,
);
const [node, ...nodeArgv] = serviceArgv(DIST);
const svc = spawn(node, [...nodeArgv, 'serve', '--config', join(dir, 'serve.yaml')], {
  stdio: ['ignore', 'ignore', 'pipe'],
});
children.push(svc);
let svcErr = '';
svc.stderr.on('data', (d) => {
  svcErr += d;
});
const rssMb = () => {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${svc.pid}/status`, 'utf8'))[1]) / 1024;
  } catch {
    return NaN;
  }
};

const { Agent } = await dist('index.js');
const agent = new Agent({ protocol: 'h3', tls: { ca: readFileSync(join(CERTS, 'ca.pem')) } });
const url = `https://localhost:${h3Port}/`;
for (let i = 0; ; i++) {
  try {
    await (await agent.request({ url })).text();
    break;
  } catch (e) {
    if (i > 100) throw new Error(`the service did not answer on h3: ${e.message}\n${svcErr}`);
    await sleep(100);
  }
}

// Probe and RSS samples, tagged by phase.
let phase = 'before';
const lat = { before: [], opening: [], held: [], after: [] };
const rss = { before: [], opening: [], held: [], after: [] };
const failed = { before: 0, opening: 0, held: 0, after: 0 };
let probing = true;
const probe = (async () => {
  while (probing) {
    const p = phase;
    const t = performance.now();
    try {
      await (await agent.request({ url })).text();
      lat[p].push(performance.now() - t);
    } catch {
      failed[p]++;
    }
    await sleep(Math.max(0, PROBE_MS - (performance.now() - t)));
  }
})();
const rssTimer = setInterval(() => rss[phase].push(rssMb()), 250);
// The service's own view (prom-client's default metrics): V8's external memory (Buffers: what GC pressure follows),
// and its event loop's worst delay since the previous scrape.
const external = { before: [], opening: [], held: [], after: [] };
const loopLag = { before: [], opening: [], held: [], after: [] };
const metric = (text, name) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN);
const scrape = setInterval(() => {
  const p = phase;
  http
    .get({ host: '127.0.0.1', port: adminPort, path: '/metrics' }, (res) => {
      let t = '';
      res.on('data', (c) => {
        t += c;
      });
      res.on('end', () => {
        external[p].push(metric(t, 'nodejs_external_memory_bytes') / 2 ** 20);
        loopLag[p].push(metric(t, 'nodejs_eventloop_lag_max_seconds') * 1000);
      });
    })
    .on('error', () => {});
}, 1000);

await sleep(5000);
phase = 'opening';
const attacker = spawn(process.execPath, [ATTACKER, '127.0.0.1', String(h3Port), String(CONNS), String(HOLD_S)], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
children.push(attacker);
const held = []; // [seconds since the hold began, connections the service still held]
let opened = null;
let holdStart = 0;
let buf = '';
attacker.stdout.on('data', (d) => {
  buf += d;
  for (let i; (i = buf.indexOf('\n')) >= 0; ) {
    const e = JSON.parse(buf.slice(0, i));
    buf = buf.slice(i + 1);
    if (e.event === 'established' && e.opened !== undefined) {
      opened = e;
      phase = 'held';
      holdStart = performance.now();
    } else if (e.event === 'held') held.push([(performance.now() - holdStart) / 1000, e.open, e.refused]);
  }
});
await new Promise((r) => attacker.once('exit', r));
phase = 'after';
await sleep(5000);
probing = false;
await probe;
clearInterval(rssTimer);
clearInterval(scrape);
await agent.close();
svc.kill('SIGTERM');
origin.close();

const row = (p) => {
  const s = summarize(lat[p]);
  const r = rss[p].filter(Number.isFinite);
  const peakOf = (xs) => Math.max(...xs.filter(Number.isFinite));
  return `| ${p} | ${lat[p].length} | ${failed[p]} | ${fmt(s.p50, 2)} | ${fmt(s.p99, 2)} | ${fmt(s.max, 1)} | ${fmt(Math.max(...r), 0)} | ${fmt(peakOf(external[p]), 0)} | ${fmt(peakOf(loopLag[p]), 0)} |`;
};
const emptiedAt = held.find(([, open]) => open === 0)?.[0] ?? null;
console.log(
  `\n## h3-conns: ${CONNS} idle HTTP/3 connections against \`originlink serve\` (build ${DIST.replace(`${ROOT}/`, '')}${EXTRA_LIMITS ? `, limits { ${EXTRA_LIMITS} }` : ''})\n`,
);
console.log(
  '| phase | probe requests | failed | p50 ms | p99 ms | max ms | service RSS MB (peak) | external MB (peak) | event-loop lag ms (max) |',
);
console.log('|---|---|---|---|---|---|---|---|---|');
for (const p of ['before', 'opening', 'held', 'after']) console.log(row(p));
const peak = Math.max(...[...rss.opening, ...rss.held].filter(Number.isFinite));
const base = Math.max(...rss.before.filter(Number.isFinite));
console.log(
  `\nattacker: opened ${opened?.opened ?? '?'}, established ${opened?.n ?? '?'} in ${opened?.ms ?? '?'} ms, refused ${opened?.refused ?? '?'}; ` +
    `the service held the idle ones ${emptiedAt === null ? `for all of the ${HOLD_S} s hold` : `for ${emptiedAt.toFixed(1)} s`}; ` +
    `RSS +${fmt(peak - base, 0)} MB (${fmt(((peak - base) * 1024) / Math.max(1, opened?.n ?? 1), 1)} KB per established connection)`,
);
const w = new ResultWriter('h3-conns');
console.log(
  `wrote ${w.write({ conns: CONNS, holdS: HOLD_S, probeMs: PROBE_MS, dist: DIST, limits: EXTRA_LIMITS, opened, held, latency: lat, failed, rss, externalMb: external, loopLagMs: loopLag })}`,
);
process.exit(0);
