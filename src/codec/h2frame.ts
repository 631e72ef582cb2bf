/**
 * HTTP/2 frames (RFC 9113 §4, §6): an incremental reader that turns bytes in
 * any chunking into frames, and encoders for every type we send.
 *
 * The reader enforces what a frame can tell on its own: the size limit
 * (§4.2, FRAME_SIZE_ERROR), the stream-id rules of each type (§6: PROTOCOL_ERROR
 * for SETTINGS on a stream, DATA on stream 0, …), fixed payload sizes
 * (FRAME_SIZE_ERROR), padding (§6.1: padding as long as the payload is a
 * PROTOCOL_ERROR), SETTINGS values (§6.5.2). Priority fields are parsed and
 * dropped (§5.3.2: deprecated); unknown frame types and flags are ignored
 * (§4.1, §5.5). Everything stateful (stream states, CONTINUATION sequencing,
 * flow control) is the connection's (src/h2).
 */
import { H2ErrorCode, WireError, type H2ErrorCodeValue } from './errors.js';

export const H2FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const H2Flag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

/** RFC 9113 §6.5.2 setting identifiers (and RFC 8441 §3). */
export const H2Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
  ENABLE_CONNECT_PROTOCOL: 0x8,
} as const;

/** RFC 9113 §3.4: the client connection preface. */
export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const FRAME_HEADER = 9;
/** §4.2: SETTINGS_MAX_FRAME_SIZE starts at 2^14 and may go up to 2^24 − 1. */
export const DEFAULT_MAX_FRAME_SIZE = 16_384;
export const MAX_FRAME_SIZE_LIMIT = 16_777_215;
/** §6.9.1: the largest flow-control window. */
export const MAX_WINDOW = 2 ** 31 - 1;

/** A connection error (§5.4.1) or, with `streamId`, a stream error (§5.4.2). */
export class H2Error extends WireError {
  readonly streamId: number | null;
  constructor(code: H2ErrorCodeValue, message: string, streamId: number | null = null) {
    super(code, message);
    this.name = 'H2Error';
    this.streamId = streamId;
  }
}

export type H2Frame =
  | {
      type: 'data';
      streamId: number;
      data: Uint8Array;
      endStream: boolean;
      /** payload octets incl. padding: what flow control counts (§6.9.1) */ flowLength: number;
      /**
       * On the last piece of a frame that carried no data octet (padding alone, or nothing): what an empty-frame flood
       * sends.
       */
      empty?: true;
    }
  /**
   * `dependsOn`: the stream dependency of the priority fields (RFC 7540 §5.3, parsed and otherwise ignored), or null.
   */
  | {
      type: 'headers';
      streamId: number;
      block: Uint8Array;
      endStream: boolean;
      endHeaders: boolean;
      dependsOn: number | null;
    }
  | { type: 'priority'; streamId: number; dependsOn: number }
  | { type: 'rst-stream'; streamId: number; code: number }
  | { type: 'settings'; ack: boolean; settings: Array<[id: number, value: number]> }
  | { type: 'push-promise'; streamId: number; promisedId: number; block: Uint8Array; endHeaders: boolean }
  | { type: 'ping'; ack: boolean; data: Uint8Array }
  | { type: 'goaway'; lastStreamId: number; code: number; debug: Uint8Array }
  | { type: 'window-update'; streamId: number; increment: number }
  | { type: 'continuation'; streamId: number; block: Uint8Array; endHeaders: boolean }
  | { type: 'unknown'; frameType: number; streamId: number }
  /**
   * A frame that breaks a rule of its stream alone (a zero WINDOW_UPDATE increment, a PRIORITY not 5 bytes long):
   * a stream error (§5.4.2) in its place among the frames, so the frames before and after it are still handled.
   */
  | { type: 'stream-error'; streamId: number; code: number; message: string; frameType: number };

const EMPTY = new Uint8Array(0);
const protocol = (msg: string, streamId: number | null = null): H2Error =>
  new H2Error(H2ErrorCode.PROTOCOL_ERROR, msg, streamId);
const frameSize = (msg: string): H2Error => new H2Error(H2ErrorCode.FRAME_SIZE_ERROR, msg);

/**
 * Incremental frame reader. `push(bytes)` returns the frames now complete.
 * Throws H2Error for a frame that breaks a connection rule it can see alone; one that breaks a stream's rule
 * comes back as a `stream-error` frame in its place.
 */
export class H2FrameReader {
  /** Our SETTINGS_MAX_FRAME_SIZE (what the peer may send). */
  maxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  /**
   * Bytes not yet framed, as received (no copy until a frame spans chunks:
   * a frame inside one chunk is a view of it; one that spans chunks is
   * gathered once).
   */
  #chunks: Uint8Array[] = [];
  #offset = 0;
  #len = 0;
  /** The DATA frame being streamed out: payload octets left (padding included), padding left at its end. */
  #data: {
    streamId: number;
    remaining: number;
    padLeft: number;
    needPadLen: boolean;
    endStream: boolean;
    payload: number;
    dataBytes: number;
  } | null = null;

  push(chunk: Uint8Array): H2Frame[] {
    if (chunk.length === 0) return [];
    this.#chunks.push(chunk);
    this.#len += chunk.length;
    const out: H2Frame[] = [];
    for (;;) {
      if (this.#data) {
        if (!this.#dataPiece(out)) break;
        continue;
      }
      if (this.#len < FRAME_HEADER) break;
      // The 9-byte header read in place when the first chunk holds it (the usual case: no view made for it).
      const first = this.#chunks[0]!;
      let h = first;
      let o = this.#offset;
      if (first.length - o < FRAME_HEADER) {
        h = this.#gather(FRAME_HEADER, false);
        o = 0;
      }
      const len = (h[o]! << 16) | (h[o + 1]! << 8) | h[o + 2]!;
      // §4.2: a frame over SETTINGS_MAX_FRAME_SIZE is a FRAME_SIZE_ERROR (a connection error: we cannot resync).
      if (len > this.maxFrameSize) throw frameSize(`frame of ${len} bytes over the ${this.maxFrameSize} allowed`);
      const type = h[o + 3]!;
      const flags = h[o + 4]!;
      const streamId = readU31(h, o + 5);
      if (type === H2FrameType.DATA) {
        // DATA is streamed out as it arrives (no copy, no wait for the whole frame).
        this.#discard(FRAME_HEADER);
        if (streamId === 0) throw protocol('DATA on stream 0'); // §6.1
        const padded = (flags & H2Flag.PADDED) !== 0;
        if (padded && len < 1) throw frameSize('padded frame without a pad length');
        this.#data = {
          streamId,
          remaining: len,
          padLeft: 0,
          needPadLen: padded,
          endStream: (flags & H2Flag.END_STREAM) !== 0,
          payload: len,
          dataBytes: 0,
        };
        if (len === 0) {
          this.#data = null;
          out.push({
            type: 'data',
            streamId,
            data: EMPTY,
            endStream: (flags & H2Flag.END_STREAM) !== 0,
            flowLength: 0,
            empty: true,
          });
        }
        continue;
      }
      if (this.#len < FRAME_HEADER + len) break;
      this.#discard(FRAME_HEADER);
      const payload = len === 0 ? EMPTY : this.#take(len);
      try {
        out.push(parseFrame(type, flags, streamId, payload));
      } catch (e) {
        if (!(e instanceof H2Error) || e.streamId === null) throw e;
        out.push({ type: 'stream-error', streamId: e.streamId, code: e.wireCode, message: e.message, frameType: type });
      }
    }
    return out;
  }

  /**
   * One piece of the DATA frame in progress; false when more bytes are needed.
   * Pieces count their payload octets (`flowLength`, padding included, §6.9.1);
   * END_STREAM rides on the piece that finishes the frame.
   */
  #dataPiece(out: H2Frame[]): boolean {
    const d = this.#data!;
    if (this.#len === 0) return false;
    let flow = 0;
    if (d.needPadLen) {
      d.padLeft = this.#take(1)[0]!;
      d.needPadLen = false;
      d.remaining -= 1;
      flow = 1;
      // §6.1: padding as long as the payload or longer is a PROTOCOL_ERROR.
      if (d.padLeft >= d.payload || d.padLeft > d.remaining)
        throw protocol(`padding of ${d.padLeft} bytes does not fit a ${d.payload}-byte payload`);
    }
    const dataLeft = d.remaining - d.padLeft;
    let data: Uint8Array = EMPTY;
    if (dataLeft > 0 && this.#len > 0) {
      const first = this.#chunks[0]!;
      const n = Math.min(dataLeft, first.length - this.#offset);
      data = this.#take(n);
      d.remaining -= n;
      d.dataBytes += n;
      flow += n;
    }
    if (d.remaining === d.padLeft && d.padLeft > 0 && this.#len > 0) {
      const n = Math.min(d.padLeft, this.#len);
      this.#discard(n);
      d.padLeft -= n;
      d.remaining -= n;
      flow += n;
    }
    const done = d.remaining === 0;
    if (data.length === 0 && flow === 0 && !done) return false;
    if (done) this.#data = null;
    if (done && d.dataBytes === 0)
      out.push({ type: 'data', streamId: d.streamId, data, endStream: d.endStream, flowLength: flow, empty: true });
    else out.push({ type: 'data', streamId: d.streamId, data, endStream: done && d.endStream, flowLength: flow });
    return true;
  }

  /** Skip `n` buffered bytes (no view made of them). */
  #discard(n: number): void {
    let left = n;
    while (left > 0) {
      const first = this.#chunks[0]!;
      const k = Math.min(left, first.length - this.#offset);
      this.#offset += k;
      this.#len -= k;
      left -= k;
      if (this.#offset === first.length) {
        this.#chunks.shift();
        this.#offset = 0;
      }
    }
  }

  /** Bytes held for an incomplete frame (a DATA frame in progress holds none). */
  get buffered(): number {
    return this.#len;
  }

  /** Inside a DATA frame (its remaining payload not received yet). */
  get midFrame(): boolean {
    return this.#data !== null;
  }

  /** Consume the next `n` bytes. */
  #take(n: number): Uint8Array {
    const first = this.#chunks[0]!;
    if (first.length - this.#offset >= n) {
      const v = first.subarray(this.#offset, this.#offset + n);
      this.#offset += n;
      if (this.#offset === first.length) {
        this.#chunks.shift();
        this.#offset = 0;
      }
      this.#len -= n;
      return v;
    }
    return this.#gather(n, true);
  }

  #gather(n: number, consume: boolean): Uint8Array {
    const out = new Uint8Array(n);
    let got = 0;
    let i = 0;
    let off = this.#offset;
    while (got < n) {
      const c = this.#chunks[i]!;
      const k = Math.min(c.length - off, n - got);
      out.set(c.subarray(off, off + k), got);
      got += k;
      off += k;
      if (off === c.length) {
        i++;
        off = 0;
      }
    }
    if (consume) {
      this.#chunks.splice(0, i);
      this.#offset = off;
      this.#len -= n;
    }
    return out;
  }
}

function parseFrame(type: number, flags: number, streamId: number, p: Uint8Array): H2Frame {
  switch (type) {
    case H2FrameType.DATA: {
      if (streamId === 0) throw protocol('DATA on stream 0'); // §6.1
      const data = unpad(p, flags, 0);
      if (data.length === 0)
        return {
          type: 'data',
          streamId,
          data,
          endStream: (flags & H2Flag.END_STREAM) !== 0,
          flowLength: p.length,
          empty: true,
        };
      return { type: 'data', streamId, data, endStream: (flags & H2Flag.END_STREAM) !== 0, flowLength: p.length };
    }
    case H2FrameType.HEADERS: {
      if (streamId === 0) throw protocol('HEADERS on stream 0'); // §6.2
      const prio = (flags & H2Flag.PRIORITY) !== 0;
      const block = unpad(p, flags, prio ? 5 : 0);
      const dependsOn = prio ? readU31(p, flags & H2Flag.PADDED ? 1 : 0) : null;
      return {
        type: 'headers',
        streamId,
        block,
        endStream: (flags & H2Flag.END_STREAM) !== 0,
        endHeaders: (flags & H2Flag.END_HEADERS) !== 0,
        dependsOn,
      };
    }
    case H2FrameType.PRIORITY:
      if (streamId === 0) throw protocol('PRIORITY on stream 0'); // §6.3
      if (p.length !== 5) throw new H2Error(H2ErrorCode.FRAME_SIZE_ERROR, 'PRIORITY payload is not 5 bytes', streamId);
      return { type: 'priority', streamId, dependsOn: readU31(p, 0) };
    case H2FrameType.RST_STREAM:
      if (streamId === 0) throw protocol('RST_STREAM on stream 0'); // §6.4
      if (p.length !== 4) throw frameSize('RST_STREAM payload is not 4 bytes');
      return { type: 'rst-stream', streamId, code: readU32(p, 0) };
    case H2FrameType.SETTINGS: {
      if (streamId !== 0) throw protocol('SETTINGS on a stream'); // §6.5
      const ack = (flags & H2Flag.ACK) !== 0;
      if (ack && p.length !== 0) throw frameSize('SETTINGS ACK with a payload');
      if (p.length % 6 !== 0) throw frameSize('SETTINGS payload not a multiple of 6');
      const settings: Array<[number, number]> = [];
      for (let i = 0; i < p.length; i += 6) {
        const id = (p[i]! << 8) | p[i + 1]!;
        const value = readU32(p, i + 2);
        checkSetting(id, value);
        settings.push([id, value]);
      }
      return { type: 'settings', ack, settings };
    }
    case H2FrameType.PUSH_PROMISE: {
      if (streamId === 0) throw protocol('PUSH_PROMISE on stream 0');
      const body = unpad(p, flags, 0);
      if (body.length < 4) throw frameSize('PUSH_PROMISE without a promised stream id');
      return {
        type: 'push-promise',
        streamId,
        promisedId: readU31(body, 0),
        block: body.subarray(4),
        endHeaders: (flags & H2Flag.END_HEADERS) !== 0,
      };
    }
    case H2FrameType.PING:
      if (streamId !== 0) throw protocol('PING on a stream'); // §6.7
      if (p.length !== 8) throw frameSize('PING payload is not 8 bytes');
      return { type: 'ping', ack: (flags & H2Flag.ACK) !== 0, data: p };
    case H2FrameType.GOAWAY:
      if (streamId !== 0) throw protocol('GOAWAY on a stream'); // §6.8
      if (p.length < 8) throw frameSize('GOAWAY shorter than 8 bytes');
      return { type: 'goaway', lastStreamId: readU31(p, 0), code: readU32(p, 4), debug: p.subarray(8) };
    case H2FrameType.WINDOW_UPDATE: {
      if (p.length !== 4) throw frameSize('WINDOW_UPDATE payload is not 4 bytes'); // §6.9
      const increment = readU31(p, 0);
      // §6.9: an increment of 0 is a stream error on a stream, a connection error on stream 0.
      if (increment === 0) throw protocol('WINDOW_UPDATE with an increment of 0', streamId === 0 ? null : streamId);
      return { type: 'window-update', streamId, increment };
    }
    case H2FrameType.CONTINUATION:
      if (streamId === 0) throw protocol('CONTINUATION on stream 0'); // §6.10
      return { type: 'continuation', streamId, block: p, endHeaders: (flags & H2Flag.END_HEADERS) !== 0 };
    default:
      return { type: 'unknown', frameType: type, streamId }; // §4.1, §5.5: ignored
  }
}

/** §6.1/§6.2: strip the pad length byte, `skip` priority bytes, and the padding. */
function unpad(p: Uint8Array, flags: number, skip: number): Uint8Array {
  let start = 0;
  let padLen = 0;
  if (flags & H2Flag.PADDED) {
    if (p.length < 1) throw frameSize('padded frame without a pad length');
    padLen = p[0]!;
    start = 1;
  }
  start += skip;
  if (start > p.length) throw frameSize('frame too short for its fields');
  // Padding as long as the payload or longer is a PROTOCOL_ERROR (§6.1, §6.2).
  if ((flags & H2Flag.PADDED && padLen >= p.length) || start + padLen > p.length)
    throw protocol(`padding of ${padLen} bytes does not fit a ${p.length}-byte payload`);
  return start === 0 && padLen === 0 ? p : p.subarray(start, p.length - padLen);
}

/** §6.5.2: values a SETTINGS frame may not carry. */
function checkSetting(id: number, value: number): void {
  if (id === H2Setting.ENABLE_PUSH && value > 1) throw protocol('SETTINGS_ENABLE_PUSH other than 0 or 1');
  if (id === H2Setting.INITIAL_WINDOW_SIZE && value > MAX_WINDOW)
    throw new H2Error(H2ErrorCode.FLOW_CONTROL_ERROR, 'SETTINGS_INITIAL_WINDOW_SIZE above 2^31 − 1');
  if (id === H2Setting.MAX_FRAME_SIZE && (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_FRAME_SIZE_LIMIT))
    throw protocol('SETTINGS_MAX_FRAME_SIZE outside 2^14 … 2^24 − 1');
  if (id === H2Setting.ENABLE_CONNECT_PROTOCOL && value > 1)
    throw protocol('SETTINGS_ENABLE_CONNECT_PROTOCOL other than 0 or 1'); // RFC 8441 §3
}

// ---- encoders ----

/** Write a frame header (§4.1) at `at` of `b`. */
function putHeader(b: Uint8Array, at: number, len: number, type: number, flags: number, streamId: number): void {
  b[at] = (len >>> 16) & 0xff;
  b[at + 1] = (len >>> 8) & 0xff;
  b[at + 2] = len & 0xff;
  b[at + 3] = type;
  b[at + 4] = flags;
  writeU32(b, at + 5, streamId & 0x7fffffff);
}

function header(len: number, type: number, flags: number, streamId: number): Uint8Array {
  const h = new Uint8Array(FRAME_HEADER);
  putHeader(h, 0, len, type, flags, streamId);
  return h;
}

/** A whole frame in one allocation: the header written in place, then the payload. */
function frame(type: number, flags: number, streamId: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER + payload.length);
  putHeader(out, 0, payload.length, type, flags, streamId);
  out.set(payload, FRAME_HEADER);
  return out;
}

/** The 9-byte header of a DATA frame (the payload is written after it without a copy). */
export function dataFrameHeader(streamId: number, length: number, endStream: boolean): Uint8Array {
  return header(length, H2FrameType.DATA, endStream ? H2Flag.END_STREAM : 0, streamId);
}

/**
 * A header block as HEADERS plus CONTINUATION frames of at most `maxFrameSize`
 * (§4.3: one contiguous sequence, END_HEADERS on the last).
 */
export function encodeHeaders(
  streamId: number,
  block: Uint8Array,
  endStream: boolean,
  maxFrameSize: number,
): Uint8Array[] {
  const out: Uint8Array[] = [];
  let off = 0;
  let first = true;
  do {
    const part = block.subarray(off, off + maxFrameSize);
    off += part.length;
    const last = off >= block.length;
    const flags = (last ? H2Flag.END_HEADERS : 0) | (first && endStream ? H2Flag.END_STREAM : 0);
    out.push(frame(first ? H2FrameType.HEADERS : H2FrameType.CONTINUATION, flags, streamId, part));
    first = false;
  } while (off < block.length);
  return out;
}

/**
 * A header block written after FRAME_HEADER bytes of room (HpackEncoder.encode's `room`): one HEADERS frame made in
 * place when the block fits `maxFrameSize` — no second allocation, no copy — else HEADERS plus CONTINUATION frames.
 */
export function headersFrames(
  streamId: number,
  roomed: Uint8Array,
  endStream: boolean,
  maxFrameSize: number,
): Uint8Array | Uint8Array[] {
  const len = roomed.length - FRAME_HEADER;
  if (len > maxFrameSize) return encodeHeaders(streamId, roomed.subarray(FRAME_HEADER), endStream, maxFrameSize);
  putHeader(roomed, 0, len, H2FrameType.HEADERS, H2Flag.END_HEADERS | (endStream ? H2Flag.END_STREAM : 0), streamId);
  return roomed;
}

export function encodeSettings(settings: ReadonlyArray<readonly [number, number]>, ack = false): Uint8Array {
  const p = new Uint8Array(settings.length * 6);
  settings.forEach(([id, value], i) => {
    p[i * 6] = id >> 8;
    p[i * 6 + 1] = id & 0xff;
    writeU32(p, i * 6 + 2, value);
  });
  return frame(H2FrameType.SETTINGS, ack ? H2Flag.ACK : 0, 0, p);
}

export function encodePing(data: Uint8Array, ack = false): Uint8Array {
  if (data.length !== 8) throw new RangeError('PING data is 8 bytes');
  return frame(H2FrameType.PING, ack ? H2Flag.ACK : 0, 0, data);
}

export function encodeGoaway(lastStreamId: number, code: number, debug = ''): Uint8Array {
  const d = Buffer.from(debug.slice(0, 256), 'latin1');
  const p = new Uint8Array(8 + d.length);
  writeU32(p, 0, lastStreamId & 0x7fffffff);
  writeU32(p, 4, code);
  p.set(d, 8);
  return frame(H2FrameType.GOAWAY, 0, 0, p);
}

export function encodeRstStream(streamId: number, code: number): Uint8Array {
  const p = new Uint8Array(4);
  writeU32(p, 0, code);
  return frame(H2FrameType.RST_STREAM, 0, streamId, p);
}

export function encodeWindowUpdate(streamId: number, increment: number): Uint8Array {
  if (increment < 1 || increment > MAX_WINDOW)
    throw new RangeError(`window increment ${increment} outside 1 … 2^31 − 1`);
  const p = new Uint8Array(4);
  writeU32(p, 0, increment);
  return frame(H2FrameType.WINDOW_UPDATE, 0, streamId, p);
}

// ---- bytes ----

function readU32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/** 31-bit value; the reserved high bit is ignored on receipt (§4.1). */
function readU31(b: Uint8Array, o: number): number {
  return readU32(b, o) & 0x7fffffff;
}

function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}
