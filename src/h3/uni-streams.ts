/**
 * The peer's unidirectional streams (RFC 9114 §6.2): one control stream
 * (SETTINGS first, then GOAWAY / MAX_PUSH_ID / CANCEL_PUSH, and from a
 * client PRIORITY_UPDATE, RFC 9218 §7.2), one QPACK
 * encoder and one decoder stream (RFC 9204 §4.2); push streams are refused
 * and unknown types are discarded. Accepted at any time, also before the
 * handshake completes.
 */
import { FrameParser, StreamType, StreamTypeReader, type Settings } from '../codec/h3frame.js';
import { H3Error, H3ErrorCode } from '../codec/errors.js';

export interface UniSink {
  settings(settings: Settings): void;
  goaway(id: number): void;
  /** Server: a client's PRIORITY_UPDATE for request stream `id` (a client-initiated bidi id). */
  priorityUpdate(id: number, value: string): void;
  encoderStream(data: Uint8Array): void;
  decoderStream(data: Uint8Array): void;
  /** Stop reading an unknown stream type (RFC 9114 §6.2: H3_STREAM_CREATION_ERROR). */
  stopSending(streamId: number, code: number): void;
}

type Kind = 'pending' | 'control' | 'encoder' | 'decoder' | 'ignored';

interface Uni {
  kind: Kind;
  reader: StreamTypeReader;
}

export class PeerUniStreams {
  readonly #server: boolean;
  readonly #sink: UniSink;
  readonly #streams = new Map<number, Uni>();
  readonly #control: FrameParser;
  #controlId: number | null = null;
  #encoderId: number | null = null;
  #decoderId: number | null = null;
  #settingsSeen = false;
  #lastGoaway: number | null = null;
  /** The client's last MAX_PUSH_ID (we never push; kept for the rule that it never shrinks). */
  #maxPushId: number | null = null;

  constructor(server: boolean, maxFrameSize: number, sink: UniSink) {
    this.#server = server;
    this.#sink = sink;
    this.#control = new FrameParser({ maxFrameSize });
  }

  get settingsReceived(): boolean {
    return this.#settingsSeen;
  }

  receive(id: number, data: Uint8Array, fin: boolean): void {
    let s = this.#streams.get(id);
    if (!s) {
      s = { kind: 'pending', reader: new StreamTypeReader() };
      this.#streams.set(id, s);
    }
    let rest = data;
    if (s.kind === 'pending') {
      const t = s.reader.push(data);
      if (t === null) {
        // Ended before its type was complete: nothing to attribute it to.
        if (fin) this.#streams.delete(id);
        return;
      }
      this.#assign(id, s, t.type);
      rest = t.rest;
    }
    switch (s.kind) {
      case 'control':
        if (rest.length > 0) this.#controlFrames(rest);
        break;
      case 'encoder':
        if (rest.length > 0) this.#sink.encoderStream(rest);
        break;
      case 'decoder':
        if (rest.length > 0) this.#sink.decoderStream(rest);
        break;
      default:
        break;
    }
    if (fin) this.#closed(id, s);
  }

  /** The peer reset one of its unidirectional streams. */
  reset(id: number): void {
    const s = this.#streams.get(id);
    if (s) this.#closed(id, s);
  }

  #closed(id: number, s: Uni): void {
    // RFC 9114 §6.2.1, RFC 9204 §4.2: closing a critical stream is a connection error.
    if (s.kind === 'control' || s.kind === 'encoder' || s.kind === 'decoder') {
      throw new H3Error(H3ErrorCode.CLOSED_CRITICAL_STREAM, `peer closed its ${s.kind} stream ${id}`);
    }
    this.#streams.delete(id);
  }

  #assign(id: number, s: Uni, type: bigint): void {
    const dup = (what: string): H3Error =>
      new H3Error(H3ErrorCode.STREAM_CREATION_ERROR, `second ${what} stream ${id}`);
    switch (type) {
      case BigInt(StreamType.CONTROL):
        if (this.#controlId !== null) throw dup('control');
        this.#controlId = id;
        s.kind = 'control';
        return;
      case BigInt(StreamType.QPACK_ENCODER):
        if (this.#encoderId !== null) throw dup('QPACK encoder');
        this.#encoderId = id;
        s.kind = 'encoder';
        return;
      case BigInt(StreamType.QPACK_DECODER):
        if (this.#decoderId !== null) throw dup('QPACK decoder');
        this.#decoderId = id;
        s.kind = 'decoder';
        return;
      case BigInt(StreamType.PUSH):
        // RFC 9114 §6.2.2: only servers push; we never sent MAX_PUSH_ID (§4.6).
        if (this.#server) throw new H3Error(H3ErrorCode.STREAM_CREATION_ERROR, `push stream ${id} from a client`);
        throw new H3Error(H3ErrorCode.ID_ERROR, `push stream ${id} without MAX_PUSH_ID`);
      default:
        // RFC 9114 §6.2: unknown (and grease) stream types are not an error.
        s.kind = 'ignored';
        this.#sink.stopSending(id, H3ErrorCode.STREAM_CREATION_ERROR);
    }
  }

  #controlFrames(data: Uint8Array): void {
    for (const ev of this.#control.push(data)) {
      if (!this.#settingsSeen) {
        // RFC 9114 §6.2.1: SETTINGS MUST be the first frame of the control stream.
        if (ev.kind !== 'settings')
          throw new H3Error(H3ErrorCode.MISSING_SETTINGS, `control stream starts with ${ev.kind}`);
        this.#settingsSeen = true;
        this.#sink.settings(ev.settings);
        continue;
      }
      switch (ev.kind) {
        case 'unknown':
          break;
        case 'goaway':
          if (!this.#server && ev.id % 4 !== 0) {
            // RFC 9114 §5.2: from a server it names a client-initiated bidirectional stream.
            throw new H3Error(H3ErrorCode.ID_ERROR, `GOAWAY id ${ev.id} is not a request stream`);
          }
          if (this.#lastGoaway !== null && ev.id > this.#lastGoaway) {
            throw new H3Error(H3ErrorCode.ID_ERROR, `GOAWAY id grew from ${this.#lastGoaway} to ${ev.id}`);
          }
          this.#lastGoaway = ev.id;
          this.#sink.goaway(ev.id);
          break;
        case 'max-push-id':
          // RFC 9114 §7.2.7: only clients send MAX_PUSH_ID. We never push, so the value is unused.
          if (!this.#server) throw new H3Error(H3ErrorCode.FRAME_UNEXPECTED, 'MAX_PUSH_ID from a server');
          // §7.2.7: a MAX_PUSH_ID smaller than an earlier one is H3_ID_ERROR.
          if (this.#maxPushId !== null && ev.pushId < this.#maxPushId)
            throw new H3Error(H3ErrorCode.ID_ERROR, `MAX_PUSH_ID went down from ${this.#maxPushId} to ${ev.pushId}`);
          this.#maxPushId = ev.pushId;
          break;
        case 'priority-update':
          // RFC 9218 §7.2: only clients send it; a client receiving one is H3_FRAME_UNEXPECTED.
          if (!this.#server) throw new H3Error(H3ErrorCode.FRAME_UNEXPECTED, 'PRIORITY_UPDATE from a server');
          // The push variant must name a promised push: we never promise any.
          if (ev.push)
            throw new H3Error(H3ErrorCode.ID_ERROR, `PRIORITY_UPDATE for push ${ev.id} that was never promised`);
          // The request variant must name a request stream (client-initiated bidirectional).
          if (ev.id % 4 !== 0)
            throw new H3Error(H3ErrorCode.ID_ERROR, `PRIORITY_UPDATE for stream ${ev.id}, not a request stream`);
          this.#sink.priorityUpdate(ev.id, ev.value);
          break;
        case 'cancel-push':
          // RFC 9114 §7.2.3: no push ID was ever promised (server) or allowed (client).
          throw new H3Error(H3ErrorCode.ID_ERROR, `CANCEL_PUSH for push ${ev.pushId} that never existed`);
        default:
          // Second SETTINGS, DATA, HEADERS, PUSH_PROMISE, HTTP/2 types (RFC 9114 §7.2).
          throw new H3Error(H3ErrorCode.FRAME_UNEXPECTED, `frame ${ev.kind} on the control stream`);
      }
    }
  }
}
