/**
 * The bench scripts load the product from a build (dist/ or a snapshot) by
 * path. A module that moves (the layout of issue 41 moved transport/* into
 * net/, wire/, client/, connect/…) leaves a bench script importing a path no
 * build has any more; a stale dist/ on the machine that moved it hides that,
 * a clean clone does not. Every literal build path a bench script names must
 * be a module in src/.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
/** The bundles scripts/bundle.mjs writes, by the module each is made from. */
const BUNDLED = new Map([
  ['bundle/index.js', 'index.js'],
  ['bundle/main.js', 'cli/main.js'],
]);

function scripts(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory() && e.name !== 'results' && e.name !== 'out') out.push(...scripts(p));
    else if (e.name.endsWith('.mjs')) out.push(p);
  }
  return out;
}

/** Paths inside a build a script names: dist('a/b.js'), join(DIST, 'a', 'b.js'), join(ROOT, 'dist', 'a/b.js'). */
export function buildPaths(text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/\bdist\('([^']+\.js)'\)/g)) found.push(m[1]!);
  const args = /\bjoin\((?:ROOT, 'dist'|DIST|distDir), ((?:'[^']+'(?:, )?)+)\)/g;
  for (const m of text.matchAll(args)) {
    const parts = [...m[1]!.matchAll(/'([^']+)'/g)].map((x) => x[1]!);
    const p = parts.join('/');
    if (p.endsWith('.js')) found.push(p);
  }
  return found;
}

describe('bench scripts name modules that exist', () => {
  it('finds the paths it is meant to find', () => {
    expect(
      buildPaths(`await dist('agent/agent.js'); join(DIST, 'client', 'h3.js'); join(ROOT, 'dist', 'cli', 'main.js')`),
    ).toEqual(['agent/agent.js', 'client/h3.js', 'cli/main.js']);
  });

  it('every build path in bench/ is a module in src/', () => {
    const missing: string[] = [];
    let seen = 0;
    for (const file of scripts(join(ROOT, 'bench'))) {
      for (const p of buildPaths(readFileSync(file, 'utf8'))) {
        seen++;
        // dist/bundle/ holds what scripts/bundle.mjs makes of two entries: the package (index) and the command (main).
        const module = BUNDLED.get(p) ?? p;
        if (!existsSync(join(ROOT, 'src', module.replace(/\.js$/, '.ts'))))
          missing.push(`${relative(ROOT, file)}: ${p}`);
      }
    }
    expect(seen).toBeGreaterThan(10);
    expect(missing).toEqual([]);
  });
});
