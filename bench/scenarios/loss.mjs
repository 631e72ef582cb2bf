#!/usr/bin/env node
// `npm run bench -- loss`: loss isolation. Per loss level, one bulk download
// plus small requests every 20 ms on the same connection, h2 vs h3.
// Knobs (env): BENCH_LOSS (0,1,2,5 percent, both directions), BENCH_RTT_MS (50),
// BENCH_BULK_MIB (20), BENCH_SMALL (50), BENCH_INTERVAL_MS (20), BENCH_CAP_S (30),
// BENCH_PROTOS (h2,h3), BENCH_TCP_CC (kernel default, bbr here), BENCH_QUIC_CC (the h3 origin's quiche
// congestion control; default the product's, bbr), BENCH_QUIC_BBR_LOSS (BBR's loss threshold on our quiche 0.30
// engine; default the product's), BENCH_QUIC_BBR_BWLO (BBR's bandwidth_lo reduction: default, minrtt, inflight, cwnd;
// default the product's), BENCH_WINDOW (the client's pool.windowSize, bytes; default the product's), BENCH_QUIC_PACING
// (1; 0 = unpaced),
// BENCH_SEED (1).
import { fileURLToPath } from 'node:url';
import { createLab } from '../lab/index.mjs';
import { makeCerts } from '../lib/certs.mjs';
import { Progress } from '../lib/progress.mjs';
import { ResultWriter } from '../lib/results.mjs';
import { runScript, startOrigin } from '../lib/spawn.mjs';
import { fmt, summarize } from '../lib/stats.mjs';

const env = process.env;
const LOSS = (env.BENCH_LOSS ?? '0,1,2,5').split(',').map(Number);
const RTT = Number(env.BENCH_RTT_MS ?? 50);
const BULK = Math.round(Number(env.BENCH_BULK_MIB ?? 20) * 2 ** 20);
const SMALL = Number(env.BENCH_SMALL ?? 50);
const INTERVAL = Number(env.BENCH_INTERVAL_MS ?? 20);
const CAP_S = Number(env.BENCH_CAP_S ?? 30);
const PROTOS = (env.BENCH_PROTOS ?? 'h2,h3').split(',').filter(Boolean);
const CC = env.BENCH_TCP_CC || undefined;
const SEED = Number(env.BENCH_SEED ?? 1);
// The server sends the bulk, so its congestion controller decides throughput under loss.
const QUIC_CC = env.BENCH_QUIC_CC || 'bbr';
const QUIC_BBR = {};
if (env.BENCH_QUIC_BBR_LOSS) QUIC_BBR.lossThreshold = Number(env.BENCH_QUIC_BBR_LOSS);
if (env.BENCH_QUIC_BBR_BWLO) QUIC_BBR.bwLoReduction = env.BENCH_QUIC_BBR_BWLO;
// BENCH_QUIC_PACING=0: the origin's QUIC packets unpaced (quic/pacer.ts off), to compare.
const QUIC_PACING = env.BENCH_QUIC_PACING !== '0';
// BENCH_WINDOW: the client's receive window per stream (the Agent's pool.windowSize; h2 and h3), default the product's.
const WINDOW = env.BENCH_WINDOW ? Number(env.BENCH_WINDOW) : null;
const CLIENT = fileURLToPath(new URL('../lib/loss-client.mjs', import.meta.url));
const NSTAT_KEYS = [
  'TcpRetransSegs',
  'TcpExtTCPLostRetransmit',
  'UdpInDatagrams',
  'UdpOutDatagrams',
  'UdpRcvbufErrors',
  'UdpSndbufErrors',
];

const progress = new Progress(LOSS.length * PROTOS.length * 2, 'loss');
const certs = makeCerts();
const runs = [];
const labs = [];
let current = null;
let exitCode = 0;
const onSignal = async () => {
  await current?.close();
  process.exit(130);
};
process.once('SIGINT', onSignal);
try {
  for (const loss of LOSS) {
    const lab = (current = await createLab({
      delayMs: RTT / 2,
      lossPct: loss,
      seed: SEED,
      ...(CC ? { congestionControl: CC } : {}),
    }));
    try {
      const check = await lab.selfCheck();
      const facts = await lab.facts();
      labs.push({ lossPct: loss, selfCheck: check, facts });
      const common = { host: lab.server.addr, port: 443, cert: certs.certPath, key: certs.keyPath };
      const tcp = await startOrigin(lab, { ...common, kind: 'tcp', tfo: false });
      const h3 = PROTOS.includes('h3')
        ? await startOrigin(lab, {
            ...common,
            kind: 'h3',
            quic: { cc: QUIC_CC, ...(Object.keys(QUIC_BBR).length ? { bbr: QUIC_BBR } : {}) },
            pacing: QUIC_PACING,
            traceQuic: true,
          })
        : null;
      for (const proto of PROTOS) {
        progress.note(`${loss}% ${proto} running`);
        const before = {
          client: await lab.nstat('client'),
          server: await lab.nstat('server'),
          link: await lab.counters(),
        };
        const r = await runScript(
          lab,
          'client',
          CLIENT,
          {
            base: `https://${lab.server.addr}`,
            ca: certs.caPath,
            proto,
            bulkBytes: BULK,
            smallCount: SMALL,
            intervalMs: INTERVAL,
            capS: CAP_S,
            ...(WINDOW ? { windowSize: WINDOW } : {}),
          },
          {
            onProgress: (p) => progress.tick(`${loss}% ${p.note}`),
            timeoutMs: (CAP_S + 60) * 1000,
          },
        );
        const after = {
          client: await lab.nstat('client'),
          server: await lab.nstat('server'),
          link: await lab.counters(),
        };
        const delta = (side) =>
          Object.fromEntries(NSTAT_KEYS.map((k) => [k, (after[side][k] ?? 0) - (before[side][k] ?? 0)]));
        const linkDelta = (dir) => ({
          forwarded: after.link[dir].forwarded - before.link[dir].forwarded,
          lost: after.link[dir].lost - before.link[dir].lost,
          queueDropped: after.link[dir].queueDropped - before.link[dir].queueDropped,
        });
        runs.push({
          lossPct: loss,
          ...r,
          nstat: { client: delta('client'), server: delta('server') },
          link: { clientToServer: linkDelta('clientToServer'), serverToClient: linkDelta('serverToClient') },
          tcpCongestionControl: facts.congestionControl,
        });
        progress.tick(`${loss}% ${proto}: ${fmt(r.bulk.bytesPerS / 2 ** 20, 2)} MiB/s`);
      }
      const h3Stats = await h3?.stop();
      const arrivals = {
        h2: (await tcp.stop())?.tags?.small?.arrivalsHrMs ?? [],
        h3: h3Stats?.tags?.small?.arrivalsHrMs ?? [],
      };
      const h3Run = runs.find((x) => x.lossPct === loss && x.proto === 'h3');
      if (h3Run && h3Stats?.quicTrace) h3Run.quicTrace = h3Stats.quicTrace;
      // Each origin's small requests arrive in issue order on one connection: pair them with the client's send times.
      for (const run of runs.filter((x) => x.lossPct === loss)) {
        const arr = arrivals[run.proto] ?? [];
        const sent = [...run.small].sort((a, b) => a.sentHrMs - b.sentHrMs);
        sent.forEach((s, k) => {
          if (arr[k] !== undefined) {
            s.requestOneWayMs = arr[k] - s.sentHrMs;
            s.afterArrivalMs = s.headHrMs - arr[k];
          }
        });
      }
    } finally {
      await lab.close();
      current = null;
    }
  }
  progress.done();

  const rows = runs.map((r) => {
    const ok = r.small.filter((s) => s.ms !== null);
    const sum = summarize(ok.map((s) => s.ms));
    const oneWay = summarize(ok.map((s) => s.requestOneWayMs));
    const back = summarize(ok.map((s) => s.afterArrivalMs));
    return {
      reqOneWayP50Ms: oneWay.p50,
      reqOneWayP99Ms: oneWay.p99,
      arrivalToHeadP50Ms: back.p50,
      arrivalToHeadP99Ms: back.p99,
      lossPct: r.lossPct,
      proto: r.proto,
      smallN: ok.length,
      smallErrors: r.small.length - ok.length,
      p50Ms: sum.p50,
      p99Ms: sum.p99,
      maxMs: sum.max,
      bulkMiBps: r.bulk.bytesPerS / 2 ** 20,
      bulkMiB: r.bulk.bytes / 2 ** 20,
      finished: r.bulk.finished,
      elapsedS: r.bulk.elapsedMs / 1000,
      bulkError: r.bulk.error,
      sameConnection: r.sameConnection,
      tcpRetrans: r.nstat.server.TcpRetransSegs + r.nstat.client.TcpRetransSegs,
      linkLost: r.link.clientToServer.lost + r.link.serverToClient.lost,
      quicLost: r.quicStats?.lost ?? null,
      ...(r.quicTrace ? { cwnd: cwndSummary(r.quicTrace) } : {}),
    };
  });
  const goals = [];
  for (const loss of LOSS.filter((l) => l === 2)) {
    const h2 = rows.find((r) => r.lossPct === loss && r.proto === 'h2');
    const h3 = rows.find((r) => r.lossPct === loss && r.proto === 'h3');
    if (h2 && h3)
      goals.push({
        goal: `at ${loss}% loss h3 small p99 ≤ 0.5 × h2's`,
        h2P99Ms: h2.p99Ms,
        h3P99Ms: h3.p99Ms,
        ratio: h3.p99Ms / h2.p99Ms,
        met: h3.p99Ms <= 0.5 * h2.p99Ms,
      });
  }
  const cc = runs[0]?.tcpCongestionControl ?? '?';
  const lines = [
    `loss: ${fmt(BULK / 2 ** 20, 0)} MiB bulk + ${SMALL} small requests every ${INTERVAL} ms on one connection, ${RTT} ms RTT, loss both directions (seed ${SEED}), bulk capped at ${CAP_S} s`,
    `congestion control: TCP ${cc} (kernel default unless BENCH_TCP_CC), QUIC ${QUIC_CC} at the origin (quiche; BENCH_QUIC_CC, product default bbr (src/quic/cc.ts)), ${QUIC_PACING ? 'paced' : 'unpaced (BENCH_QUIC_PACING=0)'}`,
    '',
    '| loss | proto | small p50 ms | small p99 ms | small max ms | request → origin p50 / p99 ms | origin arrival → response head p50 / p99 ms | small errors | bulk MiB/s | bulk MiB | finished | bulk s | link drops | TCP retrans |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.lossPct}% | ${r.proto} | ${fmt(r.p50Ms)} | ${fmt(r.p99Ms)} | ${fmt(r.maxMs)} | ${fmt(r.reqOneWayP50Ms)} / ${fmt(r.reqOneWayP99Ms)} | ${fmt(r.arrivalToHeadP50Ms)} / ${fmt(r.arrivalToHeadP99Ms)} | ${r.smallErrors} | ${fmt(r.bulkMiBps, 2)} | ${fmt(r.bulkMiB, 1)} | ${r.finished ? 'yes' : `no (${r.bulkError ?? 'short'})`} | ${fmt(r.elapsedS, 1)} | ${r.linkLost} | ${r.proto === 'h3' ? '-' : r.tcpRetrans} |`,
    ),
    '',
    ...rows
      .filter((r) => r.cwnd)
      .map(
        (r) =>
          `h3 origin's congestion window during the bulk at ${r.lossPct}% (every 100 ms): median ${fmt(r.cwnd.medianKiB, 0)} KiB, max ${fmt(r.cwnd.maxKiB, 0)} KiB, ${r.cwnd.collapses} collapse(s) below 1/8 of the largest so far`,
      ),
    '',
    ...(goals.length
      ? [
          '| goal | h2 p99 ms | h3 p99 ms | h3/h2 | met |',
          '|---|---:|---:|---:|---|',
          ...goals.map(
            (g) =>
              `| ${g.goal} | ${fmt(g.h2P99Ms)} | ${fmt(g.h3P99Ms)} | ${fmt(g.ratio, 2)} | ${g.met ? 'yes' : '**no**'} |`,
          ),
        ]
      : []),
  ];
  const w = new ResultWriter('loss');
  const long = rows.flatMap((r) => [
    { lossPct: r.lossPct, proto: r.proto, stat: 'p50', ms: r.p50Ms },
    { lossPct: r.lossPct, proto: r.proto, stat: 'p99', ms: r.p99Ms },
  ]);
  await w.chart('small-latency', {
    title: `Small-request latency beside a bulk download, ${RTT} ms RTT`,
    width: 420,
    height: 260,
    data: { values: long },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'lossPct', type: 'quantitative', title: 'loss % (each direction)' },
      y: { field: 'ms', type: 'quantitative', title: 'ms', scale: { type: 'log' } },
      color: { field: 'proto', type: 'nominal' },
      strokeDash: { field: 'stat', type: 'nominal' },
    },
  });
  await w.chart('bulk-throughput', {
    title: `Bulk throughput with small requests alongside (cap ${CAP_S} s)`,
    width: 420,
    height: 260,
    data: { values: rows },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'lossPct', type: 'quantitative', title: 'loss % (each direction)' },
      y: { field: 'bulkMiBps', type: 'quantitative', title: 'MiB/s' },
      color: { field: 'proto', type: 'nominal' },
    },
  });
  const trace = runs
    .filter((r) => r.quicTrace)
    .flatMap((r) => r.quicTrace.map((x) => ({ lossPct: `${r.lossPct}%`, ms: x.ms, cwndKiB: (x.cwnd ?? 0) / 1024 })));
  if (trace.length) {
    await w.chart('quic-cwnd', {
      title: `h3 origin's congestion window during the bulk (quiche ${QUIC_CC})`,
      width: 420,
      height: 260,
      data: { values: trace },
      mark: { type: 'line' },
      encoding: {
        x: { field: 'ms', type: 'quantitative', title: 'ms since the bulk request' },
        y: { field: 'cwndKiB', type: 'quantitative', title: 'cwnd KiB' },
        color: { field: 'lossPct', type: 'nominal' },
      },
    });
  }
  const file = w.write({
    rttMs: RTT,
    bulkBytes: BULK,
    smallCount: SMALL,
    intervalMs: INTERVAL,
    capS: CAP_S,
    seed: SEED,
    tcpCongestionControl: cc,
    quicCongestionControl: QUIC_CC,
    quicPacing: QUIC_PACING,
    labs,
    rows,
    goals,
    runs,
  });
  console.log([...lines, '', `charts: ${w.charts.join(', ')}`, `wrote ${file}`].join('\n'));
} catch (err) {
  process.stderr.write(`\nloss failed: ${err?.stack ?? err}\n`);
  exitCode = 1;
}
process.exit(exitCode);

// A collapse: a sample below 1/8 of the largest window seen before it, counted once until the window recovers to 1/2 of it.
function cwndSummary(trace) {
  const w = trace.map((x) => x.cwnd).filter((x) => typeof x === 'number');
  if (!w.length) return null;
  let max = 0;
  let collapses = 0;
  let down = false;
  for (const c of w) {
    if (!down && max > 0 && c < max / 8) {
      collapses++;
      down = true;
    }
    if (down && c >= max / 2) down = false;
    max = Math.max(max, c);
  }
  return { medianKiB: summarize(w).p50 / 1024, maxKiB: max / 1024, collapses, samples: w.length };
}
