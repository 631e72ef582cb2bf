// Keep a benchmark result on purpose: `npm run bench:keep -- bench/out/NAME-STAMP.json [...]` copies each result
// and the charts it names from the ignored bench/out/ into the tracked bench/results/ (where bench/RESULTS.md links),
// with its chart paths pointing there. Runs write only to bench/out/, so `git status` stays clean until a result is
// kept; then `git add bench/results/…` and link it from bench/RESULTS.md.
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { KEPT_DIR, RESULTS_DIR, ROOT } from './lib/results.mjs';

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: npm run bench:keep -- bench/out/NAME-STAMP.json [...]');
  process.exit(2);
}
mkdirSync(KEPT_DIR, { recursive: true });
for (const f of files) {
  const src = existsSync(f) ? f : join(RESULTS_DIR, basename(f));
  if (!existsSync(src)) {
    console.error(`no such result: ${f}`);
    process.exitCode = 1;
    continue;
  }
  const data = JSON.parse(readFileSync(src, 'utf8'));
  if (Array.isArray(data.charts)) {
    data.charts = data.charts.map((c) => {
      const from = join(ROOT, 'bench', c);
      const to = join(KEPT_DIR, basename(c));
      if (existsSync(from)) copyFileSync(from, to);
      return relative(join(ROOT, 'bench'), to);
    });
  }
  const dest = join(KEPT_DIR, basename(src));
  writeFileSync(dest, `${JSON.stringify(data, null, 1)}\n`);
  console.log(relative(ROOT, dest));
}
