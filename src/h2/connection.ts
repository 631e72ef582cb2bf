/**
 * A sans-IO HTTP/2 connection for both roles (RFC 9113): bytes in through
 * `receive(bytes, now)`, frames out through `takeOutput()`, events to one
 * listener. No sockets, no timers; `now` (ms) is passed in for flood windows.
 *
 * It owns the preface and SETTINGS exchange (§3.4, §6.5), stream states
 * (§5.1), concurrency limits both ways (§5.1.2), flow control on streams and
 * the connection (§5.2, §6.9) with credit returned as the application
 * consumes (`consumed`), header blocks across CONTINUATION (§4.3, §6.10)
 * with HPACK, field validation (§8.2, §8.3 via http/field-section.ts),
 * content-length (§8.1.1), PING, GOAWAY (graceful two-step on the server,
 * §6.8), RST_STREAM, and the flood protections of floods.ts.
 *
 * Errors: a connection error sends GOAWAY and ends the connection (§5.4.1);
 * a stream error sends RST_STREAM and reports `reset` for that stream only
 * (§5.4.2).
 */
import { concatBytes } from '../codec/bytes.js';
import { IdMap } from '../util/id-map.js';
import { H2ErrorCode } from '../codec/errors.js';
import {
  CLIENT_PREFACE,
  dataFrameHeader,
  encodeGoaway,
  encodePing,
  encodeRstStream,
  encodeSettings,
  encodeWindowUpdate,
  H2Error,
  H2FrameReader,
  H2FrameType,
  H2Setting,
  FRAME_HEADER,
  headersFrames,
  MAX_WINDOW,
  DEFAULT_MAX_FRAME_SIZE,
  type H2Frame,
} from '../codec/h2frame.js';
import { type DecodedBlock, HpackDecoder } from '../codec/hpack/decoder.js';
import { HpackEncoder } from '../codec/hpack/encoder.js';
import { HpackError } from '../codec/errors.js';
import { checkFieldSection, checkReceived, type SectionKind } from '../http/field-section.js';
import { MAX_INTERIM_RESPONSES } from '../http/status.js';
import type { HeaderList, SharedHeaderList } from '../http/types.js';
import { FloodGuard } from './floods.js';
import { H2Stream } from './stream.js';
import type { H2ConnectionOptions, H2Event, H2Listener } from './types.js';
import type { FloodLimits } from '../http/floods.js';

/** §6.9.2: every window starts at 65,535 until SETTINGS say otherwise. */
const INITIAL_WINDOW = 65_535;
/** §5.1.1: stream ids are 31 bits. */
const MAX_STREAM_ID = 2 ** 31 - 1;
/** Reset streams remembered (§5.1 "closed" treats late frames by how a stream closed). */
const RESET_MEMORY = 4096;
/** Entries in one SETTINGS frame we take (nghttp2's default `max_settings`). */
const MAX_SETTINGS_ENTRIES = 32;
/** Ranges of stream ids the peer skipped (never opened), remembered. */
const SKIPPED_MEMORY = 64;

/**
 * How a stream we no longer hold closed, which decides what a late frame on
 * it means (RFC 9113 §5.1, "closed"): after our RST_STREAM frames in flight
 * are ignored; after the peer's RST_STREAM a frame is a stream error
 * STREAM_CLOSED; after the peer's END_STREAM a frame is a connection error
 * STREAM_CLOSED.
 */
type ClosedHow = 'reset-by-us' | 'reset-by-peer' | 'peer-ended';

export class H2Connection {
  readonly role: 'client' | 'server';
  #listener: H2Listener = () => {};
  #out: Uint8Array[] = [];
  /** DATA octets in `#out`. */
  #outData = 0;
  #reader = new H2FrameReader();
  /** The receive call's clock (performance.now() ms): the flood windows of what its frames make us send. */
  #now = 0;
  #decoder: HpackDecoder;
  #encoder = new HpackEncoder();
  #streams = new IdMap<H2Stream>();
  #floods: FloodGuard;
  // Settings: ours (applied once acknowledged) and the peer's.
  #windowSize: number;
  #maxHeaderListSize: number;
  #maxConcurrent: number;
  #peerMaxConcurrent: number | null = null;
  #peerInitialWindow = INITIAL_WINDOW;
  #peerMaxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  #peerSettingsSeen = false;
  #pendingAcks: Array<() => void> = [];
  // Connection flow control.
  #sendWindow = INITIAL_WINDOW;
  #recvWindow: number;
  #recvTarget: number;
  #recvUnacked = 0;
  // Streams.
  #nextId: number;
  #lastPeerId = 0;
  #peerOpen = 0;
  /** A header block in progress (HEADERS without END_HEADERS, then CONTINUATION only, §6.10). */
  #block: {
    streamId: number;
    parts: Uint8Array[];
    bytes: number;
    frames: number;
    endStream: boolean;
    selfDependent: boolean;
  } | null = null;
  #prefaceLeft: number;
  #goawaySent: number | null = null;
  #goawayReceived: number | null = null;
  /** Streams that closed by a reset, and how; a closed stream not here ended both ways (or was skipped, below). */
  #resets = new Map<number, ClosedHow>();
  /**
   * Server: id ranges the client jumped over (§5.1.1: implicitly closed, never opened). Rare; kept apart so the common
   * case costs nothing per stream.
   */
  #skipped: Array<[number, number]> = [];
  #enableConnectProtocol: boolean;
  #peerConnectProtocol = false;
  #closed = false;
  #shutdownPing: Uint8Array | null = null;
  /** Streams with DATA waiting for credit, by id, in turn order (IdMap, not Set: see util/id-map.ts). */
  #sendQueue = new IdMap<H2Stream>();

  constructor(o: H2ConnectionOptions) {
    this.role = o.role;
    this.#windowSize = o.windowSize ?? 4 * 1024 * 1024;
    this.#maxHeaderListSize = o.maxHeaderListSize ?? 64 * 1024;
    this.#maxConcurrent = o.maxConcurrentStreams ?? 100;
    this.#decoder = new HpackDecoder({
      maxTableSize: o.headerTableSize ?? 4096,
      maxHeaderListSize: this.#maxHeaderListSize,
    });
    this.#floods = new FloodGuard(o.limits);
    this.#enableConnectProtocol = o.role === 'server' && o.enableConnectProtocol === true;
    this.#nextId = o.role === 'client' ? 1 : 2;
    this.#prefaceLeft = o.role === 'server' ? CLIENT_PREFACE.length : 0;
    const connWindow = o.connectionWindowSize ?? 4 * this.#windowSize;
    this.#recvWindow = INITIAL_WINDOW;
    this.#recvTarget = connWindow;
    // §3.4: the client's preface, then each side's SETTINGS as its first frame.
    if (o.role === 'client') this.#out.push(CLIENT_PREFACE);
    const settings: Array<[number, number]> = [
      [H2Setting.HEADER_TABLE_SIZE, o.headerTableSize ?? 4096],
      [H2Setting.MAX_CONCURRENT_STREAMS, o.role === 'client' ? 0 : this.#maxConcurrent],
      [H2Setting.INITIAL_WINDOW_SIZE, this.#windowSize],
      [H2Setting.MAX_FRAME_SIZE, o.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE],
      [H2Setting.MAX_HEADER_LIST_SIZE, this.#maxHeaderListSize],
    ];
    if (o.role === 'client') settings.push([H2Setting.ENABLE_PUSH, 0]);
    if (o.enableConnectProtocol && o.role === 'server') settings.push([H2Setting.ENABLE_CONNECT_PROTOCOL, 1]);
    this.#out.push(encodeSettings(settings));
    this.#pendingAcks.push(() => {
      this.#reader.maxFrameSize = o.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    });
    if (connWindow > INITIAL_WINDOW) {
      this.#out.push(encodeWindowUpdate(0, connWindow - INITIAL_WINDOW));
      this.#recvWindow = connWindow;
    }
  }

  on(listener: H2Listener): void {
    this.#listener = listener;
  }
  get closed(): boolean {
    return this.#closed;
  }
  /**
   * Streams we may open now (the peer's limit minus our open ones; before its SETTINGS: 100, RFC 9113 §6.5.2 recommends
   * at least that).
   */
  get capacity(): number {
    return this.#peerMaxConcurrent ?? 100;
  }
  get openStreams(): number {
    return this.#streams.size;
  }
  get goawayReceived(): number | null {
    return this.#goawayReceived;
  }
  /** The server allows extended CONNECT (RFC 8441 §3): requests may carry `:protocol`. */
  get peerAllowsExtendedConnect(): boolean {
    return this.#peerConnectProtocol;
  }

  /** Frames to write, in order; the driver writes them together (one write per turn). */
  takeOutput(): Uint8Array[] {
    const o = this.#out;
    this.#out = [];
    this.#outData = 0;
    return o;
  }

  /** DATA octets in the output not yet taken (the driver's socket has not seen them). */
  get outputData(): number {
    return this.#outData;
  }

  // ---- sending ----

  /**
   * Client: open a stream with a request head. Null when no stream may open
   * now (the peer's concurrency limit, GOAWAY, ids exhausted). `trustedFrom`:
   * checkFieldSection's (appendRequestFields says where).
   */
  request(headers: HeaderList, endStream: boolean, trustedFrom = headers.length): number | null {
    if (this.#closed || this.#goawayReceived !== null || this.role !== 'client') return null;
    if (this.#ownOpen() >= this.capacity || this.#nextId > MAX_STREAM_ID) return null;
    const why = checkFieldSection(headers, 'request', this.#peerConnectProtocol, false, trustedFrom);
    if (why)
      throw new TypeError(
        `malformed request: ${why}${headers.some(([n]) => n === ':protocol') && !this.#peerConnectProtocol ? ' (the server did not enable extended CONNECT, RFC 8441 §3)' : ''}`,
      );
    const id = this.#nextId;
    this.#nextId += 2;
    const s = new H2Stream(id, this.#peerInitialWindow, this.#windowSize);
    s.requestMethod = headers.find(([n]) => n === ':method')?.[1] ?? null;
    this.#streams.set(id, s);
    this.#sendHeaders(s, headers, endStream);
    return id;
  }

  /** Server: the response head (or an interim 1xx with `endStream` false). */
  respond(streamId: number, headers: SharedHeaderList, endStream: boolean): void {
    const s = this.#streams.get(streamId);
    if (!s || this.#closed) return;
    const why = checkFieldSection(headers, 'response');
    if (why) throw new TypeError(`malformed response: ${why}`);
    this.#sendHeaders(s, headers, endStream);
    this.#checkDone();
  }

  /** Trailers end the stream. */
  trailers(streamId: number, headers: HeaderList): void {
    const s = this.#streams.get(streamId);
    if (!s || this.#closed) return;
    const why = checkFieldSection(headers, 'trailers');
    if (why) throw new TypeError(`malformed trailers: ${why}`);
    if (s.pendingBytes > 0) {
      s.pendingTrailers = headers;
      return;
    }
    this.#sendHeaders(s, headers, true);
    this.#checkDone();
  }

  /** Queue DATA; it leaves as flow control allows (`writable` when credit returns). */
  data(streamId: number, data: Uint8Array, endStream: boolean): void {
    const s = this.#streams.get(streamId);
    if (!s || this.#closed || s.localClosed) return;
    s.queue(data, endStream);
    this.#sendQueue.set(s.id, s);
    this.#flushData();
    this.#checkDone();
  }

  /** Our side of the stream is still open: END_STREAM has not left (queued behind flow control, or not given yet). */
  sendOpen(streamId: number): boolean {
    const s = this.#streams.get(streamId);
    return s !== undefined && !s.localClosed;
  }

  /** Bytes of a stream still waiting for send credit. */
  pending(streamId: number): number {
    return this.#streams.get(streamId)?.pendingBytes ?? 0;
  }

  /**
   * Server: the application wants no more of this request. Once the response's END_STREAM has left (now, or when
   * flow control lets its last DATA go), a client still sending gets RST_STREAM(NO_ERROR) and stops (RFC 9113 §8.1:
   * a complete response may come before the request's end). Nothing for a stream already closed.
   */
  stopReading(streamId: number): void {
    const s = this.#streams.get(streamId);
    if (!s || this.#closed || s.remoteClosed) return;
    if (s.localClosed) this.reset(streamId, H2ErrorCode.NO_ERROR);
    else s.stopAfterEnd = true;
  }

  /** Cancel a stream (RST_STREAM). */
  reset(streamId: number, code: number = H2ErrorCode.CANCEL): void {
    const s = this.#streams.get(streamId);
    if (!s || this.#closed) return;
    this.#out.push(encodeRstStream(streamId, code));
    this.#close(s, 'reset-by-us');
    this.#checkDone();
  }

  /**
   * The application consumed `n` bytes of a stream's DATA: return the credit
   * when half a window is owed (§6.9), so a reader that keeps up never
   * stalls a bulk, and one that does not holds at most a window.
   */
  consumed(streamId: number, n: number): void {
    const s = this.#streams.get(streamId);
    // A closed stream's unread bytes were credited to the connection when it closed.
    if (this.#closed || n <= 0 || !s) return;
    const credit = Math.min(n, s.unconsumed);
    s.unconsumed -= credit;
    this.#creditConnection(credit);
    this.#creditStream(s, credit);
  }

  /** `n` octets of the stream's window given back: a WINDOW_UPDATE once half a window is owed (§6.9). */
  #creditStream(s: H2Stream, n: number): void {
    if (s.remoteClosed) return;
    s.recvUnacked += n;
    if (s.recvUnacked >= this.#windowSize / 2) {
      this.#out.push(encodeWindowUpdate(s.id, s.recvUnacked));
      s.recvWindow += s.recvUnacked;
      s.recvUnacked = 0;
    }
  }

  ping(data: Uint8Array): void {
    if (!this.#closed) this.#out.push(encodePing(data));
  }

  /**
   * Graceful close (§6.8). Server: GOAWAY with the largest id, then after a
   * PING round trip the real last id, so requests in flight are not lost.
   * Client: GOAWAY with 0 (we accept no pushes). Streams in flight finish.
   */
  shutdown(): void {
    if (this.#closed || this.#goawaySent !== null) return;
    if (this.role === 'server') {
      this.#goawaySent = MAX_STREAM_ID;
      this.#out.push(encodeGoaway(MAX_STREAM_ID, H2ErrorCode.NO_ERROR));
      this.#shutdownPing = Uint8Array.from([0x6f, 0x6c, 0x2d, 0x62, 0x79, 0x65, 0, 0]);
      this.#out.push(encodePing(this.#shutdownPing));
    } else {
      this.#goawaySent = 0;
      this.#out.push(encodeGoaway(0, H2ErrorCode.NO_ERROR));
    }
  }

  /** End the connection with a connection error of ours (GOAWAY with `code`). */
  fail(code: number, message: string): void {
    this.#connectionError(new H2Error(code as never, message));
  }

  // ---- receiving ----

  receive(bytes: Uint8Array, now: number): void {
    if (this.#closed) return;
    this.#now = now;
    let b = bytes;
    if (this.#prefaceLeft > 0) {
      // §3.4: the server first reads the client preface, byte for byte.
      const off = CLIENT_PREFACE.length - this.#prefaceLeft;
      const n = Math.min(this.#prefaceLeft, b.length);
      for (let i = 0; i < n; i++) {
        if (b[i] !== CLIENT_PREFACE[off + i])
          return this.#connectionError(new H2Error(H2ErrorCode.PROTOCOL_ERROR, 'not an HTTP/2 connection preface'));
      }
      this.#prefaceLeft -= n;
      b = b.subarray(n);
      if (b.length === 0) return;
    }
    try {
      for (const f of this.#reader.push(b)) {
        this.#frame(f, now);
        if (this.#closed) return;
      }
    } catch (e) {
      if (!(e instanceof H2Error)) throw e;
      // Only connection errors are thrown: a stream's own comes as a 'stream-error' frame in its place
      // (H2FrameReader), and a reset too many is a flood (ENHANCE_YOUR_CALM), a connection error.
      this.#connectionError(e);
      return;
    }
    this.#checkDone();
  }

  #frame(f: H2Frame, now: number): void {
    if (!this.#peerSettingsSeen && !(f.type === 'settings' && !f.ack)) {
      throw new H2Error(H2ErrorCode.PROTOCOL_ERROR, 'the first frame was not SETTINGS'); // §3.4
    }
    // §4.3, §6.10: inside a header block only CONTINUATION of the same stream may come.
    if (this.#block && (f.type !== 'continuation' || f.streamId !== this.#block.streamId)) {
      throw new H2Error(H2ErrorCode.PROTOCOL_ERROR, 'a header block was interrupted');
    }
    switch (f.type) {
      case 'stream-error':
        // §5.1: on an idle stream only HEADERS and PRIORITY may come; anything else (a zero WINDOW_UPDATE on a stream
        // never opened) is a connection error, not one more RST_STREAM the peer makes us send.
        if (
          f.frameType !== H2FrameType.PRIORITY &&
          f.frameType !== H2FrameType.HEADERS &&
          !this.#streams.has(f.streamId) &&
          this.#stateOf(f.streamId) === 'idle'
        ) {
          throw new H2Error(H2ErrorCode.PROTOCOL_ERROR, `${f.message} on idle stream ${f.streamId}`);
        }
        return this.#streamError(f.streamId, f.code, f.message);
      case 'settings':
        return this.#onSettings(f, now);
      case 'headers':
        return this.#onHeaders(f.streamId, f.block, f.endStream, f.endHeaders, f.dependsOn === f.streamId);
      case 'continuation':
        return this.#onContinuation(f.streamId, f.block, f.endHeaders);
      case 'data':
        return this.#onData(f.streamId, f.data, f.endStream, f.flowLength, f.empty === true, now);
      case 'window-update':
        return this.#onWindowUpdate(f.streamId, f.increment);
      case 'rst-stream':
        return this.#onReset(f.streamId, f.code, now);
      case 'ping':
        if (f.ack) {
          if (this.#shutdownPing && equal(f.data, this.#shutdownPing)) this.#secondGoaway();
          else this.#emit({ type: 'ping-ack', data: f.data });
          return;
        }
        this.#floods.count('pings', now);
        this.#out.push(encodePing(f.data, true));
        return;
      case 'goaway':
        return this.#onGoaway(f.lastStreamId, f.code, f.debug);
      case 'push-promise':
        // §8.4: we never enable push (client), and a client never pushes (server).
        throw new H2Error(H2ErrorCode.PROTOCOL_ERROR, 'PUSH_PROMISE without push enabled');
      case 'priority':
        // RFC 7540 §5.3.1 (kept by h2spec): a stream cannot depend on itself; otherwise ignored (RFC 9113 §5.3.2).
        if (f.dependsOn === f.streamId)
          this.#streamError(f.streamId, H2ErrorCode.PROTOCOL_ERROR, 'stream depends on itself');
        return;
      case 'unknown':
        return; // §5.3.2 deprecated; §5.5 extensions ignored
    }
  }

  #onSettings(f: Extract<H2Frame, { type: 'settings' }>, now: number): void {
    if (f.ack) {
      const apply = this.#pendingAcks.shift();
      if (!apply) throw new H2Error(H2ErrorCode.PROTOCOL_ERROR, 'SETTINGS ACK without SETTINGS');
      apply();
      return;
    }
    this.#floods.count('settings', now);
    // A frame holds up to 2,730 entries where 7 are defined: nghttp2 refuses more than 32 (CVE-2020-11080, a
    // SETTINGS frame that costs the receiver far more than the sender); so do we.
    if (f.settings.length > MAX_SETTINGS_ENTRIES)
      throw new H2Error(
        H2ErrorCode.ENHANCE_YOUR_CALM,
        `SETTINGS frame with ${f.settings.length} entries (at most ${MAX_SETTINGS_ENTRIES})`,
      );
    // HEADER_TABLE_SIZE rebuilds the encoder's table: once for the frame's smallest value and once for its last
    // (RFC 7541 §4.2: the next block signals both), not once per entry.
    let tableMin = -1;
    let tableLast = -1;
    for (const [id, value] of f.settings) {
      switch (id) {
        case H2Setting.HEADER_TABLE_SIZE:
          tableMin = tableMin < 0 ? value : Math.min(tableMin, value);
          tableLast = value;
          break;
        case H2Setting.MAX_CONCURRENT_STREAMS:
          this.#peerMaxConcurrent = value;
          break;
        case H2Setting.INITIAL_WINDOW_SIZE: {
          // §6.9.2: the change applies to every open stream's send window.
          const delta = value - this.#peerInitialWindow;
          this.#peerInitialWindow = value;
          for (const s of this.#streams.values()) {
            s.sendWindow += delta;
            if (s.sendWindow > MAX_WINDOW)
              throw new H2Error(
                H2ErrorCode.FLOW_CONTROL_ERROR,
                'SETTINGS_INITIAL_WINDOW_SIZE change overflows a window',
              );
          }
          break;
        }
        case H2Setting.MAX_FRAME_SIZE:
          this.#peerMaxFrameSize = value;
          break;
        case H2Setting.ENABLE_PUSH:
          // §6.5.2: a server never enables push (a client's value is a wish we ignore: we never push).
          if (this.role === 'client' && value === 1)
            throw new H2Error(H2ErrorCode.PROTOCOL_ERROR, 'server sent SETTINGS_ENABLE_PUSH of 1');
          break;
        case H2Setting.ENABLE_CONNECT_PROTOCOL:
          // RFC 8441 §3: once 1, the setting may not go back to 0.
          if (value === 0 && this.#peerConnectProtocol)
            throw new H2Error(H2ErrorCode.PROTOCOL_ERROR, 'SETTINGS_ENABLE_CONNECT_PROTOCOL went from 1 to 0');
          if (this.role === 'client') this.#peerConnectProtocol = value === 1;
          break;
        default:
          break; // §6.5.2: unknown settings are ignored
      }
    }
    if (tableMin >= 0) {
      if (tableMin < tableLast) this.#encoder.setPeerMaxTableSize(tableMin);
      this.#encoder.setPeerMaxTableSize(tableLast);
    }
    this.#out.push(encodeSettings([], true));
    const first = !this.#peerSettingsSeen;
    this.#peerSettingsSeen = true;
    this.#emit({ type: 'settings', maxConcurrentStreams: this.#peerMaxConcurrent });
    if (!first) this.#emit({ type: 'streams-available' });
    this.#flushData();
  }

  #onHeaders(
    streamId: number,
    block: Uint8Array,
    endStream: boolean,
    endHeaders: boolean,
    selfDependent: boolean,
  ): void {
    this.#block = { streamId, parts: [block], bytes: block.length, frames: 0, endStream, selfDependent };
    if (endHeaders) this.#endBlock();
  }

  #onContinuation(streamId: number, block: Uint8Array, endHeaders: boolean): void {
    const b = this.#block;
    if (!b) throw new H2Error(H2ErrorCode.PROTOCOL_ERROR, 'CONTINUATION without a header block');
    void streamId;
    b.parts.push(block);
    b.bytes += block.length;
    b.frames++;
    // CONTINUATION flood: a block is bounded in frames and in bytes, whatever HPACK would make of it.
    if (b.frames > this.#floods.limits.continuations || b.bytes > 2 * this.#maxHeaderListSize) {
      throw new H2Error(
        H2ErrorCode.ENHANCE_YOUR_CALM,
        `header block over ${b.frames > this.#floods.limits.continuations ? `${this.#floods.limits.continuations} CONTINUATION frames` : `${2 * this.#maxHeaderListSize} bytes`}`,
      );
    }
    if (endHeaders) this.#endBlock();
  }

  #endBlock(): void {
    const b = this.#block!;
    this.#block = null;
    const id = b.streamId;
    // The block is decoded even for a stream we refuse: HPACK state is per connection (§4.3).
    let headers: SharedHeaderList;
    let neverIndexed: readonly number[];
    let tooLarge = false;
    let d: DecodedBlock | null = null;
    try {
      d = this.#decoder.decode(b.parts.length === 1 ? b.parts[0]! : concatBytes(b.parts));
      headers = d.headers;
      neverIndexed = d.neverIndexed;
    } catch (e) {
      if (e instanceof HpackError && e.tooLarge) {
        tooLarge = true;
        headers = [];
        neverIndexed = [];
      } else if (e instanceof HpackError) {
        throw new H2Error(H2ErrorCode.COMPRESSION_ERROR, e.message);
      } else throw e;
    }
    let s = this.#streams.get(id);
    if (!s) {
      const state = this.#stateOf(id);
      if (state !== 'idle' || !this.#peerMayOpen(id)) {
        // §5.1.1: a stream the peer may not open, or a new one below its last, is an unexpected identifier.
        if (state === 'idle' || (state === 'unknown' && this.role === 'server'))
          throw new H2Error(H2ErrorCode.PROTOCOL_ERROR, `HEADERS on stream ${id}, which the peer may not open now`);
        return this.#lateFrame(id, state, 'HEADERS');
      }
      if (id > this.#lastPeerId + 2) {
        this.#skipped.push([this.#lastPeerId + 2, id - 2]);
        if (this.#skipped.length > SKIPPED_MEMORY) this.#skipped.shift();
      }
      this.#lastPeerId = id;
      if (this.#goawaySent !== null && id > this.#goawaySent) return this.#remember(id, 'reset-by-us'); // §6.8: ignored after our GOAWAY
      // §5.1.2: over SETTINGS_MAX_CONCURRENT_STREAMS: refused (the client may retry it).
      if (this.#peerOpen >= this.#maxConcurrent) {
        this.#out.push(encodeRstStream(id, H2ErrorCode.REFUSED_STREAM));
        return this.#remember(id, 'reset-by-us');
      }
      s = new H2Stream(id, this.#peerInitialWindow, this.#windowSize);
      s.peerOpened = true;
      this.#streams.set(id, s);
      this.#peerOpen++;
    }
    if (s.remoteClosed) return this.#streamError(id, H2ErrorCode.STREAM_CLOSED, 'HEADERS after the end of the stream');
    if (b.selfDependent) return this.#streamError(id, H2ErrorCode.PROTOCOL_ERROR, 'stream depends on itself'); // RFC 7540 §5.3.1
    if (tooLarge) {
      // RFC 9113 §10.5.1: answer an oversized header list per stream (a server may send 431 first; we reset). Our
      // own limit, not the peer's misdeed: not counted as a reset it made us send (an origin whose heads on a busy
      // path exceed it would otherwise lose its whole connection past 100 a second).
      return this.#streamError(
        id,
        H2ErrorCode.PROTOCOL_ERROR,
        `header list over ${this.#maxHeaderListSize} bytes`,
        false,
      );
    }
    const isTrailers = s.headSeen;
    const kind: SectionKind = isTrailers ? 'trailers' : this.role === 'server' ? 'request' : 'response';
    if (!isTrailers && this.role === 'client') {
      const status = headers.find(([n]) => n === ':status')?.[1] ?? '';
      if (/^1\d\d$/.test(status) && status !== '101') {
        // §8.1: interim responses before the final one; an interim with END_STREAM is malformed.
        if (b.endStream) return this.#streamError(id, H2ErrorCode.PROTOCOL_ERROR, 'interim response with END_STREAM');
        if (++s.interims > MAX_INTERIM_RESPONSES)
          return this.#streamError(
            id,
            H2ErrorCode.PROTOCOL_ERROR,
            `more than ${MAX_INTERIM_RESPONSES} interim responses`,
          );
        const bad = checkFieldSection(headers, 'response', false, true);
        if (bad) return this.#streamError(id, H2ErrorCode.PROTOCOL_ERROR, `interim response: ${bad}`); // §8.1.1 malformed
        this.#emit({ type: 'interim', streamId: id, headers });
        return;
      }
    }
    if (isTrailers && !b.endStream)
      return this.#streamError(id, H2ErrorCode.PROTOCOL_ERROR, 'a second header block without END_STREAM'); // §8.1
    // Received: RFC 9113 §8.2.1's edge whitespace too. A block the decoder returned again keeps its verdict.
    const v = checkReceived(headers, kind, this.#enableConnectProtocol, true, d?.kept === true);
    if (v.why) return this.#streamError(id, H2ErrorCode.PROTOCOL_ERROR, v.why); // §8.1.1 malformed
    if (!isTrailers) {
      s.headSeen = true;
      const cl = v.contentLength;
      if (cl !== null && typeof cl === 'object') return this.#streamError(id, H2ErrorCode.PROTOCOL_ERROR, cl.error);
      const bodyless =
        kind === 'response' &&
        (s.requestMethod === 'HEAD' || /^(204|304)$/.test(headers.find(([n]) => n === ':status')?.[1] ?? ''));
      s.expectedLength = bodyless ? null : cl;
      s.bodyless = bodyless;
      if (kind === 'request') s.requestMethod = headers.find(([n]) => n === ':method')?.[1] ?? null;
    }
    if (b.endStream && s.expectedLength !== null && s.received !== s.expectedLength) {
      return this.#streamError(
        id,
        H2ErrorCode.PROTOCOL_ERROR,
        `body of ${s.received} bytes, content-length ${s.expectedLength}`,
      );
    }
    // State first, then the event: a listener that opens a new stream on it sees this one's slot free.
    if (b.endStream) this.#remoteEnd(s);
    this.#emit({
      type: 'headers',
      streamId: id,
      headers,
      endStream: b.endStream,
      trailers: isTrailers,
      neverIndexed,
      contentLength: isTrailers ? null : s.expectedLength,
    });
  }

  #onData(id: number, data: Uint8Array, endStream: boolean, flowLength: number, empty: boolean, now: number): void {
    // Connection flow control counts every DATA frame, whatever becomes of its stream (§6.9).
    this.#recvWindow -= flowLength;
    if (this.#recvWindow < 0) throw new H2Error(H2ErrorCode.FLOW_CONTROL_ERROR, 'connection receive window exceeded');
    // A frame without a data octet and without END_STREAM carries nothing (padding alone included): a flood's frame.
    if (empty && !endStream) this.#floods.count('emptyData', now);
    const s = this.#streams.get(id);
    if (!s || s.remoteClosed) {
      this.#creditConnection(flowLength);
      // §5.1 half-closed (remote): a frame other than WINDOW_UPDATE, PRIORITY, RST_STREAM is a STREAM_CLOSED stream
      // error.
      if (s) return this.#streamError(id, H2ErrorCode.STREAM_CLOSED, 'DATA after the end of the stream');
      return this.#lateFrame(id, this.#stateOf(id), 'DATA');
    }
    if (!s.headSeen) return this.#streamError(id, H2ErrorCode.PROTOCOL_ERROR, 'DATA before HEADERS');
    s.recvWindow -= flowLength;
    if (s.recvWindow < 0)
      return this.#streamError(id, H2ErrorCode.FLOW_CONTROL_ERROR, 'stream receive window exceeded');
    // Padding is credited at once, to the connection and to the stream (nobody consumes it: kept from the stream's
    // window, a peer that pads stalled the stream after a window's worth of padding); the data when the reader took it.
    if (flowLength > data.length) {
      this.#creditConnection(flowLength - data.length);
      this.#creditStream(s, flowLength - data.length);
    }
    s.received += data.length;
    s.unconsumed += data.length;
    // RFC 9110 §6.4.1, RFC 9113 §8.1.1: content on a response that has none is malformed.
    if (s.bodyless && data.length > 0)
      return this.#streamError(id, H2ErrorCode.PROTOCOL_ERROR, 'DATA on a response without content (HEAD, 204, 304)');
    if (
      s.expectedLength !== null &&
      (s.received > s.expectedLength || (endStream && s.received !== s.expectedLength))
    ) {
      return this.#streamError(
        id,
        H2ErrorCode.PROTOCOL_ERROR,
        `body of ${s.received}${endStream ? '' : '+'} bytes, content-length ${s.expectedLength}`,
      );
    }
    if (endStream) this.#remoteEnd(s);
    this.#emit({ type: 'data', streamId: id, data, endStream });
  }

  #onWindowUpdate(id: number, increment: number): void {
    if (id === 0) {
      this.#sendWindow += increment;
      if (this.#sendWindow > MAX_WINDOW)
        throw new H2Error(H2ErrorCode.FLOW_CONTROL_ERROR, 'connection send window over 2^31 − 1'); // §6.9.1
    } else {
      const s = this.#streams.get(id);
      if (!s) {
        if (this.#stateOf(id) === 'idle')
          throw new H2Error(H2ErrorCode.PROTOCOL_ERROR, `WINDOW_UPDATE on idle stream ${id}`); // §5.1
        return; // §5.1 closed: WINDOW_UPDATE may follow our END_STREAM or RST_STREAM
      }
      s.sendWindow += increment;
      if (s.sendWindow > MAX_WINDOW)
        return this.#streamError(id, H2ErrorCode.FLOW_CONTROL_ERROR, 'stream send window over 2^31 − 1');
    }
    this.#flushData();
  }

  #onReset(id: number, code: number, now: number): void {
    const s = this.#streams.get(id);
    if (!s && this.#stateOf(id) === 'idle')
      throw new H2Error(H2ErrorCode.PROTOCOL_ERROR, `RST_STREAM on idle stream ${id}`); // §6.4
    // Rapid reset (CVE-2023-44487): a client's resets, counted per window whatever their stream. A server's are
    // not: RFC 9113 §8.1 lets it answer a request early and reset the rest of its body with NO_ERROR, which a
    // busy origin refusing uploads (401, 405, 413) does hundreds of times a second (nghttp2's limit is for
    // servers only too). Counted here, they ended a client's connection and failed its other streams.
    if (this.role === 'server') this.#floods.count('resets', now);
    if (!s) return;
    this.#close(s, 'reset-by-peer');
    this.#emit({ type: 'reset', streamId: id, code, byPeer: true });
  }

  #onGoaway(lastStreamId: number, code: number, debug: Uint8Array): void {
    this.#goawayReceived = Math.min(lastStreamId, this.#goawayReceived ?? MAX_STREAM_ID);
    this.#emit({ type: 'goaway', lastStreamId, code, debug: Buffer.from(debug).toString('latin1') });
    // §6.8: our streams above the last id were not processed; they end as refused.
    if (this.role === 'client') {
      for (const s of [...this.#streams.values()]) {
        if (s.id > lastStreamId) {
          this.#close(s, 'reset-by-us');
          this.#emit({ type: 'reset', streamId: s.id, code: H2ErrorCode.REFUSED_STREAM, byPeer: true });
        }
      }
    }
    if (code !== H2ErrorCode.NO_ERROR)
      this.#finish({
        code,
        message: `peer sent GOAWAY (${code})${debug.length ? `: ${Buffer.from(debug).toString('latin1').slice(0, 120)}` : ''}`,
        byPeer: true,
      });
  }

  // ---- internals ----

  #sendHeaders(s: H2Stream, headers: SharedHeaderList, endStream: boolean): void {
    const frames = headersFrames(
      s.id,
      this.#encoder.encode(headers, undefined, FRAME_HEADER),
      endStream,
      this.#peerMaxFrameSize,
    );
    if (frames instanceof Uint8Array) this.#out.push(frames);
    else for (const f of frames) this.#out.push(f);
    if (endStream) this.#localEnd(s);
  }

  /** Send queued DATA while stream and connection credit last, streams in turn (§5.2). */
  #flushData(): void {
    let any = false;
    let progress = true;
    while (progress && this.#sendQueue.size > 0 && !this.#closed) {
      progress = false;
      for (const s of this.#sendQueue.values()) {
        const chunk = s.take(Math.min(this.#sendWindow, this.#peerMaxFrameSize));
        if (!chunk) {
          if (s.pendingBytes === 0 && !s.pendingEnd) this.#sendQueue.delete(s.id);
          continue;
        }
        this.#sendWindow -= chunk.data.length;
        this.#out.push(dataFrameHeader(s.id, chunk.data.length, chunk.end));
        if (chunk.data.length) this.#out.push(chunk.data);
        this.#outData += chunk.data.length;
        progress = true;
        any = true;
        if (chunk.end) {
          this.#sendQueue.delete(s.id);
          this.#localEnd(s);
        } else if (s.pendingBytes === 0 && s.pendingTrailers) {
          const t = s.pendingTrailers;
          s.pendingTrailers = null;
          this.#sendQueue.delete(s.id);
          this.#sendHeaders(s, t, true);
        }
      }
    }
    if (any) this.#emit({ type: 'writable' });
  }

  #creditConnection(n: number): void {
    this.#recvUnacked += n;
    if (this.#recvUnacked >= this.#recvTarget / 2) {
      this.#out.push(encodeWindowUpdate(0, this.#recvUnacked));
      this.#recvWindow += this.#recvUnacked;
      this.#recvUnacked = 0;
    }
  }

  #localEnd(s: H2Stream): void {
    s.localClosed = true;
    if (s.remoteClosed) this.#close(s, 'peer-ended');
    else if (s.stopAfterEnd) {
      this.#out.push(encodeRstStream(s.id, H2ErrorCode.NO_ERROR));
      this.#close(s, 'reset-by-us');
    }
  }

  #remoteEnd(s: H2Stream): void {
    s.remoteClosed = true;
    if (s.localClosed) this.#close(s, 'peer-ended');
  }

  /**
   * Where a stream id we do not hold stands (§5.1): never opened yet (`idle`), closed and how, or `unknown`: skipped by
   * the peer, never opened (implicitly closed, §5.1.1).
   */
  #stateOf(id: number): 'idle' | ClosedHow | 'unknown' {
    const ours = (id % 2 === 1) === (this.role === 'client');
    // A client disables push, so the server's (even) streams never leave idle.
    if (ours ? id >= this.#nextId : id > this.#lastPeerId || this.role === 'client') return 'idle';
    const how = this.#resets.get(id);
    if (how !== undefined) return how;
    if (!ours) for (const [a, b] of this.#skipped) if (id >= a && id <= b) return 'unknown';
    return 'peer-ended';
  }

  /** The peer may open this id now (§5.1.1: its parity, above its last; a client accepts none, push being off). */
  #peerMayOpen(id: number): boolean {
    return this.role === 'server' && id % 2 === 1 && id > this.#lastPeerId;
  }

  /** §5.1: a frame on a stream we no longer hold. */
  #lateFrame(id: number, state: 'idle' | ClosedHow | 'unknown', what: string): void {
    switch (state) {
      case 'idle':
        throw new H2Error(H2ErrorCode.PROTOCOL_ERROR, `${what} on idle stream ${id}`);
      case 'peer-ended':
        throw new H2Error(H2ErrorCode.STREAM_CLOSED, `${what} on stream ${id} after its END_STREAM`);
      case 'reset-by-peer':
        // §5.1: a frame on a stream the peer reset. Answered, and counted as a reset (each answer is one more frame
        // the peer makes us send: CVE-2019-9514's shape).
        this.#out.push(encodeRstStream(id, H2ErrorCode.STREAM_CLOSED));
        this.#countOwnReset();
        return;
      case 'reset-by-us':
      case 'unknown':
        return; // frames in flight when we reset it (or too old to tell): ignored
    }
  }

  #remember(id: number, how: ClosedHow): void {
    if (how === 'peer-ended') return; // the default for a closed id
    this.#resets.set(id, how);
    if (this.#resets.size > RESET_MEMORY) this.#resets.delete(this.#resets.keys().next().value as number);
  }

  #close(s: H2Stream, how: ClosedHow): void {
    if (!this.#streams.delete(s.id)) return;
    this.#remember(s.id, how);
    this.#sendQueue.delete(s.id);
    if (s.peerOpened) this.#peerOpen--;
    // What the stream received and nobody will consume now goes back to the connection window.
    if (s.unconsumed > 0 && !this.#closed) this.#creditConnection(s.unconsumed);
    s.unconsumed = 0;
    this.#emit({ type: 'streams-available' });
  }

  /**
   * After a GOAWAY either way, the connection ends once its last stream has.
   * Checked when a call or a received chunk is done, never inside one: the
   * events of the last stream (its final DATA) reach the listener first.
   */
  #checkDone(): void {
    if (this.#closed || this.#streams.size > 0) return;
    if ((this.#goawaySent !== null && this.#shutdownPing === null) || this.#goawayReceived !== null) this.#finish(null);
  }

  /** Streams we opened and that are still open: every open stream is ours or the peer's (`#peerOpen`). */
  #ownOpen(): number {
    return this.#streams.size - this.#peerOpen;
  }

  /**
   * A stream error of the peer's making: RST_STREAM. A server counts each with the client's own resets: a client
   * that makes us reset streams (a frame its stream cannot take, right after HEADERS) is the rapid-reset flood by
   * other means ("MadeYouReset", CVE-2025-8671; RFC 9113 §10.5).
   */
  #streamError(id: number, code: number, message: string, counted = true): void {
    this.#out.push(encodeRstStream(id, code));
    if (counted) this.#countOwnReset();
    const s = this.#streams.get(id);
    if (!s) return;
    this.#close(s, 'reset-by-us');
    this.#emit({ type: 'reset', streamId: id, code, byPeer: false, message });
  }

  /**
   * A reset the peer's frames made us send, counted with a client's own resets (see #streamError). A client role
   * counts them too: an origin can make us answer frame after frame just the same (and its own resets are not
   * counted there, RFC 9113 §8.1 early answers).
   */
  #countOwnReset(): void {
    this.#floods.count('resets', this.#now);
  }

  #connectionError(e: H2Error): void {
    if (this.#closed) return;
    this.#out.push(encodeGoaway(this.#lastPeerId, e.wireCode, e.message));
    this.#finish({ code: e.wireCode, message: e.message, byPeer: false });
  }

  #secondGoaway(): void {
    this.#shutdownPing = null;
    this.#goawaySent = this.#lastPeerId;
    this.#out.push(encodeGoaway(this.#lastPeerId, H2ErrorCode.NO_ERROR));
  }

  #finish(error: { code: number; message: string; byPeer: boolean } | null): void {
    if (this.#closed) return;
    this.#closed = true;
    const open = [...this.#streams.values()];
    this.#streams.clear();
    this.#peerOpen = 0;
    this.#sendQueue.clear();
    for (const s of open)
      this.#emit({
        type: 'reset',
        streamId: s.id,
        code: error?.code ?? H2ErrorCode.CANCEL,
        byPeer: error?.byPeer ?? false,
        ...(error ? { message: error.message } : {}),
        connection: true,
      });
    this.#emit({ type: 'closed', error });
  }

  #emit(ev: H2Event): void {
    this.#listener(ev);
  }

  /** Flood limits in force (tests read them). */
  get limits(): Readonly<FloodLimits> {
    return this.#floods.limits;
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
