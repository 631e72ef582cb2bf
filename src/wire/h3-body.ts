/**
 * HTTP/3 bodies, both roles: a backpressured body reader over a QUIC stream
 * (`StreamBody`: a client's response, a server's request) and the writers
 * that respect stream flow control (`h3BodySink`, `queueBody`, `writeBody`).
 */
import { Readable } from 'node:stream';
import { LazyReadable } from '../util/lazy-base.js';
import type { H3Connection } from '../h3/connection.js';
import type { QuicConnection } from '../quic/connection.js';
import type { RequestBody } from '../http/types.js';
import { bodyStream, knownLength, bodyBytes } from '../http/body.js';
import type { ResponseBody } from './body.js';
import { bufferedWhole, relayBody, yes, type BodySink } from '../util/body.js';

/** Bytes we let queue in JS per stream before a streamed body waits. */
export const WRITE_HIGH_WATER = 256 * 1024;
/**
 * Bytes all of a connection's streams may queue in JS together before their streamed bodies wait, except that each
 * stream may always keep STREAM_FLOOR queued. What a client's flow control does not take waits here: a client that
 * opens many streams and never opens their windows would otherwise hold WRITE_HIGH_WATER on each (128 streams of
 * ten such connections held ~330 MB and spent the listener's memory budget); the origin is paced instead (the
 * relay stops reading its body).
 */
export const CONNECTION_HIGH_WATER = 2 * 1024 * 1024;
export const STREAM_FLOOR = 16 * 1024;
/** DATA frames are cut to this size so one stream cannot hog a flush. */
const CHUNK = 64 * 1024;

/** Bytes a body buffers (its Readable buffer, then its backlog) before its QUIC stream is paused. */
const BODY_HIGH_WATER = 256 * 1024;

/**
 * A readable body fed by H3 `data` events. When the consumer is slow the
 * QUIC stream is paused at the driver, so quiche stops opening the window:
 * backpressure reaches the peer through flow control.
 *
 * Chunks are kept whole for a consumer that keeps up: a delivery goes
 * into the Readable only when its buffer is empty, the rest waits in a
 * backlog and is pushed one chunk per `_read`, on a microtask. A byte-mode
 * Readable read without a size (`for await`, a bare `read()`) returns
 * everything it buffers concatenated, and `read()` calls `_read` before it
 * takes its data, so a synchronous push there would be joined too: a copy
 * of every body byte, ~10% of a bulk client's CPU. (A consumer that stays
 * away lets the Readable fill up to its high-water mark; those chunks come
 * joined.) `_read` with nothing in the backlog means the Readable waits for
 * a push: the next delivery then goes out even if a chunk is still buffered.
 */
export class StreamBody extends LazyReadable implements ResponseBody {
  #quic: QuicConnection;
  #id: number;
  #onDestroy: (err: Error | null) => void;
  #backlog: Buffer[] = [];
  #backlogBytes = 0;
  #ended = false;
  #pushQueued = false;
  /** `_read` was called and nothing was pushed since. */
  #wantPush = false;
  /** See ResponseBody.readerBehindAt: Infinity between pauseStream and the next resumeStream. */
  #behindAt = 0;
  bytes = 0;

  #highWater: number;

  constructor(
    quic: QuicConnection,
    streamId: number,
    onDestroy: (err: Error | null) => void,
    highWater = BODY_HIGH_WATER,
  ) {
    super({ highWaterMark: highWater });
    this.#highWater = highWater;
    this.#quic = quic;
    this.#id = streamId;
    this.#onDestroy = onDestroy;
  }

  deliver(data: Uint8Array, end: boolean): void {
    if (this.destroyed) return;
    if (data.length) {
      this.bytes += data.length;
      const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      if (this.#backlog.length === 0 && this.readableLength === 0) {
        this.#wantPush = false;
        if (!this.push(buf)) this.#pause();
      } else {
        this.#backlog.push(buf);
        this.#backlogBytes += buf.length;
        if (this.#backlogBytes >= this.#highWater) this.#pause();
        // `_read` ran while a chunk was still buffered: the Readable waits for a push.
        if (this.#wantPush) this.#queuePush();
      }
    }
    if (end) {
      if (this.#backlog.length) this.#ended = true;
      else this.push(null);
    }
  }

  /** Called once, at the first read: a server that answers Expect: 100-continue only then. */
  onFirstRead: (() => void) | null = null;

  override _read(): void {
    if (this.onFirstRead) {
      const f = this.onFirstRead;
      this.onFirstRead = null;
      f();
    }
    if (this.#backlog.length === 0) {
      // Until the next push, the Readable reads nothing more (it waits for us).
      this.#wantPush = true;
      this.#resume();
      return;
    }
    this.#queuePush();
  }

  #queuePush(): void {
    if (this.#pushQueued) return;
    this.#pushQueued = true;
    queueMicrotask(this.#pushOne);
  }

  #pushOne = (): void => {
    this.#pushQueued = false;
    const b = this.#backlog.shift();
    if (!b || this.destroyed) return;
    this.#backlogBytes -= b.length;
    this.#wantPush = false;
    this.push(b);
    if (this.#backlog.length) return;
    if (this.#ended) this.push(null);
    else this.#resume();
  };

  get readerBehindAt(): number {
    return this.#behindAt;
  }

  #pause(): void {
    this.#behindAt = Infinity;
    this.#quic.pauseStream(this.#id);
  }

  #resume(): void {
    if (this.#behindAt === Infinity) this.#behindAt = performance.now();
    this.#quic.resumeStream(this.#id);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#backlog = [];
    this.#backlogBytes = 0;
    this.#resume();
    this.#onDestroy(err);
    cb(err);
  }
}

/**
 * Queue a body already in memory on a stream, whole (views, no copy), ending
 * the stream unless `endStream` is false, so the sender never waits on a
 * writer when credit returns.
 */
export function queueBody(
  h3: H3Connection,
  streamId: number,
  body: string | Uint8Array | null,
  endStream = true,
): void {
  const b = bodyBytes(body);
  for (let off = 0; off < b.length; off += CHUNK) {
    const last = off + CHUNK >= b.length;
    h3.sendData(streamId, b.subarray(off, off + CHUNK), last && endStream);
  }
  if (b.length === 0 && endStream) h3.endStream(streamId);
}

/**
 * A streamed body's sink on one stream: DATA frames of at most CHUNK bytes;
 * full while more than WRITE_HIGH_WATER waits in the QUIC write queue.
 */
export function h3BodySink(
  h3: H3Connection,
  quic: QuicConnection,
  streamId: number,
  endStream = true,
): BodySink & { end(): void } {
  return {
    write: (c) => {
      for (let off = 0; off < c.length; off += CHUNK) h3.sendData(streamId, c.subarray(off, off + CHUNK), false);
      const q = quic.queuedBytes(streamId);
      return q <= STREAM_FLOOR || (q <= WRITE_HIGH_WATER && quic.bufferedBytes <= CONNECTION_HIGH_WATER);
    },
    room: () => quic.waitWritable(streamId, WRITE_HIGH_WATER, CONNECTION_HIGH_WATER, STREAM_FLOOR).then(yes),
    end: () => {
      if (endStream) h3.endStream(streamId);
    },
  };
}

/**
 * Send a body as DATA frames (the server's responses), ending the stream
 * (with `endStream` false the caller sends trailers instead of FIN).
 * Returns false when the stream went away mid-body.
 */
export async function writeBody(
  h3: H3Connection,
  quic: QuicConnection,
  streamId: number,
  body: RequestBody | Readable,
  isGone: () => boolean,
  endStream = true,
): Promise<boolean> {
  // Bytes, or a stream already whole (util/body.ts): queued at once, without iterating the stream.
  const readable = body instanceof Readable;
  const whole = readable ? bufferedWhole(body) : null;
  if (whole !== null || (!readable && knownLength(body) !== null)) {
    if (isGone()) return false;
    queueBody(h3, streamId, whole ?? (body as string | Uint8Array | null), endStream);
    return !isGone();
  }
  const sink = h3BodySink(h3, quic, streamId, endStream);
  const how = await relayBody(bodyStream(body), sink, isGone);
  if (how !== 'end' || isGone()) return false;
  sink.end();
  return true;
}
