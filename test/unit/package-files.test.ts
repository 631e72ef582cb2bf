/**
 * Issue 45: `serve --help` pointed to docs/config.md, which the package did not ship ("files" in package.json).
 * Every docs/ page the README, the CLI's help and the docs themselves link to is in the tarball `npm pack` makes.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SERVE_USAGE } from '../../src/cli/serve.js';

const ROOT = join(import.meta.dirname, '..', '..');

describe('the package ships its docs', () => {
  it('npm pack holds every docs/ page, and the ones --help names are there', () => {
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 60_000,
    });
    const files = new Set((JSON.parse(out) as Array<{ files: Array<{ path: string }> }>)[0]?.files.map((f) => f.path));
    const docs = readdirSync(join(ROOT, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`);
    for (const d of docs) expect(files, d).toContain(d);
    expect(docs).toContain('docs/first-hour.md');
    for (const m of SERVE_USAGE.matchAll(/(\/\S+\/docs\/([\w-]+\.md))/g)) expect(files, m[1]).toContain(`docs/${m[2]}`);
    // The README's links into docs/ name pages that exist.
    for (const m of readFileSync(join(ROOT, 'README.md'), 'utf8').matchAll(/\]\((docs\/[\w-]+\.md)/g))
      expect(files, m[1]).toContain(m[1]);
  });
});
