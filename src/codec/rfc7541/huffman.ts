/**
 * Static Huffman coding of string literals (RFC 7541 §5.2 and Appendix B;
 * RFC 9204 §4.1.2).
 *
 * The code is canonical: within one bit length, codes are consecutive in
 * symbol order. Decoding walks bit lengths using the first code and the
 * count of codes of each length.
 */
import type { ByteWriter } from '../bytes.js';
import { FieldCodingError } from '../errors.js';
import { HUFFMAN_CODES, HUFFMAN_LENGTHS } from './huffman-table.js';

const EOS = 256;
const MIN_LEN = 5;
const MAX_LEN = 30;

/** firstCode[len], count[len], and the offset into SORTED where codes of that length start. */
const firstCode = new Array<number>(MAX_LEN + 2).fill(0);
const countAt = new Array<number>(MAX_LEN + 2).fill(0);
const offsetAt = new Array<number>(MAX_LEN + 2).fill(0);
const SORTED: number[] = [];

(function build(): void {
  // Symbols by code length, then by symbol (the canonical order): counted per length, then placed — no sort, whose
  // comparator a fresh process would run ~2,000 times interpreted at the first field section it codes.
  for (let sym = 0; sym <= EOS; sym++) countAt[HUFFMAN_LENGTHS[sym]!]!++;
  let at = 0;
  for (let len = MIN_LEN; len <= MAX_LEN; len++) {
    offsetAt[len] = at;
    at += countAt[len]!;
  }
  const next = offsetAt.slice();
  for (let sym = 0; sym <= EOS; sym++) {
    const len = HUFFMAN_LENGTHS[sym]!;
    if (next[len] === offsetAt[len]) firstCode[len] = HUFFMAN_CODES[sym]!;
    SORTED[next[len]!++] = sym;
  }
})();

/** Bytes the Huffman encoding of `s` (latin1) would take. */
export function huffmanEncodedLength(s: string): number {
  let bits = 0;
  for (let i = 0; i < s.length; i++) bits += HUFFMAN_LENGTHS[s.charCodeAt(i) & 0xff]!;
  return Math.ceil(bits / 8);
}

/** Append the Huffman encoding of latin1 string `s`, padded with EOS-prefix ones. */
export function huffmanEncode(w: ByteWriter, s: string): void {
  w.reserve(huffmanEncodedLength(s));
  let acc = 0; // pending bits, at most 7 + 30 < 53
  let bits = 0;
  for (let i = 0; i < s.length; i++) {
    const sym = s.charCodeAt(i) & 0xff;
    const len = HUFFMAN_LENGTHS[sym]!;
    acc = acc * 2 ** len + HUFFMAN_CODES[sym]!;
    bits += len;
    while (bits >= 8) {
      bits -= 8;
      const div = 2 ** bits;
      w.byte(Math.floor(acc / div));
      acc %= div;
    }
  }
  if (bits > 0) {
    // RFC 7541 §5.2: pad with the most significant bits of EOS (all ones).
    const pad = 8 - bits;
    w.byte(acc * 2 ** pad + (2 ** pad - 1));
  }
}

/**
 * Decode `buf[start, end)` into a latin1 string. Throws FieldCodingError on
 * EOS inside the string, padding longer than 7 bits, or padding that is not
 * all ones (RFC 7541 §5.2).
 */
export function huffmanDecode(buf: Uint8Array, start: number, end: number): string {
  const out: number[] = [];
  let code = 0;
  let len = 0;
  for (let i = start; i < end; i++) {
    const byte = buf[i]!;
    for (let bit = 7; bit >= 0; bit--) {
      code = (code << 1) | ((byte >> bit) & 1);
      len++;
      if (len < MIN_LEN) continue;
      const idx = code - firstCode[len]!;
      if (idx >= 0 && idx < countAt[len]!) {
        const sym = SORTED[offsetAt[len]! + idx]!;
        if (sym === EOS) throw new FieldCodingError('Huffman string contains EOS');
        out.push(sym);
        code = 0;
        len = 0;
      } else if (len >= MAX_LEN) {
        throw new FieldCodingError('invalid Huffman code');
      }
    }
  }
  if (len > 7) throw new FieldCodingError('Huffman padding longer than 7 bits');
  if (code !== (1 << len) - 1) throw new FieldCodingError('Huffman padding is not EOS prefix');
  let s = '';
  for (let i = 0; i < out.length; i += 4096) {
    s += String.fromCharCode.apply(null, out.slice(i, i + 4096));
  }
  return s;
}
