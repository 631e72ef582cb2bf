/**
 * The seam between the HTTP/3 state machine (src/h3) and the QUIC engine
 * (src/quic). HTTP/3 only ever sees this interface; the quiche adapter
 * implements it (quic/ imports this file: the consumer owns the seam). Modelled on hyperium/h3's quic.rs: a handful of
 * stream
 * operations, nothing about packets, timers or sockets.
 *
 * Call order: the driver delivers inbound stream events to the H3 side via
 * `QuicStreamHandler`; the H3 side calls `QuicStreamTransport` methods to
 * write. Writes never throw for flow control: the driver buffers and
 * flushes as credit arrives.
 */
export interface QuicStreamTransport {
  readonly isClient: boolean;
  /** Open a bidirectional stream; null while the peer's stream limit is reached. */
  openBidi(): number | null;
  /** Open a unidirectional stream; null while the peer's stream limit is reached. */
  openUni(): number | null;
  /** Queue bytes on a stream; `fin` ends our side after them. */
  send(streamId: number, data: Uint8Array, fin: boolean): void;
  /** Abort our sending side (RESET_STREAM) with an application error code. */
  resetStream(streamId: number, code: number): void;
  /** Ask the peer to stop sending on a stream (STOP_SENDING). */
  stopSending(streamId: number, code: number): void;
  /** Close the whole connection with an application error (CONNECTION_CLOSE, type 0x1d). */
  close(code: number, reason: string): void;
  /**
   * Bytes a FIN with no data of its own may ride on, on bidi streams. A
   * driver whose QUIC engine can lose a zero-length FIN (quiche 0.18, see
   * src/quic/write-queue.ts) sends them with such a FIN; others ignore it.
   */
  setFinCarrier?(bytes: Uint8Array): void;
  /**
   * Receive-side backpressure: read no more of a stream (its flow-control window stops opening) until
   * `resumeStream`. Used while a request's head waits for QPACK inserts (RFC 9204 §2.2.1).
   */
  pauseStream?(streamId: number): void;
  resumeStream?(streamId: number): void;
}

export interface QuicStreamHandler {
  /**
   * Bytes arrived on a stream (bidi or uni, ours or the peer's). `data`
   * belongs to the handler from then on: the driver never writes to it again.
   */
  onStreamData(streamId: number, data: Uint8Array, fin: boolean): void;
  /** The peer reset its sending side of a stream. */
  onStreamReset(streamId: number, code: number): void;
  /** The peer sent STOP_SENDING: our writes on this stream are no longer wanted. */
  onStopSending(streamId: number, code: number): void;
  /** Stream credit increased: openBidi/openUni may succeed again. */
  onStreamsAvailable(): void;
  /** The handshake completed (or 0-RTT keys are ready, `early` true). */
  onConnected(early: boolean): void;
  /** The connection closed; `error` null on a clean close. */
  onClosed(error: Error | null): void;
}
