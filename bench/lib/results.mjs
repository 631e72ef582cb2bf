// Results files: bench/out/NAME-STAMP.json (+ NAME-STAMP-CHART.svg), with the
// machine facts every result carries. bench/out/ is ignored by git: a run leaves
// `git status` clean. A result is kept on purpose with `npm run bench:keep -- FILE`
// (bench/keep.mjs), which copies it and its charts into the tracked bench/results/.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeChart } from './chart.mjs';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Where runs write (ignored by git). */
export const RESULTS_DIR = join(ROOT, 'bench', 'out');
/** Where results kept on purpose live (tracked; bench/RESULTS.md links here). */
export const KEPT_DIR = join(ROOT, 'bench', 'results');

export function machineFacts() {
  const sh = (cmd, args) => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return null;
    }
  };
  return {
    nproc: Number(sh('nproc', [])) || os.availableParallelism(),
    kernel: os.release(),
    node: process.version,
    cpuModel: os.cpus()[0]?.model ?? null,
    memGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    loadavg: os.loadavg().map((x) => +x.toFixed(2)),
    gitCommit: sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']),
  };
}

export class ResultWriter {
  constructor(name) {
    this.name = name;
    this.date = new Date();
    this.stamp = this.date
      .toISOString()
      .replace(/[:.]/g, '-')
      .replace(/-\d{3}Z$/, 'Z');
    this.charts = [];
    mkdirSync(RESULTS_DIR, { recursive: true });
  }

  async chart(tag, vlSpec) {
    const file = join(RESULTS_DIR, `${this.name}-${this.stamp}-${tag}.svg`);
    await writeChart(file, vlSpec);
    this.charts.push(relative(join(ROOT, 'bench'), file));
    return file;
  }

  write(data) {
    const file = join(RESULTS_DIR, `${this.name}-${this.stamp}.json`);
    writeFileSync(
      file,
      `${JSON.stringify({ scenario: this.name, date: this.date.toISOString(), command: `npm run bench -- ${process.argv.slice(2).length ? `${this.name} ${process.argv.slice(2).join(' ')}` : this.name}`, machine: machineFacts(), charts: this.charts, ...data }, null, 1)}\n`,
    );
    return relative(ROOT, file);
  }
}
