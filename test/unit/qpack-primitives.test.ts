import { describe, expect, it } from 'vitest';
import { ByteWriter } from '../../src/codec/bytes.js';
import { FieldCodingError } from '../../src/codec/errors.js';
import { huffmanDecode, huffmanEncode, huffmanEncodedLength } from '../../src/codec/rfc7541/huffman.js';
import { HUFFMAN_CODES, HUFFMAN_LENGTHS } from '../../src/codec/rfc7541/huffman-table.js';
import { decodePrefixInt, encodePrefixInt } from '../../src/codec/rfc7541/prefix-int.js';
import { decodeString, encodeString } from '../../src/codec/rfc7541/prefix-string.js';
import { STATIC_TABLE, staticFindExact, staticFindName } from '../../src/codec/qpack/static-table.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function encInt(flags: number, bits: number, v: number): Uint8Array {
  const w = new ByteWriter();
  encodePrefixInt(w, flags, bits, v);
  return w.finish();
}

describe('prefixed integers (RFC 7541 §5.1, C.1)', () => {
  it('C.1.1: 10 with a 5-bit prefix', () => {
    expect(toHex(encInt(0, 5, 10))).toBe('0a');
    expect(decodePrefixInt(hex('0a'), 0, 5)).toEqual({ value: 10, length: 1 });
  });
  it('C.1.2: 1337 with a 5-bit prefix', () => {
    expect(toHex(encInt(0, 5, 1337))).toBe('1f9a0a');
    expect(decodePrefixInt(hex('1f9a0a'), 0, 5)).toEqual({ value: 1337, length: 3 });
  });
  it('C.1.3: 42 at an octet boundary', () => {
    expect(toHex(encInt(0, 8, 42))).toBe('2a');
    expect(decodePrefixInt(hex('2a'), 0, 8)).toEqual({ value: 42, length: 1 });
  });
  it('keeps flag bits and ignores them when decoding', () => {
    expect(toHex(encInt(0xe0, 5, 1337))).toBe('ff9a0a');
    expect(decodePrefixInt(hex('ff9a0a'), 0, 5)).toEqual({ value: 1337, length: 3 });
  });
  it('round-trips boundaries for every prefix size', () => {
    for (let bits = 1; bits <= 8; bits++) {
      const max = (1 << bits) - 1;
      for (const v of [0, 1, max - 1, max, max + 1, max + 127, max + 128, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
        if (v < 0) continue;
        const enc = encInt(0, bits, v);
        expect(decodePrefixInt(enc, 0, bits)).toEqual({ value: v, length: enc.length });
        // Every proper prefix of the encoding needs more bytes.
        for (let i = 0; i < enc.length; i++) expect(decodePrefixInt(enc.subarray(0, i), 0, bits)).toBeNull();
      }
    }
  });
  it('rejects overflow', () => {
    expect(() => decodePrefixInt(hex('1f ff ff ff ff ff ff ff ff 7f'), 0, 5)).toThrow(FieldCodingError);
    expect(() => decodePrefixInt(hex('1f 80 80 80 80 80 80 80 80 80 01'), 0, 5)).toThrow(FieldCodingError);
  });
});

describe('Huffman (RFC 7541 Appendix B, C.4, C.6)', () => {
  const cases: Array<[string, string]> = [
    ['www.example.com', 'f1e3 c2e5 f23a 6ba0 ab90 f4ff'],
    ['no-cache', 'a8eb 1064 9cbf'],
    ['custom-key', '25a8 49e9 5ba9 7d7f'],
    ['custom-value', '25a8 49e9 5bb8 e8b4 bf'],
    ['302', '6402'],
    ['private', 'aec3 771a 4b'],
    ['Mon, 21 Oct 2013 20:13:21 GMT', 'd07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff'],
    ['https://www.example.com', '9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3'],
    ['gzip', '9bd9 ab'],
    [
      'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1',
      '94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07',
    ],
  ];
  for (const [s, h] of cases) {
    it(`encodes and decodes ${JSON.stringify(s)}`, () => {
      const w = new ByteWriter();
      huffmanEncode(w, s);
      expect(toHex(w.finish())).toBe(h.replace(/\s/g, ''));
      expect(huffmanEncodedLength(s)).toBe(hex(h).length);
      const b = hex(h);
      expect(huffmanDecode(b, 0, b.length)).toBe(s);
    });
  }

  it('table is a complete canonical prefix code', () => {
    let kraft = 0;
    for (const l of HUFFMAN_LENGTHS) kraft += 2 ** -l;
    expect(kraft).toBe(1);
    expect(HUFFMAN_CODES.length).toBe(257);
    expect(HUFFMAN_CODES[256]).toBe(0x3fffffff);
  });

  it('round-trips every octet, alone and in sequence', () => {
    let all = '';
    for (let c = 0; c < 256; c++) {
      const s = String.fromCharCode(c);
      all += s;
      const w = new ByteWriter();
      huffmanEncode(w, s);
      const b = w.finish();
      expect(huffmanDecode(b, 0, b.length)).toBe(s);
    }
    const w = new ByteWriter();
    huffmanEncode(w, all + all);
    const b = w.finish();
    expect(huffmanDecode(b, 0, b.length)).toBe(all + all);
  });

  it('rejects padding over 7 bits, non-EOS padding and an encoded EOS', () => {
    // 'a' = 00011 + 3 bits padding 111 -> 0x1f valid; a whole 0xff byte of padding is too long.
    expect(huffmanDecode(hex('1f'), 0, 1)).toBe('a');
    expect(() => huffmanDecode(hex('1fff'), 0, 2)).toThrow(FieldCodingError);
    // Padding with zeros.
    expect(() => huffmanDecode(hex('18'), 0, 1)).toThrow(FieldCodingError);
    // EOS (30 ones) followed by padding.
    expect(() => huffmanDecode(hex('ffffffff'), 0, 4)).toThrow(FieldCodingError);
    expect(huffmanDecode(new Uint8Array(0), 0, 0)).toBe('');
  });
});

describe('string literals (RFC 9204 §4.1.2)', () => {
  it('chooses Huffman when shorter and decodes both forms', () => {
    for (const s of ['www.example.com', '', '\u00ff\u00fe\u0001', 'x'.repeat(300)]) {
      const w = new ByteWriter();
      encodeString(w, 0x40, 5, s);
      const b = w.finish();
      expect(b[0]! & 0xc0).toBe(0x40);
      expect(decodeString(b, 0, 5, 1000)).toEqual({ value: s, length: b.length });
      for (let i = 0; i < b.length; i++) expect(decodeString(b.subarray(0, i), 0, 5, 1000)).toBeNull();
    }
  });
  it('refuses characters that are not octets', () => {
    expect(() => encodeString(new ByteWriter(), 0, 7, 'caf\u00e9')).not.toThrow();
    expect(() => encodeString(new ByteWriter(), 0, 7, '\u20ac')).toThrow(RangeError);
  });

  it('rejects a length above the limit before the bytes arrive', () => {
    const w = new ByteWriter();
    encodeString(w, 0, 7, 'abcdefgh', false);
    expect(() => decodeString(w.finish().subarray(0, 1), 0, 7, 4)).toThrow(FieldCodingError);
  });
});

describe('static table (RFC 9204 Appendix A)', () => {
  it('has 99 entries with the RFC anchors', () => {
    expect(STATIC_TABLE.length).toBe(99);
    expect(STATIC_TABLE[0]).toEqual([':authority', '']);
    expect(STATIC_TABLE[17]).toEqual([':method', 'GET']);
    expect(STATIC_TABLE[25]).toEqual([':status', '200']);
    expect(STATIC_TABLE[98]).toEqual(['x-frame-options', 'sameorigin']);
    expect(staticFindExact(':path', '/')).toBe(1);
    expect(staticFindName('x-frame-options')).toBe(97);
    expect(staticFindExact('x', 'y')).toBe(-1);
  });
});
