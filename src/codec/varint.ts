/**
 * QUIC variable-length integers (RFC 9000 §16).
 *
 * The two most significant bits of the first byte give the encoded length
 * (1, 2, 4 or 8 bytes); the remaining bits hold the value in network byte
 * order. Values range over [0, 2^62 - 1].
 *
 * JavaScript numbers are exact only up to 2^53 - 1. The `number` API throws
 * `VarintRangeError` for anything above that; callers that must accept the
 * whole range (frame types, setting identifiers, grease) use the `bigint`
 * variants at that edge.
 */

/** Largest value a QUIC varint can carry (RFC 9000 §16). */
export const VARINT_MAX = (1n << 62n) - 1n;
/** Largest value the `number` API accepts. */
export const VARINT_MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** A varint value is outside what the caller's representation can hold. */
export class VarintRangeError extends RangeError {
  readonly value: bigint;
  constructor(value: bigint, message?: string) {
    super(message ?? `varint value ${value} outside the representable range`);
    this.name = 'VarintRangeError';
    this.value = value;
  }
}

export interface VarintResult {
  value: number;
  /** Bytes consumed. */
  length: number;
}

export interface VarintBigResult {
  value: bigint;
  length: number;
}

/** Encoded length in bytes implied by the first byte of a varint. */
export function varintLengthFromFirstByte(first: number): 1 | 2 | 4 | 8 {
  return (1 << (first >> 6)) as 1 | 2 | 4 | 8;
}

/** Bytes needed to encode `value` (a non-negative safe integer). */
export function varintLength(value: number): 1 | 2 | 4 | 8 {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new VarintRangeError(BigInt(Math.trunc(Number.isFinite(value) ? value : -1)));
  if (value < 0x40) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x4000_0000) return 4;
  return 8;
}

/**
 * Write `value` at `offset`; returns the offset after it. The caller
 * guarantees room (see `varintLength`).
 */
export function writeVarint(buf: Uint8Array, offset: number, value: number): number {
  const len = varintLength(value);
  if (offset + len > buf.length) throw new RangeError('varint write past end of buffer');
  switch (len) {
    case 1:
      buf[offset] = value;
      break;
    case 2:
      buf[offset] = 0x40 | (value >>> 8);
      buf[offset + 1] = value & 0xff;
      break;
    case 4:
      buf[offset] = 0x80 | (value >>> 24);
      buf[offset + 1] = (value >>> 16) & 0xff;
      buf[offset + 2] = (value >>> 8) & 0xff;
      buf[offset + 3] = value & 0xff;
      break;
    case 8: {
      const hi = Math.floor(value / 0x1_0000_0000);
      const lo = value >>> 0;
      buf[offset] = 0xc0 | (hi >>> 24);
      buf[offset + 1] = (hi >>> 16) & 0xff;
      buf[offset + 2] = (hi >>> 8) & 0xff;
      buf[offset + 3] = hi & 0xff;
      buf[offset + 4] = lo >>> 24;
      buf[offset + 5] = (lo >>> 16) & 0xff;
      buf[offset + 6] = (lo >>> 8) & 0xff;
      buf[offset + 7] = lo & 0xff;
      break;
    }
  }
  return offset + len;
}

/** Encode `value` into a fresh array of the minimal length. */
export function encodeVarint(value: number): Uint8Array {
  const out = new Uint8Array(varintLength(value));
  writeVarint(out, 0, value);
  return out;
}

/** Encode any value in [0, 2^62 - 1]. */
export function encodeVarintBig(value: bigint): Uint8Array {
  if (value < 0n || value > VARINT_MAX) throw new VarintRangeError(value);
  if (value <= BigInt(VARINT_MAX_SAFE)) return encodeVarint(Number(value));
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, value | (3n << 62n));
  return out;
}

/**
 * Decode a varint starting at `offset`. Returns null when the slice ends
 * before the varint does ("need more bytes"). Throws `VarintRangeError` for
 * a value above 2^53 - 1; use `readVarintBig` where such values are legal.
 */
export function readVarint(buf: Uint8Array, offset = 0): VarintResult | null {
  if (offset >= buf.length) return null;
  const first = buf[offset]!;
  const len = varintLengthFromFirstByte(first);
  if (offset + len > buf.length) return null;
  let value = first & 0x3f;
  if (len === 8) {
    // 62 bits: hi holds the top 30 bits.
    const hi = ((value << 24) | (buf[offset + 1]! << 16) | (buf[offset + 2]! << 8) | buf[offset + 3]!) >>> 0;
    const lo = ((buf[offset + 4]! << 24) | (buf[offset + 5]! << 16) | (buf[offset + 6]! << 8) | buf[offset + 7]!) >>> 0;
    if (hi >= 0x20_0000) throw new VarintRangeError((BigInt(hi) << 32n) | BigInt(lo));
    return { value: hi * 0x1_0000_0000 + lo, length: 8 };
  }
  for (let i = 1; i < len; i++) value = value * 256 + buf[offset + i]!;
  return { value, length: len };
}

/** Decode a varint of any size as a bigint; null when more bytes are needed. */
export function readVarintBig(buf: Uint8Array, offset = 0): VarintBigResult | null {
  if (offset >= buf.length) return null;
  const first = buf[offset]!;
  const len = varintLengthFromFirstByte(first);
  if (offset + len > buf.length) return null;
  let value = BigInt(first & 0x3f);
  for (let i = 1; i < len; i++) value = (value << 8n) | BigInt(buf[offset + i]!);
  return { value, length: len };
}

/** Clamp a bigint varint to a safe number (for limits where "huge" means "unlimited"). */
export function saturateToSafe(value: bigint): number {
  return value > BigInt(VARINT_MAX_SAFE) ? VARINT_MAX_SAFE : Number(value);
}
