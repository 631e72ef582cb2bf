/**
 * HTTP/3 frames (RFC 9114 §7) and unidirectional stream types (§6.2).
 *
 * `FrameParser` is incremental: feed it stream bytes in any chunking and
 * it returns frame events. DATA payloads are streamed out as they arrive;
 * unknown and reserved (grease) frame types are skipped without buffering;
 * other frames are buffered whole, up to `maxFrameSize`.
 */
import { concatBytes } from './bytes.js';
import { H3Error, H3ErrorCode } from './errors.js';
import { encodeVarint, encodeVarintBig, readVarintBig, saturateToSafe, varintLength, writeVarint } from './varint.js';

export const FrameType = {
  DATA: 0x00,
  HEADERS: 0x01,
  CANCEL_PUSH: 0x03,
  SETTINGS: 0x04,
  PUSH_PROMISE: 0x05,
  GOAWAY: 0x07,
  MAX_PUSH_ID: 0x0d,
  /** RFC 9218 §7.2: PRIORITY_UPDATE for a request stream (client control stream only). */
  PRIORITY_UPDATE_REQUEST: 0xf0700,
  /** RFC 9218 §7.2: PRIORITY_UPDATE for a push stream. */
  PRIORITY_UPDATE_PUSH: 0xf0701,
} as const;

/** RFC 9114 §7.2.8: HTTP/2 frame types with no HTTP/3 meaning; receipt is H3_FRAME_UNEXPECTED. */
export const RESERVED_H2_FRAME_TYPES: ReadonlySet<number> = new Set([0x02, 0x06, 0x08, 0x09]);

export const StreamType = {
  CONTROL: 0x00,
  PUSH: 0x01,
  QPACK_ENCODER: 0x02,
  QPACK_DECODER: 0x03,
} as const;

export const SettingId = {
  QPACK_MAX_TABLE_CAPACITY: 0x01,
  MAX_FIELD_SECTION_SIZE: 0x06,
  QPACK_BLOCKED_STREAMS: 0x07,
  ENABLE_CONNECT_PROTOCOL: 0x08,
  H3_DATAGRAM: 0x33,
} as const;

/** RFC 9114 §7.2.4.1: HTTP/2 setting identifiers; receipt is H3_SETTINGS_ERROR. */
export const RESERVED_H2_SETTINGS: ReadonlySet<bigint> = new Set([0x00n, 0x02n, 0x03n, 0x04n, 0x05n]);

/** True for the reserved "grease" values 0x1f * N + 0x21 (RFC 9114 §7.2.8, §6.2.3, §7.2.4.1). */
export function isGrease(v: bigint | number): boolean {
  const b = BigInt(v);
  return b >= 0x21n && (b - 0x21n) % 0x1fn === 0n;
}

/** Settings as received: identifier → value (values above 2^53 saturated). */
export type Settings = Map<number, number>;

export type FrameEvent =
  /** A piece of a DATA frame payload; `first`/`last` mark the frame boundaries. */
  | { kind: 'data'; chunk: Uint8Array; first: boolean; last: boolean }
  | { kind: 'headers'; block: Uint8Array }
  | { kind: 'settings'; settings: Settings }
  | { kind: 'goaway'; id: number }
  | { kind: 'cancel-push'; pushId: number }
  | { kind: 'max-push-id'; pushId: number }
  | { kind: 'push-promise'; pushId: number; block: Uint8Array }
  /**
   * RFC 9218 §7.2: the priority of a request stream (`push` false) or a push
   * (`push` true) as a Priority Field Value (the `priority` header's syntax).
   */
  | { kind: 'priority-update'; push: boolean; id: number; value: string }
  /** A reserved HTTP/2 frame type (the caller raises H3_FRAME_UNEXPECTED). */
  | { kind: 'reserved-h2'; type: number }
  /** An unknown or grease frame type; its payload is discarded (RFC 9114 §9). */
  | { kind: 'unknown'; type: bigint };

export interface FrameParserOptions {
  /** Largest payload accepted for a buffered (non-DATA, known) frame. */
  maxFrameSize: number;
}

const frameError = (msg: string): H3Error => new H3Error(H3ErrorCode.FRAME_ERROR, msg);

export class FrameParser {
  readonly #maxFrameSize: number;
  /** Partial frame header (type + length), at most 16 bytes; made at the first header split between two pushes. */
  #head: Uint8Array | null = null;
  #headLen = 0;
  /** Current frame: type (-1 = unknown, skipped), remaining payload bytes. */
  #type = -1;
  #remaining = 0;
  #inFrame = false;
  #dataFirst = false;
  #payload: Uint8Array[] = [];
  #payloadLen = 0;
  #payloadTotal = 0;

  constructor(opts: FrameParserOptions) {
    this.#maxFrameSize = opts.maxFrameSize;
  }

  /** True when the bytes seen so far end inside a frame (stream end here is H3_FRAME_ERROR). */
  get midFrame(): boolean {
    return this.#inFrame || this.#headLen > 0;
  }

  /**
   * The frames `data` completes. The events refer to `data` (a HEADERS block is a view of it): the caller gives the
   * bytes up, not to write them again.
   */
  push(data: Uint8Array): FrameEvent[] {
    const events: FrameEvent[] = [];
    let off = 0;
    while (off < data.length || (this.#inFrame && this.#remaining === 0)) {
      if (!this.#inFrame) {
        off += this.#readHeader(data, off, events);
        continue;
      }
      const take = Math.min(this.#remaining, data.length - off);
      const piece = data.subarray(off, off + take);
      off += take;
      this.#remaining -= take;
      const last = this.#remaining === 0;
      if (this.#type === FrameType.DATA) {
        if (take > 0 || last) events.push({ kind: 'data', chunk: piece, first: this.#dataFirst, last });
        this.#dataFirst = false;
      } else if (this.#type >= 0) {
        if (take > 0) {
          // Not copied: the bytes pushed are the caller's to give (a QUIC stream's reads are the receiver's from then
          // on, quic/stream-reader.ts), as DATA chunks are handed on as views.
          this.#payload.push(piece);
          this.#payloadLen += take;
        }
        if (last) events.push(this.#finishBuffered());
      }
      if (last) this.#inFrame = false;
    }
    return events;
  }

  /** Consume header bytes from `data[off..]`; returns bytes consumed. */
  #readHeader(data: Uint8Array, off: number, events: FrameEvent[]): number {
    if (this.#headLen === 0) {
      const whole = this.#readWholeHeader(data, off, events);
      if (whole > 0) return whole;
    }
    let used = 0;
    const head = (this.#head ??= new Uint8Array(16));
    for (;;) {
      const t = readVarintBig(head.subarray(0, this.#headLen));
      const l = t && readVarintBig(head.subarray(0, this.#headLen), t.length);
      if (t && l) {
        this.#headLen = 0;
        this.#startFrame(t.value, l.value, events);
        return used;
      }
      if (off + used >= data.length) return used;
      head[this.#headLen++] = data[off + used]!;
      used++;
    }
  }

  /**
   * The common case, a frame header whole in `data` with both varints of at most 4 bytes (type and length below
   * 2^30, RFC 9000 §16): read as numbers, with no copy and no bigint. 0 when it is not that case.
   */
  #readWholeHeader(data: Uint8Array, off: number, events: FrameEvent[]): number {
    const n = data.length - off;
    if (n < 2) return 0;
    const tl = 1 << (data[off]! >> 6);
    if (tl > 4 || tl >= n) return 0;
    const ll = 1 << (data[off + tl]! >> 6);
    if (ll > 4 || tl + ll > n) return 0;
    const type = smallVarint(data, off, tl);
    this.#beginFrame(
      type <= 0x0d || type === 0xf0700 || type === 0xf0701 ? type : -1,
      type,
      smallVarint(data, off + tl, ll),
      events,
    );
    return tl + ll;
  }

  #startFrame(type: bigint, length: bigint, events: FrameEvent[]): void {
    const known = type <= 0x0dn || type === 0xf0700n || type === 0xf0701n ? Number(type) : -1;
    // A length past 2^53 can only be skipped, never read: fine for a frame we skip (RFC 9114 §9: unknown types are
    // ignored, whatever their length — the stream ends long before), an error for one we would read.
    if (length > BigInt(Number.MAX_SAFE_INTEGER) && known >= 0 && !RESERVED_H2_FRAME_TYPES.has(known))
      throw frameError(`frame length ${length} too large`);
    this.#beginFrame(
      known,
      type,
      length > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(length),
      events,
    );
  }

  /**
   * A frame begins: `known` its type when this parser knows it (else -1; `type` as read, for the event), `len` its
   * payload length.
   */
  #beginFrame(known: number, type: bigint | number, len: number, events: FrameEvent[]): void {
    this.#inFrame = true;
    this.#remaining = len;
    if (known === FrameType.DATA) {
      this.#type = FrameType.DATA;
      this.#dataFirst = true;
      return;
    }
    if (known >= 0 && RESERVED_H2_FRAME_TYPES.has(known)) {
      events.push({ kind: 'reserved-h2', type: known });
      this.#type = -1;
      return;
    }
    const isKnown =
      known === FrameType.HEADERS ||
      known === FrameType.CANCEL_PUSH ||
      known === FrameType.SETTINGS ||
      known === FrameType.PUSH_PROMISE ||
      known === FrameType.GOAWAY ||
      known === FrameType.MAX_PUSH_ID ||
      known === FrameType.PRIORITY_UPDATE_REQUEST ||
      known === FrameType.PRIORITY_UPDATE_PUSH;
    if (!isKnown) {
      events.push({ kind: 'unknown', type: BigInt(type) });
      this.#type = -1;
      return;
    }
    if (len > this.#maxFrameSize) {
      throw new H3Error(
        H3ErrorCode.EXCESSIVE_LOAD,
        `frame type 0x${known.toString(16)} of ${len} bytes exceeds limit ${this.#maxFrameSize}`,
      );
    }
    this.#type = known;
    this.#payload = [];
    this.#payloadLen = 0;
    this.#payloadTotal = len;
  }

  #finishBuffered(): FrameEvent {
    const p = this.#payload.length === 1 ? this.#payload[0]! : concatBytes(this.#payload);
    this.#payload = [];
    if (p.length !== this.#payloadTotal) throw frameError('internal: payload length mismatch');
    switch (this.#type) {
      case FrameType.HEADERS:
        return { kind: 'headers', block: p };
      case FrameType.SETTINGS:
        return { kind: 'settings', settings: parseSettingsPayload(p) };
      case FrameType.GOAWAY:
        return { kind: 'goaway', id: singleVarint(p, 'GOAWAY') };
      case FrameType.CANCEL_PUSH:
        return { kind: 'cancel-push', pushId: singleVarint(p, 'CANCEL_PUSH') };
      case FrameType.MAX_PUSH_ID:
        return { kind: 'max-push-id', pushId: singleVarint(p, 'MAX_PUSH_ID') };
      case FrameType.PUSH_PROMISE: {
        const id = readVarintBig(p);
        if (!id) throw frameError('PUSH_PROMISE truncated');
        return { kind: 'push-promise', pushId: saturateToSafe(id.value), block: p.subarray(id.length) };
      }
      case FrameType.PRIORITY_UPDATE_REQUEST:
      case FrameType.PRIORITY_UPDATE_PUSH: {
        // RFC 9218 §7.2: Prioritized Element ID (varint), then the Priority Field Value (ASCII) to the end.
        const id = readVarintBig(p);
        if (!id) throw frameError('PRIORITY_UPDATE truncated');
        return {
          kind: 'priority-update',
          push: this.#type === FrameType.PRIORITY_UPDATE_PUSH,
          id: saturateToSafe(id.value),
          value: Buffer.from(p.buffer, p.byteOffset + id.length, p.length - id.length).toString('latin1'),
        };
      }
      default:
        throw frameError(`internal: unexpected buffered type ${this.#type}`);
    }
  }
}

/** A varint of `len` ≤ 4 bytes at `off` (RFC 9000 §16: the two high bits of the first byte give the length). */
function smallVarint(b: Uint8Array, off: number, len: number): number {
  let v = b[off]! & 0x3f;
  for (let i = 1; i < len; i++) v = v * 256 + b[off + i]!;
  return v;
}

/** RFC 9114 §7.1: the payload must be exactly the identified fields. */
function singleVarint(p: Uint8Array, what: string): number {
  const v = readVarintBig(p);
  if (!v || v.length !== p.length) throw frameError(`${what} payload malformed`);
  return saturateToSafe(v.value);
}

/** RFC 9114 §7.2.4: SETTINGS payload; duplicates and HTTP/2 ids are H3_SETTINGS_ERROR. */
export function parseSettingsPayload(p: Uint8Array): Settings {
  const out: Settings = new Map();
  const seen = new Set<bigint>();
  let off = 0;
  while (off < p.length) {
    const id = readVarintBig(p, off);
    if (!id) throw frameError('SETTINGS truncated');
    off += id.length;
    const val = readVarintBig(p, off);
    if (!val) throw frameError('SETTINGS truncated');
    off += val.length;
    if (seen.has(id.value))
      throw new H3Error(H3ErrorCode.SETTINGS_ERROR, `duplicate setting 0x${id.value.toString(16)}`);
    seen.add(id.value);
    if (RESERVED_H2_SETTINGS.has(id.value)) {
      throw new H3Error(H3ErrorCode.SETTINGS_ERROR, `HTTP/2 setting 0x${id.value.toString(16)} in HTTP/3 SETTINGS`);
    }
    // Unknown and grease identifiers are ignored (RFC 9114 §7.2.4); only safe-range ids are kept.
    if (id.value <= BigInt(Number.MAX_SAFE_INTEGER)) out.set(Number(id.value), saturateToSafe(val.value));
  }
  return out;
}

/** A frame with the given type and payload. */
export function encodeFrame(type: number | bigint, payload: Uint8Array): Uint8Array {
  const t = typeof type === 'bigint' ? encodeVarintBig(type) : encodeVarint(type);
  return concatBytes([t, encodeVarint(payload.length), payload]);
}

/** DATA frame header only (type + length), for callers that send the payload separately. */
export function encodeDataFrameHeader(length: number): Uint8Array {
  const out = new Uint8Array(1 + varintLength(length));
  out[0] = FrameType.DATA;
  writeVarint(out, 1, length);
  return out;
}

export function encodeSettings(settings: ReadonlyArray<readonly [number | bigint, number | bigint]>): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [id, v] of settings) {
    parts.push(typeof id === 'bigint' ? encodeVarintBig(id) : encodeVarint(id));
    parts.push(typeof v === 'bigint' ? encodeVarintBig(v) : encodeVarint(v));
  }
  return encodeFrame(FrameType.SETTINGS, concatBytes(parts));
}

/** RFC 9218 §7.2: PRIORITY_UPDATE (request stream variant) carrying `value` (a `priority` field value, ASCII). */
export function encodePriorityUpdate(streamId: number, value: string): Uint8Array {
  return encodeFrame(
    FrameType.PRIORITY_UPDATE_REQUEST,
    concatBytes([encodeVarint(streamId), Buffer.from(value, 'latin1')]),
  );
}

export function encodeGoaway(id: number): Uint8Array {
  return encodeFrame(FrameType.GOAWAY, encodeVarint(id));
}

/**
 * Reads the stream-type varint that starts every unidirectional stream
 * (RFC 9114 §6.2), in any chunking. `push` returns the type once known,
 * plus the bytes after it.
 */
export class StreamTypeReader {
  #buf = new Uint8Array(8);
  #len = 0;

  push(data: Uint8Array): { type: bigint; rest: Uint8Array } | null {
    let off = 0;
    while (off < data.length) {
      this.#buf[this.#len++] = data[off++]!;
      const v = readVarintBig(this.#buf.subarray(0, this.#len));
      if (v) return { type: v.value, rest: data.subarray(off) };
    }
    return null;
  }
}
