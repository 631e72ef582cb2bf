#!/usr/bin/env node
// `npm run bench -- reuse`: connection reuse under steady open-loop load.
// R req/s for T s (after a warm-up) to an origin that answers after L ms,
// across an emulated link; through the originlink Agent (h1/h2/h3), the
// originlink service, nginx (upstream keepalive) and HAProxy (http-reuse).
// Counts connections at the origin and compares with Little's law.
// Knobs (env): BENCH_RATE (200), BENCH_DURATION_S (10), BENCH_WARM_S (2),
// BENCH_ORIGIN_MS (50), BENCH_RTT_MS (10), BENCH_TARGETS (all, comma list of
// agent-h1,agent-h2,agent-h3,serve-h1,serve-h2,serve-h3,nginx,haproxy),
// BENCH_MAX_CONNECTIONS (originlink pool size; product default 32 when unset),
// BENCH_LULL_S (0: quiet seconds between warm-up and run, so the run is a burst after a lull),
// BENCH_PRECONNECT_RATIO (1.5: the pool's preconnectRatio for the agent-*-pre targets, e.g.
// agent-h1-pre = agent-h1 with predictive warmth).
// Predictive warmth: BENCH_TARGETS=agent-h1,agent-h1-pre BENCH_LULL_S=10 npm run bench -- reuse
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLab } from '../lab/index.mjs';
import { makeCerts } from '../lib/certs.mjs';
import { Progress } from '../lib/progress.mjs';
import { DIST } from '../lib/dist.mjs';
import { oneOriginConfig, serviceArgv } from '../lib/host.mjs';
import { ResultWriter } from '../lib/results.mjs';
import { haproxyConfig } from '../lib/haproxy.mjs';
import { runScript, startOrigin } from '../lib/spawn.mjs';
import { fmt, pct, summarize } from '../lib/stats.mjs';

const env = process.env;
const RATE = Number(env.BENCH_RATE ?? 200);
const DURATION = Number(env.BENCH_DURATION_S ?? 10);
const WARM = Number(env.BENCH_WARM_S ?? 2);
const L = Number(env.BENCH_ORIGIN_MS ?? 50);
const RTT = Number(env.BENCH_RTT_MS ?? 10);
const ALL = ['agent-h1', 'agent-h2', 'agent-h3', 'serve-h1', 'serve-h2', 'serve-h3', 'nginx', 'haproxy'];
const TARGETS = (env.BENCH_TARGETS ?? ALL.join(',')).split(',').filter(Boolean);
// originlink's pool size: the product default (32) unless set; nginx and HAProxy may keep up to 512.
const MAX_CONN = Number(env.BENCH_MAX_CONNECTIONS ?? 0);
const LULL = Number(env.BENCH_LULL_S ?? 0);
const PRE = Number(env.BENCH_PRECONNECT_RATIO ?? 1.5);
const CLIENT = fileURLToPath(new URL('../lib/load-client.mjs', import.meta.url));

const certs = makeCerts();
const dir = mkdtempSync(join(tmpdir(), 'ol-bench-reuse-'));
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
const progress = new Progress(TARGETS.length * 2 + 1, 'reuse');
const lab = await createLab({ delayMs: RTT / 2 });
process.once('SIGINT', async () => {
  await lab.close();
  process.exit(130);
});
const origin = `${lab.server.addr}:443`;
const nginxTemp = (name) =>
  ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${dir}/${name}-${t};`).join(' ');

/** Start a front (service / proxy) in the client namespace; returns { url, stop }. */
async function front(target, port) {
  let argv;
  if (target.startsWith('serve-')) {
    const proto = target.slice(6);
    const file = join(dir, `${target}.yaml`);
    writeFileSync(
      file,
      oneOriginConfig({
        port,
        origin: `url: "https://${origin}", protocol: ${proto}, tls: { ca: ${certs.caPath} }${MAX_CONN ? `, pool: { maxConnections: ${MAX_CONN} }` : ''}`,
      }),
    );
    argv = [...serviceArgv(DIST), 'serve', '--config', file];
  } else if (target === 'nginx') {
    mkdirSync(join(dir, 'nginx'), { recursive: true });
    const conf = join(dir, 'nginx.conf');
    writeFileSync(
      conf,
      `daemon off; master_process on; worker_processes 1; user root;
pid ${dir}/nginx.pid; error_log ${dir}/nginx-error.log warn;
events { worker_connections 8192; }
http {
  access_log off; ${nginxTemp('nginx')}
  upstream origin { server ${origin}; keepalive 512; keepalive_requests 100000000; keepalive_timeout 300s; }
  server {
    listen 127.0.0.1:${port}; keepalive_requests 100000000;
    location / {
      proxy_pass https://origin; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_ssl_server_name on; proxy_ssl_name localhost; proxy_ssl_verify on; proxy_ssl_trusted_certificate ${certs.caPath};
      proxy_ssl_session_reuse on;
    }
  }
}
`,
    );
    argv = ['nginx', '-p', join(dir, 'nginx'), '-c', conf, '-e', join(dir, 'nginx-error.log')];
  } else if (target === 'haproxy') {
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(cfg, haproxyConfig({ port, origin, caPath: certs.caPath, poolMaxConn: 512, purgeDelay: '60s' }));
    argv = ['haproxy', '-f', cfg, '-db'];
  } else throw new Error(`unknown target ${target}`);
  const child = lab.spawn('client', argv);
  let err = '';
  child.stderr?.on('data', (d) => {
    err = (err + d).slice(-2000);
  });
  try {
    await lab.waitForPort('client', port, { timeoutMs: 15_000 });
  } catch {
    throw new Error(`${target} did not listen: ${err}`);
  }
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    try {
      process.kill(child.pid, 'SIGTERM');
    } catch {
      /* gone */
    }
    const t = setTimeout(() => {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, 3000);
    await gone;
    clearTimeout(t);
  };
  return { url: `http://127.0.0.1:${port}`, stop };
}

let exitCode = 0;
try {
  const check = await lab.selfCheck();
  const facts = await lab.facts();
  const common = { host: lab.server.addr, port: 443, cert: certs.certPath, key: certs.keyPath };
  const tcp = await startOrigin(lab, { ...common, kind: 'tcp', tfo: true });
  const h3 = TARGETS.some((t) => t.endsWith('h3')) ? await startOrigin(lab, { ...common, kind: 'h3' }) : null;
  progress.tick(`lab RTT ${fmt(check.rttMs, 2)} ms`);
  const runs = [];
  for (const [i, target] of TARGETS.entries()) {
    const tag = `r${i}`;
    const path = `/delay?ms=${L}`;
    let fr = null;
    let arg;
    if (target.startsWith('agent-')) {
      const [proto, pre] = target.slice(6).split('-');
      arg = {
        mode: 'agent',
        proto,
        base: `https://${origin}`,
        ca: certs.caPath,
        maxConnections: MAX_CONN,
        ...(pre === 'pre' ? { preconnectRatio: PRE } : {}),
      };
    } else {
      fr = await front(target, 8100 + i);
      arg = { mode: 'http', target: fr.url };
    }
    progress.note(`${target} running`);
    try {
      const r = await runScript(
        lab,
        'client',
        CLIENT,
        { ...arg, rate: RATE, warmS: WARM, durationS: DURATION, lullS: LULL, path, tag },
        {
          onProgress: (p) => progress.tick(p.note),
          timeoutMs: (WARM + LULL + DURATION + 90) * 1000,
        },
      );
      runs.push({ target, ...r });
    } finally {
      await fr?.stop();
    }
    progress.tick(`${target} done`);
  }
  const originStats = { tcp: await tcp.stop(), h3: await h3?.stop() };
  progress.done();

  const hold = L + RTT; // a request holds an h1 connection for the origin latency plus one round trip
  const little = (RATE * hold) / 1000;
  const rows = runs.map((r) => {
    const proto = r.target.replace(/-pre$/, '').endsWith('h2')
      ? 'h2'
      : r.target.replace(/-pre$/, '').endsWith('h3')
        ? 'h3'
        : 'h1';
    const o = (proto === 'h3' ? originStats.h3 : originStats.tcp)?.tags?.[r.tag] ?? {};
    const ok = r.samples.filter((s) => s.ms !== null);
    const sum = summarize(ok.map((s) => s.ms));
    const limit = proto === 'h1' ? 1.2 * little : 2;
    const w = (proto === 'h3' ? originStats.h3 : originStats.tcp)?.tags?.[`${r.tag}-warm`] ?? {};
    const reuse = o.requests ? 1 - o.opened / o.requests : NaN;
    return {
      target: r.target,
      upstream: proto,
      requests: r.requests,
      generatorRetries: r.generatorRetries ?? 0,
      agentErrors: r.agentStats?.errors ?? null,
      agentRetries: r.agentStats?.retries ?? null,
      errors: r.samples.length - ok.length,
      lateStarts: r.lateStarts,
      p50Ms: sum.p50,
      p99Ms: sum.p99,
      meanMs: sum.mean,
      originRequests: o.requests ?? null,
      originConnections: o.connections ?? null,
      originOpened: o.opened ?? null,
      originPeakInflight: o.peakInflight ?? null,
      warmOpened: w.opened ?? null,
      agentOpenAtEnd: r.agentOpenConnections,
      agentOpenBeforeRun: r.agentOpenBeforeRun ?? null,
      preconnectRatio: r.target.endsWith('-pre') ? PRE : 0,
      firstSecondP99Ms: summarize(
        r.samples
          .slice(0, RATE)
          .filter((s) => s.ms !== null)
          .map((s) => s.ms),
      ).p99,
      reuseRate: reuse,
      agentReuseRate:
        r.agentStats && r.agentStatsBefore
          ? 1 -
            (r.agentStats.connectionsOpened - r.agentStatsBefore.connectionsOpened) /
              (r.agentStats.requests - r.agentStatsBefore.requests)
          : null,
      littleC: little,
      littleFromMeanLatency: (RATE * sum.mean) / 1000,
      connLimit: limit,
      reuseGoalMet: reuse >= 0.999,
      connGoalMet: (o.connections ?? Infinity) <= limit,
    };
  });
  const lines = [
    `reuse: open-loop ${RATE} req/s for ${DURATION} s (after ${WARM} s warm-up${LULL ? ` and a ${LULL} s lull: the run is a burst after it` : ''}), origin latency L = ${L} ms, link RTT ${RTT} ms (self-check ${fmt(check.rttMs, 2)} ms)${TARGETS.some((t) => t.endsWith('-pre')) ? `; *-pre: preconnectRatio ${PRE}` : ''}`,
    `Little's law for h1: C = R × (L + RTT) = ${RATE} × ${hold / 1000} s = ${fmt(little, 1)} connections; goals: reuse ≥ 99.9%, origin connections ≤ 1.2 × C (h1) or ≤ 2 (h2/h3)`,
    `load generator, connector/proxy in the client namespace (proxies reached over loopback, cleartext HTTP/1.1); origin (node TLS h1/h2, our h3) across the link`,
    'late starts: requests the generator started > 5 ms after their slot (its event loop was held up; bursts follow). Errors: failed after retries.',
    '',
    '| target | upstream | requests | errors | late starts | p50 ms | p99 ms | first second p99 ms | agent open before run | opened in warm-up | origin conns used | opened in run | peak in flight at origin | reuse (origin) | limit | reuse goal | conns goal |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.target} | ${r.upstream} | ${r.requests} | ${r.errors} | ${r.lateStarts} | ${fmt(r.p50Ms)} | ${fmt(r.p99Ms)} | ${fmt(r.firstSecondP99Ms)} | ${r.agentOpenBeforeRun ?? '-'} | ${r.warmOpened ?? '-'} | ${r.originConnections ?? '-'} | ${r.originOpened ?? '-'} | ${r.originPeakInflight ?? '-'} | ${pct(r.reuseRate, 2)} | ≤ ${fmt(r.connLimit, 1)} | ${r.reuseGoalMet ? 'yes' : '**no**'} | ${r.connGoalMet ? 'yes' : '**no**'} |`,
    ),
  ];
  const w = new ResultWriter('reuse');
  await w.chart('connections', {
    title: `Origin connections used at ${RATE} req/s, L = ${L} ms, RTT ${RTT} ms (rule: Little's law C = ${fmt(little, 1)})`,
    width: 460,
    height: 240,
    layer: [
      {
        data: { values: rows },
        mark: 'bar',
        encoding: {
          x: { field: 'target', type: 'nominal', sort: null, title: null },
          y: { field: 'originConnections', type: 'quantitative', title: 'connections at the origin' },
          color: { field: 'upstream', type: 'nominal' },
        },
      },
      {
        data: { values: [{ c: little }] },
        mark: { type: 'rule', strokeDash: [4, 4], color: 'black' },
        encoding: { y: { field: 'c', type: 'quantitative' } },
      },
    ],
  });
  await w.chart('latency', {
    title: `Latency at ${RATE} req/s (origin answers after ${L} ms; RTT ${RTT} ms)`,
    width: 460,
    height: 240,
    data: {
      values: rows.flatMap((r) => [
        { target: r.target, stat: 'p50', ms: r.p50Ms },
        { target: r.target, stat: 'p99', ms: r.p99Ms },
      ]),
    },
    mark: 'bar',
    encoding: {
      x: { field: 'target', type: 'nominal', sort: null, title: null },
      xOffset: { field: 'stat' },
      y: { field: 'ms', type: 'quantitative' },
      color: { field: 'stat', type: 'nominal' },
    },
  });
  const file = w.write({
    rate: RATE,
    durationS: DURATION,
    warmS: WARM,
    lullS: LULL,
    preconnectRatio: PRE,
    originLatencyMs: L,
    rttMs: RTT,
    littleC: little,
    selfCheck: check,
    labFacts: facts,
    rows,
    originStats,
    runs,
  });
  console.log([...lines, '', `charts: ${w.charts.join(', ')}`, `wrote ${file}`].join('\n'));
} catch (err) {
  process.stderr.write(`\nreuse failed: ${err?.stack ?? err}\n`);
  exitCode = 1;
} finally {
  await lab.close();
}
process.exit(exitCode);
