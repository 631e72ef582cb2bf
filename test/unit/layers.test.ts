/**
 * Dependencies point down only (DESIGN.md "Layers"): a module may import its
 * own folder, the ground (http/, util/, errors.ts) and folders of a lower
 * layer. Same-rank siblings (h1, h2, h3) do not import each other.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');

const RANK: Record<string, number> = {
  http: 0, util: 0, errors: 0,
  codec: 1,
  h1: 2, h2: 2, h3: 2,
  quic: 3,
  transport: 4,
  pool: 5,
  probe: 6,
  agent: 7,
  service: 8,
  cli: 9,
  index: 10,
};

function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** The layer of a path under src/: its first folder, or the file's own name at the top. */
function layerOf(path: string): string {
  const top = relative(SRC, path).split(sep)[0] ?? '';
  return top.replace(/\.(ts|js)$/, '');
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;

export function upwardImports(): string[] {
  const bad: string[] = [];
  for (const f of files(SRC)) {
    const from = layerOf(f);
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2];
      if (!spec) continue;
      const target = normalize(join(dirname(f), spec));
      const to = layerOf(target);
      if (to === from) continue;
      const rf = RANK[from];
      const rt = RANK[to];
      if (rf === undefined || rt === undefined) {
        bad.push(`${relative(SRC, f)}: unknown layer ${rf === undefined ? from : to}`);
        continue;
      }
      // Ground modules may use each other; any other layer only strictly lower ranks.
      if (rt > rf || (rt === rf && rf !== 0)) bad.push(`${relative(SRC, f)} (${from}) imports ${relative(SRC, target)} (${to})`);
    }
  }
  return bad;
}

describe('layering', () => {
  it('no module imports a higher layer or a sibling protocol', () => {
    expect(upwardImports()).toEqual([]);
  });

  it('the check sees an upward import (it can fail)', () => {
    const probe = 'import { Agent } from "../agent/agent.js";';
    const m = [...`\n${probe}`.matchAll(IMPORT)];
    expect(m[0]?.[1]).toBe('../agent/agent.js');
    expect(RANK['agent']! > RANK['transport']!).toBe(true);
  });
});
