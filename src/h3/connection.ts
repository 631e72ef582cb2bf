/**
 * Sans-IO HTTP/3 connection (RFC 9114) over a `QuicStreamTransport`.
 *
 * The QUIC driver calls the `QuicStreamHandler` methods with stream
 * events; the user calls the request/response methods and listens for
 * `H3Event`s. No clock, no sockets. All protocol violations end in
 * `transport.close(code)` with the RFC error code (connection errors) or
 * RESET_STREAM + STOP_SENDING (stream errors), and are reported as events.
 */
import { concatBytes } from '../codec/bytes.js';
import { H3Error, H3ErrorCode, WireError } from '../codec/errors.js';
import { encodeDataFrameHeader, encodeFrame, FrameType, SettingId, type Settings } from '../codec/h3frame.js';
import { QpackDecoder } from '../codec/qpack/decoder.js';
import { QpackEncoder } from '../codec/qpack/encoder.js';
import { varintLength, writeVarint } from '../codec/varint.js';
import type { OriginlinkError } from '../errors.js';
import type { HeaderList, SharedHeaderList } from '../http/types.js';
import type { QuicStreamHandler, QuicStreamTransport } from './quic-seam.js';
import { checkFieldSection, fieldSectionSize, methodOf, statusOf } from '../http/field-section.js';
import { RequestStream, type StreamSink } from './request-stream.js';
import {
  argumentError,
  closedError,
  connectionError,
  driverCloseError,
  goawayError,
  headersTooLarge,
  localCloseError,
} from './errors.js';
import { LocalStreams } from './local-streams.js';
import { DEFAULT_ENCODER_TABLE_CAPACITY, settingsFrame, validateOptions } from './options.js';
import { isServerInitiated, isUni, SeenStreamIds } from './stream-ids.js';
import type { H3ConnectionOptions, H3Event, H3Listener, H3Stats } from './types.js';
import { PeerUniStreams } from './uni-streams.js';
import { parsePriority, PendingPriorities, requestPriority } from './priority.js';
import { IdMap } from '../util/id-map.js';

/** DATA payloads from this size are not copied behind their frame header (one write each instead). */
const COPY_BELOW = 4096;
/** Room before a HEADERS frame's field section for its frame header: the type (0x01, one byte) and a length varint. */
const HEADER_ROOM = 9;

export type { H3ConnectionOptions, H3Event, H3Listener, H3Stats } from './types.js';

export class H3Connection implements QuicStreamHandler {
  readonly #t: QuicStreamTransport;
  readonly #opts: Readonly<H3ConnectionOptions>;
  readonly #server: boolean;
  readonly #listeners: H3Listener[] = [];
  /** Request streams by id (IdMap, not Map: see util/id-map.ts). */
  readonly #streams = new IdMap<RequestStream>();
  readonly #uni: PeerUniStreams;
  readonly #decoder: QpackDecoder;
  readonly #encoder: QpackEncoder;
  readonly #sink: StreamSink;
  readonly #local: LocalStreams;
  #closed = false;
  #peerSettings: Settings | null = null;
  /** Peer request stream ids already seen (server role): late data on a finished stream is ignored. */
  readonly #peerRequests = new SeenStreamIds(0);
  /** Highest request stream accepted for processing (server role). */
  #lastAccepted = -1;
  /**
   * Server role: peer request streams whose head has not arrived yet, by the sweep they were opened in
   * (expireIncompleteHeads).
   */
  readonly #awaitingHead = new IdMap<number>();
  #headSweeps = 0;
  /** Decoder instructions are held this long (H3ConnectionOptions.decoderAckDelay); the pending timer's cancel. */
  readonly #decoderAckDelay: H3ConnectionOptions['decoderAckDelay'];
  #decoderTimer: (() => void) | null = null;
  #requestsOpened = 0;
  #requestsAccepted = 0;
  /** Client role: one past the highest request stream id we opened. */
  #openedBelow = 0;
  #goawaySent: number | null = null;
  #goawayReceived: number | null = null;
  /** Server: PRIORITY_UPDATE values for requests whose head has not been reported yet (RFC 9218 §7.2, bounded). */
  readonly #pendingPriorities = new PendingPriorities();
  #priorityUpdates = 0;

  constructor(transport: QuicStreamTransport, options: H3ConnectionOptions) {
    this.#t = transport;
    this.#opts = validateOptions(options);
    this.#server = options.role === 'server';
    this.#encoder = new QpackEncoder({
      maxTableCapacity: options.qpackEncoderTableCapacity ?? DEFAULT_ENCODER_TABLE_CAPACITY,
      ...(options.qpackMinReferenceSaving !== undefined ? { minReferenceSaving: options.qpackMinReferenceSaving } : {}),
    });
    this.#decoderAckDelay = options.decoderAckDelay;
    this.#decoder = new QpackDecoder({
      maxTableCapacity: options.qpackMaxTableCapacity,
      maxBlockedStreams: options.qpackBlockedStreams,
      maxStringLength: options.maxFieldSectionSize,
    });
    // RFC 9114 §7.2.8: a reserved frame type (0x1f * N + 0x21) has no semantics and may be sent
    // on any stream that carries frames; an empty one lets a lone end of a request or response
    // ride on two bytes instead of a zero-length FIN (issue 17).
    transport.setFinCarrier?.(encodeFrame(0x21, new Uint8Array(0)));
    this.#local = new LocalStreams(transport, settingsFrame(options));
    this.#uni = new PeerUniStreams(this.#server, options.maxFrameSize, {
      settings: (s) => this.#onPeerSettings(s),
      goaway: (id) => this.#onGoaway(id),
      priorityUpdate: (id, value) => this.#onPriorityUpdate(id, value),
      encoderStream: (d) => this.#onEncoderStream(d),
      decoderStream: (d) => this.#encoder.feedDecoderStream(d),
      stopSending: (id, code) => this.#t.stopSending(id, code),
    });
    this.#sink = {
      emit: (ev) => this.#emit(this.#server && ev.type === 'headers' ? this.#withPriority(ev) : ev),
      decode: (id, block) => {
        const r = this.#decoder.decodeSection(id, block);
        this.#flushDecoderStream();
        return r.status === 'done' ? r : null;
      },
    };
  }

  on(listener: H3Listener): void {
    this.#listeners.push(listener);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The peer's SETTINGS, once received. */
  get peerSettings(): Settings | null {
    return this.#peerSettings;
  }

  /** Request streams currently open (either direction still active). */
  get activeStreams(): number {
    return this.#streams.size;
  }

  /** A snapshot for metrics and debugging. */
  stats(): H3Stats {
    return {
      activeStreams: this.#streams.size,
      requestsOpened: this.#requestsOpened,
      requestsAccepted: this.#requestsAccepted,
      goawaySent: this.#goawaySent,
      goawayReceived: this.#goawayReceived,
      priorityUpdates: this.#priorityUpdates,
      pendingPriorityUpdates: this.#pendingPriorities.size,
      qpack: {
        encoderTableCapacity: this.#encoder.tableCapacity,
        encoderInsertCount: this.#encoder.insertCount,
        encoderKnownReceived: this.#encoder.knownReceivedCount,
        decoderTableSize: this.#decoder.table.size,
        decoderInsertCount: this.#decoder.table.insertCount,
        blockedStreams: this.#decoder.blockedStreamCount,
      },
    };
  }

  // ---- user API -------------------------------------------------------

  /**
   * Client: open a request stream and send its HEADERS. Returns null when
   * the peer's stream limit is reached (wait for `streams-available`).
   * `trustedFrom`: checkFieldSection's (appendRequestFields says where).
   */
  openRequest(headers: HeaderList, end: boolean, trustedFrom = headers.length): number | null {
    if (this.#server) throw argumentError('openRequest is for the client role');
    this.#usable();
    if (this.#goawayReceived !== null) throw goawayError(this.#goawayReceived);
    const why = checkFieldSection(headers, 'request', false, false, trustedFrom);
    if (why) throw argumentError(`malformed request headers: ${why}`);
    this.#checkPeerSize(headers);
    this.#openCritical();
    const id = this.#t.openBidi();
    if (id === null) return null;
    this.#openedBelow = Math.max(this.#openedBelow, id + 1);
    this.#requestsOpened++;
    const s = new RequestStream(id, false, this.#opts, methodOf(headers));
    s.headersSent = true;
    s.sendDone = end;
    this.#streams.set(id, s);
    this.#sendHeadersFrame(id, headers, end);
    return id;
  }

  /**
   * Server: send a response head (1xx interim, then final). Either side:
   * after the head, send trailers (which end the stream).
   */
  sendHeaders(streamId: number, headers: SharedHeaderList, end: boolean): void {
    this.#usable();
    const s = this.#sendable(streamId);
    if (!s) return;
    let kind: 'response' | 'trailers' = 'trailers';
    if (this.#server && !s.headersSent) kind = 'response';
    const why = checkFieldSection(headers, kind);
    if (why) throw argumentError(`malformed ${kind}: ${why}`);
    if (kind === 'trailers' && !end) throw argumentError('trailers must end the stream');
    const interim = kind === 'response' && statusOf(headers) < 200;
    if (interim && end) throw argumentError('an interim response cannot end the stream');
    this.#checkPeerSize(headers);
    if (kind === 'response' && !interim) s.headersSent = true;
    if (end) s.sendDone = true;
    this.#sendHeadersFrame(streamId, headers, end);
    this.#maybeForget(s);
  }

  sendData(streamId: number, data: Uint8Array, end: boolean): void {
    this.#usable();
    const s = this.#sendable(streamId);
    if (!s) return;
    if (!s.headersSent) throw argumentError('DATA before the final HEADERS');
    if (end) s.sendDone = true;
    if (data.length === 0) this.#t.send(streamId, new Uint8Array(0), end);
    else if (data.length >= COPY_BELOW) {
      // Large payloads go to the transport as they are, after their frame header (no copy).
      this.#t.send(streamId, encodeDataFrameHeader(data.length), false);
      this.#t.send(streamId, data, end);
    } else this.#t.send(streamId, concatBytes([encodeDataFrameHeader(data.length), data]), end);
    this.#maybeForget(s);
  }

  endStream(streamId: number): void {
    this.#usable();
    const s = this.#sendable(streamId);
    if (!s) return;
    if (!s.headersSent) throw argumentError('cannot end a stream before its final HEADERS');
    s.sendDone = true;
    this.#t.send(streamId, new Uint8Array(0), true);
    this.#maybeForget(s);
  }

  /**
   * Read no more of a request stream (STOP_SENDING with `code`), its sending side untouched: a server whose answer
   * is out asks the client to stop uploading (RFC 9114 §4.1: H3_NO_ERROR). What still arrives is dropped.
   */
  stopReading(streamId: number, code: number): void {
    if (this.#closed) return;
    const s = this.#streams.get(streamId);
    if (!s || s.recvDone) return;
    this.#t.stopSending(streamId, code);
    if (s.blocked) this.#decoder.cancelStream(streamId);
    s.recvDone = true;
    this.#maybeForget(s);
  }

  /** Abort a request stream both ways: RESET_STREAM, and STOP_SENDING while still reading. */
  resetStream(streamId: number, code: number): void {
    if (this.#closed) return;
    const s = this.#streams.get(streamId);
    if (!s) return;
    this.#abort(s, code);
  }

  /**
   * Graceful shutdown (RFC 9114 §5.2). Server: GOAWAY with the first
   * request stream id it will not process (last accepted + 4); client:
   * push id 0. Later requests are refused with H3_REQUEST_REJECTED.
   */
  goaway(): void {
    if (this.#closed) return;
    this.#openCritical();
    let id = this.#server ? this.#lastAccepted + 4 : 0;
    if (this.#server && this.#lastAccepted < 0) id = 0;
    // RFC 9114 §5.2: the id MUST NOT increase across GOAWAY frames.
    if (this.#goawaySent !== null) id = Math.min(id, this.#goawaySent);
    this.#goawaySent = id;
    this.#local.sendGoaway(id);
  }

  /**
   * Client: reprioritise a request (RFC 9218 §7.2) with a PRIORITY_UPDATE on
   * our control stream; `value` has the `priority` header's syntax (`u=1, i`).
   * Ignored for a request whose response already ended.
   */
  sendPriorityUpdate(streamId: number, value: string): void {
    if (this.#server) throw argumentError('PRIORITY_UPDATE is sent by clients (RFC 9218 §7.2)');
    this.#usable();
    if (isUni(streamId) || isServerInitiated(streamId) || streamId >= this.#openedBelow)
      throw argumentError(`stream ${streamId} is not a request we opened`);
    // Priority Field Values are Structured Fields: printable ASCII only (RFC 8941 §4.1).
    if (!/^[\x20-\x7e]*$/.test(value)) throw argumentError('priority value must be printable ASCII');
    if (!this.#streams.has(streamId)) return;
    this.#openCritical();
    this.#local.sendPriorityUpdate(streamId, value);
  }

  /**
   * Server role: reject the request streams whose head was still incomplete at the previous call (a
   * partial HEADERS frame, or a section blocked on QPACK inserts that never come), with
   * H3_REQUEST_REJECTED both ways (RFC 9114 §8.1: nothing of it was processed, the client may retry).
   * Called every T/2 by the transport, a head gets between T/2 and T to arrive: the stream-open flood of
   * RFC 9114 §10.5 then holds at most one stream window for at most T. Returns how many were rejected.
   */
  expireIncompleteHeads(): number {
    let n = 0;
    for (const [id, sweep] of this.#awaitingHead) {
      const s = this.#streams.get(id);
      if (!s || s.headReported || s.recvDone) {
        this.#awaitingHead.delete(id);
        continue;
      }
      if (sweep === this.#headSweeps || this.#closed) continue;
      this.#awaitingHead.delete(id);
      this.#decoder.cancelStream(id);
      this.#streams.delete(id);
      this.#pendingPriorities.take(id);
      this.#t.stopSending(id, H3ErrorCode.REQUEST_REJECTED);
      this.#t.resetStream(id, H3ErrorCode.REQUEST_REJECTED);
      n++;
    }
    if (n > 0) this.#flushDecoderStream();
    this.#headSweeps++;
    return n;
  }

  /** Close the connection (CONNECTION_CLOSE with an application code). */
  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.#finish(localCloseError(code, reason));
    this.#t.close(code, reason);
  }

  // ---- QuicStreamHandler ---------------------------------------------

  onConnected(early: boolean): void {
    if (this.#closed) return;
    this.#guard(undefined, () => this.#openCritical());
    this.#emit({ type: 'connected', early });
  }

  onStreamData(streamId: number, data: Uint8Array, fin: boolean): void {
    if (this.#closed) return;
    this.#guard(streamId, () => {
      if (isUni(streamId)) {
        if (isServerInitiated(streamId) === this.#server) return; // our own uni stream: nothing to read
        this.#uni.receive(streamId, data, fin);
        return;
      }
      const s = this.#requestStreamFor(streamId);
      if (!s) return;
      s.receive(data, fin, this.#sink);
      // RFC 9204 §2.2.1: a stream whose head waits for QPACK inserts is not read on — what its peer sends meanwhile
      // stays in QUIC flow control, not in our queue (a client that never sends the insert and streams DATA behind
      // the head grew memory at line rate until the head timeout).
      if (s.blocked) this.#t.pauseStream?.(streamId);
      this.#maybeForget(s);
    });
  }

  onStreamReset(streamId: number, code: number): void {
    if (this.#closed) return;
    this.#guard(streamId, () => {
      if (isUni(streamId)) {
        this.#uni.reset(streamId);
        return;
      }
      const s = this.#streams.get(streamId);
      if (!s) {
        // A request stream reset before any of its bytes reached us (HEADERS and RESET_STREAM in one packet: the
        // transport discards the data, RFC 9000 §3.2): unknown here, but its sending half is open in the transport.
        // Close it too, or the stream never ends both ways and its credit (MAX_STREAMS) never returns.
        if (this.#server) this.#t.resetStream(streamId, H3ErrorCode.REQUEST_CANCELLED);
        return;
      }
      if (!s.recvDone) this.#decoder.cancelStream(streamId);
      this.#flushDecoderStream();
      s.recvDone = true;
      this.#streams.delete(streamId);
      this.#pendingPriorities.take(streamId);
      if (!s.sendDone) this.#t.resetStream(streamId, H3ErrorCode.REQUEST_CANCELLED);
      this.#emit({ type: 'reset', streamId, code });
    });
  }

  onStopSending(streamId: number, code: number): void {
    if (this.#closed) return;
    this.#guard(streamId, () => {
      if (this.#local.isCritical(streamId)) {
        // RFC 9114 §6.2.1: the receiver MUST NOT ask to close a critical stream.
        throw new H3Error(H3ErrorCode.CLOSED_CRITICAL_STREAM, `peer sent STOP_SENDING on critical stream ${streamId}`);
      }
      const s = this.#streams.get(streamId);
      if (!s || s.sendDone) return;
      s.sendDone = true;
      s.peerStopped = true;
      // RFC 9000 §3.5: answer STOP_SENDING with RESET_STREAM.
      this.#t.resetStream(streamId, code);
      // RFC 9114 §4.1: H3_NO_ERROR from a server that already answered means "stop uploading".
      if (code !== H3ErrorCode.NO_ERROR || this.#server) this.#emit({ type: 'reset', streamId, code });
      this.#maybeForget(s);
    });
  }

  onStreamsAvailable(): void {
    if (this.#closed) return;
    this.#guard(undefined, () => this.#openCritical());
    this.#emit({ type: 'streams-available' });
  }

  onClosed(error: Error | null): void {
    if (this.#closed) return;
    this.#finish(driverCloseError(error));
  }

  // ---- internals -------------------------------------------------------

  /**
   * Listener exceptions must not corrupt connection state mid-update: they
   * are rethrown asynchronously, where they surface as uncaught errors.
   */
  #emit(ev: H3Event): void {
    // A listener may close the connection mid-update: nothing follows 'closed'.
    if (this.#closed && ev.type !== 'closed') return;
    for (const l of this.#listeners) {
      try {
        l(ev);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  /** Run `fn`; protocol errors become stream or connection errors. */
  #guard(streamId: number | undefined, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      if (e instanceof H3Error && !e.connection && streamId !== undefined) {
        const s = this.#streams.get(streamId);
        if (s) this.#abort(s, e.wireCode, e.message);
        return;
      }
      if (e instanceof WireError) {
        this.#connectionError(e.wireCode, e.message, e);
        return;
      }
      this.#connectionError(H3ErrorCode.INTERNAL_ERROR, (e as Error)?.message ?? String(e), e);
    }
  }

  #connectionError(code: number, message: string, cause: unknown): void {
    if (this.#closed) return;
    this.#finish(connectionError(code, message, cause));
    this.#t.close(code, message.slice(0, 200));
  }

  #finish(error: OriginlinkError | null): void {
    this.#closed = true;
    this.#decoderTimer?.();
    this.#decoderTimer = null;
    this.#streams.clear();
    this.#emit({ type: 'closed', error });
  }

  /** Reset a request stream in both directions; `report`: the reason of our own stream error, reported. */
  #abort(s: RequestStream, code: number, report: string | null = null): void {
    if (!s.sendDone) this.#t.resetStream(s.id, code);
    if (!s.recvDone) {
      this.#t.stopSending(s.id, code);
      // RFC 9204 §2.2.2.2: tell the encoder its references on this stream are gone.
      this.#decoder.cancelStream(s.id);
      this.#flushDecoderStream();
    }
    s.sendDone = true;
    s.recvDone = true;
    this.#streams.delete(s.id);
    this.#pendingPriorities.take(s.id);
    if (report !== null) this.#emit({ type: 'reset', streamId: s.id, code, message: report });
  }

  #maybeForget(s: RequestStream): void {
    if (s.sendDone && s.recvDone && !s.blocked) this.#streams.delete(s.id);
  }

  /** The request stream for incoming bidi data, creating it for a new peer request; null to ignore. */
  #requestStreamFor(id: number): RequestStream | null {
    const existing = this.#streams.get(id);
    if (existing) return existing;
    if (!this.#server) {
      // RFC 9114 §6.1: clients MUST treat a server-initiated bidirectional stream as H3_STREAM_CREATION_ERROR.
      if (isServerInitiated(id))
        throw new H3Error(H3ErrorCode.STREAM_CREATION_ERROR, `server opened bidirectional stream ${id}`);
      return null; // a request we already finished or reset
    }
    if (!this.#peerRequests.add(id)) return null; // finished or rejected earlier
    const s = new RequestStream(id, true, this.#opts, null);
    if (this.#goawaySent !== null && id >= this.#goawaySent) {
      // RFC 9114 §5.2: requests at or above our GOAWAY id are rejected unprocessed.
      this.#pendingPriorities.take(id);
      this.#t.resetStream(id, H3ErrorCode.REQUEST_REJECTED);
      this.#t.stopSending(id, H3ErrorCode.REQUEST_REJECTED);
      return null;
    }
    this.#lastAccepted = Math.max(this.#lastAccepted, id);
    this.#requestsAccepted++;
    this.#streams.set(id, s);
    this.#awaitingHead.set(id, this.#headSweeps);
    return s;
  }

  /**
   * The stream to write on; null (the write is dropped) when the peer
   * already ended our interest in it — reset, STOP_SENDING, GOAWAY — so an
   * asynchronous body pump racing that event does not fail. Writing on a
   * stream that never existed, or after our own end, is a caller error.
   */
  #sendable(streamId: number): RequestStream | null {
    const s = this.#streams.get(streamId);
    if (!s) {
      const known = this.#server ? this.#peerRequests.has(streamId) : streamId < this.#openedBelow;
      if (known && !isUni(streamId)) return null;
      throw argumentError(`stream ${streamId} is not open`);
    }
    if (s.peerStopped) return null;
    if (s.sendDone) throw argumentError(`stream ${streamId} is closed for sending`);
    return s;
  }

  #usable(): void {
    if (this.#closed) throw closedError();
  }

  /** RFC 9114 §4.2.2: do not send a section above the peer's SETTINGS_MAX_FIELD_SECTION_SIZE. */
  #checkPeerSize(headers: SharedHeaderList): void {
    const limit = this.#peerSettings?.get(SettingId.MAX_FIELD_SECTION_SIZE);
    const size = fieldSectionSize(headers);
    if (limit !== undefined && size > limit) throw headersTooLarge(size, limit);
  }

  /** QPACK-encode and send; inserts go out on the encoder stream first (never referenced unacknowledged). */
  #sendHeadersFrame(streamId: number, headers: SharedHeaderList, end: boolean): void {
    // The section is encoded after room for the longest frame header (a type byte, an 8-byte length), which is then
    // written in place just before it: one copy of the block, not three arrays and a concatenation a request.
    const framed = this.#encoder.encode(headers, streamId, HEADER_ROOM);
    const length = framed.length - HEADER_ROOM;
    const start = HEADER_ROOM - 1 - varintLength(length);
    framed[start] = FrameType.HEADERS;
    writeVarint(framed, start + 1, length);
    this.#local.sendEncoderInstructions(this.#encoder.takeEncoderStreamBytes());
    this.#t.send(streamId, framed.subarray(start), end);
  }

  #openCritical(): void {
    this.#local.open();
  }

  /** Send what our decoder has to say, now or after `decoderAckDelay` (one timer for all of it). */
  #flushDecoderStream(): void {
    if (this.#closed) return;
    const delay = this.#decoderAckDelay;
    if (!delay) {
      this.#local.sendDecoderInstructions(this.#decoder.takeDecoderStreamBytes());
      return;
    }
    if (this.#decoderTimer || !this.#decoder.hasDecoderStreamBytes) return;
    this.#decoderTimer = delay.schedule(() => {
      this.#decoderTimer = null;
      if (!this.#closed) this.#local.sendDecoderInstructions(this.#decoder.takeDecoderStreamBytes());
    }, delay.ms);
  }

  #onEncoderStream(data: Uint8Array): void {
    const unblocked = this.#decoder.feedEncoderStream(data);
    this.#flushDecoderStream();
    for (const u of unblocked) {
      const s = this.#streams.get(u.streamId);
      if (!s) continue;
      // A malformed unblocked message only fails its own stream.
      this.#guard(u.streamId, () => {
        s.unblocked(u, this.#sink);
        this.#t.resumeStream?.(u.streamId);
        this.#maybeForget(s);
      });
      if (this.#closed) return;
    }
  }

  #onPeerSettings(settings: Settings): void {
    this.#peerSettings = settings;
    this.#encoder.setPeerSettings(settings.get(SettingId.QPACK_MAX_TABLE_CAPACITY) ?? 0);
    if (!this.#closed) this.#local.sendEncoderInstructions(this.#encoder.takeEncoderStreamBytes());
    this.#emit({ type: 'settings', settings });
  }

  /**
   * A request head (server role) with the priority it starts with: a PRIORITY_UPDATE that came first wins over its
   * header.
   */
  #withPriority(ev: Extract<H3Event, { type: 'headers' }>): H3Event {
    const s = this.#streams.get(ev.streamId);
    if (s) s.headReported = true;
    this.#awaitingHead.delete(ev.streamId);
    // The event is fresh from the request stream and not shared yet: set in place (one object per request).
    ev.priority = requestPriority(ev.headers, this.#pendingPriorities.take(ev.streamId));
    return ev;
  }

  /**
   * RFC 9218 §7.2 (server role; uni-streams.ts checked the frame): a request
   * whose head was reported is reprioritised now, also once its response was
   * all handed to QUIC (the driver may still hold part of it unsent; the
   * owner decides what is left to reorder); a request not seen yet, or whose
   * head is still arriving, gets it when its head is reported (kept in a
   * bounded set).
   */
  #onPriorityUpdate(id: number, value: string): void {
    this.#priorityUpdates++;
    const s = this.#streams.get(id);
    if (s ? s.headReported : this.#peerRequests.has(id)) {
      this.#emit({ type: 'priority', streamId: id, priority: parsePriority(value), written: !s || s.sendDone });
    } else this.#pendingPriorities.set(id, value);
  }

  #onGoaway(id: number): void {
    this.#goawayReceived = id;
    this.#emit({ type: 'goaway', id });
    if (this.#server) return;
    // RFC 9114 §5.2: requests at or above the id were not processed and may be retried.
    for (const s of [...this.#streams.values()]) {
      if (s.id < id) continue;
      this.#abort(s, H3ErrorCode.REQUEST_CANCELLED);
      this.#emit({ type: 'reset', streamId: s.id, code: H3ErrorCode.REQUEST_REJECTED });
    }
  }
}
