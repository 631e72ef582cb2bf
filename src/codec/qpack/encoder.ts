/**
 * QPACK encoder (RFC 9204 §2.1, §4.3, §4.5).
 *
 * Static table first; when the peer's decoder allows a dynamic table
 * (SETTINGS_QPACK_MAX_TABLE_CAPACITY > 0) and `maxTableCapacity` > 0, it
 * also inserts reusable fields and references them — but only entries the
 * decoder has acknowledged (below the Known Received Count). So a field
 * section never blocks the peer decoder whatever its
 * SETTINGS_QPACK_BLOCKED_STREAMS, and a fresh insert pays off from the
 * next section on.
 *
 * Call order: `setPeerSettings` once the peer's SETTINGS arrive (before
 * that, static only); `encode` per field section; send
 * `takeEncoderStreamBytes` on the encoder stream; feed the peer's decoder
 * stream to `feedDecoderStream` (errors are QPACK_DECODER_STREAM_ERROR).
 */
import { ByteWriter } from '../bytes.js';
import { QpackError, QpackErrorCode, FieldCodingError } from '../errors.js';
import type { HeaderField } from './decoder.js';
import { entrySize } from '../rfc7541/dynamic-table.js';
import { EncoderTable } from './encoder-table.js';
import { parseDecoderInstruction, writeEncoderInstruction } from './instructions.js';
import { encodePrefixInt } from '../rfc7541/prefix-int.js';
import { encodeString } from '../rfc7541/prefix-string.js';
import { staticFindExact, staticFindName } from './static-table.js';
import { NameSet } from '../../util/name-set.js';

export interface QpackEncoderOptions {
  /** Use Huffman coding when shorter. Default true. */
  huffman?: boolean;
  /**
   * Field names sent with the N (never-index) bit and never inserted. Default: authorization, proxy-authorization,
   * cookie, set-cookie.
   */
  neverIndex?: { has(name: string): boolean };
  /** Most of the peer's dynamic table we use, in octets; 0 = static table only. Default 4096. */
  maxTableCapacity?: number;
  /** Insert a field only the second time it is sent (values that never repeat are never inserted). Default true. */
  insertOnSecondUse?: boolean;
  /**
   * Refer to the dynamic table in a section only when that saves at least this many bytes over literals (counted as
   * the names' and values' lengths). Every section that refers to an entry costs the peer a Section Acknowledgment
   * (RFC 9204 §4.4.1), which both ends handle, and this encoder the section's record until it arrives; a request
   * whose only repeated field is a short `:authority` gains a dozen bytes for it. Default MIN_REFERENCE_SAVING; 0
   * refers whenever it can.
   */
  minReferenceSaving?: number;
}

/** QpackEncoderOptions.minReferenceSaving's default, bytes. */
export const MIN_REFERENCE_SAVING = 32;

const DEFAULT_NEVER_INDEX = new NameSet(['authorization', 'proxy-authorization', 'cookie', 'set-cookie']);
/** Fields whose values rarely repeat: inserting them would only churn the table. */
const NOT_WORTH_INDEXING = new NameSet([
  ':path',
  'content-length',
  'date',
  'etag',
  'last-modified',
  'if-modified-since',
  'if-none-match',
  'content-range',
  'age',
  'expires',
]);

/** Fields remembered as seen once (QpackEncoder.#seen). */
const SEEN_MAX = 128;
/** Streams with unacknowledged sections past which new sections refer to no dynamic entry (see encode). */
const MAX_OUTSTANDING_STREAMS = 1024;

/** A field line's representation (RFC 9204 §4.5.2–§4.5.6), kept in the encoder's reused line arrays. */
const STATIC = 0;
const DYNAMIC = 1;
const LIT_STATIC = 2;
const LIT_DYNAMIC = 3;
const LIT_NAME = 4;
/** Added to a literal's kind when its N bit (never index) is set. */
const NEVER = 8;

interface Section {
  ric: number;
  refs: number[];
}

export class QpackEncoder {
  readonly #huffman: boolean;
  readonly #neverIndex: { has(name: string): boolean };
  readonly #ourMax: number;
  readonly #table = new EncoderTable();
  /**
   * Fields seen once and not inserted (name + '\0' + value, oldest first, at most SEEN_MAX): a field is
   * inserted the second time it is sent, so values that never repeat (trace ids, request ids, tokens)
   * never cost an encoder-stream instruction — which quiche 0.18 sends as a datagram of its own.
   */
  readonly #seen = new Set<string>();
  readonly #secondUse: boolean;
  readonly #minSaving: number;
  /** RFC 9204 §3.2.3: MaxEntries from the decoder's maximum capacity, for Required Insert Count. */
  #maxEntries = 0;
  #settingsApplied = false;
  #encStream = new ByteWriter(32);
  #section = new ByteWriter(256);
  #decBuf: Uint8Array = new Uint8Array(0);
  /** Unacknowledged sections with dynamic references, per stream, oldest first. */
  readonly #outstanding = new Map<number, Section[]>();
  /**
   * The section being encoded, one line per field: its kind (STATIC…, + NEVER), its index (static or absolute), and
   * for a dynamic line the static name index its literal would use instead (-1: none).
   */
  #kinds: number[] = [];
  #indexes: number[] = [];
  #literalNames: number[] = [];
  /** The positions of the section's fields the dynamic table could serve. */
  #candidates: number[] = [];
  /**
   * The field at each position of the last section whose line depends on nothing but the field (a static match, or
   * a literal with a static name that is never inserted or looked up in the dynamic table), and that line's kind and
   * index: a request's fields repeat in order, so such a field is not looked up again (as HPACK's encoder does).
   */
  #lastName: string[] = [];
  #lastValue: string[] = [];
  #lastKind: number[] = [];
  #lastIndex: number[] = [];

  constructor(opts: QpackEncoderOptions = {}) {
    this.#huffman = opts.huffman ?? true;
    this.#neverIndex = opts.neverIndex ?? DEFAULT_NEVER_INDEX;
    this.#ourMax = opts.maxTableCapacity ?? 4096;
    this.#secondUse = opts.insertOnSecondUse ?? true;
    this.#minSaving = opts.minReferenceSaving ?? MIN_REFERENCE_SAVING;
  }

  /** Dynamic table capacity in use (0 = static only). */
  get tableCapacity(): number {
    return this.#table.capacity;
  }

  get insertCount(): number {
    return this.#table.insertCount;
  }

  get knownReceivedCount(): number {
    return this.#table.knownReceived;
  }

  /**
   * Apply the peer decoder's SETTINGS_QPACK_MAX_TABLE_CAPACITY (RFC 9204
   * §5); effective once. Queues Set Dynamic Table Capacity when we will
   * use the table.
   */
  setPeerSettings(maxTableCapacity: number): void {
    if (this.#settingsApplied) return;
    this.#settingsApplied = true;
    this.#maxEntries = Math.floor(maxTableCapacity / 32);
    const cap = Math.min(maxTableCapacity, this.#ourMax);
    if (cap < 64) return; // too small to hold anything useful
    this.#table.setCapacity(cap);
    writeEncoderInstruction(this.#encStream, { type: 'set-capacity', capacity: cap });
  }

  /**
   * Encode one field section (names and values latin1). `streamId` lets
   * the section use the dynamic table; without it only static and literal
   * representations are used. `room`: bytes left unwritten before the section in the returned copy, for the
   * caller's frame header.
   */
  encode(fields: ReadonlyArray<readonly [string, string]> | HeaderField[], streamId?: number, room = 0): Uint8Array {
    // A peer that leaves sections unacknowledged (§4.4.1 says it must acknowledge them) would have us keep each one,
    // and the entries it pins, for the connection's life: past MAX_OUTSTANDING_STREAMS, sections refer to no entry.
    const dynamic =
      streamId !== undefined && this.#table.capacity > 0 && this.#outstanding.size < MAX_OUTSTANDING_STREAMS;
    // Entries below this are draining (encoder-table.ts): not referenced, re-inserted when used.
    const draining = dynamic ? this.#table.drainingBound() : 0;
    const kinds = this.#kinds;
    const indexes = this.#indexes;
    const cands = this.#candidates;
    let nc = 0;
    /** The most the dynamic table could save this section (minReferenceSaving): the candidates' lengths. */
    let bound = 0;
    const n = fields.length;
    // First each field's line without the dynamic table; the fields it could serve are the candidates.
    for (let i = 0; i < n; i++) {
      const [name, value] = fields[i] as readonly [string, string];
      if (name === this.#lastName[i] && value === this.#lastValue[i]) {
        kinds[i] = this.#lastKind[i]!;
        indexes[i] = this.#lastIndex[i]!;
        continue;
      }
      const exact = staticFindExact(name, value);
      if (exact >= 0) {
        this.#line(i, STATIC, exact, name, value);
        continue;
      }
      const never = this.#neverIndex.has(name);
      const sName = staticFindName(name);
      if (sName >= 0 && (never || NOT_WORTH_INDEXING.has(name))) {
        // Never inserted (#maybeInsert), so never found in the dynamic table: the line is the field's alone.
        this.#line(i, LIT_STATIC + (never ? NEVER : 0), sName, name, value);
        continue;
      }
      const nb = never ? NEVER : 0;
      kinds[i] = (sName >= 0 ? LIT_STATIC : LIT_NAME) + nb;
      indexes[i] = sName;
      // A never-indexed field may still name a dynamic entry; any other may be one.
      if (never) {
        if (sName >= 0) continue;
        bound += name.length;
      } else bound += value.length + (sName >= 0 ? 0 : name.length);
      cands[nc++] = i;
    }
    let refs: number[] | null = null;
    let ric = 0;
    if (dynamic && nc > 0 && bound >= this.#minSaving) {
      /** What the references made save over the literals. */
      let saving = 0;
      for (let c = 0; c < nc; c++) {
        const i = cands[c]!;
        const [name, value] = fields[i] as readonly [string, string];
        const never = kinds[i]! >= NEVER;
        const sName = indexes[i]!;
        if (!never) {
          const d = this.#table.findExactAcked(name, value);
          if (d >= draining) {
            // Pinned now so a later insert in this same section cannot evict it.
            this.#table.ref(d);
            (refs ??= []).push(d);
            if (d + 1 > ric) ric = d + 1;
            kinds[i] = DYNAMIC;
            indexes[i] = d;
            this.#literalNames[i] = sName;
            saving += value.length + (sName >= 0 ? 0 : name.length);
            continue;
          }
          this.#maybeInsert(name, value, sName, draining);
        }
        if (sName >= 0) continue;
        const found = this.#table.findNameAcked(name);
        if (found >= draining) {
          this.#table.ref(found);
          (refs ??= []).push(found);
          if (found + 1 > ric) ric = found + 1;
          kinds[i] = LIT_DYNAMIC + (never ? NEVER : 0);
          indexes[i] = found;
          this.#literalNames[i] = -1;
          saving += name.length;
        }
      }
      if (refs !== null && saving < this.#minSaving) {
        // Not worth the acknowledgment: the same fields as literals, the entries let go.
        for (const r of refs) this.#table.unref(r);
        refs = null;
        for (let c = 0; c < nc; c++) {
          const i = cands[c]!;
          const k = kinds[i]!;
          const nb = k >= NEVER ? NEVER : 0;
          if (k - nb === DYNAMIC || k - nb === LIT_DYNAMIC) {
            const sn = this.#literalNames[i]!;
            kinds[i] = (sn >= 0 ? LIT_STATIC : LIT_NAME) + nb;
            indexes[i] = sn;
          }
        }
      }
    }
    const w = this.#section;
    w.reset(room); // one writer reused: finish() copies the section out
    const base = this.#table.insertCount;
    if (refs === null) {
      w.byte(0);
      w.byte(0);
    } else {
      // RFC 9204 §4.5.1.1; Base >= RIC here, so the sign bit is 0 (§4.5.1.2).
      encodePrefixInt(w, 0, 8, (ric % (2 * this.#maxEntries)) + 1);
      encodePrefixInt(w, 0, 7, base - ric);
      const list = this.#outstanding.get(streamId!) ?? [];
      list.push({ ric, refs });
      this.#outstanding.set(streamId!, list);
    }
    for (let i = 0; i < n; i++) {
      const [name, value] = fields[i] as readonly [string, string];
      this.#writeLine(w, kinds[i]!, indexes[i]!, name, value, base);
    }
    return w.finish();
  }

  /** Line `i` of this section, remembered for the same field at the same position of the next one. */
  #line(i: number, kind: number, index: number, name: string, value: string): void {
    this.#kinds[i] = kind;
    this.#indexes[i] = index;
    this.#lastName[i] = name;
    this.#lastValue[i] = value;
    this.#lastKind[i] = kind;
    this.#lastIndex[i] = index;
  }

  /** Encoder stream bytes to send, or null when none are queued. */
  takeEncoderStreamBytes(): Uint8Array | null {
    if (this.#encStream.length === 0) return null;
    const b = this.#encStream.finish();
    this.#encStream.reset();
    return b;
  }

  /** Process the peer's decoder stream (RFC 9204 §4.4), in any chunking. */
  feedDecoderStream(data: Uint8Array): void {
    const buf = this.#decBuf.length === 0 ? data : concat(this.#decBuf, data);
    let off = 0;
    for (;;) {
      let parsed;
      try {
        parsed = parseDecoderInstruction(buf, off);
      } catch (e) {
        throw decoderStreamError((e as FieldCodingError).message);
      }
      if (parsed === null) break;
      off += parsed.length;
      const ins = parsed.instruction;
      if (ins.type === 'section-ack') {
        // §4.4.1: acknowledges the oldest unacknowledged section with dynamic references on the stream.
        const list = this.#outstanding.get(ins.streamId);
        const sec = list?.shift();
        if (!sec)
          throw decoderStreamError(`Section Acknowledgment for stream ${ins.streamId} with nothing outstanding`);
        if (list!.length === 0) this.#outstanding.delete(ins.streamId);
        for (const r of sec.refs) this.#table.unref(r);
        if (sec.ric > this.#table.knownReceived) this.#table.knownReceived = sec.ric;
      } else if (ins.type === 'stream-cancel') {
        for (const sec of this.#outstanding.get(ins.streamId) ?? []) for (const r of sec.refs) this.#table.unref(r);
        this.#outstanding.delete(ins.streamId);
      } else {
        // §4.4.3: zero, or beyond what was inserted, is QPACK_DECODER_STREAM_ERROR.
        const next = this.#table.knownReceived + ins.increment;
        if (ins.increment === 0 || next > this.#table.insertCount) {
          throw decoderStreamError(
            `Insert Count Increment ${ins.increment} beyond insert count ${this.#table.insertCount}`,
          );
        }
        this.#table.knownReceived = next;
      }
    }
    if (buf.length - off > 16) throw decoderStreamError('instruction too long');
    this.#decBuf = off === buf.length ? new Uint8Array(0) : buf.slice(off);
  }

  #maybeInsert(name: string, value: string, staticName: number, draining: number): void {
    if (NOT_WORTH_INDEXING.has(name)) return;
    const size = entrySize(name, value);
    if (size > this.#table.capacity / 4) return;
    // Already inserted (awaiting acknowledgment, or usable): nothing to do — unless that copy is draining.
    const existing = this.#table.findExact(name, value);
    if (existing >= draining) return;
    if (existing < 0 && this.#secondUse) {
      // First sight: remember it; insert only if it comes again.
      const key = `${name}\0${value}`;
      if (!this.#seen.delete(key)) {
        this.#seen.add(key);
        if (this.#seen.size > SEEN_MAX) this.#seen.delete(this.#seen.values().next().value as string);
        return;
      }
    }
    if (!this.#table.canInsert(size)) return;
    if (staticName >= 0)
      writeEncoderInstruction(this.#encStream, { type: 'insert-name-ref', isStatic: true, index: staticName, value });
    else writeEncoderInstruction(this.#encStream, { type: 'insert-literal', name, value });
    this.#table.insert(name, value);
  }

  #writeLine(w: ByteWriter, kind: number, index: number, name: string, value: string, base: number): void {
    const never = kind >= NEVER;
    switch (never ? kind - NEVER : kind) {
      case STATIC:
        encodePrefixInt(w, 0xc0, 6, index); // §4.5.2, T=1
        return;
      case DYNAMIC:
        encodePrefixInt(w, 0x80, 6, base - index - 1); // §4.5.2, T=0, relative index
        return;
      case LIT_STATIC:
        encodePrefixInt(w, 0x50 | (never ? 0x20 : 0), 4, index); // §4.5.4, T=1
        break;
      case LIT_DYNAMIC:
        encodePrefixInt(w, 0x40 | (never ? 0x20 : 0), 4, base - index - 1); // §4.5.4, T=0
        break;
      default:
        encodeString(w, 0x20 | (never ? 0x10 : 0), 3, name, this.#huffman); // §4.5.6
        break;
    }
    encodeString(w, 0, 7, value, this.#huffman);
  }
}

function decoderStreamError(msg: string): QpackError {
  return new QpackError(QpackErrorCode.DECODER_STREAM_ERROR, `QPACK decoder stream: ${msg}`);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
