import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  checkErrorFile,
  decodeInteropFile,
  parseInteropName,
  parseQif,
  qifText,
  RFC9204_VALID_ERROR_CASES,
} from '../../src/codec/qpack/interop.js';
import { runQpackInterop } from '../../src/cli/qpack-interop.js';

const VECTORS = process.env['QPACK_VECTORS'] ?? fileURLToPath(new URL('../fixtures/qpack', import.meta.url));
const present = existsSync(join(VECTORS, 'qifs')) && existsSync(join(VECTORS, 'encoded'));
const MISSING =
  `QPACK interop vectors not found at ${VECTORS} (expected qifs/ and encoded/; ` +
  'set QPACK_VECTORS to the folder holding them)';

describe('QPACK offline interop vectors', () => {
  it('vectors are present', () => {
    // Fails loudly rather than skipping: the other tests here need them.
    expect(present, MISSING).toBe(true);
  });

  it('every encoded/qpack-05 file decodes to its QIF header lists (whole)', () => {
    expect(present, MISSING).toBe(true);
    const results = runQpackInterop(join(VECTORS, 'encoded/qpack-05'), join(VECTORS, 'qifs'));
    // 80 files in the fixtures (192 in the full corpus, with QPACK_VECTORS).
    expect(results.length).toBeGreaterThanOrEqual(process.env['QPACK_VECTORS'] ? 192 : 80);
    const failed = results.filter((r) => !r.ok).map((r) => `${r.name}: ${r.reason}`);
    expect(failed).toEqual([]);
  });

  it('decodes with the encoder stream fed one byte at a time', () => {
    expect(present, MISSING).toBe(true);
    const root = join(VECTORS, 'encoded/qpack-05');
    // A representative subset per encoder (all table sizes and blocking modes of one QIF).
    for (const impl of readdirSync(root)) {
      for (const file of readdirSync(join(root, impl)).filter((f) => f.startsWith('netbsd.out.'))) {
        const n = parseInteropName(file)!;
        const lists = parseQif(qifText(readFileSync(join(VECTORS, 'qifs', `${n.qif}.qif`))));
        const got = decodeInteropFile(readFileSync(join(root, impl, file)), {
          tableSize: n.tableSize,
          maxBlocked: n.maxBlocked,
          byteByByte: true,
        });
        expect([...got.keys()].sort((a, b) => a - b)).toEqual(lists.map((_, i) => i + 1));
        lists.forEach((l, i) => expect(got.get(i + 1), `${impl}/${file} stream ${i + 1}`).toEqual(l));
      }
    }
  });

  // err9 (`00 00 c0`) and err10 (`00 00 fe`) are HPACK-era cases: static index 0 and 62 are
  // invalid in HPACK's 1-based, 61-entry table, but RFC 9204 Appendix A is 0-based with 99
  // entries, so both are well-formed QPACK. Rejecting them would make the decoder refuse valid
  // peers; checkErrorFile pins them to their RFC 9204 meaning. Every other file must be rejected.
  it('every file in encoded/errors is rejected (whole and byte by byte), HPACK-era cases pinned', () => {
    expect(present, MISSING).toBe(true);
    const dir = join(VECTORS, 'encoded/errors');
    const files = readdirSync(dir);
    expect(files.length).toBe(12);
    let pinned = 0;
    for (const f of files) {
      const bytes = readFileSync(join(dir, f));
      if (RFC9204_VALID_ERROR_CASES.has(bytes.toString('hex'))) pinned++;
      for (const byteByByte of [false, true]) {
        const r = checkErrorFile(bytes, { byteByByte });
        expect(r.ok, `${f}: ${r.reason}`).toBe(true);
        if (r.reason.startsWith('rejected')) expect(r.reason, f).toMatch(/QPACK|blocked|ends inside/);
      }
      // Rejections are QPACK wire errors, not crashes of another kind.
      if (!RFC9204_VALID_ERROR_CASES.has(bytes.toString('hex'))) {
        expect(() => decodeInteropFile(bytes, { tableSize: 4096, maxBlocked: 100 }), f).toThrow();
      }
    }
    expect(pinned).toBe(2);
  });

  it('the CLI runner treats an errors folder as the malformed corpus', () => {
    expect(present, MISSING).toBe(true);
    const results = runQpackInterop(join(VECTORS, 'encoded'), join(VECTORS, 'qifs'));
    expect(results.filter((r) => r.name.startsWith('errors/')).length).toBe(12);
    expect(results.filter((r) => !r.ok).map((r) => `${r.name}: ${r.reason}`)).toEqual([]);
  });
});
