/**
 * QPACK encoder (RFC 9204 §4.5), static table and literals only.
 *
 * It never inserts into the dynamic table, so every field section has
 * Required Insert Count 0, never blocks the peer, and the encoder stream
 * stays empty — RFC 9204 §2.1 lets an encoder choose this whatever
 * capacity the peer allows. The peer's decoder stream is still parsed and
 * checked (§4.4).
 */
import { ByteWriter } from '../bytes.js';
import { QpackError, QpackErrorCode, QpackFormatError } from '../errors.js';
import type { HeaderField } from './decoder.js';
import { parseDecoderInstruction } from './instructions.js';
import { encodePrefixInt } from './prefix-int.js';
import { encodeString } from './prefix-string.js';
import { staticFindExact, staticFindName } from './static-table.js';

export interface QpackEncoderOptions {
  /** Use Huffman coding when shorter. Default true. */
  huffman?: boolean;
  /** Field names whose lines carry the N (never-index) bit. Default: authorization, proxy-authorization. */
  neverIndex?: ReadonlySet<string>;
}

const DEFAULT_NEVER_INDEX: ReadonlySet<string> = new Set(['authorization', 'proxy-authorization']);

export class QpackEncoder {
  readonly #huffman: boolean;
  readonly #neverIndex: ReadonlySet<string>;
  #decBuf: Uint8Array = new Uint8Array(0);

  constructor(opts: QpackEncoderOptions = {}) {
    this.#huffman = opts.huffman ?? true;
    this.#neverIndex = opts.neverIndex ?? DEFAULT_NEVER_INDEX;
  }

  /** Encode one field section. Names and values are latin1 strings. */
  encode(fields: ReadonlyArray<readonly [string, string]> | HeaderField[]): Uint8Array {
    const w = new ByteWriter(64);
    // Required Insert Count 0, Delta Base 0 (RFC 9204 §4.5.1).
    w.byte(0);
    w.byte(0);
    for (const [name, value] of fields) {
      const exact = staticFindExact(name, value);
      if (exact >= 0) {
        // §4.5.2 Indexed Field Line, static: 11xxxxxx.
        encodePrefixInt(w, 0xc0, 6, exact);
        continue;
      }
      const never = this.#neverIndex.has(name) ? 0x20 : 0;
      const nameIdx = staticFindName(name);
      if (nameIdx >= 0) {
        // §4.5.4 Literal with Name Reference, static: 01N1xxxx.
        encodePrefixInt(w, 0x50 | never, 4, nameIdx);
      } else {
        // §4.5.6 Literal with Literal Name: 001NHxxx.
        encodeString(w, 0x20 | (never >> 1), 3, name, this.#huffman);
      }
      encodeString(w, 0, 7, value, this.#huffman);
    }
    return w.finish();
  }

  /** Encoder stream bytes to send, or null (always null: no dynamic table use). */
  takeEncoderStreamBytes(): Uint8Array | null {
    return null;
  }

  /**
   * Process the peer's decoder stream. With no dynamic references
   * outstanding, Section Acknowledgment and any Insert Count Increment are
   * QPACK_DECODER_STREAM_ERROR (RFC 9204 §4.4.1, §4.4.3).
   */
  feedDecoderStream(data: Uint8Array): void {
    const buf = this.#decBuf.length === 0 ? data : concat(this.#decBuf, data);
    let off = 0;
    for (;;) {
      let parsed;
      try {
        parsed = parseDecoderInstruction(buf, off);
      } catch (e) {
        throw new QpackError(QpackErrorCode.DECODER_STREAM_ERROR, `QPACK decoder stream: ${(e as QpackFormatError).message}`);
      }
      if (parsed === null) break;
      off += parsed.length;
      const ins = parsed.instruction;
      if (ins.type === 'section-ack') {
        throw new QpackError(QpackErrorCode.DECODER_STREAM_ERROR, `Section Acknowledgment for stream ${ins.streamId} with nothing outstanding`);
      }
      if (ins.type === 'insert-count-increment') {
        throw new QpackError(QpackErrorCode.DECODER_STREAM_ERROR, `Insert Count Increment ${ins.increment} beyond insert count 0`);
      }
      // Stream Cancellation: nothing to release.
    }
    if (buf.length - off > 16) throw new QpackError(QpackErrorCode.DECODER_STREAM_ERROR, 'QPACK decoder stream: instruction too long');
    this.#decBuf = off === buf.length ? new Uint8Array(0) : buf.slice(off);
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
