#!/usr/bin/env node
// `npm run bench -- migration`: an HTTP/3 download whose client path changes
// midway (new local address; the old one is then removed) at an emulated RTT.
// Reports the stall (longest gap between body chunks after the change) and
// the bytes lost (must be zero). Exits 2 when the build has no migration API.
// Knobs (env): BENCH_RTT_MS (50), BENCH_MIB (10), BENCH_AT (0.3 of the body),
// BENCH_REPEAT (3), BENCH_CAP_S (60), BENCH_DROP_OLD (1).
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DIST } from '../lib/dist.mjs';
import { createLab } from '../lab/index.mjs';
import { makeCerts } from '../lib/certs.mjs';
import { Progress } from '../lib/progress.mjs';
import { ResultWriter } from '../lib/results.mjs';
import { runScript, startOrigin } from '../lib/spawn.mjs';
import { fmt, summarize } from '../lib/stats.mjs';

const env = process.env;
const RTT = Number(env.BENCH_RTT_MS ?? 50);
const BYTES = Math.round(Number(env.BENCH_MIB ?? 10) * 2 ** 20);
const AT = Number(env.BENCH_AT ?? 0.3);
const REPEAT = Number(env.BENCH_REPEAT ?? 3);
const CAP_S = Number(env.BENCH_CAP_S ?? 60);
const DROP_OLD = env.BENCH_DROP_OLD !== '0';
const CLIENT = fileURLToPath(new URL('../lib/migration-client.mjs', import.meta.url));
const NEW_ADDR = '192.0.2.3';

const { H3PooledConnection } = await import(join(DIST, 'transport', 'h3.js'));
if (typeof H3PooledConnection?.prototype?.migrate !== 'function') {
  console.log('migration: migration API not available: H3PooledConnection has no migrate() in this build');
  console.log('Nothing measured. The scenario needs H3PooledConnection.migrate({ localAddress }) (src/transport/h3.ts).');
  process.exit(2);
}
const certs = makeCerts();
const progress = new Progress(REPEAT + 1, 'migration');
let exitCode = 0;
let lab = null;
process.once('SIGINT', async () => { await lab?.close(); process.exit(130); });
const results = [];
let check = null;
let facts = null;
try {
  for (let i = 0; i < REPEAT; i++) {
    lab = await createLab({ delayMs: RTT / 2 });
    try {
      if (i === 0) { check = await lab.selfCheck(); facts = await lab.facts(); progress.tick(`lab RTT ${fmt(check.rttMs, 2)} ms`); }
      await lab.exec('client', ['ip', 'addr', 'add', `${NEW_ADDR}/24`, 'dev', lab.client.dev]);
      const h3 = await startOrigin(lab, { host: lab.server.addr, port: 443, cert: certs.certPath, key: certs.keyPath, kind: 'h3' });
      const r = await runScript(lab, 'client', CLIENT, {
        base: `https://${lab.server.addr}`, ca: certs.caPath, bytes: BYTES, atFraction: AT, newAddr: NEW_ADDR, oldAddr: lab.client.addr, dev: lab.client.dev, dropOld: DROP_OLD, capS: CAP_S,
      }, { timeoutMs: (CAP_S + 30) * 1000 });
      await h3.stop();
      if (!r.available) {
        progress.done('unavailable');
        console.log(`migration: ${r.reason}`);
        console.log('Nothing measured. The scenario needs H3PooledConnection.migrate({ localAddress }) (src/transport/h3.ts).');
        exitCode = 2;
        break;
      }
      results.push(r);
      progress.tick(`run ${i + 1}: stall ${fmt(r.stallMs)} ms, lost ${r.lostBytes} B`);
    } finally {
      await lab.close();
      lab = null;
    }
  }
  if (results.length) {
    progress.done();
    const stall = summarize(results.map((r) => r.stallMs));
    const lines = [
      `migration: ${fmt(BYTES / 2 ** 20, 0)} MiB over h3 at ${RTT} ms RTT; at ${AT * 100}% of the body the client moves to ${NEW_ADDR}${DROP_OLD ? ' and the old address is deleted' : ''}; ${results.length} runs`,
      '',
      '| run | finished | bytes lost | stall ms | migrate at ms | migrate done ms | error | path before → after |',
      '|---:|---|---:|---:|---:|---:|---|---|',
      ...results.map((r, i) => `| ${i + 1} | ${r.finished ? 'yes' : 'no'} | ${r.lostBytes} | ${fmt(r.stallMs)} | ${fmt(r.migrateAtMs)} | ${fmt(r.migrateDoneAtMs)} | ${r.migrateError ?? r.error ?? '-'} | ${r.before.local} → ${r.after.local} |`),
      '',
      `stall median ${fmt(stall.p50)} ms (${fmt(stall.p50 / RTT, 2)} RTT), max ${fmt(stall.max)} ms; bytes lost total ${results.reduce((a, r) => a + r.lostBytes, 0)} (goal: 0)`,
    ];
    const w = new ResultWriter('migration');
    await w.chart('gaps', {
      title: `Gaps > 20 ms between body chunks (migration marked), ${RTT} ms RTT`, width: 460, height: 220,
      layer: [
        { data: { values: results.flatMap((r, i) => r.gaps.map(([at, gap]) => ({ run: `run ${i + 1}`, at, gap }))) }, mark: { type: 'point', filled: true }, encoding: { x: { field: 'at', type: 'quantitative', title: 'ms since request' }, y: { field: 'gap', type: 'quantitative', title: 'gap ms' }, color: { field: 'run', type: 'nominal' } } },
        { data: { values: results.map((r, i) => ({ run: `run ${i + 1}`, at: r.migrateAtMs })) }, mark: { type: 'rule', strokeDash: [4, 4] }, encoding: { x: { field: 'at', type: 'quantitative' }, color: { field: 'run', type: 'nominal' } } },
      ],
    });
    const file = w.write({ rttMs: RTT, bytes: BYTES, atFraction: AT, dropOld: DROP_OLD, selfCheck: check, labFacts: facts, results });
    console.log([...lines, '', `charts: ${w.charts.join(', ')}`, `wrote ${file}`].join('\n'));
    if (results.some((r) => r.lostBytes !== 0 || !r.finished)) exitCode = 1;
  }
} catch (err) {
  process.stderr.write(`\nmigration failed: ${err?.stack ?? err}\n`);
  exitCode = 1;
}
process.exit(exitCode);
