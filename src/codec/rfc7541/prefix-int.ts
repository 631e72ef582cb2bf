/**
 * Prefixed integers (RFC 7541 §5.1, used by RFC 9204 §4.1.1): an N-bit
 * prefix in the low bits of the first byte; all-ones continues in 7-bit
 * groups, least significant first.
 *
 * Values are limited to 2^53 - 1 (JavaScript safe integers); RFC 9204
 * §4.1.1 requires 62-bit support, but every quantity QPACK encodes this
 * way (lengths, indexes, counts, stream ids) is bounded well below that by
 * our limits, so a larger value is rejected as malformed.
 */
import type { ByteWriter } from '../bytes.js';
import { FieldCodingError } from '../errors.js';

export interface PrefixIntResult {
  value: number;
  /** Bytes consumed, including the prefix byte. */
  length: number;
}

/** At most 8 continuation bytes: 7 * 8 = 56 bits covers 2^53 (QPACK's quantities). */
export const MAX_CONTINUATION = 8;

/**
 * Decode a prefixed integer at `offset` with a `prefixBits`-bit prefix.
 * Returns null when more bytes are needed; throws FieldCodingError on
 * overflow: a value past 2^53, or more than `maxContinuation` continuation
 * bytes (RFC 7541 §5.1 lets a decoder refuse an encoding past its limits "in
 * value or octet length"; HPACK uses a tighter one, see hpack/decoder.ts).
 */
export function decodePrefixInt(
  buf: Uint8Array,
  offset: number,
  prefixBits: number,
  maxContinuation = MAX_CONTINUATION,
): PrefixIntResult | null {
  if (offset >= buf.length) return null;
  const max = (1 << prefixBits) - 1;
  let value = buf[offset]! & max;
  if (value < max) return { value, length: 1 };
  let mult = 1;
  for (let i = 1; i <= maxContinuation + 1; i++) {
    const p = offset + i;
    if (p >= buf.length) return null;
    const b = buf[p]!;
    value += (b & 0x7f) * mult;
    // RFC 7541 §5.1: an encoding past the decoder's limits, "in value or octet length", is a decoding error.
    if (!Number.isSafeInteger(value)) throw new FieldCodingError('prefixed integer overflow (past 2^53)');
    if (i > maxContinuation)
      throw new FieldCodingError(`prefixed integer overflow (longer than ${maxContinuation + 1} octets)`);
    if ((b & 0x80) === 0) return { value, length: i + 1 };
    mult *= 128;
  }
  throw new FieldCodingError(`prefixed integer overflow (longer than ${maxContinuation + 1} octets)`);
}

/** Encode `value` with a `prefixBits`-bit prefix; `flags` fills the high bits of the first byte. */
export function encodePrefixInt(w: ByteWriter, flags: number, prefixBits: number, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`cannot encode ${value} as a prefixed integer`);
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    w.byte(flags | value);
    return;
  }
  w.byte(flags | max);
  let rest = value - max;
  while (rest >= 128) {
    w.byte((rest % 128) | 0x80);
    rest = Math.floor(rest / 128);
  }
  w.byte(rest);
}
