/**
 * Tests that run the CLI as a child process use dist/: rebuild it first when
 * any source is newer than the build (tsc rewrites every output, so one file's
 * time stands for the whole build).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '..', '..');
/** The CLI entry of the build, as bin/originlink runs it: the bundle (scripts/bundle.mjs). */
export const CLI = join(ROOT, 'dist', 'bundle', 'main.cjs');

function newest(dir: string): number {
  let m = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    m = Math.max(m, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return m;
}

export function buildIfStale(): void {
  let built = 0;
  try {
    built = statSync(CLI).mtimeMs;
  } catch {
    // not built yet
  }
  if (built >= newest(join(ROOT, 'src'))) return;
  try {
    execFileSync('npx', ['tsc', '-p', '.'], { cwd: ROOT, stdio: 'pipe' });
  } catch {
    // Type errors elsewhere still emit JS; the test then fails on what it runs.
  }
  try {
    execFileSync(process.execPath, [join(ROOT, 'scripts', 'bundle.mjs')], { cwd: ROOT, stdio: 'pipe' });
  } catch {
    // No bundle made: the test then fails on the stale or missing one it runs.
  }
}
