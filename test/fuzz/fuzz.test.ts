/**
 * Coverage-guided fuzzing (Jazzer.js, libFuzzer) of every parser that reads a peer's or a user's
 * bytes, a short run of each target inside `npm test`: the committed corpus (fuzz/corpus, with the
 * inputs of bugs found so far) is replayed first, then new inputs for a couple of seconds. A target
 * throws only on a bug (an untyped error, or any error where none may come). Longer runs:
 * `npm run fuzz -- all --seconds 300` (results in fuzz/README.md).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { expect, it } from 'vitest';

it('every fuzz target survives its corpus and 2 s of new inputs', () => {
  const r = spawnSync(process.execPath, [join(__dirname, '..', '..', 'scripts', 'fuzz.mjs'), 'all', '--seconds', '2'], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  const table = r.stdout.slice(r.stdout.indexOf('| target'));
  expect(r.status, `${table}\n${r.stderr.slice(-3000)}`).toBe(0);
  // Every target ran (a runs count in each row) and none crashed.
  const rows = table.split('\n').filter((l) => /^\| [a-z0-9-]+ \|/.test(l) && !l.startsWith('| target'));
  expect(rows.length).toBeGreaterThanOrEqual(12);
  for (const row of rows) expect(row).toMatch(/\| \d+ \| \d+ \| \d+ \| \d+ \| ok \|$/);
}, 320_000);
