/**
 * The read side of one QUIC connection: takes readable stream data out of
 * quiche and hands it on, with receive-side backpressure (paused streams).
 *
 * Which streams to read: `readableInto()` writes the readable streams' ids
 * into a typed array of the reader's in one crossing (quiche's `readable()`
 * builds an array, and asking stream by stream with `streamReadable()` took
 * six crossings or more a pass); `readable()` runs only when more streams
 * are readable than the array holds. A peer's stream read for the first
 * time is announced (`peerBidi`).
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
/** Readable stream ids one readableInto() call takes; more go through readable(). */
const IDS = 64;

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
  /** The peer's streams read so far, until their read side ends. */
  #seenPeer = new Set<number>();
  #paused = new Set<number>();
  /** readableInto's ids: the reader's own (a delivery may read another connection, never this one). */
  #ids = new Float64Array(IDS);

  constructor(q: QuicheConnection, isClient: boolean, sink: StreamReaderSink) {
    this.#q = q;
    this.#sink = sink;
    this.#ourBit = isClient ? 0 : 1;
  }

  /** We stopped reading a stream (STOP_SENDING). */
  forget(streamId: number): void {
    this.#seenPeer.delete(streamId);
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
    this.#seenPeer.clear();
  }

  /** Deliver everything readable; returns how many deliveries were made. */
  read(): number {
    const q = this.#q;
    const ids = this.#ids;
    const n = q.readableInto(ids);
    if (n === 0) return 0;
    if (n > ids.length) return this.#readAll(q.readable());
    let delivered = 0;
    for (let i = 0; i < n; i++) delivered += this.#readStream(ids[i]!);
    return delivered;
  }

  #readAll(list: Iterable<number>): number {
    let delivered = 0;
    for (const id of list) delivered += this.#readStream(id);
    return delivered;
  }

  #readStream(id: number): number {
    if (this.#sink.closed()) return 0;
    if (this.#paused.size && this.#paused.has(id)) return 0;
    if ((id & 1) !== this.#ourBit && !this.#seenPeer.has(id)) {
      this.#seenPeer.add(id);
      if ((id & 2) === 0) this.#sink.peerBidi(id);
    }
    return this.#readOne(id);
  }

  /**
   * Read one stream until quiche has nothing more or its end, back to back
   * into the slab, delivering one chunk per slab; its read side ending
   * forgets it (a peer's stream).
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
      let r: number;
      const room = Math.min(READ_MAX, slab.length - at);
      try {
        r = q.streamRead(id, slab.subarray(at, at + room));
      } catch (e) {
        const info = parseQuicheError(e);
        this.#seenPeer.delete(id);
        if (got > 0) {
          this.#deliver(id, got, false);
          delivered++;
          got = 0;
        }
        // quiche reports a reset once: the stream then leaves readable().
        if (info.name === 'StreamReset' && !sink.closed()) sink.reset(id, info.code ?? 0);
        return delivered;
      }
      if (r < 0) break;
      const len = r >>> 1;
      got += len;
      if (r & 1) {
        fin = true;
        this.#seenPeer.delete(id);
        break;
      }
      // quiche copies every contiguous byte it holds up to the room given (RecvBuf::emit): less than the room means
      // nothing more to read now, and asking again would only say Done.
      if (len < room) break;
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
