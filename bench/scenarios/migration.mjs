#!/usr/bin/env node
// `npm run bench -- migration`: an HTTP/3 download whose client path changes
// midway at an emulated RTT. Modes: `active` (the client calls migrate(), then
// the old path is blocked) and `failover` (the old path is blocked and the
// connection must notice and migrate by itself). Reports the stall (longest
// gap between body chunks after the change) and the bytes lost (must be 0).
// Exits 2 when the build has no migration API, 1 when a run lost bytes.
// Knobs (env): BENCH_RTT_MS (50), BENCH_MIB (10), BENCH_AT (0.3 of the body),
// BENCH_REPEAT (3 per mode), BENCH_MODES (active,failover), BENCH_CAP_S (20),
// BENCH_BLOCK_OLD (1; 0 leaves the old path open: migration without a failure).
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
const CAP_S = Number(env.BENCH_CAP_S ?? 20);
const MODES = (env.BENCH_MODES ?? 'active,failover').split(',').filter(Boolean);
const BLOCK_OLD = env.BENCH_BLOCK_OLD !== '0';
const CLIENT = fileURLToPath(new URL('../lib/migration-client.mjs', import.meta.url));

const { H3PooledConnection } = await import(join(DIST, 'client', 'h3.js'));
if (typeof H3PooledConnection?.prototype?.migrate !== 'function') {
  console.log('migration: migration API not available: H3PooledConnection has no migrate() in this build');
  console.log('Nothing measured. The scenario needs H3PooledConnection.migrate() (src/client/h3.ts).');
  process.exit(2);
}
const certs = makeCerts();
const progress = new Progress(REPEAT * MODES.length + 1, 'migration');
const plan = MODES.flatMap((mode) => Array.from({ length: REPEAT }, () => mode));
let exitCode = 0;
let lab = null;
process.once('SIGINT', async () => {
  await lab?.close();
  process.exit(130);
});
const results = [];
let check = null;
let facts = null;
try {
  for (const [i, mode] of plan.entries()) {
    lab = await createLab({ delayMs: RTT / 2 });
    try {
      if (i === 0) {
        check = await lab.selfCheck();
        facts = await lab.facts();
        progress.tick(`lab RTT ${fmt(check.rttMs, 2)} ms`);
      }
      const h3 = await startOrigin(lab, {
        host: lab.server.addr,
        port: 443,
        cert: certs.certPath,
        key: certs.keyPath,
        kind: 'h3',
      });
      const r = await runScript(
        lab,
        'client',
        CLIENT,
        {
          base: `https://${lab.server.addr}`,
          ca: certs.caPath,
          bytes: BYTES,
          atFraction: AT,
          mode,
          capS: CAP_S,
          blockOld: BLOCK_OLD,
          clientNs: lab.client.ns,
          serverNs: lab.server.ns,
        },
        { timeoutMs: (CAP_S + 30) * 1000 },
      );
      await h3.stop();
      if (!r.available) {
        progress.done('unavailable');
        console.log(`migration: ${r.reason}`);
        console.log('Nothing measured. The scenario needs H3PooledConnection.migrate() (src/client/h3.ts).');
        exitCode = 2;
        break;
      }
      results.push(r);
      progress.tick(`${mode} run ${i + 1}: stall ${fmt(r.stallMs)} ms, lost ${r.lostBytes} B`);
    } finally {
      await lab.close();
      lab = null;
    }
  }
  if (results.length) {
    progress.done();
    const lines = [
      `migration: ${fmt(BYTES / 2 ** 20, 0)} MiB over h3 at ${RTT} ms RTT; path change at ${AT * 100}% of the body; active = client calls migrate() then the old 4-tuple is dropped, failover = the old 4-tuple is dropped and the connection must migrate by itself`,
      '',
      '| mode | run | finished | bytes lost | stall ms | stall RTTs | longest gap in the second before ms | change at ms | migrated at ms | MiB/s overall | old-path datagrams dropped (to / from client) | error | local port before → after |',
      '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|',
      ...results.map(
        (r, i) =>
          `| ${r.mode} | ${i + 1} | ${r.finished ? 'yes' : '**no**'} | ${r.lostBytes} | ${fmt(r.stallMs)} | ${fmt(r.stallMs / RTT, 2)} | ${fmt(r.gapBeforeMs)} | ${fmt(r.migrateAtMs)} | ${fmt(r.migratedAtMs)} | ${fmt(r.received / 2 ** 20 / (r.elapsedMs / 1000), 2)} | ${r.oldPathDrops ? `${r.oldPathDrops.toOldPortDropped} / ${r.oldPathDrops.fromOldPortDropped}` : '-'} | ${r.migrateError ?? r.error ?? '-'} | ${r.before.local.split(':').at(-1)} → ${r.after.local.split(':').at(-1)} |`,
      ),
      '',
      ...MODES.map((m) => {
        const rs = results.filter((r) => r.mode === m);
        const st = summarize(rs.map((r) => r.stallMs));
        return `${m}: stall median ${fmt(st.p50)} ms (${fmt(st.p50 / RTT, 2)} RTT), max ${fmt(st.max)} ms; bytes lost ${rs.reduce((a, r) => a + r.lostBytes, 0)} (goal 0); finished ${rs.filter((r) => r.finished).length}/${rs.length}`;
      }),
    ];
    const w = new ResultWriter('migration');
    await w.chart('gaps', {
      title: `Gaps > 20 ms between body chunks (dashed: path change), ${RTT} ms RTT`,
      width: 460,
      height: 220,
      layer: [
        {
          data: {
            values: results.flatMap((r, i) => r.gaps.map(([at, gap]) => ({ run: `${r.mode} ${i + 1}`, at, gap }))),
          },
          mark: { type: 'point', filled: true },
          encoding: {
            x: { field: 'at', type: 'quantitative', title: 'ms since request' },
            y: { field: 'gap', type: 'quantitative', title: 'gap ms' },
            color: { field: 'run', type: 'nominal' },
          },
        },
        {
          data: { values: results.map((r, i) => ({ run: `${r.mode} ${i + 1}`, at: r.migrateAtMs })) },
          mark: { type: 'rule', strokeDash: [4, 4] },
          encoding: { x: { field: 'at', type: 'quantitative' }, color: { field: 'run', type: 'nominal' } },
        },
      ],
    });
    const file = w.write({
      rttMs: RTT,
      bytes: BYTES,
      atFraction: AT,
      modes: MODES,
      blockOld: BLOCK_OLD,
      selfCheck: check,
      labFacts: facts,
      results,
    });
    console.log([...lines, '', `charts: ${w.charts.join(', ')}`, `wrote ${file}`].join('\n'));
    if (results.some((r) => r.lostBytes !== 0 || !r.finished)) exitCode = 1;
  }
} catch (err) {
  process.stderr.write(`\nmigration failed: ${err?.stack ?? err}\n`);
  exitCode = 1;
}
process.exit(exitCode);
