/**
 * Our own unidirectional streams (RFC 9114 §6.2): the control stream,
 * whose first frame is SETTINGS (§6.2.1), and the QPACK encoder and
 * decoder streams (RFC 9204 §4.2). Opened in that order as soon as stream
 * credit allows; anything to send before a stream exists is held.
 */
import { concatBytes } from '../codec/bytes.js';
import { encodeGoaway, encodePriorityUpdate, StreamType } from '../codec/h3frame.js';
import type { QuicStreamTransport } from './quic-seam.js';

export class LocalStreams {
  readonly #t: QuicStreamTransport;
  readonly #settingsFrame: Uint8Array;
  #control: number | null = null;
  #encoder: number | null = null;
  #decoder: number | null = null;
  /** Control frames (GOAWAY, PRIORITY_UPDATE) written before the control stream could be opened. */
  #pendingControl: Uint8Array[] = [];
  #pendingDecoder: Uint8Array[] = [];
  #pendingEncoder: Uint8Array[] = [];

  constructor(transport: QuicStreamTransport, settingsFrame: Uint8Array) {
    this.#t = transport;
    this.#settingsFrame = settingsFrame;
  }

  /** Open whichever streams are still missing; stops at the first without credit. */
  open(): void {
    if (this.#control === null) {
      const id = this.#t.openUni();
      if (id === null) return;
      this.#control = id;
      this.#t.send(
        id,
        concatBytes([Uint8Array.of(StreamType.CONTROL), this.#settingsFrame, ...this.#pendingControl]),
        false,
      );
      this.#pendingControl = [];
    }
    if (this.#encoder === null) {
      const id = this.#t.openUni();
      if (id === null) return;
      this.#encoder = id;
      this.#t.send(id, concatBytes([Uint8Array.of(StreamType.QPACK_ENCODER), ...this.#pendingEncoder]), false);
      this.#pendingEncoder = [];
    }
    if (this.#decoder === null) {
      const id = this.#t.openUni();
      if (id === null) return;
      this.#decoder = id;
      this.#t.send(id, concatBytes([Uint8Array.of(StreamType.QPACK_DECODER), ...this.#pendingDecoder]), false);
      this.#pendingDecoder = [];
    }
  }

  /** True for our control and QPACK streams: the peer must never stop them (RFC 9114 §6.2.1). */
  isCritical(id: number): boolean {
    return id === this.#control || id === this.#encoder || id === this.#decoder;
  }

  sendGoaway(id: number): void {
    this.#sendControl(encodeGoaway(id));
  }

  /** RFC 9218 §7.2: PRIORITY_UPDATE goes on the client's control stream. */
  sendPriorityUpdate(streamId: number, value: string): void {
    this.#sendControl(encodePriorityUpdate(streamId, value));
  }

  #sendControl(frame: Uint8Array): void {
    if (this.#control === null) this.#pendingControl.push(frame);
    else this.#t.send(this.#control, frame, false);
  }

  /** Queue decoder stream instructions (Section Acknowledgment, ...). */
  sendDecoderInstructions(bytes: Uint8Array | null): void {
    if (!bytes || bytes.length === 0) return;
    if (this.#decoder === null) this.#pendingDecoder.push(bytes);
    else this.#t.send(this.#decoder, bytes, false);
  }

  /** Queue encoder stream instructions (Set Dynamic Table Capacity, inserts). */
  sendEncoderInstructions(bytes: Uint8Array | null): void {
    if (!bytes || bytes.length === 0) return;
    if (this.#encoder === null) this.#pendingEncoder.push(bytes);
    else this.#t.send(this.#encoder, bytes, false);
  }
}
