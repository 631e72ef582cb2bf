/**
 * The tree keeps one format and passes the linter (biome.jsonc, Biome pinned in package.json): `biome ci` over it
 * exits 0, and the same check fails on a file with a violation planted in it (a check that cannot fail would
 * prove nothing).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const BIOME = join(ROOT, 'node_modules', '.bin', 'biome');

function biome(args: string[], cwd: string): { code: number | null; out: string } {
  const r = spawnSync(BIOME, args, { cwd, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('format and lint (Biome)', () => {
  it('the tree passes `biome ci`', () => {
    const r = biome(['ci', '--max-diagnostics=20', '.'], ROOT);
    expect(r.code, r.out.slice(-3000)).toBe(0);
  });

  it('the check fails on a planted violation, of format and of lint alike', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ol-format-'));
    try {
      copyFileSync(join(ROOT, 'biome.jsonc'), join(dir, 'biome.jsonc'));
      mkdirSync(join(dir, 'src'));
      writeFileSync(join(dir, 'src', 'ok.ts'), "export const ok = 'fine';\n");
      expect(biome(['ci', '--vcs-enabled=false', '.'], dir).code).toBe(0);
      writeFileSync(join(dir, 'src', 'spaced.ts'), 'export const x   =  1\n');
      const format = biome(['ci', '--vcs-enabled=false', '.'], dir);
      expect(format.code).not.toBe(0);
      expect(format.out).toMatch(/spaced\.ts/);
      rmSync(join(dir, 'src', 'spaced.ts'));
      writeFileSync(join(dir, 'src', 'unused.ts'), "import { join } from 'node:path';\n\nexport const y = 1;\n");
      const lint = biome(['ci', '--vcs-enabled=false', '.'], dir);
      expect(lint.code).not.toBe(0);
      expect(lint.out).toMatch(/noUnusedImports/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
