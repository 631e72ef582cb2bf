#!/usr/bin/env node
// The package as it is loaded (`npm run build`, after tsc): the library in one file (the package's `import`), and
// dist/bundle/main.cjs, the command line (bin/originlink), which loads the command table (every command, one file)
// only for a command (`--version` and `--help` load none of it): a fresh process otherwise spends much of its import
// in Node's module loader resolving, reading and linking ~100 files (what one file saves: bench/RESULTS.md `startup`).
//
// Both go one step further: V8 compiles each function the first time it runs, and Node 20 keeps no compile
// cache between processes (22's `module.enableCompileCache` does). The library (dist/bundle/library.cjs), the
// command table with every command (dist/bundle/commands.cjs, each command's module initialised when it runs) and the
// one-shot commands' table (dist/bundle/client.cjs: fetch, probe, info — without the service) are CommonJS files that
// a stub (the ES module index.js; for the commands, a module inside main.cjs) compiles through `vm.Script` with V8's
// code cache beside them (library.cache, commands.cache, client.cache; the loader: scripts/code-cache.mjs). Each cache
// is made here by a run of the real thing, so it holds the bytecode of a first request's path as well as the
// import's: the library's by scripts/code-cache-train.mjs (requests over h1, h2 and h3 to the demo origins); the
// commands' by `originlink demo --selftest --random-ports` (the service and its Agent, every protocol both sides); the
// one-shot commands' by `scripts/code-cache-train.mjs client` (`fetch` over h1, h2 and h3). Each is made under the
// node flags its file runs under (the service's: bin/service-node-flags; the others': none, as bin/originlink starts
// the one-shot commands and a plain `node` imports the package; V8 refuses a cache made under other V8 flags, and
// compiles as usual). The commands' file takes in the npm packages the service imports (yaml, pino, prom-client and
// theirs, which Node's loader would otherwise resolve at `serve`'s start): they stay dependencies, installed with
// their licences.
// What we load by name when used stays outside: ioredis in a file of its own with its own cache (PREBUILT below),
// and the OpenTelemetry API for tracing from node_modules (prom-client's copy inside shares its state: the API keeps it
// in one global per version).
//
// Everything stays two directories under the package root, as every dist/<dir>/<module>.js is: the paths modules
// take from import.meta.url (../../native, ../../package.json, ../../docs) hold unchanged. tsc's dist/ modules stay
// beside it: the benches run a build's dist/cli/main.js (older builds have no bundle).
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { compileCached, LOADER_IMPORTS, LOADER_IO, WRAPPER_HEAD, WRAPPER_TAIL } from './code-cache.mjs';
import { lazyBuiltins } from './lazy-builtins.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const out = join(dist, 'bundle');
/** The commands that run the service (bin/originlink starts them with bin/service-node-flags). */
const SERVICE_COMMANDS = ['serve', 'demo'];
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

/**
 * Parts of the npm packages a bundle takes in that no command uses and that would load Node built-ins at every start:
 * prom-client's Pushgateway (its index requires it; it requires `http`, `https` — with `tls` — and `zlib`, at every
 * `serve` start, whose V8 flag costs every built-in node's code cache: bench/RESULTS.md `startup`). In its place, a
 * class that says so if anyone constructs it.
 */
const unusedPackageParts = {
  name: 'originlink-unused-package-parts',
  setup(b) {
    b.onResolve({ filter: /^\.\/lib\/pushgateway$/ }, (a) =>
      /[\\/]prom-client[\\/]index\.js$/.test(a.importer)
        ? { path: 'prom-client/lib/pushgateway', namespace: 'originlink-unused' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'originlink-unused' }, () => ({
      contents:
        "module.exports = class Pushgateway { constructor() { throw new Error('prom-client Pushgateway is not part of originlink (scripts/bundle.mjs)'); } };",
      loader: 'js',
    }));
  },
};

/**
 * Two of ioredis's dependencies create the process's stderr stream when ioredis loads, to decide on colours for output
 * they seldom or never write: `debug` asks `tty.isatty(process.stderr.fd)` for every logger ioredis makes, and
 * redis-errors requires `node:assert`, whose load does the same (Node's util/colors). A fresh process with a Redis
 * store paid both (`tty`, the stream, `assert` and its modules: bench/RESULTS.md `startup`). In the copy of ioredis
 * (dist/bundle/ioredis.cjs, PREBUILT below): `debug` is the package itself when DEBUG names something at start (the
 * only way to turn on the copy's loggers: it reads DEBUG then, and no other code reaches the copy), else loggers that
 * are off; `assert` is `node:assert` loaded at its first call or property read.
 */
const quietLoad = {
  name: 'originlink-quiet-load',
  setup(b) {
    b.onResolve({ filter: /^(debug|assert)$/ }, (a) =>
      a.path === 'debug' || /[\\/]redis-errors[\\/]/.test(a.importer)
        ? { path: a.path, namespace: 'originlink-quiet' }
        : undefined,
    );
    b.onLoad({ filter: /^debug$/, namespace: 'originlink-quiet' }, () => ({
      contents: `if (process.env.DEBUG) module.exports = require('debug/src/index.js');
else {
  const create = (namespace) => {
    const off = () => {};
    Object.assign(off, { namespace, enabled: false, useColors: false, log: off, destroy: () => false });
    off.extend = (sub, delimiter = ':') => create(namespace + delimiter + sub);
    return off;
  };
  module.exports = Object.assign(create, { default: create, enable: () => {}, disable: () => '', enabled: () => false });
}`,
      loader: 'js',
      resolveDir: root,
    }));
    b.onLoad({ filter: /^assert$/, namespace: 'originlink-quiet' }, () => ({
      contents: `let real = null;
const load = () => (real ??= require('node:assert'));
module.exports = new Proxy(function assert() {}, {
  apply: (_target, self, args) => Reflect.apply(load(), self, args),
  get: (_target, name) => load()[name],
});`,
      loader: 'js',
    }));
  },
};

/**
 * `entry` as out/<cjs>.cjs, its export names returned. `packages: 'bundle'` takes the npm packages it imports into
 * the file (and so into the cache) instead of leaving them to Node's loader, less their unused parts above.
 */
async function cjsBundle(entry, cjs, packages = 'external') {
  const esm = await build({ ...common, entryPoints: [entry], write: false, metafile: true, outdir: out });
  const names = Object.values(esm.metafile.outputs).find((o) => o.entryPoint)?.exports ?? [];
  if (names.length === 0) throw new Error(`bundle: ${entry} exports nothing`);
  // import.meta.url has no meaning in CommonJS: each use reads the file's own URL instead. Without comments and
  // indentation (names kept; its source map beside it) it is ASCII (esbuild escapes the rest), which the loader
  // reads without decoding.
  await build({
    ...common,
    format: 'cjs',
    packages,
    minifyWhitespace: true,
    entryPoints: [entry],
    outfile: join(out, `${cjs}.cjs`),
    define: { 'import.meta.url': '__bundleUrl' },
    banner: { js: 'var __bundleUrl = require("node:url").pathToFileURL(__filename).href;' },
    plugins: packages === 'bundle' ? [unusedPackageParts] : [],
  });
  // Node's built-ins that a request needs and an import does not (tls, crypto…) load at their first use.
  const file = join(out, `${cjs}.cjs`);
  writeLoaded(file, lazyBuiltins(readFileSync(file, 'latin1')));
  return names;
}

/**
 * Writes `source` (a CommonJS file by esbuild) as compileCached loads it: inside the module wrapper (WRAPPER_HEAD, a
 * line of its own, and WRAPPER_TAIL), its source map a line down to match.
 */
function writeLoaded(file, source) {
  if (/[^\x00-\x7f]/.test(source)) throw new Error(`bundle: ${file} is not ASCII`);
  writeFileSync(file, `${WRAPPER_HEAD}${source}${WRAPPER_TAIL}`, 'latin1');
  const map = JSON.parse(readFileSync(`${file}.map`, 'utf8'));
  map.mappings = `;${map.mappings}`;
  writeFileSync(`${file}.map`, JSON.stringify(map));
}

/**
 * A stub module's text: compiles the file at `fileExpr` (an expression: a path relative to the stub) and exports
 * `names`.
 */
const stubText = (names, what, fileExpr) =>
  `// Made by scripts/bundle.mjs: ${what} compiled through V8's code cache beside it, its names re-exported.
${LOADER_IMPORTS}
${compileCached.toString()}
${PREBUILT_HOOK}
const bundle = compileCached(${LOADER_IO}, new URL(${fileExpr}, import.meta.url));
export const { ${names.join(', ')} } = bundle.exports;
`;

/**
 * The npm packages we load by name when used (src/store/redis-link.ts: ioredis) are each bundled into a file of their
 * own beside the library, PREBUILT.cjs, compiled through its code cache like the library: a fresh process otherwise
 * resolves and compiles their ~100 files at the first use (bench/RESULTS.md `fleet`). The stubs offer the loader in a
 * map under a registered symbol, `Symbol.for('originlink.prebuilt')`, keyed by this directory's URL (two copies of the
 * package in one process each find their own): `(name) => exports`, or null without such a file. Where there is no
 * loader (tsc's dist/ modules) src requires the package as usual.
 */
const PREBUILT = ['ioredis'];
/** What a prebuilt package loads late (its `var x_1=require("…")`, scripts/lazy-builtins.mjs). */
const PREBUILT_LAZY = ['tls', 'crypto'];
const PREBUILT_HOOK = `(globalThis[Symbol.for('originlink.prebuilt')] ??= new Map()).set(new URL('./', import.meta.url).href, (name) => {
  try {
    return compileCached(${LOADER_IO}, new URL(\`./\${name}.cjs\`, import.meta.url)).exports;
  } catch (e) {
    if (e?.code === 'ENOENT') return null;
    throw e;
  }
});`;

const libraryNames = await cjsBundle(join(dist, 'index.js'), 'library');
for (const name of PREBUILT) {
  const file = join(out, `${name}.cjs`);
  await build({
    ...common,
    format: 'cjs',
    packages: 'bundle',
    minifyWhitespace: true,
    entryPoints: [createRequire(join(root, 'package.json')).resolve(name)],
    outfile: file,
    plugins: [quietLoad],
  });
  // Its built-ins that a Redis connection without TLS does not need load at their first use (`dns`: read at its start).
  writeLoaded(file, lazyBuiltins(readFileSync(file, 'latin1'), PREBUILT_LAZY, true));
}
writeFileSync(join(out, 'index.js'), stubText(libraryNames, 'library.cjs', "'./library.cjs'"));
// The command line is CommonJS (main.cjs): an ES module entry costs a fresh process Node's ES module loader (~10 ms
// of `--version` here: the loader's own modules and fs/promises with readline behind it). The command table's stub
// is a module inside it, evaluated at a command's first use (a dynamic import esbuild keeps lazy), not a file; it
// loads commands.cjs for `serve` and `demo`, client.cjs for the rest (about half the source: V8 reads the
// whole source and deserializes a whole cache before the first line runs; bench/RESULTS.md `startup`).
const commandNames = await cjsBundle(join(dist, 'cli', 'commands.js'), 'commands', 'bundle');
const clientNames = await cjsBundle(join(dist, 'cli', 'one-shot.js'), 'client', 'bundle');
if (commandNames.join() !== clientNames.join())
  throw new Error(`bundle: the two command tables export ${commandNames} and ${clientNames}`);
const commandsStub = stubText(
  commandNames,
  'commands.cjs or client.cjs',
  `${JSON.stringify(SERVICE_COMMANDS)}.includes(process.argv[2]) ? './commands.cjs' : './client.cjs'`,
);
await build({
  ...common,
  format: 'cjs',
  entryPoints: [join(dist, 'cli', 'main.js')],
  outfile: join(out, 'main.cjs'),
  define: { 'import.meta.url': '__bundleUrl' },
  banner: { js: 'var __bundleUrl = require("node:url").pathToFileURL(__filename).href;' },
  plugins: [
    {
      name: 'commands',
      setup(b) {
        b.onResolve({ filter: /^\.\/commands\.js$/ }, () => ({ path: 'commands', namespace: 'stub' }));
        b.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({
          contents: commandsStub,
          loader: 'js',
          resolveDir: out,
        }));
      },
    },
  ],
});
if (/\bimport\(/.test(readFileSync(join(out, 'main.cjs'), 'latin1')))
  throw new Error('bundle: main.cjs imports an ES module (Node would start its ES module loader for it)');

// The training runs: fresh processes like a user's, each bounded in time; a run that fails leaves its bundle without
// a cache (slower to start, nothing else), and says so.
const serviceFlags = readFileSync(join(root, 'bin', 'service-node-flags'), 'utf8')
  .split('\n')
  .filter(Boolean);
const runs = [
  ['library', [join(root, 'scripts', 'code-cache-train.mjs'), 'library', join(out, 'index.js')]],
  ['commands', [...serviceFlags, join(out, 'main.cjs'), 'demo', '--selftest', '--random-ports']],
  ['client', [join(root, 'scripts', 'code-cache-train.mjs'), 'client', join(out, 'client.cjs')]],
];
// The prebuilt packages' caches (ioredis.cache): a run of the library's stores, its caches written elsewhere and only
// theirs kept — the library's cache stays one of requests without stores (each function in it costs every import).
const prebuiltOut = mkdtempSync(join(tmpdir(), 'originlink-cache-'));
runs.push(['ioredis', [join(root, 'scripts', 'code-cache-train.mjs'), 'redis', join(out, 'index.js')], prebuiltOut]);
for (const [name, argv, cacheOut = out] of runs) {
  const r = spawnSync(process.execPath, argv, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '', ORIGINLINK_CODE_CACHE_OUT: cacheOut },
    timeout: 60_000,
  });
  const made = join(cacheOut, `${name}.cache`);
  const ok = r.status === 0 && !r.error && existsSync(made);
  if (ok && cacheOut !== out) copyFileSync(made, join(out, `${name}.cache`));
  if (!ok) {
    rmSync(join(out, `${name}.cache`), { force: true });
    const why = r.error?.message ?? (r.status === 0 ? `wrote no ${name}.cache` : `exited ${r.status ?? r.signal}`);
    console.warn(`bundle: ${name}.cjs has no code cache: its training run ${why}`);
    console.warn(String(r.stderr).slice(0, 2000));
  }
}
rmSync(prebuiltOut, { recursive: true, force: true });
