/**
 * `node dist/cli/qpack-interop.js ENCODED_DIR QIFS_DIR`: decode every
 * encoder output under ENCODED_DIR (recursively) with our QPACK decoder and
 * compare with the matching QIF; files in an `errors` folder must be
 * rejected instead (checkErrorFile). Prints `PASS|FAIL name reason` per file and
 * `N passed, N failed`; exits 1 on any failure.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { HeaderField } from '../codec/qpack/decoder.js';
import { checkErrorFile, checkInteropFile, parseInteropName, parseQif, qifText } from '../codec/qpack/interop.js';

export interface InteropFileResult {
  name: string;
  ok: boolean;
  reason: string;
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir).sort()) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}

/** Run the interop check over a directory tree; one result per encoded file. */
export function runQpackInterop(
  encodedDir: string,
  qifsDir: string,
  opts: { byteByByte?: boolean } = {},
): InteropFileResult[] {
  const qifCache = new Map<string, HeaderField[][] | null>();
  const qifFor = (name: string): HeaderField[][] | null => {
    if (!qifCache.has(name)) {
      let lists: HeaderField[][] | null = null;
      try {
        lists = parseQif(qifText(readFileSync(join(qifsDir, `${name}.qif`))));
      } catch {
        lists = null;
      }
      qifCache.set(name, lists);
    }
    return qifCache.get(name) ?? null;
  };
  const results: InteropFileResult[] = [];
  for (const path of walk(encodedDir)) {
    const name = relative(encodedDir, path);
    if (basename(dirname(path)) === 'errors') {
      // The malformed corpus: each file must be rejected (see checkErrorFile).
      results.push({ name, ...checkErrorFile(readFileSync(path), opts) });
      continue;
    }
    const parsed = parseInteropName(basename(path));
    if (!parsed) {
      results.push({ name, ok: false, reason: 'file name is not NAME.out.TABLESIZE.MAXBLOCKED.ACKMODE' });
      continue;
    }
    const lists = qifFor(parsed.qif);
    if (!lists) {
      results.push({ name, ok: false, reason: `no ${parsed.qif}.qif in ${qifsDir}` });
      continue;
    }
    const r = checkInteropFile(basename(path), readFileSync(path), lists, opts);
    results.push({ name, ...r });
  }
  return results;
}

function main(argv: string[]): number {
  const [encodedDir, qifsDir] = argv;
  if (!encodedDir || !qifsDir) {
    process.stderr.write('usage: qpack-interop ENCODED_DIR QIFS_DIR\n');
    return 2;
  }
  let results: InteropFileResult[];
  try {
    results = runQpackInterop(encodedDir, qifsDir);
  } catch (e) {
    process.stderr.write(`qpack-interop: ${(e as Error).message}\n`);
    return 2;
  }
  let passed = 0;
  let failed = 0;
  for (const r of results) {
    if (r.ok) passed++;
    else failed++;
    process.stdout.write(`${r.ok ? 'PASS' : 'FAIL'} ${r.name} ${r.reason}\n`);
  }
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  return failed > 0 || results.length === 0 ? 1 : 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
