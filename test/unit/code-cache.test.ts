/**
 * The package's import compiles the library through V8's code cache (scripts/bundle.mjs, scripts/code-cache.mjs):
 * a fresh `node` takes the cache the build made, with the training requests' functions in it, and the module
 * exports what the library's own index does. A cache V8 refuses (another Node, other flags) is only slower, so
 * nothing else would notice it stopped fitting.
 */
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildIfStale, ROOT } from '../helpers/build.js';

const BUNDLE = join(ROOT, 'dist', 'bundle');

function fresh(script: string): string {
  return execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '' },
  }).trim();
}

describe('the library through the code cache', () => {
  buildIfStale();

  it('a fresh process takes the cache the build made, and it holds more than the import', () => {
    const out = JSON.parse(
      fresh(`import { readFileSync } from 'node:fs';
        import { createRequire } from 'node:module';
        import { fileURLToPath, pathToFileURL } from 'node:url';
        import { Script } from 'node:vm';
        const { compileLibrary } = await import(${JSON.stringify(join(ROOT, 'scripts', 'code-cache.mjs'))});
        const dir = ${JSON.stringify(BUNDLE)};
        const l = compileLibrary({ readFileSync, createRequire, fileURLToPath, Script },
          pathToFileURL(dir + '/library.cjs'), pathToFileURL(dir + '/library.cache'));
        console.log(JSON.stringify({ cached: l.cached, agent: typeof l.exports.Agent }));`),
    );
    expect(out).toEqual({ cached: true, agent: 'function' });
    // The import alone compiles ~220 KB of bytecode; the training requests' path is what the first request needs.
    expect(statSync(join(BUNDLE, 'library.cache')).size).toBeGreaterThan(400_000);
  });

  it('the package exports what src/index.ts does', () => {
    const names = (file: string): string[] =>
      JSON.parse(fresh(`console.log(JSON.stringify(Object.keys(await import(${JSON.stringify(file)})).sort()))`));
    const bundled = names(join(BUNDLE, 'index.js'));
    expect(bundled).toEqual(names(join(ROOT, 'dist', 'index.js')));
    expect(bundled).toContain('Agent');
  });
});
