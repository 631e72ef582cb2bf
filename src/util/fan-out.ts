/**
 * One readable stream read once and given to several readers, each its own Readable: every chunk goes to
 * every reader as it arrives. A reader whose buffer is full gets the next chunks in a backlog of its own while
 * the others go on; the source is paused when no reader can take more, or when a reader's backlog passes
 * `lagBytes` and nobody takes it over (`onLag`): then the slowest sets the pace, and memory stays within one
 * buffer and `lagBytes` per reader. A reader taken over gets the rest from elsewhere through its `Feed` (its
 * Readable stays the one its consumer holds). A reader that goes (destroys its stream) is dropped; when none is
 * left the source is destroyed, which cancels it (the transports' `readerGone`). The source's end ends every
 * reader once its backlog is out; its failure fails every reader with the same error.
 */
import { Readable } from 'node:stream';

/** Bytes each reader may hold before it counts as full. */
const HIGH_WATER = 64 * 1024;

/** A reader taken over from the fan-out: what feeds the rest of its body. */
export interface Feed {
  /** Bytes handed to its reader so far (where the rest must start). */
  readonly delivered: number;
  /** One more chunk for the reader; false when its buffer is full (wait for `onDrain`). */
  push(chunk: Buffer): boolean;
  /** Called when the reader wants more after `push` returned false. */
  onDrain: () => void;
  /** Called when the reader went (destroyed its stream). */
  onGone: () => void;
  end(): void;
  fail(err: Error): void;
}

export interface LagPolicy {
  /** Bytes a reader may fall behind beyond its own buffer before `onLag` is asked. */
  lagBytes: number;
  /**
   * Reader `i` fell behind by `lagBytes`: true when the caller took it over through `feed` (the fan-out stops feeding
   * it).
   */
  onLag(i: number, feed: Feed): boolean;
}

const NO_LAG: LagPolicy = { lagBytes: 0, onLag: () => false };

interface Out {
  readable: Readable;
  index: number;
  backlog: Buffer[];
  backlogBytes: number;
  delivered: number;
  /** Its Readable's buffer reached HIGH_WATER: the next chunks wait in the backlog until it reads. */
  full: boolean;
  /** Taken over: its reads go to the feed's onDrain. */
  feed: Feed | null;
}

export class FanOut {
  readonly outputs: Readable[];
  #source: Readable;
  #live = new Set<Out>();
  #lag: LagPolicy;
  #ended = false;

  constructor(source: Readable, n: number, lag: LagPolicy = NO_LAG) {
    this.#source = source;
    this.#lag = lag;
    this.outputs = [];
    for (let i = 0; i < n; i++) {
      const out: Out = {
        readable: null as unknown as Readable,
        index: i,
        backlog: [],
        backlogBytes: 0,
        delivered: 0,
        full: false,
        feed: null,
      };
      out.readable = new Readable({
        highWaterMark: HIGH_WATER,
        read: () => this.#read(out),
        destroy: (err, cb) => {
          this.#drop(out);
          cb(err);
        },
      });
      this.outputs.push(out.readable);
      this.#live.add(out);
    }
    source.on('data', (c: Buffer) => this.#chunk(c));
    source.once('end', () => {
      this.#ended = true;
      for (const o of this.#live) if (o.backlog.length === 0) o.readable.push(null);
    });
    source.once('close', () => {
      if (this.#ended) return;
      const err = source.errored ?? new Error('response body closed before its end');
      for (const o of [...this.#live]) o.readable.destroy(err);
    });
    source.on('error', () => {
      /* told through 'close' */
    });
  }

  #chunk(c: Buffer): void {
    let held = false;
    for (const o of [...this.#live]) {
      if (!o.full) {
        o.delivered += c.length;
        if (!o.readable.push(c)) o.full = true;
        continue;
      }
      o.backlog.push(c);
      o.backlogBytes += c.length;
      if (o.backlogBytes <= this.#lag.lagBytes) continue;
      if (!this.#takeOver(o)) held = true;
    }
    if (held || this.#allFull()) this.#source.pause();
  }

  /** `o` fell behind: offered to the lag policy; true when it was taken over (and is no longer fed from here). */
  #takeOver(o: Out): boolean {
    if (this.#live.size < 2) return false; // alone, it is the pace
    const out = o.readable;
    const feed: Feed = {
      delivered: o.delivered,
      push: (chunk) => {
        o.delivered += chunk.length;
        return out.push(chunk);
      },
      onDrain: () => {},
      onGone: () => {},
      end: () => {
        out.push(null);
      },
      fail: (err) => {
        out.destroy(err);
      },
    };
    if (!this.#lag.onLag(o.index, feed)) return false;
    o.feed = feed;
    o.backlog = [];
    o.backlogBytes = 0;
    this.#live.delete(o);
    return true;
  }

  #allFull(): boolean {
    for (const o of this.#live) if (!o.full) return false;
    return true;
  }

  #read(o: Out): void {
    if (o.feed !== null) {
      o.feed.onDrain();
      return;
    }
    o.full = false;
    while (o.backlog.length > 0) {
      const c = o.backlog.shift() as Buffer;
      o.backlogBytes -= c.length;
      o.delivered += c.length;
      if (!o.readable.push(c)) {
        o.full = true;
        break;
      }
    }
    if (o.backlog.length === 0 && this.#ended) {
      o.readable.push(null);
      return;
    }
    this.#pull();
  }

  /** The source goes on while some reader can take more and none over its lag is kept. */
  #pull(): void {
    if (!this.#source.isPaused() || this.#ended) return;
    for (const o of this.#live) if (o.backlogBytes > this.#lag.lagBytes) return;
    if (!this.#allFull()) this.#source.resume();
  }

  #drop(o: Out): void {
    if (o.feed !== null) {
      o.feed.onGone();
      return;
    }
    if (!this.#live.delete(o)) return;
    if (this.#live.size === 0 && !this.#ended) this.#source.destroy();
    else this.#pull();
  }
}
