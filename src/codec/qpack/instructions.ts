/**
 * QPACK encoder and decoder stream instructions (RFC 9204 §4.3, §4.4):
 * parsing one instruction at a time from a buffer (null = need more bytes)
 * and writing them.
 */
import type { ByteWriter } from '../bytes.js';
import { FieldCodingError } from '../errors.js';
import { decodePrefixInt, encodePrefixInt } from '../rfc7541/prefix-int.js';
import { decodeString, encodeString } from '../rfc7541/prefix-string.js';
import { STATIC_TABLE } from './static-table.js';

const STATIC_TABLE_SIZE = STATIC_TABLE.length;

export type EncoderInstruction =
  /** §4.3.1 Set Dynamic Table Capacity: 001xxxxx. */
  | { type: 'set-capacity'; capacity: number }
  /** §4.3.2 Insert with Name Reference: 1Txxxxxx; dynamic index is relative to the insert count. */
  | { type: 'insert-name-ref'; isStatic: boolean; index: number; value: string }
  /** §4.3.3 Insert with Literal Name: 01Hxxxxx. */
  | { type: 'insert-literal'; name: string; value: string }
  /** §4.3.4 Duplicate: 000xxxxx, relative index. */
  | { type: 'duplicate'; index: number };

export type DecoderInstruction =
  /** §4.4.1 Section Acknowledgment: 1xxxxxxx. */
  | { type: 'section-ack'; streamId: number }
  /** §4.4.2 Stream Cancellation: 01xxxxxx. */
  | { type: 'stream-cancel'; streamId: number }
  /** §4.4.3 Insert Count Increment: 00xxxxxx. */
  | { type: 'insert-count-increment'; increment: number };

export interface Parsed<T> {
  instruction: T;
  length: number;
}

/**
 * Parse one encoder stream instruction at `offset`. `maxString` bounds every
 * string literal (an entry must fit the table, §3.2.2). Throws
 * FieldCodingError on malformed integers or strings.
 */
export function parseEncoderInstruction(
  buf: Uint8Array,
  offset: number,
  maxString: number,
): Parsed<EncoderInstruction> | null {
  if (offset >= buf.length) return null;
  const first = buf[offset]!;
  if (first & 0x80) {
    const idx = decodePrefixInt(buf, offset, 6);
    if (idx === null) return null;
    // Reject a bad static reference before waiting for the value bytes.
    if (first & 0x40 && idx.value >= STATIC_TABLE_SIZE)
      throw new FieldCodingError(`static index ${idx.value} out of range`);
    const val = decodeString(buf, offset + idx.length, 7, maxString);
    if (val === null) return null;
    return {
      instruction: { type: 'insert-name-ref', isStatic: (first & 0x40) !== 0, index: idx.value, value: val.value },
      length: idx.length + val.length,
    };
  }
  if (first & 0x40) {
    const name = decodeString(buf, offset, 5, maxString);
    if (name === null) return null;
    const val = decodeString(buf, offset + name.length, 7, maxString);
    if (val === null) return null;
    return {
      instruction: { type: 'insert-literal', name: name.value, value: val.value },
      length: name.length + val.length,
    };
  }
  const n = decodePrefixInt(buf, offset, 5);
  if (n === null) return null;
  if (first & 0x20) return { instruction: { type: 'set-capacity', capacity: n.value }, length: n.length };
  return { instruction: { type: 'duplicate', index: n.value }, length: n.length };
}

/** Parse one decoder stream instruction at `offset`. */
export function parseDecoderInstruction(buf: Uint8Array, offset: number): Parsed<DecoderInstruction> | null {
  if (offset >= buf.length) return null;
  const first = buf[offset]!;
  if (first & 0x80) {
    const n = decodePrefixInt(buf, offset, 7);
    return n && { instruction: { type: 'section-ack', streamId: n.value }, length: n.length };
  }
  const n = decodePrefixInt(buf, offset, 6);
  if (n === null) return null;
  if (first & 0x40) return { instruction: { type: 'stream-cancel', streamId: n.value }, length: n.length };
  return { instruction: { type: 'insert-count-increment', increment: n.value }, length: n.length };
}

export function writeEncoderInstruction(w: ByteWriter, ins: EncoderInstruction): void {
  switch (ins.type) {
    case 'set-capacity':
      encodePrefixInt(w, 0x20, 5, ins.capacity);
      break;
    case 'insert-name-ref':
      encodePrefixInt(w, ins.isStatic ? 0xc0 : 0x80, 6, ins.index);
      encodeString(w, 0, 7, ins.value);
      break;
    case 'insert-literal':
      encodeString(w, 0x40, 5, ins.name);
      encodeString(w, 0, 7, ins.value);
      break;
    case 'duplicate':
      encodePrefixInt(w, 0x00, 5, ins.index);
      break;
  }
}

export function writeDecoderInstruction(w: ByteWriter, ins: DecoderInstruction): void {
  switch (ins.type) {
    case 'section-ack':
      encodePrefixInt(w, 0x80, 7, ins.streamId);
      break;
    case 'stream-cancel':
      encodePrefixInt(w, 0x40, 6, ins.streamId);
      break;
    case 'insert-count-increment':
      encodePrefixInt(w, 0x00, 6, ins.increment);
      break;
  }
}
