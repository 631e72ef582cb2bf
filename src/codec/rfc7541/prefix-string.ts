/**
 * String literals (RFC 7541 §5.2, reused by RFC 9204 §4.1.2): an H bit just
 * above an N-bit prefixed length (HPACK: always 7), then that many octets,
 * Huffman-coded when H is set.
 */
import { ByteWriter, latin1Decode } from '../bytes.js';
import { FieldCodingError } from '../errors.js';
import { huffmanDecode, huffmanEncode, huffmanEncodedLength } from './huffman.js';
import { decodePrefixInt, encodePrefixInt, MAX_CONTINUATION } from './prefix-int.js';

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
export function decodeString(
  buf: Uint8Array,
  offset: number,
  prefixBits: number,
  maxLength: number,
  maxContinuation = MAX_CONTINUATION,
): StringResult | null {
  if (offset >= buf.length) return null;
  const huffman = (buf[offset]! & (1 << prefixBits)) !== 0;
  const len = decodePrefixInt(buf, offset, prefixBits, maxContinuation);
  if (len === null) return null;
  if (len.value > maxLength)
    throw new FieldCodingError(`string literal of ${len.value} octets exceeds limit ${maxLength}`);
  const start = offset + len.length;
  const end = start + len.value;
  if (end > buf.length) return null;
  const value = huffman ? cachedHuffman(buf, start, end) : latin1Decode(buf, start, end);
  return { value, length: end - offset };
}

/**
 * Huffman strings repeat across messages (a server sends the same
 * content-type, server and date values as literals on every response), and
 * decoding is bit by bit: short ones are remembered by their coded bytes.
 * Looked up by a hash of those bytes and confirmed byte by byte, so a hit
 * allocates nothing (a string key cost an allocation per literal). A pure
 * function of the bytes, so sharing it across connections is safe; bounded,
 * cleared when full; a hash collision only costs a decode.
 */
interface CachedString {
  bytes: Uint8Array;
  value: string;
}
const huffmanCache = new Map<number, CachedString>();
const HUFFMAN_CACHE_MAX = 1024;
const HUFFMAN_CACHE_LEN = 48;

function cachedHuffman(buf: Uint8Array, start: number, end: number): string {
  if (end - start > HUFFMAN_CACHE_LEN) return huffmanDecode(buf, start, end);
  // FNV-1a over the coded bytes taken four at a time, mixed with the length (a collision only costs a decode).
  let h = 0x811c9dc5 ^ (end - start);
  let i = start;
  for (; i + 4 <= end; i += 4)
    h = Math.imul(h ^ (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24)), 0x01000193);
  for (; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  const hit = huffmanCache.get(h);
  if (hit !== undefined && sameBytes(hit.bytes, buf, start, end)) return hit.value;
  const value = huffmanDecode(buf, start, end);
  if (huffmanCache.size >= HUFFMAN_CACHE_MAX) huffmanCache.clear();
  // A copy: `buf` is often a Buffer, whose slice() is a view that would pin the whole socket read it came from.
  huffmanCache.set(h, { bytes: new Uint8Array(buf.subarray(start, end)), value });
  return value;
}

function sameBytes(a: Uint8Array, buf: Uint8Array, start: number, end: number): boolean {
  if (a.length !== end - start) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== buf[start + i]) return false;
  return true;
}

/**
 * Encode `s` (latin1) with the H bit at `1 << prefixBits` and `flags` in the
 * bits above. `huffman`: true uses Huffman when it is strictly shorter,
 * 'always' uses it regardless (RFC 7541 Appendix C.4/C.6 do), false never.
 */
export function encodeString(
  w: ByteWriter,
  flags: number,
  prefixBits: number,
  s: string,
  huffman: boolean | 'always' = true,
): void {
  if (huffman !== false && s.length <= HUFFMAN_CACHE_LEN) {
    // A short string: its coding remembered (a server sends the same date, type and length values on every
    // response, and a new connection's first response codes every field: its encoder's table is empty).
    const coded = cachedHuffmanCoding(s);
    if (huffman === 'always' || coded.length < s.length) {
      encodePrefixInt(w, flags | (1 << prefixBits), prefixBits, coded.length);
      w.bytes(coded);
    } else {
      encodePrefixInt(w, flags, prefixBits, s.length);
      w.latin1(s);
    }
    return;
  }
  assertOctets(s);
  const hlen = huffman ? huffmanEncodedLength(s) : s.length;
  if (huffman === 'always' || (huffman && hlen < s.length)) {
    encodePrefixInt(w, flags | (1 << prefixBits), prefixBits, hlen);
    huffmanEncode(w, s);
  } else {
    encodePrefixInt(w, flags, prefixBits, s.length);
    w.latin1(s);
  }
}

/** Strings stand for octets (latin1); a wider character would be silently truncated. */
function assertOctets(s: string): void {
  if (NON_OCTET_RE.test(s))
    throw new RangeError('string literal has a character above U+00FF (field values are octets)');
}

/** Huffman codings of short strings by the string (bounded, cleared when full; a pure function of the string). */
const huffmanCodings = new Map<string, Uint8Array>();

function cachedHuffmanCoding(s: string): Uint8Array {
  let coded = huffmanCodings.get(s);
  if (coded === undefined) {
    assertOctets(s);
    const cw = new ByteWriter(s.length);
    huffmanEncode(cw, s);
    coded = cw.finish();
    if (huffmanCodings.size >= HUFFMAN_CACHE_MAX) huffmanCodings.clear();
    huffmanCodings.set(s, coded);
  }
  return coded;
}
