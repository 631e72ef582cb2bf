#!/usr/bin/env node
// Coverage-guided fuzzing of every parser that reads a peer's or a user's bytes, with Jazzer.js
// (libFuzzer). `npm run fuzz -- [TARGET|all] [--seconds N] [--runs N] [--timeout-ms N] [--update-corpus]`.
// An input taking longer than --timeout-ms (default 1000) counts as a finding, like a crash.
// Targets: fuzz/targets/*.mjs (each exports fuzz(data) and throws only on a bug: an error of a type
// the parser must never raise, or none where it must never throw). Seeds: fuzz/corpus/TARGET/
// (committed); a run works on a copy in .fuzz/TARGET/ and `--update-corpus` merges what it found
// back (libFuzzer -merge=1: the smallest set with the same coverage). Crashes go to .fuzz/crashes/.
// Instrumented: dist/ (build first: npm run build). Prints runs, coverage edges and corpus size per
// target; exits 1 on a crash.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const seconds = opt('--seconds', 10);
const runs = opt('--runs', 0);
const timeoutMs = opt('--timeout-ms', 1000);
const update = args.includes('--update-corpus');
const all = readdirSync(join(root, 'fuzz', 'targets'))
  .filter((f) => f.endsWith('.mjs') && !f.startsWith('_'))
  .map((f) => f.slice(0, -4));
const pick = args.find((a) => !a.startsWith('--') && !/^\d+$/.test(a)) ?? 'all';
const targets = pick === 'all' ? all : pick.split(',');
for (const t of targets)
  if (!all.includes(t)) {
    console.error(`fuzz: no target ${t} (have: ${all.join(', ')})`);
    process.exit(2);
  }

const setup = spawnSync(process.execPath, [join(root, 'scripts', 'fuzz-setup.mjs')], { stdio: 'inherit' });
if (setup.status !== 0) process.exit(1);
const cli = join(root, 'node_modules', '@jazzer.js', 'core', 'dist', 'cli.js');
mkdirSync(join(root, '.fuzz', 'crashes'), { recursive: true });
let failed = false;
const rows = [];
for (const t of targets) {
  const seeds = join(root, 'fuzz', 'corpus', t);
  const work = join(root, '.fuzz', t);
  mkdirSync(work, { recursive: true });
  if (existsSync(seeds)) cpSync(seeds, work, { recursive: true });
  const lf = [
    `-max_total_time=${seconds}`,
    `-artifact_prefix=${join(root, '.fuzz', 'crashes', `${t}-`)}`,
    '-print_final_stats=1',
    '-max_len=4096',
  ];
  if (runs > 0) lf.push(`-runs=${runs}`);
  const started = Date.now();
  const r = spawnSync(
    process.execPath,
    [
      cli,
      join(root, 'fuzz', 'targets', `${t}.mjs`),
      work,
      '-i',
      join(root, 'dist'),
      '--sync',
      '--timeout',
      String(timeoutMs),
      '--',
      ...lf,
    ],
    { encoding: 'utf8', timeout: (seconds + 60) * 1000 },
  );
  const elapsedS = (Date.now() - started) / 1000;
  const out = `${r.stdout}\n${r.stderr}`;
  const execPerSec = Number(/stat::average_exec_per_sec:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  const done = [...out.matchAll(/#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)/g)].at(-1);
  const crashed = r.status !== 0;
  if (crashed) {
    failed = true;
    console.error(
      `--- ${t}: crash (exit ${r.status})\n${out
        .split('\n')
        .filter((l) => /Error|at |artifact|==\d+==/.test(l))
        .slice(0, 30)
        .join('\n')}`,
    );
  }
  rows.push({
    target: t,
    seconds: Math.round(elapsedS),
    execPerSec: execPerSec > 0 ? execPerSec : done ? Math.round(Number(done[1]) / elapsedS) : null,
    runs: done ? Number(done[1]) : null,
    cov: done ? Number(done[2]) : null,
    features: done ? Number(done[3]) : null,
    corpus: done ? Number(done[4]) : null,
    result: crashed ? 'CRASH' : 'ok',
  });
  if (update && !crashed) {
    mkdirSync(seeds, { recursive: true });
    spawnSync(
      process.execPath,
      [
        cli,
        join(root, 'fuzz', 'targets', `${t}.mjs`),
        seeds,
        work,
        '-i',
        join(root, 'dist'),
        '--sync',
        '--',
        '-merge=1',
      ],
      { encoding: 'utf8' },
    );
  }
}
console.log(`\nfuzz: ${seconds}s per target${runs ? `, at most ${runs} runs` : ''}\n`);
console.log(
  '| target | runs | seconds | execs/s | coverage edges | features | corpus | result |\n|---|---:|---:|---:|---:|---:|---:|---|',
);
for (const r of rows)
  console.log(
    `| ${r.target} | ${r.runs ?? '-'} | ${r.seconds} | ${r.execPerSec ?? '-'} | ${r.cov ?? '-'} | ${r.features ?? '-'} | ${r.corpus ?? '-'} | ${r.result} |`,
  );
process.exit(failed ? 1 : 0);
