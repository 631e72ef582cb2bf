/**
 * HPACK encoder (RFC 7541 §6). Indexing policy:
 * - an exact match in the static or dynamic table is sent indexed (§6.1);
 * - sensitive fields (credentials, short cookies; RFC 7541 §7.1.3) are
 *   never-indexed literals (§6.2.3), so no intermediary indexes them either,
 *   and so are fields the caller marks never-indexed (as received);
 * - anything else is a literal with incremental indexing (§6.2.1) when it
 *   fits comfortably in the table (at most 3/4 of it), without indexing else.
 * Strings are Huffman-coded when that is strictly shorter (or `huffman`
 * 'always' / false). A table size change from the peer's SETTINGS leaves as
 * a size update at the start of the next block (§4.2).
 */
import { FieldIndex } from '../field-index.js';
import { ByteWriter } from '../bytes.js';
import { DynamicTable, entrySize } from '../rfc7541/dynamic-table.js';
import { encodePrefixInt } from '../rfc7541/prefix-int.js';
import { encodeString } from '../rfc7541/prefix-string.js';
import { HPACK_STATIC_SIZE, staticExact, staticName } from './static-table.js';
import { NameSet } from '../../util/name-set.js';

export interface HpackEncoderOptions {
  /** The largest table we are willing to keep (our memory bound). Default 4096. */
  maxTableSize?: number;
  /** Huffman-code strings: when shorter (true), always, or never. Default true. */
  huffman?: boolean | 'always';
  /**
   * The peer decoder's table size before the first block (its SETTINGS_HEADER_TABLE_SIZE; default 4096, RFC 9113
   * §6.5.2).
   */
  peerTableSize?: number;
}

/** RFC 7541 §7.1.3: values an attacker could recover by probing the table. */
const ALWAYS_SENSITIVE = new NameSet(['authorization', 'proxy-authorization']);
/** Cookies shorter than this are never indexed (§7.1.3: low entropy). */
const SHORT_COOKIE = 20;

export class HpackEncoder {
  #table: DynamicTable;
  #huffman: boolean | 'always';
  #ownMax: number;
  /** Latest absolute index per exact field and per name (stale when evicted: checked with has()). */
  #exact = new FieldIndex();
  #w = new ByteWriter(256);
  #names = new Map<string, number>();
  /** Size updates owed at the start of the next block (the smallest first when it shrank in between, §4.2). */
  #updates: number[] = [];
  /**
   * The field sent indexed at each position of the previous block, and its index (static: the 1-based
   * index; dynamic: -1 - its absolute index, live or not): a block whose field at a position is the same
   * as last time (a proxy's requests repeat their fields, in order) is sent indexed without a table lookup.
   */
  #lastName: string[] = [];
  #lastValue: string[] = [];
  #lastIndex: number[] = [];

  constructor(o: HpackEncoderOptions = {}) {
    this.#ownMax = o.maxTableSize ?? 4096;
    const peer = o.peerTableSize ?? 4096;
    this.#table = new DynamicTable(Math.max(this.#ownMax, peer));
    this.#table.setCapacity(Math.min(this.#ownMax, peer));
    // Using less than the peer's decoder expects must be said (RFC 7541 §4.2).
    if (this.#ownMax < peer) this.#updates.push(this.#ownMax);
    this.#huffman = o.huffman ?? true;
  }

  get tableSize(): number {
    return this.#table.size;
  }

  /** The peer's SETTINGS_HEADER_TABLE_SIZE (its decoder's limit). */
  setPeerMaxTableSize(n: number): void {
    const cap = Math.min(n, this.#ownMax);
    if (cap === this.#table.capacity && this.#updates.length === 0) return;
    const old = this.#table;
    const t = new DynamicTable(Math.max(cap, old.capacity));
    t.setCapacity(old.capacity);
    for (let abs = old.droppedCount; abs < old.insertCount; abs++) t.insert(old.name(abs), old.value(abs));
    this.#table = t;
    this.#exact.clear();
    this.#names.clear();
    // The entries were inserted again under new absolute indices.
    this.#lastName = [];
    this.#lastValue = [];
    this.#lastIndex = [];
    for (let abs = t.droppedCount; abs < t.insertCount; abs++) this.#remember(t.name(abs), t.value(abs), abs);
    const min = Math.min(cap, ...this.#updates);
    this.#updates = min < cap ? [min, cap] : [cap];
  }

  /**
   * Encode one header block. `neverIndex(name, value)`: true for a field that
   * must stay a never-indexed literal (one received as such, §6.2.3).
   */
  encode(headers: ReadonlyArray<readonly [string, string]>, neverIndex?: (i: number) => boolean, room = 0): Uint8Array {
    // One writer per encoder, reused: a block is copied out by finish(), so only that copy is allocated — with `room`
    // bytes before the block, unwritten, for the caller's frame header.
    const w = this.#w;
    w.reset(room);
    for (const size of this.#updates) {
      this.#table.setCapacity(size);
      encodePrefixInt(w, 0x20, 5, size);
    }
    this.#updates = [];
    for (let i = 0; i < headers.length; i++) {
      const [name, value] = headers[i] as readonly [string, string];
      // Only a field that was not sensitive is remembered, and sensitivity is a function of the field, but for
      // the caller's neverIndex.
      if (name === this.#lastName[i] && value === this.#lastValue[i] && !(neverIndex?.(i) ?? false)) {
        const last = this.#lastIndex[i]!;
        const idx = last > 0 ? last : this.#dynamicIndex(-1 - last);
        if (idx !== undefined) {
          encodePrefixInt(w, 0x80, 7, idx);
          continue;
        }
      }
      const sensitive =
        ALWAYS_SENSITIVE.has(name) || (name === 'cookie' && value.length < SHORT_COOKIE) || (neverIndex?.(i) ?? false);
      if (!sensitive) {
        const st = staticExact(name, value);
        const abs = st === undefined ? this.#exact.get(name, value) : undefined;
        const idx = st ?? this.#dynamicIndex(abs);
        if (idx !== undefined) {
          encodePrefixInt(w, 0x80, 7, idx);
          this.#lastName[i] = name;
          this.#lastValue[i] = value;
          this.#lastIndex[i] = st ?? -1 - (abs as number);
          continue;
        }
      }
      const nameIdx = staticName(name) ?? this.#dynamicIndex(this.#names.get(name)) ?? 0;
      const size = entrySize(name, value);
      if (sensitive) {
        encodePrefixInt(w, 0x10, 4, nameIdx);
      } else if (size <= (this.#table.capacity * 3) / 4) {
        encodePrefixInt(w, 0x40, 6, nameIdx);
        if (this.#table.insert(name, value)) this.#remember(name, value, this.#table.insertCount - 1);
      } else {
        encodePrefixInt(w, 0x00, 4, nameIdx);
      }
      if (nameIdx === 0) encodeString(w, 0, 7, name, this.#huffman);
      encodeString(w, 0, 7, value, this.#huffman);
    }
    return w.finish();
  }

  #remember(name: string, value: string, abs: number): void {
    this.#exact.set(name, value, abs);
    this.#names.set(name, abs);
    // Bounded: entries pointing at evicted slots are dropped once they outnumber the live ones.
    if (this.#exact.size > 4 * (this.#table.insertCount - this.#table.droppedCount) + 64) {
      this.#exact.prune((a) => this.#table.has(a));
      for (const [k, a] of this.#names) if (!this.#table.has(a)) this.#names.delete(k);
    }
  }

  /** The HPACK index (§2.3.3) of a live absolute entry, or undefined. */
  #dynamicIndex(abs: number | undefined): number | undefined {
    if (abs === undefined || !this.#table.has(abs)) return undefined;
    return HPACK_STATIC_SIZE + 1 + (this.#table.insertCount - 1 - abs);
  }
}
