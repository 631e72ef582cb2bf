/**
 * HPACK decoder (RFC 7541 §3, §6): one header block (already reassembled
 * from HEADERS + CONTINUATION) in, a field list out. Pure; the dynamic table
 * lives across blocks of one connection.
 *
 * Limits (RFC 9113 §10.5.1, the "HPACK bomb"): the decoded list is capped at
 * `maxHeaderListSize` (name + value + 32 per field, as SETTINGS_MAX_HEADER_LIST_SIZE
 * counts it) and no string longer than that is buffered; a block over the cap
 * still updates the dynamic table (the connection stays in sync) and then
 * fails with `tooLarge`, which the connection may answer per stream.
 */
import { FieldCodingError, HpackError } from '../errors.js';
import { DynamicTable, ENTRY_OVERHEAD } from '../rfc7541/dynamic-table.js';
import { decodePrefixInt } from '../rfc7541/prefix-int.js';
import { decodeString } from '../rfc7541/prefix-string.js';
import { RepeatBlocks } from '../repeats.js';
import { HPACK_STATIC, HPACK_STATIC_SIZE } from './static-table.js';

/**
 * Continuation bytes of a prefixed integer: at most 5, so values reach 2^35 (past every HPACK quantity we
 * accept: table sizes, indexes, string lengths are all far smaller) — the octet-length limit nghttp2's
 * inflater has, so two HTTP/2 hops refuse the same padded integers (RFC 7541 §5.1 lets a decoder refuse an
 * encoding past its limits "in value or octet length").
 */
const HPACK_MAX_CONTINUATION = 5;

export interface HpackDecoderOptions {
  /** Our SETTINGS_HEADER_TABLE_SIZE: the most the peer's encoder may use. Default 4096 (RFC 9113 §6.5.2). */
  maxTableSize?: number;
  /** Our SETTINGS_MAX_HEADER_LIST_SIZE. Default 64 KiB. */
  maxHeaderListSize?: number;
}

export interface DecodedBlock {
  headers: ReadonlyArray<readonly [name: string, value: string]>;
  /**
   * Indexes into `headers` of fields sent as never-indexed literals (RFC 7541 §6.2.3): keep them so on the next hop.
   */
  neverIndexed: readonly number[];
  /** This very object comes back for the same bytes while the table allows (see RepeatBlock): never change it. */
  kept: boolean;
}

/**
 * A block that changes nothing in the table decodes to the same list every time it is sent while the entries it
 * refers to stay (a server sends the same response head over and over; nginx, which indexes into a table it sized 0,
 * the same bytes until its date changes; a client the same request). Its result is kept by its bytes and returned
 * again, so a repeat costs a comparison of its bytes, and a caller may remember what it derived from the list by its
 * identity (http/field-section.ts checkReceived). Shared, so read-only: typed so (SharedHeaderList, whose fields are
 * read-only tuples everywhere), not frozen — a frozen list takes V8's slower paths wherever it is read.
 * `epoch`: the table's at the decode, or -1 for a block that refers to the static table alone.
 */
interface RepeatBlock {
  epoch: number;
  result: DecodedBlock;
}

export class HpackDecoder {
  #table: DynamicTable;
  #maxHeaderListSize: number;
  /** A lower table size we announced: the next block must start with an update to at most it (RFC 7541 §4.2). */
  #pendingMax: number | null = null;
  /** Moves with every change of the table: a kept block that refers to it holds only while this stays. */
  #epoch = 0;
  readonly #repeats = new RepeatBlocks<RepeatBlock>();

  constructor(o: HpackDecoderOptions = {}) {
    const max = o.maxTableSize ?? 4096;
    this.#table = new DynamicTable(max);
    this.#table.setCapacity(max);
    this.#maxHeaderListSize = o.maxHeaderListSize ?? 64 * 1024;
  }

  /** Bytes in use by the dynamic table. */
  get tableSize(): number {
    return this.#table.size;
  }
  get tableCapacity(): number {
    return this.#table.capacity;
  }

  /**
   * Our SETTINGS_HEADER_TABLE_SIZE changed (once acknowledged). A lower value
   * obliges the encoder to shrink its table at the start of its next block.
   */
  setMaxTableSize(n: number): void {
    const t = new DynamicTable(n);
    // Keep the entries: copy by re-inserting oldest first within the new bound.
    const old = this.#table;
    t.setCapacity(Math.min(n, old.capacity));
    for (let abs = old.droppedCount; abs < old.insertCount; abs++) t.insert(old.name(abs), old.value(abs));
    this.#table = t;
    this.#epoch++;
    if (n < old.capacity) this.#pendingMax = n;
  }

  decode(block: Uint8Array): DecodedBlock {
    if (this.#pendingMax === null) {
      const k = this.#repeats.get(block);
      if (k !== undefined && (k.epoch === -1 || k.epoch === this.#epoch)) return k.result;
    }
    return this.#decode(block);
  }

  #decode(block: Uint8Array): DecodedBlock {
    const epoch = this.#epoch;
    let dynamic = false;
    const headers: Array<[string, string]> = [];
    const neverIndexed: number[] = [];
    let listSize = 0;
    let tooLarge = false;
    let off = 0;
    let sawField = false;
    try {
      while (off < block.length) {
        const b = block[off]!;
        if ((b & 0xe0) === 0x20) {
          // §6.3 Dynamic Table Size Update: only before the first field (§4.2).
          if (sawField) throw new HpackError('dynamic table size update after a field');
          const r = need(decodePrefixInt(block, off, 5, HPACK_MAX_CONTINUATION));
          off += r.length;
          if (r.value !== this.#table.capacity) this.#epoch++; // the same size again changes nothing
          if (!this.#table.setCapacity(r.value))
            throw new HpackError(`table size update to ${r.value} above the ${this.#table.maxCapacity} allowed`);
          if (this.#pendingMax !== null && r.value <= this.#pendingMax) this.#pendingMax = null;
          continue;
        }
        if (this.#pendingMax !== null)
          throw new HpackError(`block must start with a table size update to at most ${this.#pendingMax}`);
        sawField = true;
        let name: string;
        let value: string;
        if (b & 0x80) {
          // §6.1 Indexed Header Field.
          const r = need(decodePrefixInt(block, off, 7, HPACK_MAX_CONTINUATION));
          off += r.length;
          [name, value] = this.#entry(r.value);
          if (r.value > HPACK_STATIC_SIZE) dynamic = true;
        } else {
          // §6.2 Literal: with incremental indexing (01), never indexed (0001), without indexing (0000).
          const incremental = (b & 0xc0) === 0x40;
          const prefix = incremental ? 6 : 4;
          const never = !incremental && (b & 0x10) !== 0;
          const idx = need(decodePrefixInt(block, off, prefix, HPACK_MAX_CONTINUATION));
          off += idx.length;
          // A literal longer than the header list may be is still decoded (its octets are in this block, which the
          // connection bounds): the table must take it (§4.4: an entry larger than the table empties it), and the
          // list is refused as too large, a stream error, not the connection's COMPRESSION_ERROR.
          const limit = block.length;
          if (idx.value === 0) {
            const n = need(decodeString(block, off, 7, limit, HPACK_MAX_CONTINUATION));
            off += n.length;
            name = n.value;
          } else {
            name = this.#entry(idx.value)[0];
            if (idx.value > HPACK_STATIC_SIZE) dynamic = true;
          }
          const v = need(decodeString(block, off, 7, limit, HPACK_MAX_CONTINUATION));
          off += v.length;
          value = v.value;
          if (incremental) {
            // A table of size 0 stays empty (nginx sets it so and then indexes every field): nothing changes.
            if (this.#table.capacity > 0) this.#epoch++;
            if (!this.#table.insert(name, value)) this.#table.clear(); // §4.4
          }
          if (never) neverIndexed.push(headers.length);
        }
        listSize += name.length + value.length + ENTRY_OVERHEAD;
        if (listSize > this.#maxHeaderListSize) tooLarge = true;
        else headers.push([name, value]);
      }
    } catch (e) {
      if (e instanceof HpackError) throw e;
      if (e instanceof FieldCodingError) throw new HpackError(e.message, { cause: e });
      throw e;
    }
    if (tooLarge) throw new HpackError(`header list larger than ${this.#maxHeaderListSize} bytes`, { tooLarge: true });
    const kept = RepeatBlocks.fits(block, listSize) && this.#pendingMax === null && this.#epoch === epoch;
    const result = { headers, neverIndexed, kept };
    if (kept) this.#repeats.set(block, { epoch: dynamic ? epoch : -1, result });
    return result;
  }

  /** Index space (§2.3.3): 1..61 static, then the dynamic table newest first. */
  #entry(index: number): [string, string] {
    if (index === 0) throw new HpackError('index 0');
    if (index <= HPACK_STATIC_SIZE) return HPACK_STATIC[index - 1] as [string, string];
    const t = this.#table;
    const abs = t.insertCount - 1 - (index - HPACK_STATIC_SIZE - 1);
    if (!t.has(abs)) throw new HpackError(`index ${index} outside the table`);
    return [t.name(abs), t.value(abs)];
  }
}

/** A whole block is given: running out of bytes mid-representation is malformed. */
function need<T>(r: T | null): T {
  if (r === null) throw new HpackError('header block ends inside a representation');
  return r;
}
