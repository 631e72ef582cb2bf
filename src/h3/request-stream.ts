/**
 * Receive side of one request stream (RFC 9114 §4.1): HEADERS, then DATA,
 * then optional trailing HEADERS; unknown frames anywhere. Also carries the
 * send-side flags the connection keeps per stream.
 *
 * Invariant: frames are handled strictly in order. While a HEADERS frame
 * waits for QPACK inserts (blocked), later frames and the FIN are queued
 * and handled after it (RFC 9204 §2.1.2).
 *
 * Violations throw `H3Error`: `connection` true for frame-sequence errors
 * (H3_FRAME_UNEXPECTED...), false for a malformed message
 * (H3_MESSAGE_ERROR), which only fails this stream.
 */
import { FrameParser, type FrameEvent } from '../codec/h3frame.js';
import { H3Error, H3ErrorCode, type H3ErrorCodeValue } from '../codec/errors.js';
import type { DecodedSection } from '../codec/qpack/decoder.js';
import { checkReceived } from '../http/field-section.js';
import { MAX_INTERIM_RESPONSES } from '../http/status.js';
import type { H3Event } from './types.js';

export interface StreamSink {
  emit(ev: H3Event): void;
  /** QPACK-decode a field section; null when it is blocked. Throws QpackError. */
  decode(streamId: number, block: Uint8Array): DecodedSection | null;
}

type Phase = 'head' | 'body' | 'done';

const streamError = (code: H3ErrorCodeValue, msg: string): H3Error => new H3Error(code, msg, false);
const unexpected = (msg: string): H3Error => new H3Error(H3ErrorCode.FRAME_UNEXPECTED, msg);

export class RequestStream {
  readonly id: number;
  readonly #server: boolean;
  readonly #parser: FrameParser;
  readonly #maxFieldSectionSize: number;
  /** Interim (1xx) responses received (client role; MAX_INTERIM_RESPONSES). */
  #interims = 0;
  #phase: Phase = 'head';
  #queue: FrameEvent[] = [];
  #blocked = false;
  #finPending = false;
  #contentLength: number | null = null;
  #received = 0;
  #noBody = false;
  /** The FIN has been handled (or the message ended with trailers and FIN). */
  recvDone = false;
  /** Client: the method we sent (HEAD responses carry no body). */
  readonly requestMethod: string | null;

  /** Send side: request headers sent (client) / final response sent (server). */
  headersSent = false;
  /** Send side finished (FIN sent, reset, or STOP_SENDING received). */
  sendDone = false;
  /** The peer sent STOP_SENDING: further writes are dropped silently. */
  peerStopped = false;
  /** Server: the request head was reported (a PRIORITY_UPDATE from then on is a 'priority' event). */
  headReported = false;

  constructor(
    id: number,
    server: boolean,
    opts: { maxFrameSize: number; maxFieldSectionSize: number },
    requestMethod: string | null,
  ) {
    this.id = id;
    this.#server = server;
    this.#parser = new FrameParser({ maxFrameSize: opts.maxFrameSize });
    this.#maxFieldSectionSize = opts.maxFieldSectionSize;
    this.requestMethod = requestMethod;
  }

  get blocked(): boolean {
    return this.#blocked;
  }

  /** True once a request/final response head has been received. */
  get headReceived(): boolean {
    return this.#phase !== 'head';
  }

  receive(data: Uint8Array, fin: boolean, sink: StreamSink): void {
    if (this.recvDone) return;
    let events: FrameEvent[];
    try {
      events = this.#parser.push(data);
    } catch (e) {
      // A HEADERS frame over our limit is refused before its payload is read: this message's error, not the
      // connection's (RFC 9114 §4.2.2 lets a client discard a response it cannot process; the other requests live).
      if (e instanceof H3Error && e.wireCode === H3ErrorCode.EXCESSIVE_LOAD)
        throw streamError(H3ErrorCode.EXCESSIVE_LOAD, e.message);
      throw e;
    }
    // RFC 9114 §7.1: a stream ending inside a frame is H3_FRAME_ERROR.
    if (fin && this.#parser.midFrame)
      throw new H3Error(H3ErrorCode.FRAME_ERROR, `stream ${this.id} ended inside a frame`);
    this.#deliver(events, fin, sink);
  }

  /** A blocked HEADERS block was decoded. */
  unblocked(section: DecodedSection, sink: StreamSink): void {
    this.#blocked = false;
    const queue = this.#queue;
    const fin = this.#finPending;
    this.#queue = [];
    this.#finPending = false;
    const endHere = fin && queue.length === 0;
    if (this.#fieldSection(section, endHere, sink)) this.recvDone = true;
    if (!this.recvDone) this.#deliver(queue, fin, sink);
  }

  #deliver(events: FrameEvent[], fin: boolean, sink: StreamSink): void {
    for (let i = 0; i < events.length; i++) {
      if (this.#blocked) {
        // Held past this call (the bytes are ours: QuicStreamHandler.onStreamData).
        for (const e of events.slice(i)) this.#queue.push(e);
        this.#finPending ||= fin;
        return;
      }
      if (this.recvDone) return;
      if (this.#frame(events[i]!, fin && i === events.length - 1, sink)) this.recvDone = true;
    }
    if (this.#blocked) {
      this.#finPending ||= fin;
      return;
    }
    if (fin && !this.recvDone) this.#fin(sink);
  }

  /** Handle one frame; returns true when it also ended the message. */
  #frame(ev: FrameEvent, endHere: boolean, sink: StreamSink): boolean {
    switch (ev.kind) {
      case 'unknown':
        return false;
      case 'data': {
        // RFC 9114 §4.1: DATA before the (final) HEADERS or after trailers is H3_FRAME_UNEXPECTED.
        if (this.#phase !== 'body')
          throw unexpected(`DATA ${this.#phase === 'head' ? 'before HEADERS' : 'after trailers'} on stream ${this.id}`);
        this.#received += ev.chunk.length;
        if (ev.chunk.length > 0 && this.#noBody)
          throw streamError(H3ErrorCode.MESSAGE_ERROR, 'body on a message that cannot have one');
        if (this.#contentLength !== null && this.#received > this.#contentLength) {
          throw streamError(H3ErrorCode.MESSAGE_ERROR, `body exceeds content-length ${this.#contentLength}`);
        }
        const end = endHere && ev.last;
        if (end) this.#checkLength();
        if (ev.chunk.length > 0 || end) sink.emit({ type: 'data', streamId: this.id, data: ev.chunk, end });
        return end;
      }
      case 'headers': {
        if (this.#phase === 'done') throw unexpected(`HEADERS after trailers on stream ${this.id}`);
        const section = sink.decode(this.id, ev.block);
        if (section === null) {
          this.#blocked = true;
          return false;
        }
        return this.#fieldSection(section, endHere, sink);
      }
      case 'push-promise':
        // We never send MAX_PUSH_ID, so any push ID is above the limit (RFC 9114 §7.2.5).
        if (this.#server) throw unexpected('PUSH_PROMISE from a client');
        throw new H3Error(H3ErrorCode.ID_ERROR, 'PUSH_PROMISE without MAX_PUSH_ID');
      default:
        // SETTINGS, GOAWAY, MAX_PUSH_ID, CANCEL_PUSH and HTTP/2 types (RFC 9114 §7.2); PRIORITY_UPDATE
        // anywhere but the client's control stream is a connection error too (RFC 9218 §7.2).
        throw unexpected(`frame ${ev.kind} on request stream ${this.id}`);
    }
  }

  /** A decoded field section in the current phase; returns true when it ended the message. */
  #fieldSection(section: DecodedSection, endHere: boolean, sink: StreamSink): boolean {
    const headers = section.headers;
    const kind = this.#phase === 'body' ? 'trailers' : this.#server ? 'request' : 'response';
    // A section the decoder returned again keeps its verdict (codec/repeats.ts).
    const v = checkReceived(headers, kind, false, false, section.kept);
    if (v.size > this.#maxFieldSectionSize) {
      throw streamError(H3ErrorCode.EXCESSIVE_LOAD, `field section larger than ${this.#maxFieldSectionSize}`);
    }
    if (this.#phase === 'body') {
      if (v.why) throw streamError(H3ErrorCode.MESSAGE_ERROR, v.why);
      this.#checkLength();
      this.#phase = 'done';
      sink.emit({ type: 'trailers', streamId: this.id, headers });
      return endHere;
    }
    if (v.why) throw streamError(H3ErrorCode.MESSAGE_ERROR, v.why);
    const cl = v.contentLength;
    if (cl !== null && typeof cl === 'object') throw streamError(H3ErrorCode.MESSAGE_ERROR, cl.error);
    if (!this.#server) {
      const status = v.status;
      if (status < 200) {
        if (endHere) throw streamError(H3ErrorCode.MESSAGE_ERROR, 'stream ended after an interim response');
        if (++this.#interims > MAX_INTERIM_RESPONSES)
          throw streamError(H3ErrorCode.EXCESSIVE_LOAD, `more than ${MAX_INTERIM_RESPONSES} interim responses`);
        sink.emit({ type: 'headers', streamId: this.id, headers, end: false });
        return false;
      }
      this.#noBody = this.requestMethod === 'HEAD' || status === 204 || status === 304;
    }
    this.#contentLength = this.#noBody ? null : cl;
    this.#phase = 'body';
    if (endHere) this.#checkLength();
    sink.emit({ type: 'headers', streamId: this.id, headers, end: endHere });
    return endHere;
  }

  #fin(sink: StreamSink): void {
    this.recvDone = true;
    if (this.#phase === 'head') {
      if (this.#server) throw streamError(H3ErrorCode.REQUEST_INCOMPLETE, 'request stream ended without a request');
      throw streamError(H3ErrorCode.MESSAGE_ERROR, 'response stream ended without a final response');
    }
    if (this.#phase === 'body') {
      this.#checkLength();
      sink.emit({ type: 'data', streamId: this.id, data: new Uint8Array(0), end: true });
    }
  }

  /** RFC 9114 §4.1.2: content-length not matching the DATA total is malformed. */
  #checkLength(): void {
    if (this.#contentLength !== null && this.#received !== this.#contentLength) {
      throw streamError(
        H3ErrorCode.MESSAGE_ERROR,
        `body of ${this.#received} bytes, content-length ${this.#contentLength}`,
      );
    }
  }
}
