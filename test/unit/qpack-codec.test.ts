import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { QpackError, QpackErrorCode } from '../../src/codec/errors.js';
import { QpackDecoder, type HeaderField } from '../../src/codec/qpack/decoder.js';
import { QpackEncoder } from '../../src/codec/qpack/encoder.js';
import { parseQif, qifText } from '../../src/codec/qpack/interop.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'));
const toHex = (b: Uint8Array | null): string => (b ? Buffer.from(b).toString('hex') : '');

/** Feed encoder stream bytes whole or one at a time, collecting unblocked sections. */
function feed(
  dec: QpackDecoder,
  bytes: Uint8Array,
  byteByByte: boolean,
): Array<{ streamId: number; headers: readonly HeaderField[] }> {
  if (!byteByByte) return dec.feedEncoderStream(bytes);
  const out = [];
  for (let i = 0; i < bytes.length; i++) out.push(...dec.feedEncoderStream(bytes.subarray(i, i + 1)));
  return out;
}

function expectQpackError(fn: () => unknown, code: number): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(QpackError);
  expect((err as QpackError).wireCode).toBe(code);
}

describe('QPACK decoder: RFC 9204 Appendix B examples', () => {
  for (const byteByByte of [false, true]) {
    it(`walks B.1-B.5 (${byteByByte ? 'byte by byte' : 'whole'})`, () => {
      const dec = new QpackDecoder({ maxTableCapacity: 220, maxBlockedStreams: 0 });
      // B.1 Literal Field Line With Name Reference.
      let r = dec.decodeSection(0, hex('0000 510b 2f69 6e64 6578 2e68 746d 6c'));
      expect(r).toEqual({ status: 'done', headers: [[':path', '/index.html']], requiredInsertCount: 0, kept: true });
      expect(dec.takeDecoderStreamBytes()).toBeNull();

      // B.2 Dynamic Table.
      expect(
        feed(
          dec,
          hex('3fbd01 c00f 7777 772e 6578 616d 706c 652e 636f 6d c10c 2f73 616d 706c 652f 7061 7468'),
          byteByByte,
        ),
      ).toEqual([]);
      expect(dec.table.size).toBe(106);
      expect(toHex(dec.takeDecoderStreamBytes())).toBe('02'); // Insert Count Increment 2
      r = dec.decodeSection(4, hex('0381 10 11'));
      expect(r).toEqual({
        status: 'done',
        headers: [
          [':authority', 'www.example.com'],
          [':path', '/sample/path'],
        ],
        requiredInsertCount: 2,
        kept: true,
      });
      expect(toHex(dec.takeDecoderStreamBytes())).toBe('84'); // Section Acknowledgment stream 4

      // B.3 Speculative Insert.
      feed(dec, hex('4a63 7573 746f 6d2d 6b65 790c 6375 7374 6f6d 2d76 616c 7565'), byteByByte);
      expect(dec.table.size).toBe(160);
      expect(toHex(dec.takeDecoderStreamBytes())).toBe('01');

      // B.4 Duplicate, then a section referencing it; then Stream Cancellation.
      feed(dec, hex('02'), byteByByte);
      expect(dec.table.size).toBe(217);
      expect(toHex(dec.takeDecoderStreamBytes())).toBe('01');
      r = dec.decodeSection(8, hex('0500 80 c1 81'));
      expect(r).toEqual({
        status: 'done',
        headers: [
          [':authority', 'www.example.com'],
          [':path', '/'],
          ['custom-key', 'custom-value'],
        ],
        requiredInsertCount: 4,
        kept: true,
      });
      expect(toHex(dec.takeDecoderStreamBytes())).toBe('88');
      dec.cancelStream(8);
      expect(toHex(dec.takeDecoderStreamBytes())).toBe('48');

      // B.5 Insert with dynamic name reference, evicting entry 0.
      feed(dec, hex('810d 6375 7374 6f6d 2d76 616c 7565 32'), byteByByte);
      expect(dec.table.size).toBe(215);
      expect(dec.table.has(0)).toBe(false);
      expect(dec.table.value(4)).toBe('custom-value2');
    });
  }
});

describe('QPACK decoder: a section received again', () => {
  const inserts = hex('3fbd01 c00f 7777 772e 6578 616d 706c 652e 636f 6d c10c 2f73 616d 706c 652f 7061 7468');
  const refersToBoth = hex('0381 10 11'); // RFC 9204 B.2: Required Insert Count 2, both entries by post-base index

  it('comes back as the same result while its entries stay, acknowledged each time (§2.2.2.1)', () => {
    const dec = new QpackDecoder({ maxTableCapacity: 220, maxBlockedStreams: 0 });
    const staticOnly = hex('0000 510b 2f69 6e64 6578 2e68 746d 6c');
    const a = dec.decodeSection(0, staticOnly);
    expect(dec.decodeSection(4, Uint8Array.from(staticOnly))).toBe(a);
    dec.feedEncoderStream(inserts);
    dec.takeDecoderStreamBytes();
    const b = dec.decodeSection(8, refersToBoth);
    expect(toHex(dec.takeDecoderStreamBytes())).toBe('88');
    expect(dec.decodeSection(12, refersToBoth)).toBe(b);
    expect(toHex(dec.takeDecoderStreamBytes())).toBe('8c'); // Section Acknowledgment stream 12
    expect(dec.decodeSection(16, staticOnly)).toBe(a);
  });

  it('is not kept when its fields are large, though its bytes are few (a reference to a big entry)', () => {
    const dec = new QpackDecoder({ maxTableCapacity: 4096, maxBlockedStreams: 0, initialCapacity: 4096 });
    // Insert with Literal Name (RFC 9204 §4.3.3): x-big, 3,000 octets (7-bit length 7f b9 16).
    dec.feedEncoderStream(Uint8Array.from([...hex('45 782d 6269 67 7fb916'), ...Buffer.alloc(3000, 'a')]));
    const ref = hex('02 00 80'); // Required Insert Count 1, Base 1, the entry by relative index 0
    const first = dec.decodeSection(0, ref);
    expect(first.status === 'done' && [first.headers[0]![1].length, first.kept]).toEqual([3000, false]);
    expect(dec.decodeSection(4, ref)).not.toBe(first);
  });

  it('refers to the table again once an entry it used was evicted: QPACK_DECOMPRESSION_FAILED (§2.2.3)', () => {
    const dec = new QpackDecoder({ maxTableCapacity: 220, maxBlockedStreams: 0 });
    dec.feedEncoderStream(inserts);
    expect(dec.decodeSection(4, refersToBoth).status).toBe('done');
    // B.3's insert (54 bytes) three times: 106 + 162 > 220 evicts entry 0 (57 bytes).
    const custom = hex('4a63 7573 746f 6d2d 6b65 790c 6375 7374 6f6d 2d76 616c 7565');
    for (let i = 0; i < 3; i++) dec.feedEncoderStream(custom);
    expect(dec.table.has(0)).toBe(false);
    expectQpackError(() => dec.decodeSection(8, refersToBoth), QpackErrorCode.DECOMPRESSION_FAILED);
  });
});

describe('QPACK decoder: blocking and errors', () => {
  const inserts = hex('3fbd01 c00f 7777 772e 6578 616d 706c 652e 636f 6d c10c 2f73 616d 706c 652f 7061 7468');

  it('blocks a section until the encoder stream catches up, then acknowledges it', () => {
    for (const byteByByte of [false, true]) {
      const dec = new QpackDecoder({ maxTableCapacity: 220, maxBlockedStreams: 1 });
      expect(dec.decodeSection(4, hex('0381 10 11'))).toEqual({ status: 'blocked', requiredInsertCount: 2 });
      expect(dec.blockedStreamCount).toBe(1);
      const un = feed(dec, inserts, byteByByte);
      expect(un).toEqual([
        {
          status: 'done',
          streamId: 4,
          headers: [
            [':authority', 'www.example.com'],
            [':path', '/sample/path'],
          ],
          requiredInsertCount: 2,
          kept: false,
        },
      ]);
      expect(dec.blockedStreamCount).toBe(0);
      // Section Acknowledgment covers both inserts: no Insert Count Increment needed.
      expect(toHex(dec.takeDecoderStreamBytes())).toBe('84');
    }
  });

  it('a cancelled blocked stream is dropped and reported', () => {
    const dec = new QpackDecoder({ maxTableCapacity: 220, maxBlockedStreams: 1 });
    dec.decodeSection(4, hex('0381 10 11'));
    dec.cancelStream(4);
    expect(toHex(dec.takeDecoderStreamBytes())).toBe('44');
    expect(dec.feedEncoderStream(inserts)).toEqual([]);
  });

  it('more blocked streams than allowed is QPACK_DECOMPRESSION_FAILED', () => {
    const dec = new QpackDecoder({ maxTableCapacity: 220, maxBlockedStreams: 1 });
    dec.decodeSection(4, hex('0381 10 11'));
    expectQpackError(() => dec.decodeSection(8, hex('0381 10 11')), QpackErrorCode.DECOMPRESSION_FAILED);
    const none = new QpackDecoder({ maxTableCapacity: 220, maxBlockedStreams: 0 });
    expectQpackError(() => none.decodeSection(4, hex('0381 10 11')), QpackErrorCode.DECOMPRESSION_FAILED);
  });

  it('references outside the table are QPACK_DECOMPRESSION_FAILED', () => {
    const dec = new QpackDecoder({ maxTableCapacity: 220, maxBlockedStreams: 0 });
    dec.feedEncoderStream(inserts);
    // Static index 99 does not exist.
    expectQpackError(() => dec.decodeSection(0, hex('0000 ff24')), QpackErrorCode.DECOMPRESSION_FAILED);
    // Relative index past the base (RIC 2, Base 2, index 2 -> absolute -1).
    expectQpackError(() => dec.decodeSection(0, hex('0300 82')), QpackErrorCode.DECOMPRESSION_FAILED);
    // Post-base index at/above RIC.
    expectQpackError(() => dec.decodeSection(0, hex('0381 12')), QpackErrorCode.DECOMPRESSION_FAILED);
    // Dynamic reference with RIC 0.
    expectQpackError(() => dec.decodeSection(0, hex('0000 80')), QpackErrorCode.DECOMPRESSION_FAILED);
    // Encoded RIC beyond 2 * MaxEntries.
    expectQpackError(() => dec.decodeSection(0, hex('0e00 80')), QpackErrorCode.DECOMPRESSION_FAILED);
    // Truncated field line and truncated prefix.
    expectQpackError(() => dec.decodeSection(0, hex('0000 51')), QpackErrorCode.DECOMPRESSION_FAILED);
    expectQpackError(() => dec.decodeSection(0, hex('00')), QpackErrorCode.DECOMPRESSION_FAILED);
  });

  it('bad encoder stream instructions are QPACK_ENCODER_STREAM_ERROR', () => {
    const mk = (): QpackDecoder => new QpackDecoder({ maxTableCapacity: 220, maxBlockedStreams: 0 });
    expectQpackError(() => mk().feedEncoderStream(hex('3fbe01')), QpackErrorCode.ENCODER_STREAM_ERROR); // capacity 221
    expectQpackError(() => mk().feedEncoderStream(hex('00')), QpackErrorCode.ENCODER_STREAM_ERROR); // duplicate of nothing
    expectQpackError(() => mk().feedEncoderStream(hex('c00161')), QpackErrorCode.ENCODER_STREAM_ERROR); // insert with capacity 0
    expectQpackError(() => mk().feedEncoderStream(hex('3fbd01 ff24')), QpackErrorCode.ENCODER_STREAM_ERROR); // static 99
    expectQpackError(() => mk().feedEncoderStream(hex('3fbd01 8000')), QpackErrorCode.ENCODER_STREAM_ERROR); // dynamic name ref, empty
  });
});

describe('QPACK encoder', () => {
  it('encodes static matches, static names and literal names; our decoder round-trips them', () => {
    const enc = new QpackEncoder();
    const fields: HeaderField[] = [
      [':method', 'GET'],
      [':scheme', 'https'],
      [':authority', 'example.com'],
      [':path', '/a?b=c'],
      ['x-custom', 'Value With Spaces'],
      ['authorization', 'secret'],
      ['x-bin', '\u0000\u00ff\t'],
      ['empty', ''],
    ];
    const block = enc.encode(fields);
    expect(block[0]).toBe(0);
    expect(block[1]).toBe(0);
    expect(block[2]).toBe(0xc0 | 17);
    const dec = new QpackDecoder({ maxTableCapacity: 0, maxBlockedStreams: 0 });
    expect(dec.decodeSection(0, block)).toEqual({
      status: 'done',
      headers: fields,
      requiredInsertCount: 0,
      kept: true,
    });
    expect(dec.takeDecoderStreamBytes()).toBeNull();
  });

  it('rejects unexpected decoder stream instructions and accepts Stream Cancellation in any chunking', () => {
    const enc = new QpackEncoder();
    enc.feedDecoderStream(hex('44'));
    const bytes = hex('7f 81 01');
    for (let i = 0; i < bytes.length; i++) enc.feedDecoderStream(bytes.subarray(i, i + 1));
    expectQpackError(() => new QpackEncoder().feedDecoderStream(hex('84')), QpackErrorCode.DECODER_STREAM_ERROR);
    expectQpackError(() => new QpackEncoder().feedDecoderStream(hex('01')), QpackErrorCode.DECODER_STREAM_ERROR);
  });

  const VECTORS = process.env['QPACK_VECTORS'] ?? fileURLToPath(new URL('../fixtures/qpack', import.meta.url));
  it('round-trips every QIF header list through our encoder and decoder', () => {
    const dir = join(VECTORS, 'qifs');
    expect(existsSync(dir), `QIF files not found at ${dir}; set QPACK_VECTORS`).toBe(true);
    const enc = new QpackEncoder();
    const dec = new QpackDecoder({ maxTableCapacity: 4096, maxBlockedStreams: 100 });
    let n = 0;
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.qif'))) {
      const lists = parseQif(qifText(readFileSync(join(dir, f))));
      expect(lists.length).toBeGreaterThan(0);
      for (const l of lists) {
        const r = dec.decodeSection(++n, enc.encode(l));
        expect(r.status).toBe('done');
        if (r.status === 'done') expect(r.headers).toEqual(l);
      }
    }
    expect(n).toBeGreaterThan(1000);
  });
});
