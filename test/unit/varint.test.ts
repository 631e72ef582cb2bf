import { describe, expect, it } from 'vitest';
import {
  encodeVarint,
  encodeVarintBig,
  readVarint,
  readVarintBig,
  saturateToSafe,
  VARINT_MAX,
  VarintRangeError,
  varintLength,
} from '../../src/codec/varint.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'));

describe('QUIC varint (RFC 9000 §16, Appendix A.1 examples)', () => {
  it('decodes the RFC examples', () => {
    expect(readVarintBig(hex('c2197c5eff14e88c'))).toEqual({ value: 151288809941952652n, length: 8 });
    expect(() => readVarint(hex('c2197c5eff14e88c'))).toThrow(VarintRangeError);
    expect(readVarint(hex('9d7f3e7d'))).toEqual({ value: 494878333, length: 4 });
    expect(readVarint(hex('7bbd'))).toEqual({ value: 15293, length: 2 });
    expect(readVarint(hex('25'))).toEqual({ value: 37, length: 1 });
    expect(readVarint(hex('4025'))).toEqual({ value: 37, length: 2 });
  });

  it('encodes minimally and round-trips boundaries', () => {
    const cases: Array<[number, number]> = [
      [0, 1],
      [63, 1],
      [64, 2],
      [16383, 2],
      [16384, 4],
      [0x3fffffff, 4],
      [0x40000000, 8],
      [Number.MAX_SAFE_INTEGER, 8],
    ];
    for (const [v, len] of cases) {
      expect(varintLength(v)).toBe(len);
      const enc = encodeVarint(v);
      expect(enc.length).toBe(len);
      expect(readVarint(enc)).toEqual({ value: v, length: len });
    }
    expect(Buffer.from(encodeVarint(15293)).toString('hex')).toBe('7bbd');
    expect(Buffer.from(encodeVarint(494878333)).toString('hex')).toBe('9d7f3e7d');
  });

  it('reports need-more-bytes for every truncation', () => {
    const enc = hex('c2197c5eff14e88c');
    for (let i = 0; i < enc.length; i++) expect(readVarint(enc.subarray(0, i))).toBeNull();
    expect(readVarint(hex('9d7f3e7d'), 4)).toBeNull();
  });

  it('decodes at an offset', () => {
    expect(readVarint(hex('ff 7bbd 00'), 1)).toEqual({ value: 15293, length: 2 });
  });

  it('handles values beyond 2^53 explicitly', () => {
    const max = hex('ffffffffffffffff');
    expect(() => readVarint(max)).toThrow(VarintRangeError);
    expect(readVarintBig(max)).toEqual({ value: VARINT_MAX, length: 8 });
    expect(Buffer.from(encodeVarintBig(VARINT_MAX)).toString('hex')).toBe('ffffffffffffffff');
    expect(() => encodeVarintBig(VARINT_MAX + 1n)).toThrow(VarintRangeError);
    expect(() => encodeVarint(2 ** 53)).toThrow(VarintRangeError);
    expect(() => encodeVarint(-1)).toThrow(VarintRangeError);
    expect(() => encodeVarint(1.5)).toThrow(VarintRangeError);
    expect(saturateToSafe(VARINT_MAX)).toBe(Number.MAX_SAFE_INTEGER);
    expect(readVarintBig(encodeVarintBig(2n ** 53n))).toEqual({ value: 2n ** 53n, length: 8 });
    // Exactly 2^53 - 1 is still a number.
    expect(readVarint(encodeVarintBig(2n ** 53n - 1n))?.value).toBe(Number.MAX_SAFE_INTEGER);
    expect(() => readVarint(encodeVarintBig(2n ** 53n))).toThrow(VarintRangeError);
  });
});
