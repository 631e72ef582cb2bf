#!/usr/bin/env node
// The package as it is loaded (`npm run build`, after tsc): the library in one file (the package's `import`), and
// dist/bundle/main.js, the command line (bin/originlink), its commands split into chunks it loads when a command runs
// (`--version` loads none of the Agent). A fresh process spends a third of its import in Node's module loader
// resolving, reading and linking ~100 files; one file cuts the package's import from ~2.0× `node -e 0` to ~1.5× and
// `originlink fetch` from ~2.3× to ~1.9× (bench/RESULTS.md `startup`).
//
// The library goes one step further: V8 compiles each function the first time it runs, and Node 20 keeps no compile
// cache between processes (22's `module.enableCompileCache` does). So the library is a CommonJS file,
// dist/bundle/library.cjs, which dist/bundle/index.js (an ES module re-exporting its names) compiles through
// `vm.Script` with V8's code cache, dist/bundle/library.cache: bytecode made here, by a child process that loads the
// library as a user's import does and then runs a request over each protocol (scripts/code-cache-train.mjs), so the
// functions a first request needs come compiled too. V8 checks the cache against its own version, flags and the
// source, and compiles as usual when it does not fit (another Node, other V8 flags): never wrong, at worst not faster.
//
// Both stay two directories under the package root, as every dist/<dir>/<module>.js is: the paths modules take
// from import.meta.url (../../native, ../../package.json, ../../docs) hold unchanged. npm packages stay imports.
// tsc's dist/ modules stay beside it: the benches run a build's dist/cli/main.js (older builds have no bundle).
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { compileLibrary, LOADER_IMPORTS } from './code-cache.mjs';

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

// The library's export names, from an ES module build of it (not written).
const esm = await build({
  ...common,
  entryPoints: [join(dist, 'index.js')],
  write: false,
  metafile: true,
  outdir: out,
});
const names = Object.values(esm.metafile.outputs).find((o) => o.entryPoint)?.exports ?? [];
if (names.length === 0) throw new Error('bundle: the library exports nothing');
// import.meta.url has no meaning in CommonJS: each use reads the library file's own URL instead.
await build({
  ...common,
  format: 'cjs',
  entryPoints: [join(dist, 'index.js')],
  outfile: join(out, 'library.cjs'),
  define: { 'import.meta.url': '__libraryUrl' },
  banner: { js: 'var __libraryUrl = require("node:url").pathToFileURL(__filename).href;' },
});
writeFileSync(
  join(out, 'index.js'),
  `// Made by scripts/bundle.mjs: library.cjs compiled through V8's code cache (library.cache), its names re-exported.
${LOADER_IMPORTS}
${compileLibrary.toString()}
const library = compileLibrary(
  { readFileSync, createRequire, fileURLToPath, Script },
  new URL('./library.cjs', import.meta.url),
  new URL('./library.cache', import.meta.url),
);
export const { ${names.join(', ')} } = library.exports;
`,
);
// The cache: a fresh process like a user's, with no flags of ours (V8 refuses a cache made under other flags).
const train = spawnSync(process.execPath, [join(root, 'scripts', 'code-cache-train.mjs'), out], {
  stdio: ['ignore', 'inherit', 'inherit'],
  env: { ...process.env, NODE_OPTIONS: '' },
  timeout: 60_000,
});
if (train.status !== 0) console.warn(`bundle: no code cache (training exited ${train.status ?? train.signal})`);

await build({
  ...common,
  entryPoints: [join(dist, 'cli', 'main.js')],
  outdir: out,
  splitting: true,
  entryNames: '[name]',
  chunkNames: 'chunk-[hash]',
});
