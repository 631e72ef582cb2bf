/**
 * What an idle HTTP/1.1 parser keeps alive after a large head. Each parser remembers its connection's last head
 * (h1/fields.ts FieldMemory): its lines as copies of their own and the head itself only up to 4 KiB, so a 20 KB
 * head must not stay alive through a request target, a Host, a reason phrase or a field name that is a slice of
 * it (V8 makes slices of 13 characters or more views of their parent). Measured in a child with --expose-gc, on
 * the TypeScript sources: bytes per parser after a full collection (~1 KB; 21 KB when a slice kept the head).
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeTsHooks } from '../helpers/ts-child.js';

const ROOT = join(import.meta.dirname, '..', '..');

describe('HTTP/1.1 parsers after a large head', () => {
  it('keep a few KB per connection, not the head', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ol-h1-retention-'));
    try {
      const out = execFileSync(
        process.execPath,
        [
          '--expose-gc',
          ...writeTsHooks(dir),
          join(ROOT, 'test', 'fixtures', 'h1', 'retention-run.mjs'),
          pathToFileURL(join(ROOT, 'src', 'h1')).href,
        ],
        { encoding: 'utf8', timeout: 60_000 },
      );
      const r = JSON.parse(out.trim().split('\n').pop() as string) as Record<string, number>;
      for (const kind of ['target', 'host', 'reason', 'names'])
        expect(r[kind], `${kind}: ${JSON.stringify(r)}`).toBeLessThan(6_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
