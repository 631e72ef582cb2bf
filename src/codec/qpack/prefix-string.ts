/**
 * String literals (RFC 9204 §4.1.2): an H bit just above an N-bit prefixed
 * length, then that many octets, Huffman-coded when H is set.
 */
import { latin1Decode, type ByteWriter } from '../bytes.js';
import { QpackFormatError } from '../errors.js';
import { huffmanDecode, huffmanEncode, huffmanEncodedLength } from './huffman.js';
import { decodePrefixInt, encodePrefixInt } from './prefix-int.js';

const NON_OCTET_RE = /[^\x00-\xff]/;

export interface StringResult {
  value: string;
  length: number;
}

/**
 * Decode a string literal whose length prefix has `prefixBits` bits.
 * Returns null when more bytes are needed. A literal longer than
 * `maxLength` octets on the wire throws before its bytes are awaited, so a
 * peer cannot make us buffer without bound.
 */
export function decodeString(buf: Uint8Array, offset: number, prefixBits: number, maxLength: number): StringResult | null {
  if (offset >= buf.length) return null;
  const huffman = (buf[offset]! & (1 << prefixBits)) !== 0;
  const len = decodePrefixInt(buf, offset, prefixBits);
  if (len === null) return null;
  if (len.value > maxLength) throw new QpackFormatError(`string literal of ${len.value} octets exceeds limit ${maxLength}`);
  const start = offset + len.length;
  const end = start + len.value;
  if (end > buf.length) return null;
  const value = huffman ? huffmanDecode(buf, start, end) : latin1Decode(buf, start, end);
  return { value, length: end - offset };
}

/**
 * Encode `s` (latin1) with the H bit at `1 << prefixBits` and `flags` in the
 * bits above; Huffman is used when it is strictly shorter.
 */
export function encodeString(w: ByteWriter, flags: number, prefixBits: number, s: string, allowHuffman = true): void {
  // Strings stand for octets (latin1); a wider character would be silently truncated.
  if (NON_OCTET_RE.test(s)) throw new RangeError('QPACK string literal has a character above U+00FF');
  const hlen = allowHuffman ? huffmanEncodedLength(s) : s.length;
  if (hlen < s.length) {
    encodePrefixInt(w, flags | (1 << prefixBits), prefixBits, hlen);
    huffmanEncode(w, s);
  } else {
    encodePrefixInt(w, flags, prefixBits, s.length);
    w.latin1(s);
  }
}
