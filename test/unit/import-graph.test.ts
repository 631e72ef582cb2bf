/**
 * What the package's import evaluates: the modules src/index.ts reaches by static value imports (a dynamic
 * `import()` is evaluated at its first use; `import type` and inline `type` names are erased). Each of those
 * modules' top level runs at every import (scripts/bundle.mjs puts them all in one file), so a constant taken from a
 * protocol's module makes every import pay that module and all it imports (bench/RESULTS.md `startup`). HTTP/3 —
 * QUIC, QPACK and the h3 framing — loads with the first h3 connection (src/connect/connect.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const SRC = join(ROOT, 'src');

/** The relative modules a file imports for their values (type-only imports and names left out). */
export function valueImports(text: string): string[] {
  const out: string[] = [];
  const stmt =
    /(?:^|\n)\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s+['"](\.[^'"]+)['"]|(?:^|\n)\s*import\s+['"](\.[^'"]+)['"]/g;
  for (const m of text.matchAll(stmt)) {
    if (m[5] !== undefined) {
      out.push(m[5]);
      continue;
    }
    if (m[2] !== undefined) continue;
    const clause = m[3]!;
    const braces = /\{([^}]*)\}/.exec(clause);
    // tsc (no verbatimModuleSyntax in tsconfig.json) erases an import whose names are all types: `import { type A }`.
    const outside = clause
      .replace(/\{[^}]*\}/, '')
      .replace(/,/g, '')
      .trim();
    const named = braces
      ? braces[1]!
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== '' && !s.startsWith('type '))
      : [];
    if (outside !== '' || named.length > 0 || (braces === null && m[1] === 'export')) out.push(m[4]!);
  }
  return out;
}

/** Every module under src/ that `entry` reaches by static value imports, as paths relative to src/. */
function staticGraph(entry: string): Set<string> {
  const seen = new Set<string>();
  const todo = [entry];
  while (todo.length > 0) {
    const file = todo.pop()!;
    const rel = relative(SRC, file);
    if (seen.has(rel)) continue;
    seen.add(rel);
    for (const spec of valueImports(readFileSync(file, 'utf8'))) {
      const ts = resolve(dirname(file), spec).replace(/\.js$/, '.ts');
      if (existsSync(ts)) todo.push(ts);
    }
  }
  return seen;
}

describe("the package's import", () => {
  it('reads value imports and leaves type-only ones out', () => {
    expect(valueImports("import { a, type B } from './x.js';")).toEqual(['./x.js']);
    expect(valueImports("import { type B } from './x.js';\nimport type { C } from './y.js';")).toEqual([]);
    expect(valueImports("export * from './z.js';\nexport type { D } from './w.js';")).toEqual(['./z.js']);
    expect(valueImports("import D, { type E } from './v.js';\nimport './side.js';")).toEqual(['./v.js', './side.js']);
  });

  it('evaluates none of HTTP/3 but two small QUIC modules: no QPACK, no h3 framing, no QUIC connection', () => {
    const graph = [...staticGraph(join(SRC, 'index.ts'))];
    // The graph is the library: the Agent and the h1 path are in it.
    expect(graph).toContain('agent/agent.ts');
    expect(graph).toContain('client/h1.ts');
    // Two small QUIC modules are the import's on purpose: the names of the congestion controllers options are checked
    // against, and the binding's loader (which loads nothing until it is called).
    const h3 = graph.filter((m) => /^(quic|h3)\/|^codec\/qpack\/|^connect\/h3\.ts$|^client\/h3/.test(m));
    expect(h3.sort()).toEqual(['quic/cc.ts', 'quic/quiche.ts']);
  });
});
