/**
 * The Markdown in the repository links to files and headings that exist: the README, docs/, native-notes/, bench/'s
 * README, RESULTS.md and its history. RESULTS.md's summary links each goal to its section by the heading's anchor
 * (GitHub's rule: lower case, punctuation dropped, spaces to hyphens); a renamed heading or a moved result file left a
 * dead link there before this test.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

function markdownFiles(): string[] {
  const inDir = (d: string) =>
    readdirSync(join(ROOT, d))
      .filter((f) => f.endsWith('.md'))
      .map((f) => join(ROOT, d, f));
  return [
    join(ROOT, 'README.md'),
    ...inDir('docs'),
    ...inDir('native-notes'),
    ...inDir('bench'),
    ...inDir(join('bench', 'history')),
  ];
}

/** GitHub's heading anchor: lower case; letters, digits, spaces, `_` and `-` kept; each space a hyphen. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

const anchors = new Map<string, Set<string>>();
function anchorsIn(file: string): Set<string> {
  let set = anchors.get(file);
  if (set === undefined) {
    set = new Set<string>();
    for (const m of readFileSync(file, 'utf8').matchAll(/^#{1,6} (.*)$/gm)) set.add(anchorOf(m[1] as string));
    anchors.set(file, set);
  }
  return set;
}

describe('documentation links', () => {
  it('every relative link names a file that exists, and every #anchor a heading of it', () => {
    const dead: string[] = [];
    let checked = 0;
    for (const file of markdownFiles()) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const link = m[1] as string;
        if (/^[a-z]+:/i.test(link)) continue; // https:, mailto:
        const [path, anchor] = link.split('#') as [string, string | undefined];
        const target = path === '' ? file : join(dirname(file), path);
        checked++;
        if (!existsSync(target)) dead.push(`${relative(ROOT, file)}: ${link} (no such file)`);
        else if (anchor && target.endsWith('.md') && !anchorsIn(target).has(anchor))
          dead.push(`${relative(ROOT, file)}: ${link} (no such heading)`);
      }
    }
    expect(dead).toEqual([]);
    expect(checked).toBeGreaterThan(100);
  });
});
