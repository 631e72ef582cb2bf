/**
 * The read side of one QUIC connection: takes readable stream data out of
 * quiche and hands it on, with receive-side backpressure (paused streams).
 *
 * Which streams to read: quiche's `readable()` builds an iterator object
 * and costs ~11 µs per call even when nothing is readable, so it is the
 * fallback. `isReadable()` (0.2 µs) says whether anything is; the streams
 * we know (ours, and the peer's seen so far, until their read side ends)
 * and the peer's next new stream ids are checked one by one with
 * `streamReadable()` (0.2 µs); `readable()` runs only when something is
 * still readable after that (a stream that arrived out of order, a paused
 * one). RFC 9000 §2.1: stream ids of one type and initiator go up by 4.
 *
 * Where the bytes land: reads go into a slab. One of at least HAND_OVER
 * bytes is passed on as a view (no copy) and its slab space is never
 * reused; a smaller one is copied out and the space is reused. A retained
 * chunk keeps at most READ_SLAB / HAND_OVER times its size alive.
 */
import { parseQuicheError, type QuicheConnection } from './quiche.js';

/** Most bytes one streamRecv call may return. */
const READ_BUF = 64 * 1024;
const READ_SLAB = 256 * 1024;
const HAND_OVER = 16 * 1024;
/** Above this many known streams the one-by-one checks cost more than readable(). */
const MAX_CANDIDATES = 64;

export interface StreamReaderSink {
  /** Bytes of a stream; they belong to the receiver from then on. */
  data(streamId: number, data: Uint8Array, fin: boolean): void;
  /** quiche reported the peer's reset of a stream (once). */
  reset(streamId: number, code: number): void;
  /** A peer-initiated bidirectional stream was seen for the first time. */
  peerBidi(streamId: number): void;
  /** The connection closed during a delivery: stop reading. */
  closed(): boolean;
}

export class StreamReader {
  #q: QuicheConnection;
  #sink: StreamReaderSink;
  /** Low bit of the stream ids we open (0 client, 1 server). */
  #ourBit: number;
  #candidates = new Set<number>();
  /** Lowest peer-initiated bidi / uni stream id not seen yet. */
  #peerNext: [bidi: number, uni: number];
  #paused = new Set<number>();
  #slab = new Uint8Array(READ_SLAB);
  #used = 0;

  constructor(q: QuicheConnection, isClient: boolean, sink: StreamReaderSink) {
    this.#q = q;
    this.#sink = sink;
    this.#ourBit = isClient ? 0 : 1;
    this.#peerNext = isClient ? [1, 3] : [0, 2];
  }

  /** A bidirectional stream we opened: its replies will be read. */
  own(streamId: number): void {
    this.#candidates.add(streamId);
  }

  /** We stopped reading a stream (STOP_SENDING). */
  forget(streamId: number): void {
    this.#candidates.delete(streamId);
  }

  /** Stop taking a stream's data out of quiche, so its flow-control window stops opening. */
  pause(streamId: number): void {
    this.#paused.add(streamId);
  }

  /** True when the stream was paused (the caller then schedules a read). */
  resume(streamId: number): boolean {
    return this.#paused.delete(streamId);
  }

  clear(): void {
    this.#paused.clear();
    this.#candidates.clear();
  }

  /** Deliver everything readable; returns how many deliveries were made. */
  read(): number {
    const q = this.#q;
    const sink = this.#sink;
    if (!q.isReadable()) return 0;
    let delivered = 0;
    const cand = this.#candidates;
    if (this.#paused.size === 0 && cand.size <= MAX_CANDIDATES) {
      for (const id of cand) {
        if (sink.closed()) return delivered;
        if (q.streamReadable(id)) delivered += this.#readOne(id);
      }
      const next = this.#peerNext;
      for (let k = 0; k < 2; k++) {
        for (let guard = 0; guard < 1024 && !sink.closed() && q.streamReadable(next[k]!); guard++) {
          const id = next[k]!;
          next[k] = id + 4;
          this.#seen(id, k);
          delivered += this.#readOne(id);
        }
      }
      if (sink.closed() || !q.isReadable()) return delivered;
    }
    for (const id of q.readable()) {
      if (sink.closed()) return delivered;
      if (this.#paused.size && this.#paused.has(id)) continue;
      if ((id & 1) !== this.#ourBit && !cand.has(id)) {
        const k = id & 2 ? 1 : 0;
        if (id >= this.#peerNext[k]!) this.#peerNext[k] = id + 4;
        this.#seen(id, k);
      }
      delivered += this.#readOne(id);
    }
    return delivered;
  }

  #seen(id: number, kind: number): void {
    this.#candidates.add(id);
    if (kind === 0) this.#sink.peerBidi(id);
  }

  /** Read one stream until quiche has nothing more or its end; its read side ending drops it from the candidates. */
  #readOne(id: number): number {
    const q = this.#q;
    const sink = this.#sink;
    let delivered = 0;
    for (let guard = 0; guard < 1024 && !sink.closed(); guard++) {
      if (this.#slab.length - this.#used < READ_BUF) {
        this.#slab = new Uint8Array(READ_SLAB);
        this.#used = 0;
      }
      const buf = this.#slab.subarray(this.#used, this.#used + READ_BUF);
      let r: [number, boolean] | null;
      try {
        r = q.streamRecv(id, buf);
      } catch (e) {
        const info = parseQuicheError(e);
        this.#candidates.delete(id);
        // quiche reports a reset once: the stream then leaves readable().
        if (info.name === 'StreamReset') sink.reset(id, info.code ?? 0);
        break;
      }
      if (r === null) break;
      const [n, fin] = r;
      if (n > 0 || fin) {
        delivered++;
        let data: Uint8Array;
        if (n >= HAND_OVER) {
          data = buf.subarray(0, n);
          this.#used += (n + 7) & ~7;
        } else data = buf.slice(0, n); // Uint8Array#slice copies
        sink.data(id, data, fin);
      }
      if (fin) {
        this.#candidates.delete(id);
        break;
      }
    }
    return delivered;
  }
}
