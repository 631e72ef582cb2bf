#!/usr/bin/env node
// `npm run bench -- NAME [args]`: runs bench/scenarios/NAME.mjs (or bench/NAME.mjs).
// Each scenario is a bounded run that prints a Markdown table and writes
// bench/out/NAME-DATE.json; see bench/README.md.
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const [name, ...args] = process.argv.slice(2);
const candidates = (n) => [join(here, 'scenarios', `${n}.mjs`), join(here, `${n}.mjs`)];
const list = () =>
  [
    ...(existsSync(join(here, 'scenarios')) ? readdirSync(join(here, 'scenarios')) : []),
    // bench/keep.mjs is `npm run bench:keep`, a tool, not a scenario.
    ...readdirSync(here).filter((f) => f.endsWith('.mjs') && f !== 'run.mjs' && f !== 'keep.mjs'),
  ]
    .filter((f) => f.endsWith('.mjs'))
    .map((f) => f.replace(/\.mjs$/, ''))
    .sort();

if (!name || name === '--help') {
  console.log(`usage: npm run bench -- NAME [args]\nscenarios: ${list().join(', ')}`);
  process.exit(name ? 0 : 2);
}
const file = candidates(name).find((f) => existsSync(f));
if (!file) {
  console.error(`unknown scenario ${JSON.stringify(name)}; have: ${list().join(', ')}`);
  process.exit(2);
}
process.argv = [process.argv[0], file, ...args];
await import(pathToFileURL(file).href);
