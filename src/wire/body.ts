/**
 * Body streams both roles share: the response body a client connection
 * feeds (`ResponseBody`; `PushBody` for the byte-stream transports h1 and
 * h2) and a server's request body (`PushBody`, `endedBody`). The h3 stream
 * body (`StreamBody`) is in h3-body.ts.
 */
import type { Readable } from 'node:stream';
import { LazyReadable } from '../util/lazy-base.js';
import { bodyBytes } from '../http/body.js';

/** A response body a transport feeds: `deliver` pushes bytes and applies its own backpressure. */
export interface ResponseBody extends Readable {
  deliver(chunk: Uint8Array, end: boolean): void;
  /**
   * When this body last held its transport paused because its reader was behind (backpressure), as
   * performance.now(): Infinity while it does, the moment its reader caught up after, 0 if never. The origin's
   * silence meanwhile is ours, and the body timeout waits (see Exchange.timedOut).
   */
  readonly readerBehindAt: number;
}

/**
 * The response body of a byte-stream transport (h1, h2): `deliver` pushes and
 * calls `pause` when the consumer is behind; a read calls `resume`. A
 * consumer that destroys the body early calls `cancel` (h2 resets the stream).
 */
export class PushBody extends LazyReadable implements ResponseBody {
  #resume: () => void;
  #pause: () => void;
  #cancel: ((err: Error | null) => void) | null;
  #behindAt = 0;

  constructor(
    resume: () => void,
    pause: () => void,
    cancel: ((err: Error | null) => void) | null = null,
    highWaterMark?: number,
  ) {
    super(highWaterMark === undefined ? undefined : { highWaterMark });
    this.#resume = resume;
    this.#pause = pause;
    this.#cancel = cancel;
  }

  get readerBehindAt(): number {
    return this.#behindAt;
  }

  /** Called once, at the first read (or `collect`): a server that answers Expect: 100-continue only then. */
  onFirstRead: (() => void) | null = null;

  #firstRead(): void {
    const f = this.onFirstRead;
    this.onFirstRead = null;
    f?.();
  }

  /** Taking the body whole (`collect`): the bytes so far and where the end or a failure goes. */
  #collecting: {
    parts: Buffer[];
    onChunk: () => void;
    resolve: (b: Buffer) => void;
    reject: (e: Error) => void;
  } | null = null;

  /**
   * The body whole, taken without the stream: what is delivered from now on is kept, not pushed (no
   * 'data' event, no tick per chunk), and never paused for — the caller bounds the size (a declared
   * length); the end resolves with the bytes, a destroy rejects. Null when the stream was read, is
   * being read or holds bytes already: read it instead. Once taken, the stream is empty and ended.
   * `onChunk` runs per chunk (an idle deadline's refresh).
   */
  collect(onChunk: () => void): Promise<Buffer> | null {
    if (
      this.#collecting ||
      this.readableFlowing !== null ||
      this.readableLength > 0 ||
      this.readableEnded ||
      this.destroyed
    )
      return null;
    if (this.onFirstRead) this.#firstRead();
    // Its failure is the promise's: an 'error' event has no reader to go to (and must not become an uncaught one).
    this.on('error', noop);
    return new Promise<Buffer>((resolve, reject) => {
      this.#collecting = { parts: [], onChunk, resolve, reject };
    });
  }

  deliver(chunk: Uint8Array, end: boolean): void {
    const c = this.#collecting;
    if (c !== null) {
      if (chunk.length > 0) {
        c.parts.push(bodyBytes(chunk));
        c.onChunk();
      }
      if (end) {
        this.#collecting = null;
        this.#cancel = null;
        this.push(null);
        c.resolve(c.parts.length === 1 ? c.parts[0]! : Buffer.concat(c.parts));
      }
      return;
    }
    if (chunk.length > 0 && !this.push(chunk)) {
      this.#behindAt = Infinity;
      this.#pause();
    }
    if (end) {
      this.#cancel = null;
      this.push(null);
    }
  }

  override _read(): void {
    if (this.onFirstRead) this.#firstRead();
    if (this.#behindAt === Infinity) this.#behindAt = performance.now();
    this.#resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const c = this.#cancel;
    this.#cancel = null;
    c?.(err);
    const k = this.#collecting;
    this.#collecting = null;
    k?.reject(err ?? new Error('body destroyed before its end'));
    cb(err);
  }
}

/** The body of a request that has none: empty and already ended (servers make it only when a handler reads it). */
export function endedBody(): PushBody {
  const b = new PushBody(noop, noop);
  b.deliver(EMPTY_BODY, true);
  return b;
}

const noop = (): void => {};
const EMPTY_BODY = new Uint8Array(0);
