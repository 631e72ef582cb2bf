#!/usr/bin/env node
// `npm run bench -- egress`: connection reuse and handshake time through
// egress proxy nodes, per 1,000 requests, at an emulated RTT (default 50 ms)
// between the client (our Agent, lab client namespace) and the proxy nodes
// (two tinyproxy processes in the server namespace); the origins sit behind
// the proxies on the server's loopback, reached only through the tunnels.
// Cases, all run at once (each its own Agent and its own origins):
//   one node     — every request through node A
//   round-robin  — A, B, A, B … per request
//   sticky 10 s  — A for a 10 s window, then B, …
//   sticky 60 s  — the same with 60 s windows
//   one node h2, round-robin h2 — the same through nghttpx (--http2-proxy, TLS)
//                  in front of each tinyproxy, tunnels as HTTP/2 CONNECT streams
//                  of one connection per node (proxy.http2)
//   one node https — HTTP/1.1 CONNECT inside TLS to that nghttpx (one TLS
//                  connection to the node per tunnel)
//   one node socks5 — microsocks (SOCKS5, RFC 1928) instead of tinyproxy; it
//                  logs no CONNECTs, so its proxy column stays 0
// each against origins with two idle keep-alive settings (5 s: node's and
// Apache's default; 75 s: nginx's). Open loop: BENCH_REQUESTS over
// BENCH_DURATION_S, each to one of BENCH_ORIGINS origins drawn from a seeded
// generator (the same sequence in every case). A new connection costs TCP to
// the node + CONNECT + TLS through the tunnel; a reused one, nothing.
// Handshakes are counted three ways: by the Agent (proxyStats), at the
// origins (TLS connections accepted) and in the proxies' logs (CONNECTs).
// Knobs (env): BENCH_RTT_MS (50), BENCH_REQUESTS (1000), BENCH_DURATION_S
// (120), BENCH_ORIGINS (20), BENCH_KEEPALIVE_S (5,75), BENCH_CASES (all).
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLab } from '../lab/index.mjs';
import { makeCerts } from '../lib/certs.mjs';
import { Progress } from '../lib/progress.mjs';
import { ResultWriter } from '../lib/results.mjs';
import { runScript } from '../lib/spawn.mjs';
import { fmt, pct, summarize } from '../lib/stats.mjs';

const env = process.env;
const RTT = Number(env.BENCH_RTT_MS ?? 50);
const REQUESTS = Number(env.BENCH_REQUESTS ?? 1000);
const DURATION_S = Number(env.BENCH_DURATION_S ?? 120);
const ORIGINS = Number(env.BENCH_ORIGINS ?? 20);
const KEEPALIVES = (env.BENCH_KEEPALIVE_S ?? '5,75').split(',').map(Number);
const POLICIES = [
  { name: 'one node', nodes: 1, policy: undefined },
  { name: 'round-robin', nodes: 2, policy: 'round-robin' },
  { name: 'sticky 10 s', nodes: 2, policy: 'sticky', stickyWindowMs: 10_000 },
  { name: 'sticky 60 s', nodes: 2, policy: 'sticky', stickyWindowMs: 60_000 },
  { name: 'one node h2', nodes: 1, policy: undefined, http2: true },
  { name: 'round-robin h2', nodes: 2, policy: 'round-robin', http2: true },
  { name: 'one node https', nodes: 1, policy: undefined, tls: true },
  { name: 'one node socks5', nodes: 1, policy: undefined, socks: true },
].filter((p) => !env.BENCH_CASES || env.BENCH_CASES.split(',').includes(p.name.replace(/ /g, '-')));
const CLIENT = fileURLToPath(new URL('../lib/egress-client.mjs', import.meta.url));
const ORIGINS_JS = fileURLToPath(new URL('../lib/egress-origins.mjs', import.meta.url));
const PROXY_PORTS = [3128, 3129];
const H2_PORTS = [4431, 4432]; // nghttpx fronts, one per tinyproxy
const SOCKS_PORT = 1080; // microsocks
const BASE_PORT = 20_000;

const certs = makeCerts();
const dir = mkdtempSync(join(tmpdir(), 'ol-bench-egress-'));
chmodSync(dir, 0o777); // tinyproxy writes its log as its own user
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
const lab = await createLab({ delayMs: RTT / 2, tcpFastOpen: 0, namePrefix: 'egress' });
process.once('SIGINT', async () => {
  await lab.close();
  process.exit(130);
});

const cases = [];
for (const ka of KEEPALIVES) {
  for (const p of POLICIES) {
    const first = BASE_PORT + cases.length * ORIGINS;
    cases.push({
      ...p,
      keepAliveS: ka,
      name: `${p.name}, keep-alive ${ka} s`,
      ports: Array.from({ length: ORIGINS }, (_, k) => first + k),
    });
  }
}
const progress = new Progress(cases.length * Math.ceil(REQUESTS / 100), 'egress');
const origins = [];
let result;
try {
  const check = await lab.selfCheck();
  const proxyUrls = [];
  for (const port of PROXY_PORTS) {
    const conf = join(dir, `tinyproxy-${port}.conf`);
    // Timeout: tinyproxy's idle limit on a connection (its default, 600 s, written out); no ConnectPort: any port.
    writeFileSync(
      conf,
      [
        `Port ${port}`,
        `Listen ${lab.server.addr}`,
        'Timeout 600',
        `LogFile "${dir}/tinyproxy-${port}.log"`,
        'LogLevel Connect',
        'MaxClients 1000',
        '',
      ].join('\n'),
    );
    lab.spawn('server', ['tinyproxy', '-d', '-c', conf]);
    await lab.waitForPort('server', port);
    proxyUrls.push(`http://${lab.server.addr}:${port}`);
  }
  const h2Urls = [];
  if (POLICIES.some((p) => p.http2 || p.tls)) {
    for (const [k, port] of H2_PORTS.entries()) {
      lab.spawn('server', [
        'nghttpx',
        '--conf=/dev/null',
        '--http2-proxy',
        '--single-process',
        `--frontend=${lab.server.addr},${port}`,
        `--backend=${lab.server.addr},${PROXY_PORTS[k]}`,
        '--workers=1',
        '--no-ocsp',
        `--errorlog-file=${dir}/nghttpx-${port}.log`,
        certs.keyPath,
        certs.certPath,
      ]);
      await lab.waitForPort('server', port);
      h2Urls.push(`https://${lab.server.addr}:${port}`);
    }
  }
  const socksUrls = [];
  if (POLICIES.some((p) => p.socks)) {
    lab.spawn('server', ['microsocks', '-i', lab.server.addr, '-p', String(SOCKS_PORT)]);
    await lab.waitForPort('server', SOCKS_PORT);
    socksUrls.push(`socks5://${lab.server.addr}:${SOCKS_PORT}`);
  }
  for (const ka of KEEPALIVES) {
    const mine = cases.filter((c) => c.keepAliveS === ka);
    const started = await lab.startNode('server', ORIGINS_JS, [
      JSON.stringify({
        host: '127.0.0.1',
        basePort: mine[0].ports[0],
        count: mine.length * ORIGINS,
        cert: certs.certPath,
        key: certs.keyPath,
        keepAliveMs: ka * 1000,
      }),
    ]);
    origins.push(started);
  }
  const arg = {
    ca: certs.caPath,
    requests: REQUESTS,
    durationMs: DURATION_S * 1000,
    seed: 15,
    cases: cases.map((c) => ({
      name: c.name,
      ports: c.ports,
      proxy: {
        nodes: (c.socks ? socksUrls : c.http2 || c.tls ? h2Urls : proxyUrls).slice(0, c.nodes),
        ...(c.policy ? { policy: c.policy } : {}),
        ...(c.stickyWindowMs ? { stickyWindowMs: c.stickyWindowMs } : {}),
        ...(c.http2 ? { http2: true } : {}),
      },
    })),
  };
  const out = await runScript(lab, 'client', CLIENT, arg, {
    onProgress: (p) => progress.tick(p.note),
    timeoutMs: (DURATION_S + 120) * 1000,
  });
  progress.done();
  const accepted = {};
  for (const s of origins) Object.assign(accepted, (await s.stop())?.accepted ?? {});
  origins.length = 0;
  const logs = PROXY_PORTS.map((p) => {
    try {
      return readFileSync(join(dir, `tinyproxy-${p}.log`), 'utf8');
    } catch {
      return '';
    }
  });
  const connectsTo = (ports) =>
    logs.map(
      (l) => l.split('\n').filter((line) => ports.some((port) => line.includes(`CONNECT 127.0.0.1:${port} `))).length,
    );

  const rows = cases.map((c) => {
    const r = out.cases.find((x) => x.name === c.name);
    const ok = r.samples.filter((s) => !s.error);
    const fresh = ok.filter((s) => !s.reused);
    const hs = summarize(fresh.map((s) => s.handshakeMs));
    const opened = r.proxyStats.reduce((a, s) => a + s.connectionsOpened, 0);
    // Every connection the Agent opened (a dial may end up serving a request other than the one that started it).
    const hsTotal = r.proxyStats.reduce((a, s) => a + (s.meanHandshakeMs ?? 0) * s.connectionsOpened, 0);
    const per1k = 1000 / REQUESTS;
    let switches = 0;
    for (let k = 1; k < ok.length; k++) if (ok[k].node !== ok[k - 1].node) switches++;
    return {
      case: c.name,
      policy: c.policy ?? 'one node',
      stickyWindowMs: c.stickyWindowMs ?? null,
      http2: c.http2 ?? false,
      keepAliveS: c.keepAliveS,
      requests: r.samples.length,
      ok: ok.length,
      errors: r.samples.length - ok.length,
      errorCodes: Object.fromEntries(
        [...new Set(r.samples.filter((s) => s.error).map((s) => s.error))].map((e) => [
          e,
          r.samples.filter((s) => s.error === e).length,
        ]),
      ),
      connectionsOpened: opened,
      reuseRate: 1 - opened / r.samples.length,
      newConnectionRequests: fresh.length,
      handshakesPer1k: opened * per1k,
      handshakeMsPer1k: hsTotal * per1k,
      handshakeMedianMs: hs.p50,
      handshakeRtts: hs.p50 / check.rttMs,
      latency: summarize(ok.map((s) => s.ms)),
      nodeSwitches: switches,
      originAccepted: c.ports.reduce((a, p) => a + (accepted[p] ?? 0), 0),
      proxyConnects: connectsTo(c.ports),
      proxyStats: r.proxyStats,
      peakNodeConnections: c.http2 ? r.peakNodeConnections : null,
    };
  });
  console.log(
    `\negress: ${REQUESTS} requests per case over ${DURATION_S} s (open loop, ${fmt(REQUESTS / DURATION_S, 1)} req/s), ${ORIGINS} origins per case, ${fmt(check.rttMs, 1)} ms RTT to the proxy nodes (lab self-check), tinyproxy nodes\n`,
  );
  console.log(
    '| case | reuse rate | handshakes /1k req | handshake time /1k req | handshake p50 (RTTs) | request p50 / p90 ms | node switches | origin TLS accepts | proxy CONNECTs (A/B) | peak h2 connections to the nodes | errors |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    console.log(
      `| ${r.case} | ${pct(r.reuseRate)} | ${fmt(r.handshakesPer1k, 0)} | ${fmt(r.handshakeMsPer1k / 1000, 1)} s | ${fmt(r.handshakeMedianMs)} ms (${fmt(r.handshakeRtts, 2)}) | ${fmt(r.latency.p50)} / ${fmt(r.latency.p90)} | ${r.nodeSwitches} | ${r.originAccepted} | ${r.proxyConnects.join('/')} | ${r.peakNodeConnections ?? '-'} | ${r.errors}${r.errors ? ` ${JSON.stringify(r.errorCodes)}` : ''} |`,
    );
  }
  result = {
    rttMs: check.rttMs,
    requests: REQUESTS,
    durationS: DURATION_S,
    origins: ORIGINS,
    proxies: 'tinyproxy ×2 (h2 and https cases: nghttpx --http2-proxy in front of each; socks5: microsocks)',
    rows,
    samples: Object.fromEntries(out.cases.map((c) => [c.name, c.samples])),
  };
  const file = new ResultWriter('egress').write(result);
  console.log(`\nresults: ${file}`);
} finally {
  for (const s of origins) await s.stop().catch(() => {});
  await lab.close();
}
