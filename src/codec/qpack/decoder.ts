/**
 * QPACK decoder (RFC 9204 §2.2, §4.3 input, §4.4 output, §4.5).
 *
 * Owns the dynamic table built from the peer's encoder stream, decodes
 * field sections (possibly blocking them until enough inserts arrived),
 * and queues decoder stream instructions for the caller to send.
 *
 * Call order: `feedEncoderStream` with encoder stream bytes (any
 * chunking) returns the sections it unblocked, in arrival order;
 * `decodeSection` with one complete encoded field section; after either,
 * `takeDecoderStreamBytes` yields what to write on our decoder stream.
 * All failures throw `QpackError` (connection errors).
 */
import { ByteWriter } from '../bytes.js';
import { QpackError, QpackErrorCode, FieldCodingError } from '../errors.js';
import { DynamicTable, entrySize } from '../rfc7541/dynamic-table.js';
import { parseEncoderInstruction, writeDecoderInstruction } from './instructions.js';
import { decodePrefixInt } from '../rfc7541/prefix-int.js';
import { decodeString } from '../rfc7541/prefix-string.js';
import { RepeatBlocks } from '../repeats.js';
import { STATIC_TABLE } from './static-table.js';

export type HeaderField = readonly [name: string, value: string];

export interface QpackDecoderOptions {
  /** SETTINGS_QPACK_MAX_TABLE_CAPACITY we advertised (RFC 9204 §5). */
  maxTableCapacity: number;
  /** SETTINGS_QPACK_BLOCKED_STREAMS we advertised. */
  maxBlockedStreams: number;
  /**
   * Dynamic table capacity before any Set Dynamic Table Capacity. RFC 9204
   * §3.2.3 makes it 0; the qpack-05 offline interop corpus assumes the
   * maximum. Default 0.
   */
  initialCapacity?: number;
  /** Upper bound on a single string literal in a field section (octets). Default 1 MiB. */
  maxStringLength?: number;
}

export type SectionOutcome = DecodedSection | { status: 'blocked'; requiredInsertCount: number };

export interface DecodedSection {
  status: 'done';
  headers: ReadonlyArray<readonly [name: string, value: string]>;
  requiredInsertCount: number;
  /** This very object comes back for the same bytes while they mean the same (see RepeatSection): never change it. */
  kept: boolean;
}

/**
 * A field section's lines depend on its bytes, its Required Insert Count (the same encoded value means another one
 * once the table's inserts pass a wrap, RFC 9204 §4.5.1.1) and the entries it refers to, which never change while
 * they are in the table (an absolute index names one entry for good, §3.2.4). So a section received again — a
 * server's response head, a client's request — is decoded once while its entries stay: kept by its bytes and
 * returned again, so a repeat costs a comparison and a caller may remember what it derived from the list by its
 * identity (http/field-section.ts checkReceived). Shared, so read-only (SharedHeaderList), not frozen (a
 * frozen list takes V8's slower paths wherever it is read). `oldest`: the lowest absolute index it refers to, -1 for
 * none.
 */
interface RepeatSection {
  ric: number;
  oldest: number;
  result: DecodedSection;
}

/** A section that waited for inserts, decoded once they came (not kept: it came only once). */
export interface UnblockedSection extends DecodedSection {
  streamId: number;
}

interface Blocked {
  streamId: number;
  block: Uint8Array;
  ric: number;
}

/** Cap on buffered, not yet complete encoder stream bytes beyond one maximal entry. */
const ENCODER_SLACK = 64;

export class QpackDecoder {
  readonly #table: DynamicTable;
  readonly #maxBlocked: number;
  readonly #maxString: number;
  #encBuf: Uint8Array = new Uint8Array(0);
  #blocked: Blocked[] = [];
  /** Inserts the peer encoder knows we have received (RFC 9204 §2.1.4). */
  #knownReceived = 0;
  #out = new ByteWriter(32);
  readonly #repeats = new RepeatBlocks<RepeatSection>();
  /** The lowest absolute index the last #lines referred to, -1 for none. */
  #oldest = -1;

  constructor(opts: QpackDecoderOptions) {
    if (!Number.isSafeInteger(opts.maxTableCapacity) || opts.maxTableCapacity < 0) {
      throw new RangeError('maxTableCapacity must be a non-negative integer');
    }
    this.#table = new DynamicTable(opts.maxTableCapacity);
    if (opts.initialCapacity !== undefined && !this.#table.setCapacity(opts.initialCapacity)) {
      throw new RangeError('initialCapacity above maxTableCapacity');
    }
    this.#maxBlocked = opts.maxBlockedStreams;
    this.#maxString = opts.maxStringLength ?? 1 << 20;
  }

  get table(): DynamicTable {
    return this.#table;
  }

  get blockedStreamCount(): number {
    return this.#blocked.length;
  }

  /** True while the encoder stream ends inside an instruction. */
  get hasPartialEncoderInstruction(): boolean {
    return this.#encBuf.length > 0;
  }

  isBlocked(streamId: number): boolean {
    return this.#blocked.some((b) => b.streamId === streamId);
  }

  /** Whether takeDecoderStreamBytes has anything to give. */
  get hasDecoderStreamBytes(): boolean {
    return this.#out.length > 0 || this.#table.insertCount > this.#knownReceived;
  }

  /**
   * Bytes queued for our decoder stream, or null when none. Inserts not
   * covered by a Section Acknowledgment are reported here as one coalesced
   * Insert Count Increment (RFC 9204 §2.2.2.3, §4.4.3).
   */
  takeDecoderStreamBytes(): Uint8Array | null {
    if (this.#table.insertCount > this.#knownReceived) {
      writeDecoderInstruction(this.#out, {
        type: 'insert-count-increment',
        increment: this.#table.insertCount - this.#knownReceived,
      });
      this.#knownReceived = this.#table.insertCount;
    }
    if (this.#out.length === 0) return null;
    const bytes = this.#out.finish();
    this.#out.reset();
    return bytes;
  }

  /** Process encoder stream bytes; returns the field sections this unblocked. */
  feedEncoderStream(data: Uint8Array): UnblockedSection[] {
    let buf: Uint8Array;
    if (this.#encBuf.length === 0) buf = data;
    else {
      buf = new Uint8Array(this.#encBuf.length + data.length);
      buf.set(this.#encBuf);
      buf.set(data, this.#encBuf.length);
    }
    const before = this.#table.insertCount;
    let off = 0;
    for (;;) {
      let parsed;
      try {
        parsed = parseEncoderInstruction(buf, off, this.#table.maxCapacity);
      } catch (e) {
        if (e instanceof FieldCodingError) throw this.#encoderError(e.message);
        throw e;
      }
      if (parsed === null) break;
      off += parsed.length;
      const ins = parsed.instruction;
      switch (ins.type) {
        case 'set-capacity':
          // RFC 9204 §4.3.1: above the maximum is QPACK_ENCODER_STREAM_ERROR.
          if (!this.#table.setCapacity(ins.capacity))
            throw this.#encoderError(`capacity ${ins.capacity} above maximum`);
          break;
        case 'insert-name-ref': {
          let name: string;
          if (ins.isStatic) {
            const e = STATIC_TABLE[ins.index];
            if (e === undefined) throw this.#encoderError(`static index ${ins.index} out of range`);
            name = e[0];
          } else {
            const abs = this.#table.insertCount - ins.index - 1;
            if (!this.#table.has(abs)) throw this.#encoderError(`dynamic name reference ${ins.index} invalid`);
            name = this.#table.name(abs);
          }
          if (!this.#table.insert(name, ins.value)) throw this.#encoderError('entry larger than table capacity');
          break;
        }
        case 'insert-literal':
          if (!this.#table.insert(ins.name, ins.value)) throw this.#encoderError('entry larger than table capacity');
          break;
        case 'duplicate': {
          const abs = this.#table.insertCount - ins.index - 1;
          if (!this.#table.has(abs)) throw this.#encoderError(`duplicate of invalid index ${ins.index}`);
          if (!this.#table.insert(this.#table.name(abs), this.#table.value(abs))) {
            throw this.#encoderError('entry larger than table capacity');
          }
          break;
        }
      }
    }
    const rest = buf.length - off;
    if (rest > this.#table.maxCapacity * 2 + ENCODER_SLACK) throw this.#encoderError('incomplete instruction too long');
    this.#encBuf = rest === 0 ? new Uint8Array(0) : buf.slice(off);
    if (this.#table.insertCount === before) return [];
    const unblocked = this.#unblock();
    return unblocked;
  }

  /**
   * Decode one complete encoded field section from `streamId`. A blocked
   * section is kept and returned later by `feedEncoderStream`.
   */
  decodeSection(streamId: number, block: Uint8Array): SectionOutcome {
    const { ric, base, offset } = this.#prefix(block);
    if (ric > this.#table.insertCount) {
      // RFC 9204 §2.1.2: more blocked streams than promised is QPACK_DECOMPRESSION_FAILED.
      if (!this.isBlocked(streamId) && this.#blockedStreams() >= this.#maxBlocked) {
        throw this.#decompressionError(`too many blocked streams (limit ${this.#maxBlocked})`);
      }
      this.#blocked.push({ streamId, block: block.slice(), ric });
      return { status: 'blocked', requiredInsertCount: ric };
    }
    const k = this.#repeats.get(block);
    if (k !== undefined && k.ric === ric && (k.oldest < 0 || this.#table.has(k.oldest))) {
      this.#acknowledge(streamId, ric);
      return k.result;
    }
    const headers = this.#lines(block, offset, ric, base);
    this.#acknowledge(streamId, ric);
    let size = 0;
    for (const [n, v] of headers) size += entrySize(n, v);
    const kept = RepeatBlocks.fits(block, size);
    const result: DecodedSection = { status: 'done', headers, requiredInsertCount: ric, kept };
    if (kept) this.#repeats.set(block, { ric, oldest: this.#oldest, result });
    return result;
  }

  /**
   * The stream was reset or abandoned before all its sections were decoded:
   * drop any blocked section and emit Stream Cancellation (RFC 9204
   * §2.2.2.2; omitted when our maximum capacity is 0).
   */
  cancelStream(streamId: number): void {
    this.#blocked = this.#blocked.filter((b) => b.streamId !== streamId);
    if (this.#table.maxCapacity > 0) writeDecoderInstruction(this.#out, { type: 'stream-cancel', streamId });
  }

  #blockedStreams(): number {
    return new Set(this.#blocked.map((b) => b.streamId)).size;
  }

  #acknowledge(streamId: number, ric: number): void {
    if (ric === 0) return;
    // RFC 9204 §2.2.2.1: sections with dynamic references MUST be acknowledged.
    writeDecoderInstruction(this.#out, { type: 'section-ack', streamId });
    if (ric > this.#knownReceived) this.#knownReceived = ric;
  }

  #unblock(): UnblockedSection[] {
    if (this.#blocked.length === 0) return [];
    const ready: UnblockedSection[] = [];
    const still: Blocked[] = [];
    for (const b of this.#blocked) {
      // Sections on one stream stay in order: a later one waits for an earlier one.
      if (b.ric <= this.#table.insertCount && !still.some((s) => s.streamId === b.streamId)) {
        const { ric, base, offset } = this.#prefix(b.block);
        const headers = this.#lines(b.block, offset, ric, base);
        this.#acknowledge(b.streamId, ric);
        ready.push({ status: 'done', headers, requiredInsertCount: ric, kept: false, streamId: b.streamId });
      } else {
        still.push(b);
      }
    }
    this.#blocked = still;
    return ready;
  }

  /** Field section prefix (RFC 9204 §4.5.1). */
  #prefix(block: Uint8Array): { ric: number; base: number; offset: number } {
    let enc, delta;
    try {
      enc = decodePrefixInt(block, 0, 8);
      delta = enc && decodePrefixInt(block, enc.length, 7);
    } catch (e) {
      if (e instanceof FieldCodingError) throw this.#decompressionError(e.message);
      throw e;
    }
    if (!enc || !delta) throw this.#decompressionError('truncated field section prefix');
    const ric = this.#requiredInsertCount(enc.value);
    const sign = (block[enc.length]! & 0x80) !== 0;
    let base: number;
    if (!sign) base = ric + delta.value;
    else {
      // RFC 9204 §4.5.1.2: Base = RIC - DeltaBase - 1; must not go negative.
      base = ric - delta.value - 1;
      if (base < 0) throw this.#decompressionError('negative Base');
    }
    return { ric, base, offset: enc.length + delta.length };
  }

  /** RFC 9204 §4.5.1.1: recover Required Insert Count from its encoding. */
  #requiredInsertCount(encoded: number): number {
    if (encoded === 0) return 0;
    const maxEntries = this.#table.maxEntries;
    const fullRange = 2 * maxEntries;
    if (encoded > fullRange) throw this.#decompressionError('encoded Required Insert Count out of range');
    const maxValue = this.#table.insertCount + maxEntries;
    const maxWrapped = Math.floor(maxValue / fullRange) * fullRange;
    let ric = maxWrapped + encoded - 1;
    if (ric > maxValue) {
      if (ric <= fullRange) throw this.#decompressionError('invalid Required Insert Count');
      ric -= fullRange;
    }
    if (ric === 0) throw this.#decompressionError('Required Insert Count decodes to 0');
    return ric;
  }

  /** Field line representations (RFC 9204 §4.5.2-§4.5.6). */
  #lines(block: Uint8Array, start: number, ric: number, base: number): HeaderField[] {
    const out: HeaderField[] = [];
    let off = start;
    let oldest = -1;
    const dyn = (abs: number): number => {
      // RFC 9204 §2.2.3: evicted, or at/above Required Insert Count, is QPACK_DECOMPRESSION_FAILED.
      if (abs < 0 || abs >= ric || !this.#table.has(abs))
        throw this.#decompressionError(`invalid dynamic reference ${abs}`);
      if (oldest < 0 || abs < oldest) oldest = abs;
      return abs;
    };
    const stat = (idx: number): readonly [string, string] => {
      const e = STATIC_TABLE[idx];
      if (e === undefined) throw this.#decompressionError(`static index ${idx} out of range`);
      return e;
    };
    const need = <T>(v: T | null): T => {
      if (v === null) throw this.#decompressionError('truncated field line');
      return v;
    };
    try {
      while (off < block.length) {
        const b = block[off]!;
        if (b & 0x80) {
          // §4.5.2 Indexed Field Line: 1Txxxxxx.
          const idx = need(decodePrefixInt(block, off, 6));
          off += idx.length;
          if (b & 0x40) {
            const e = stat(idx.value);
            out.push([e[0], e[1]]);
          } else {
            const abs = dyn(base - idx.value - 1);
            out.push([this.#table.name(abs), this.#table.value(abs)]);
          }
        } else if (b & 0x40) {
          // §4.5.4 Literal Field Line with Name Reference: 01NTxxxx.
          const idx = need(decodePrefixInt(block, off, 4));
          off += idx.length;
          const name = b & 0x10 ? stat(idx.value)[0] : this.#table.name(dyn(base - idx.value - 1));
          const val = need(decodeString(block, off, 7, this.#maxString));
          off += val.length;
          out.push([name, val.value]);
        } else if (b & 0x20) {
          // §4.5.6 Literal Field Line with Literal Name: 001NHxxx.
          const name = need(decodeString(block, off, 3, this.#maxString));
          off += name.length;
          const val = need(decodeString(block, off, 7, this.#maxString));
          off += val.length;
          out.push([name.value, val.value]);
        } else if (b & 0x10) {
          // §4.5.3 Indexed Field Line with Post-Base Index: 0001xxxx.
          const idx = need(decodePrefixInt(block, off, 4));
          off += idx.length;
          const abs = dyn(base + idx.value);
          out.push([this.#table.name(abs), this.#table.value(abs)]);
        } else {
          // §4.5.5 Literal Field Line with Post-Base Name Reference: 0000Nxxx.
          const idx = need(decodePrefixInt(block, off, 3));
          off += idx.length;
          const name = this.#table.name(dyn(base + idx.value));
          const val = need(decodeString(block, off, 7, this.#maxString));
          off += val.length;
          out.push([name, val.value]);
        }
      }
    } catch (e) {
      if (e instanceof FieldCodingError) throw this.#decompressionError(e.message);
      throw e;
    }
    this.#oldest = oldest;
    return out;
  }

  #encoderError(msg: string): QpackError {
    return new QpackError(QpackErrorCode.ENCODER_STREAM_ERROR, `QPACK encoder stream: ${msg}`);
  }

  #decompressionError(msg: string): QpackError {
    return new QpackError(QpackErrorCode.DECOMPRESSION_FAILED, `QPACK decompression failed: ${msg}`);
  }
}
