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
 * Where the bytes land: a stream's readable bytes are read back to back
 * into a slab (several `streamRecv` calls when quiche holds them in several
 * pieces) and passed on as one chunk per pass, up to the slab's end. A
 * chunk of at least HAND_OVER bytes is a view (no copy) whose slab space is
 * never reused; a smaller one is copied out and the space is reused. A
 * retained chunk keeps at most READ_SLAB / HAND_OVER times its size alive.
 * One chunk per pass matters downstream: a byte-mode Readable whose buffer
 * holds several chunks when it is read without a size (what `for await`
 * does) concatenates them, a copy of every byte (12% of a bulk client's
 * CPU when each 64 KiB read was its own chunk).
 */
import { parseQuicheError, type QuicheConnection } from './quiche.js';

const READ_SLAB = 256 * 1024;
const HAND_OVER = 16 * 1024;
/** Most bytes one streamRecv call may write. */
const READ_MAX = 64 * 1024;
/** A slab with less room than this left is replaced before a read. */
const MIN_ROOM = 16 * 1024;
/** Above this many known streams the one-by-one checks cost more than readable(). */
const MAX_CANDIDATES = 64;

/**
 * A plain Uint8Array (its `slice` copies, unlike Buffer's) over memory that
 * is not zero-filled: no byte of it is read before streamRecv wrote it.
 */
function newSlab(): Uint8Array {
  const b = Buffer.allocUnsafeSlow(READ_SLAB);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * The slab every connection's reader reads into, and its fill mark: one per process, made at the first read. A
 * slab per connection (made with it) cost each connection 256 KiB of V8 external memory before it read a byte:
 * 4,000 idle h3 connections held 1 GB, and the collector ran after it (bench `h3-conns`). Sharing holds because a
 * read is synchronous and what it hands over is past the mark (or copied) before any other reader runs: a receiver
 * that reads another connection from inside `data` starts at the mark the first left.
 */
const shared: { slab: Uint8Array | null; used: number } = { slab: null, used: 0 };

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

  /**
   * Read one stream until quiche has nothing more or its end, back to back
   * into the slab, delivering one chunk per slab; its read side ending
   * drops it from the candidates.
   */
  #readOne(id: number): number {
    const q = this.#q;
    const sink = this.#sink;
    let delivered = 0;
    let got = 0;
    let fin = false;
    for (let guard = 0; guard < 1024 && !sink.closed(); guard++) {
      const slab = (shared.slab ??= newSlab());
      const at = shared.used + got;
      if (slab.length - at < MIN_ROOM) {
        if (got > 0) {
          this.#deliver(id, got, false);
          delivered++;
          got = 0;
          if (this.#paused.size && this.#paused.has(id)) return delivered; // paused by what it just got: the rest stays in quiche
          continue;
        }
        shared.slab = newSlab();
        shared.used = 0;
        continue;
      }
      let r: [number, boolean] | null;
      const room = Math.min(READ_MAX, slab.length - at);
      try {
        r = q.streamRecv(id, slab.subarray(at, at + room));
      } catch (e) {
        const info = parseQuicheError(e);
        this.#candidates.delete(id);
        if (got > 0) {
          this.#deliver(id, got, false);
          delivered++;
          got = 0;
        }
        // quiche reports a reset once: the stream then leaves readable().
        if (info.name === 'StreamReset' && !sink.closed()) sink.reset(id, info.code ?? 0);
        return delivered;
      }
      if (r === null) break;
      got += r[0];
      if (r[1]) {
        fin = true;
        this.#candidates.delete(id);
        break;
      }
      // quiche copies every contiguous byte it holds up to the room given (RecvBuf::emit): less than the room means
      // nothing more to read now, and asking again would only say Done.
      if (r[0] < room) break;
    }
    if ((got > 0 || fin) && !sink.closed()) {
      this.#deliver(id, got, fin);
      delivered++;
    }
    return delivered;
  }

  /** Hand the `n` bytes read at the slab's fill mark to the sink. */
  #deliver(id: number, n: number, fin: boolean): void {
    const slab = shared.slab!;
    const start = shared.used;
    let data: Uint8Array;
    if (n >= HAND_OVER) {
      data = slab.subarray(start, start + n);
      shared.used = start + n;
    } else data = slab.slice(start, start + n); // Uint8Array#slice copies
    this.#sink.data(id, data, fin);
  }
}
