#!/usr/bin/env node
// The package as it is loaded (`npm run build`, after tsc): dist/bundle/index.js, the library in one file (the
// package's `import`), and dist/bundle/main.js, the command line (bin/originlink), its commands split into chunks
// it loads when a command runs (`--version` loads none of the Agent). A fresh process spends a third of its import
// in Node's module loader resolving, reading and linking ~100 files; one file cuts the package's import from ~2.0×
// `node -e 0` to ~1.5× and `originlink fetch` from ~2.3× to ~1.9× (bench/RESULTS.md `startup`).
// Both stay two directories under the package root, as every dist/<dir>/<module>.js is: the paths modules take
// from import.meta.url (../../native, ../../package.json, ../../docs) hold unchanged. npm packages stay imports.
// tsc's dist/ modules stay beside it: the benches run a build's dist/cli/main.js (older builds have no bundle).
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const out = join(dist, 'bundle');
rmSync(out, { recursive: true, force: true });
const common = {
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'warning',
};
await build({ ...common, entryPoints: [join(dist, 'index.js')], outfile: join(out, 'index.js') });
await build({
  ...common,
  entryPoints: [join(dist, 'cli', 'main.js')],
  outdir: out,
  splitting: true,
  entryNames: '[name]',
  chunkNames: 'chunk-[hash]',
});
