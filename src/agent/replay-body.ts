/**
 * A streamed request body held for a retry. An attempt the origin provably did not process (RFC 9113
 * §8.7: REFUSED_STREAM, a stream above GOAWAY's last id; RFC 9000 and RFC 9114 §4.1.1 likewise for h3;
 * a connection that never opened) may be sent again (agent/policy.ts) — but its body's first bytes
 * were already read from their source and sent. This keeps what was read, up to a bound, so that the
 * next attempt sends those bytes again and then goes on reading the source where the last one stopped.
 * Past the bound nothing is kept and the body is no longer replayable (Envoy does the same with its
 * per-request retry buffer; nginx buffers whole bodies instead, to disk).
 *
 * Each attempt gets its own Readable (`attempt()`): the transports consume and destroy it as they do any
 * body. Destroying an attempt's stream only detaches it: the source pauses and waits for the next
 * attempt, or for `settle()` (a response came: the current attempt owns the rest, nothing more is kept)
 * or `abandon()` (the request failed for good: the source is destroyed, as a relay destroys a body it
 * could not deliver).
 *
 * Invariants: the source is read by one attempt at a time, and only once the attempt has taken every
 * kept chunk; every byte read while the body is replayable is kept, in order; memory held is at most
 * `limit` bytes of the source's own chunks (no copies), and none once settled.
 */
import type { Readable } from 'node:stream';
import { LazyReadable } from '../util/lazy-base.js';

/**
 * Default bound of the bytes kept per request (Agent `retryBufferBytes`). The h2 and h3 transports take up
 * to 256 KiB of a stream's body ahead of the peer's flow-control window (their WRITE_HIGH_WATER): with a
 * smaller bound, a body of a few hundred KiB is read past it before the origin has taken much of it, and an
 * origin's GOAWAY then could not be retried (seen against nginx with 100 KiB uploads and a 64 KiB bound).
 * Most of what is kept is held by the transport's queue anyway until it leaves.
 */
export const DEFAULT_RETRY_BUFFER_BYTES = 256 * 1024;

export class ReplayBody {
  #src: Readable;
  #limit: number;
  /** Chunks read so far, in order; null once over the limit or settled. */
  #kept: Buffer[] | null = [];
  #keptBytes = 0;
  /** Attempts made: the first one has nothing to replay. */
  #attempts = 0;
  #cur: AttemptBody | null = null;
  #listening = false;
  #ended = false;
  #error: Error | null = null;
  #settled = false;

  constructor(src: Readable, limit: number) {
    this.#src = src;
    this.#limit = limit;
  }

  /** Another attempt may send this body again: everything read is still kept and the source has not failed. */
  get replayable(): boolean {
    return this.#kept !== null && this.#error === null && !this.#settled;
  }

  /** Bytes held now. */
  get keptBytes(): number {
    return this.#kept === null ? 0 : this.#keptBytes;
  }

  /** The body for the next attempt: what was read before, then the rest of the source. */
  attempt(): Readable {
    if (this.#attempts > 0 && !this.replayable) throw new Error('request body cannot be sent again');
    this.#attempts++;
    const old = this.#cur;
    if (old) {
      // The previous attempt's relay may still wait on its stream: end it (its exchange is over).
      this.#cur = null;
      this.#src.pause();
      if (!old.destroyed) old.destroy();
    }
    const a = new AttemptBody(this);
    this.#cur = a;
    return a;
  }

  /** A response came: no attempt follows. The current attempt reads the rest; nothing more is kept. */
  settle(): void {
    this.#settled = true;
    this.#kept = null;
    if (this.#cur === null && !this.#src.destroyed) this.#src.destroy();
  }

  /** The request failed for good: the source is not read any further. */
  abandon(): void {
    this.#settled = true;
    this.#kept = null;
    this.#cur = null;
    if (!this.#src.destroyed) this.#src.destroy();
  }

  /** `a` wants bytes: the kept ones it has not had yet, then the source's. */
  pull(a: AttemptBody): void {
    if (a !== this.#cur) return;
    const kept = this.#kept;
    while (!a.live) {
      if (kept !== null && a.next < kept.length) {
        if (!a.push(kept[a.next++])) return;
        continue;
      }
      a.live = true;
    }
    if (this.#error) {
      a.destroy(this.#error);
      return;
    }
    if (this.#ended) {
      a.push(null);
      return;
    }
    if (!this.#listening) {
      this.#listening = true;
      const src = this.#src;
      if (src.readableEnded) {
        this.#onEnd();
        return;
      }
      if (src.destroyed) {
        this.#onError(src.errored ?? new Error('request body closed before its end'));
        return;
      }
      src.on('data', this.#onData);
      src.once('end', this.#onEnd);
      src.once('error', this.#onError);
      src.once('close', this.#onClose);
    }
    this.#src.resume();
  }

  /** `a`'s stream is gone (its transport is done with it). */
  detach(a: AttemptBody): void {
    if (a !== this.#cur) return;
    this.#cur = null;
    if (this.#settled) {
      // The attempt that had the response stopped sending its body: the source is not read any further.
      if (!this.#src.destroyed) this.#src.destroy();
      return;
    }
    this.#src.pause();
  }

  #onData = (c: Buffer | string): void => {
    const chunk = typeof c === 'string' ? Buffer.from(c) : c;
    const kept = this.#kept;
    if (kept !== null) {
      if (this.#keptBytes + chunk.length <= this.#limit) {
        kept.push(chunk);
        this.#keptBytes += chunk.length;
      } else {
        this.#kept = null; // past the bound: no retry can send this body whole again
      }
    }
    const a = this.#cur;
    if (a === null || !a.live) {
      this.#src.pause(); // kept (when it could be) for the next attempt to read
      return;
    }
    if (kept !== null) a.next = kept.length;
    if (!a.push(chunk)) this.#src.pause();
  };

  #onEnd = (): void => {
    this.#ended = true;
    const a = this.#cur;
    if (a !== null && a.live) a.push(null);
  };

  #onError = (e: Error): void => {
    this.#error ??= e;
    this.#cur?.destroy(e);
  };

  #onClose = (): void => {
    if (!this.#ended) this.#onError(new Error('request body closed before its end'));
  };
}

/** One attempt's view of a ReplayBody. */
class AttemptBody extends LazyReadable {
  /** The next kept chunk to give; `live` once every kept chunk was given (then the source feeds it). */
  next = 0;
  live = false;
  #owner: ReplayBody;

  constructor(owner: ReplayBody) {
    super();
    this.#owner = owner;
  }

  override _read(): void {
    this.#owner.pull(this);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#owner.detach(this);
    cb(err);
  }
}
