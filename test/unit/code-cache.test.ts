/**
 * The package's import and the command line compile through V8's code cache (scripts/bundle.mjs,
 * scripts/code-cache.mjs): a fresh `node` takes each cache the build made — the library's as a plain `node` imports
 * it, the commands' under the V8 flags bin/originlink starts `serve` with, the one-shot commands' (fetch, probe,
 * info) under none, as the launcher starts them — and each holds a training run's
 * request path, not only its import. A cache V8 refuses (another Node, other flags) is only slower, so nothing else
 * would notice it stopped fitting.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commandArgv } from '../../bench/lib/host.mjs';
import { LAZY_BUILTINS } from '../../scripts/lazy-builtins.mjs';
import { buildIfStale, ROOT } from '../helpers/build.js';

const BUNDLE = join(ROOT, 'dist', 'bundle');
/** The node flags bin/originlink starts a one-shot command with, as the benches take them (bench/lib/host.mjs). */
const COMMAND_FLAGS = (commandArgv(join(ROOT, 'dist')) as string[]).slice(1, -1);
/** The V8 flags it starts `serve` and `demo` with (bin/service-node-flags without node's own). */
const SERVICE_V8_FLAGS = readFileSync(join(ROOT, 'bin', 'service-node-flags'), 'utf8')
  .split('\n')
  .filter((f) => f !== '' && !f.startsWith('--use-largepages'));

function fresh(flags: string[], script: string): string {
  return execFileSync(process.execPath, [...flags, '--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '' },
  }).trim();
}

/** A module's text that loads dist/bundle/NAME.cjs as the stubs do (scripts/code-cache.mjs); `loaded` its result. */
function loadCached(name: string): string {
  return `import { readFileSync, renameSync, writeFileSync } from 'node:fs';
      import { createRequire } from 'node:module';
      import { fileURLToPath, pathToFileURL } from 'node:url';
      import { Script } from 'node:vm';
      const { compileCached } = await import(${JSON.stringify(join(ROOT, 'scripts', 'code-cache.mjs'))});
      const io = { readFileSync, renameSync, writeFileSync, createRequire, fileURLToPath, Script, env: {} };
      const loaded = compileCached(io, pathToFileURL(${JSON.stringify(join(BUNDLE, `${name}.cjs`))}));`;
}

/** Whether a fresh node with `flags` takes the cache of dist/bundle/NAME.cjs. */
function takes(name: string, flags: string[]): boolean {
  return JSON.parse(fresh(flags, `${loadCached(name)}\n      console.log(JSON.stringify(loaded.cached));`));
}

describe('the bundles through the code cache', () => {
  buildIfStale();

  it("a fresh node takes the library cache, and the commands cache under the service's V8 flags", () => {
    expect(takes('library', [])).toBe(true);
    expect(SERVICE_V8_FLAGS.length).toBeGreaterThan(0);
    expect(takes('commands', SERVICE_V8_FLAGS)).toBe(true);
    // V8 checks its flags: the commands cache under plain node is refused (compiled as usual).
    expect(takes('commands', [])).toBe(false);
    // The imports alone compile ~220 KB of bytecode each (a cache made by an import into an empty directory); the
    // training runs' requests are what a first request needs.
    expect(statSync(join(BUNDLE, 'library.cache')).size).toBeGreaterThan(400_000);
    expect(statSync(join(BUNDLE, 'commands.cache')).size).toBeGreaterThan(800_000);
  });

  it('the one-shot commands run from a file of their own, without the service, its cache made by fetches', () => {
    // Started without flags: V8 takes node's own cache of its built-ins only then (bin/originlink).
    expect(COMMAND_FLAGS).toEqual([]);
    expect(takes('client', COMMAND_FLAGS)).toBe(true);
    expect(takes('client', SERVICE_V8_FLAGS)).toBe(false);
    const source = readFileSync(join(BUNDLE, 'client.cjs'), 'latin1');
    const all = readFileSync(join(BUNDLE, 'commands.cjs'), 'latin1');
    expect(all).toContain('function runServe(');
    expect(source).not.toContain('function runServe(');
    expect(source).toContain('function runFetch(');
    expect(source.length).toBeLessThan(0.6 * all.length);
    // More than its import alone would compile, well under what the demo run made (the service, both sides).
    const client = statSync(join(BUNDLE, 'client.cache')).size;
    expect(client).toBeGreaterThan(400_000);
    expect(client).toBeLessThan(0.75 * statSync(join(BUNDLE, 'commands.cache')).size);
  });

  it('the import loads none of the built-ins only a request needs (scripts/lazy-builtins.mjs)', () => {
    const loaded: string[] = JSON.parse(
      fresh(
        [],
        `const before = new Set(process.moduleLoadList);
        await import(${JSON.stringify(join(BUNDLE, 'index.js'))});
        console.log(JSON.stringify(process.moduleLoadList.filter((m) => !before.has(m))));`,
      ),
    );
    expect(loaded.length).toBeGreaterThan(0);
    for (const id of LAZY_BUILTINS) expect(loaded).not.toContain(`NativeModule ${id.slice('node:'.length)}`);
    // The stub takes its built-ins through process.getBuiltinModule: an ES module import of one costs a facade.
    expect(readFileSync(join(BUNDLE, 'index.js'), 'utf8')).not.toMatch(/^\s*import\b/m);
  });

  it("the command tables require none of http, https, zlib: prom-client's Pushgateway is left out", () => {
    for (const name of ['commands', 'client']) {
      const source = readFileSync(join(BUNDLE, `${name}.cjs`), 'latin1');
      expect(source).not.toMatch(/require\("(node:)?(http|https|zlib)"\)/);
    }
    // prom-client itself is in (the service's metrics), its Pushgateway replaced by a class that says why.
    const commands = readFileSync(join(BUNDLE, 'commands.cjs'), 'latin1');
    expect(commands).toContain('prom-client Pushgateway is not part of originlink');
    expect(commands).toMatch(/node_modules\/prom-client\/lib\/registry\.js/);
  });

  it('ioredis runs from the package one-file copy (dist/bundle/ioredis.cjs) with its cache, not from node_modules', () => {
    expect(takes('ioredis', [])).toBe(true);
    const fromNodeModules: string[] = JSON.parse(
      fresh(
        [],
        `const { openStores } = await import(${JSON.stringify(join(BUNDLE, 'index.js'))});
        const stores = openStores({ sessionStore: 'redis://127.0.0.1:1/0' });
        await stores.close();
        const { createRequire } = await import('node:module');
        const loaded = Object.keys(createRequire(process.cwd() + '/').cache);
        console.log(JSON.stringify(loaded.filter((f) => f.includes('node_modules'))));`,
      ),
    );
    expect(fromNodeModules).toEqual([]);
  });

  it('the package exports what src/index.ts does', () => {
    const names = (file: string): string[] =>
      JSON.parse(fresh([], `console.log(JSON.stringify(Object.keys(await import(${JSON.stringify(file)})).sort()))`));
    const bundled = names(join(BUNDLE, 'index.js'));
    expect(bundled).toEqual(names(join(ROOT, 'dist', 'index.js')));
    expect(bundled).toContain('Agent');
  });

  it('under --enable-source-maps a stack trace names the source line, from the package and from a command', () => {
    const stack = fresh(
      ['--enable-source-maps'],
      `const { Agent } = await import(${JSON.stringify(join(BUNDLE, 'index.js'))});
      try { new Agent({ protocol: 'bogus' }); } catch (e) { console.log(e.stack); }`,
    );
    expect(stack).toMatch(/at configError \(.*src\/pool\/options\.ts:\d+:\d+\)/);
    // Without the flag, through the cache: the bundle's own positions.
    expect(
      fresh(
        [],
        `try { new (await import(${JSON.stringify(join(BUNDLE, 'index.js'))})).Agent({ protocol: 'bogus' }); } catch (e) { console.log(e.stack); }`,
      ),
    ).toMatch(/at configError \(.*library\.cjs:\d+:\d+\)/);
    // The commands bundle, loaded as main.cjs loads it (compileCached): Node holds its map (what it maps a trace
    // through).
    const mapped = fresh(
      ['--enable-source-maps'],
      `import { findSourceMap } from 'node:module';
      ${loadCached('commands')}
      const map = findSourceMap(${JSON.stringify(join(BUNDLE, 'commands.cjs'))});
      console.log(JSON.stringify(map?.payload.sources.filter((s) => s.includes('src/cli/')).length ?? 0));`,
    );
    expect(Number(mapped)).toBeGreaterThan(5);
  });
});
