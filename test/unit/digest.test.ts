/**
 * src/util/digest.ts: the SHA-256 computed here equals node:crypto's for every length across a few blocks (the
 * padding's edges at 55/56/64 bytes included), for UTF-8 strings and parts split anywhere, and on both sides of the
 * size where it hands the work to node:crypto; plus FIPS 180-4's own "abc" example.
 */
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { contentId, lengthPrefixed, sha256 } from '../../src/util/digest.js';

const ref = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('sha256', () => {
  it('the FIPS 180-4 example: "abc"', () => {
    expect(sha256(['abc']).toString('hex')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('equals node:crypto for every length from 0 to 300 bytes, in one part and split in three', () => {
    for (let n = 0; n <= 300; n++) {
      const b = randomBytes(n);
      expect(sha256([b]).toString('hex'), `length ${n}`).toBe(ref(b));
      const i = Math.floor(n / 3);
      const j = Math.floor((2 * n) / 3);
      expect(sha256([b.subarray(0, i), b.subarray(i, j), b.subarray(j)]).toString('hex')).toBe(ref(b));
    }
  });

  it('strings are hashed as UTF-8', () => {
    const s = 'ca-\u00e9\u4e2d\u{1f600}-----BEGIN CERTIFICATE-----';
    expect(sha256([s, ':', s]).toString('hex')).toBe(ref(Buffer.from(`${s}:${s}`)));
  });

  it('equals node:crypto on both sides of the hand-over size, a CA bundle included', () => {
    for (const n of [16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 200_000]) {
      const b = randomBytes(n);
      expect(sha256([b]).toString('hex'), `length ${n}`).toBe(ref(b));
    }
  });

  it('content ids: SHA-256 of the length, `:` and the content, the same for a text and a list of one (pool keys)', () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    const want = createHash('sha256').update(`${pem.length}:${pem}`).digest('base64url');
    expect(contentId(pem)).toBe(want);
    expect(contentId(Buffer.from(pem))).toBe(want);
    expect(lengthPrefixed([pem])).toBe(want);
    expect(lengthPrefixed([pem, 'x'])).toBe(createHash('sha256').update(`${pem.length}:${pem}1:x`).digest('base64url'));
  });
});
