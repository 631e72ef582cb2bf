#!/usr/bin/env node
// `npm run bench -- handshake`: time to first byte per connection case at an
// emulated RTT (default 50 ms), in RTT units next to the physical floor.
// Knobs (env): BENCH_RTT_MS (50), BENCH_SAMPLES per case (10), BENCH_PROTOS (h1,h2,h3),
// BENCH_BASELINE (1: also run every case at 0 ms delay to show the hosts' processing cost).
import { fileURLToPath } from 'node:url';
import { createLab } from '../lab/index.mjs';
import { makeCerts } from '../lib/certs.mjs';
import { Progress } from '../lib/progress.mjs';
import { ResultWriter } from '../lib/results.mjs';
import { runScript, startOrigin } from '../lib/spawn.mjs';
import { fmt, summarize } from '../lib/stats.mjs';

const RTT = Number(process.env.BENCH_RTT_MS ?? 50);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 10);
const PROTOS = (process.env.BENCH_PROTOS ?? 'h1,h2,h3').split(',').filter(Boolean);
const CLIENT = fileURLToPath(new URL('../lib/handshake-client.mjs', import.meta.url));

// Round trips before the first response byte can arrive, and why.
const FLOORS = {
  warm: [1, 'request only'],
  '0-rtt': [1, 'request rides with the QUIC Initial'],
  'fresh/h3': [2, 'QUIC handshake + request'],
  'resumed/h3': [2, 'resumption without early data saves no RTT'],
  tfo: [2, 'ClientHello in the SYN, then TLS 1.3 finish + request'],
  'tfo-resumed': [2, 'as TFO; TLS 1.3 resumption saves no RTT'],
  'tfo-cold': [3, 'no cookie yet: the SYN only requests one'],
  fresh: [3, 'TCP + TLS 1.3 + request'],
  resumed: [3, 'TLS 1.3 resumption saves no RTT (Node 20 sends no TCP early data)'],
};
const floorOf = (proto, kase) => FLOORS[`${kase}/${proto}`] ?? FLOORS[kase];
const ORDER = ['fresh', 'resumed', 'tfo-cold', 'tfo', 'tfo-resumed', '0-rtt', 'warm'];

const BASELINE = process.env.BENCH_BASELINE !== '0';
const progress = new Progress(PROTOS.length * SAMPLES * (BASELINE ? 2 : 1) + 1, 'handshake');

/** Start both origins in a lab, run every case SAMPLES times per protocol, stop them. */
async function measure(lab, n) {
  const common = { host: lab.server.addr, port: 443, cert: certs.certPath, key: certs.keyPath };
  const tcp = await startOrigin(lab, { ...common, kind: 'tcp', tfo: true });
  const h3 = PROTOS.includes('h3') ? await startOrigin(lab, { ...common, kind: 'h3' }) : null;
  const samples = [];
  try {
    for (const proto of PROTOS) {
      const r = await runScript(
        lab,
        'client',
        CLIENT,
        { url: `https://${lab.server.addr}/small`, ca: certs.caPath, proto, samples: n },
        {
          onProgress: (p) => progress.tick(`${lab.config.delayMs * 2} ms RTT: ${p.note}`),
          timeoutMs: 60_000 + n * 10 * Math.max(RTT, 10) * 20,
        },
      );
      samples.push(...r.samples);
    }
  } finally {
    await tcp.stop();
    await h3?.stop();
  }
  return { samples, serverTfo: tcp.ready.tfo };
}
const certs = makeCerts();
const lab = await createLab({ delayMs: RTT / 2, tcpFastOpen: 3 });
let exitCode = 0;
try {
  const check = await lab.selfCheck();
  const facts = await lab.facts();
  // Calibration: a node-to-node TCP connect is one RTT plus the two processes' own latency.
  const ps = await lab.startProbe('server', { mode: 'tcp-server', host: lab.server.addr, port: 9000 });
  const tcpConnect = (await lab.probe('client', { mode: 'tcp-connect', host: lab.server.addr, port: 9000, count: 20 }))
    .connectMs;
  await ps.stop();
  progress.tick(`lab RTT ${fmt(check.rttMs, 2)} ms, node TCP connect ${fmt(tcpConnect?.median, 2)} ms`);
  const { samples, serverTfo } = await measure(lab, SAMPLES);
  const nstat = { client: await lab.nstat('client'), server: await lab.nstat('server') };
  let base = [];
  if (BASELINE) {
    // The same cases at 0 ms delay: what the hosts' processing costs, with no RTT in it.
    const lab0 = await createLab({ delayMs: 0, tcpFastOpen: 3 });
    try {
      base = (await measure(lab0, SAMPLES)).samples;
    } finally {
      await lab0.close();
    }
  }
  progress.done();

  const rows = [];
  for (const proto of PROTOS) {
    for (const kase of ORDER) {
      const xs = samples.filter((s) => s.proto === proto && s.case === kase);
      if (!xs.length) continue;
      const sum = summarize(xs.map((s) => s.ms));
      const b = summarize(base.filter((s) => s.proto === proto && s.case === kase).map((s) => s.ms));
      const [floor, why] = floorOf(proto, kase);
      const rtts = sum.p50 / RTT;
      const share = (k) => xs.filter((s) => s[k]).length / xs.length;
      rows.push({
        proto,
        case: kase,
        n: sum.n,
        p50Ms: sum.p50,
        minMs: sum.min,
        maxMs: sum.max,
        rtts,
        floor,
        why,
        overheadMs: sum.p50 - floor * RTT,
        overheadPct: (rtts / floor - 1) * 100,
        zeroRttP50Ms: b.p50,
        tfoShare: share('tfo'),
        resumedShare: share('resumed'),
        earlyShare: share('earlyData'),
        reusedShare: share('reused'),
      });
    }
  }
  const goals = [];
  const goal = (what, proto, kase, tolPct) => {
    const r = rows.find((x) => x.proto === proto && x.case === kase);
    if (r)
      goals.push({
        goal: what,
        proto,
        case: kase,
        p50Ms: r.p50Ms,
        targetMs: r.floor * RTT * (1 + tolPct / 100),
        met: r.p50Ms <= r.floor * RTT * (1 + tolPct / 100),
      });
  };
  for (const p of PROTOS) goal('warm within 3% of 1 RTT', p, 'warm', 3);
  goal('0-RTT first byte within 5% of 1 RTT', 'h3', '0-rtt', 5);
  for (const p of PROTOS) goal('TFO+TLS within 5% of 2 RTT', p, 'tfo', 5);

  const yes = (x) => (x === 1 ? 'yes' : x === 0 ? 'no' : `${Math.round(x * 100)}%`);
  const lines = [
    `handshake: time to first byte at ${RTT} ms RTT (lab self-check ${fmt(check.rttMs, 2)} ms, ${check.rttSource}), ${SAMPLES} samples per case, 100-byte response`,
    `calibration (1 RTT + host overhead, node to node): TCP connect median ${fmt(tcpConnect?.median, 2)} ms over ${tcpConnect?.n} connects, UDP echo median ${fmt(check.udpRttMs, 2)} ms`,
    `TCP congestion control ${facts.congestionControl}, tcp_fastopen ${facts.tcpFastOpen}, server TFO listener ${serverTfo}; kernel ${facts.kernel}, node ${facts.node}`,
    '',
    '| proto | case | p50 ms | min–max ms | RTTs | floor (RTT) | over floor | same case at 0 ms RTT | TFO | resumed | 0-RTT |',
    '|---|---|---:|---:|---:|---:|---:|---:|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.proto} | ${r.case} | ${fmt(r.p50Ms)} | ${fmt(r.minMs)}–${fmt(r.maxMs)} | ${fmt(r.rtts, 3)} | ${r.floor} | ${fmt(r.overheadMs)} ms (${fmt(r.overheadPct)}%) | ${fmt(r.zeroRttP50Ms)} ms | ${yes(r.tfoShare)} | ${yes(r.resumedShare)} | ${yes(r.earlyShare)} |`,
    ),
    '',
    '| goal | proto | p50 ms | target ms | met |',
    '|---|---|---:|---:|---|',
    ...goals.map(
      (g) => `| ${g.goal} | ${g.proto} | ${fmt(g.p50Ms)} | ≤ ${fmt(g.targetMs)} | ${g.met ? 'yes' : '**no**'} |`,
    ),
  ];
  const w = new ResultWriter('handshake');
  await w.chart('rtts', {
    title: `Time to first byte in RTTs at ${RTT} ms RTT (bar: median; tick: floor)`,
    data: { values: rows.map((r) => ({ ...r, label: `${r.proto} ${r.case}` })) },
    width: 520,
    layer: [
      {
        mark: 'bar',
        encoding: {
          y: { field: 'label', type: 'nominal', sort: null, title: null },
          x: { field: 'rtts', type: 'quantitative', title: 'RTTs to first byte (median)' },
          color: { field: 'proto', type: 'nominal' },
        },
      },
      {
        mark: { type: 'tick', color: 'black', thickness: 2 },
        encoding: { y: { field: 'label', type: 'nominal', sort: null }, x: { field: 'floor', type: 'quantitative' } },
      },
      {
        mark: { type: 'text', align: 'left', dx: 4 },
        encoding: {
          y: { field: 'label', type: 'nominal', sort: null },
          x: { field: 'rtts', type: 'quantitative' },
          text: { field: 'rtts', type: 'quantitative', format: '.2f' },
        },
      },
    ],
  });
  const file = w.write({
    rttMs: RTT,
    samplesPerCase: SAMPLES,
    selfCheck: check,
    nodeTcpConnectMs: tcpConnect,
    labFacts: facts,
    serverTfoListener: serverTfo,
    rows,
    goals,
    samples,
    zeroRttSamples: base,
    nstat,
  });
  console.log([...lines, '', `charts: ${w.charts.join(', ')}`, `wrote ${file}`].join('\n'));
} catch (err) {
  process.stderr.write(`\nhandshake failed: ${err?.stack ?? err}\n`);
  exitCode = 1;
} finally {
  await lab.close();
}
process.exit(exitCode);
