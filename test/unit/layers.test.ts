/**
 * Dependencies point down only (docs/architecture.md "Layers"): a module may
 * import its own folder, the ground (http/, util/, errors.ts) and folders of
 * a lower rank — never a folder of its own rank (client ↔ server, net ↔ wire,
 * h1 ↔ h2 ↔ h3, codec ↔ store). Rank 2 (the sans-IO protocol state machines)
 * touches no socket, resolver or timer: `now` and the bytes come in as
 * arguments. Only net/ imports node:dns (one resolver).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SRC = join(ROOT, 'src');

/** The ranks of docs/architecture.md. `index` is the package entry (a file at the top of src/). */
export const RANK: Readonly<Record<string, number>> = {
  http: 0,
  util: 0,
  errors: 0,
  codec: 1,
  store: 1,
  h1: 2,
  h2: 2,
  h3: 2,
  quic: 3,
  net: 4,
  wire: 4,
  client: 5,
  server: 5,
  connect: 6,
  pool: 7,
  probe: 8,
  group: 8,
  agent: 9,
  service: 10,
  cli: 11,
  index: 12,
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

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

/** Every rule broken by one file's text, as if it stood at `file` (a path under src/). */
export function violations(file: string, text: string): string[] {
  const bad: string[] = [];
  const from = layerOf(file);
  const rf = RANK[from];
  const name = relative(SRC, file);
  if (rf === undefined) return [`${name}: unknown layer ${from}`];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2];
    if (!spec) continue;
    if (!spec.startsWith('.')) {
      // Rank 2 is sans-IO: no sockets, no name resolution.
      if (rf === 2 && /^(node:)?(net|tls|dgram|dns|dns\/promises|http|http2|https)$/.test(spec))
        bad.push(`${name} (${from}, sans-IO) imports ${spec}`);
      // One resolver: every name lookup goes through net/resolver.ts.
      else if (from !== 'net' && /^(node:)?dns(\/promises)?$/.test(spec))
        bad.push(`${name} (${from}) imports ${spec}: names are resolved by net/ only`);
      continue;
    }
    const target = normalize(join(dirname(file), spec));
    const to = layerOf(target);
    if (to === from) continue;
    const rt = RANK[to];
    if (rt === undefined) {
      bad.push(`${name}: imports unknown layer ${to}`);
      continue;
    }
    // Ground modules may use each other; any other layer only strictly lower ranks.
    if (rt > rf) bad.push(`${name} (${from}, rank ${rf}) imports ${relative(SRC, target)} (${to}, rank ${rt}): upward`);
    else if (rt === rf && rf !== 0)
      bad.push(`${name} (${from}) imports ${relative(SRC, target)} (${to}): a sibling of the same rank`);
  }
  // Rank 2 reads no clock of its own and arms no timer (a timer is the driver's: a callback it is given).
  if (rf === 2) {
    const code = text.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, '');
    const t = /\b(setTimeout|setInterval|setImmediate|Date\.now|performance\.now)\s*\(/.exec(code);
    if (t) bad.push(`${name} (${from}, sans-IO) calls ${t[1]}`);
  }
  return bad;
}

export function allViolations(): string[] {
  return files(SRC).flatMap((f) => violations(f, readFileSync(f, 'utf8')));
}

describe('layering', () => {
  it('no module imports a higher rank or a sibling of its own rank; rank 2 is sans-IO', () => {
    expect(allViolations()).toEqual([]);
  });

  it('every folder under src/ has a rank', () => {
    const tops = readdirSync(SRC).map((n) => n.replace(/\.ts$/, ''));
    expect(tops.filter((t) => RANK[t] === undefined)).toEqual([]);
  });

  it('flags planted upward, sibling and sans-IO breaks (the check can fail)', () => {
    const at = (p: string): string => join(SRC, p);
    expect(violations(at('server/h1.ts'), "import { Exchange } from '../client/exchange.js';")).toEqual([
      'server/h1.ts (server) imports client/exchange.js (client): a sibling of the same rank',
    ]);
    expect(violations(at('net/tcp.ts'), "import { wire } from '../wire/h2-wire.js';")[0]).toMatch(/sibling/);
    expect(violations(at('pool/pool.ts'), "import type { Agent } from '../agent/agent.js';")[0]).toMatch(/upward/);
    expect(violations(at('store/redis-link.ts'), "const m = await import('../net/proxy.js');")[0]).toMatch(/upward/);
    expect(violations(at('h2/connection.ts'), "import net from 'node:net';")[0]).toMatch(/sans-IO\) imports node:net/);
    expect(violations(at('h3/connection.ts'), 'const t = setTimeout(f, 5);')[0]).toMatch(/sans-IO\) calls setTimeout/);
    expect(violations(at('probe/coalesce.ts'), "import { lookup } from 'node:dns/promises';")[0]).toMatch(
      /resolved by net\/ only/,
    );
    expect(violations(at('net/resolver.ts'), "import { Resolver } from 'node:dns/promises';")).toEqual([]);
    // A comment naming a timer is not a timer; the ground may use itself.
    expect(violations(at('h1/parser.ts'), '// no setTimeout( here')).toEqual([]);
    expect(violations(at('util/lru.ts'), "import { x } from '../http/types.js';")).toEqual([]);
  });

  it('the document it cites exists and lists the same ranks', () => {
    const doc = join(ROOT, 'docs', 'architecture.md');
    expect(existsSync(doc)).toBe(true);
    const text = readFileSync(doc, 'utf8');
    for (const [layer, rank] of Object.entries(RANK)) {
      if (layer === 'errors' || layer === 'index') continue;
      expect(text, `docs/architecture.md names ${layer}/ at rank ${rank}`).toMatch(
        new RegExp(`\\|\\s*${rank}\\s*\\|[^\\n]*\`${layer}/\``),
      );
    }
  });
});
