/**
 * One readable stream read once and given to several readers, each its own Readable: every chunk goes to
 * every reader as it arrives, and the source is paused while any reader holds a full buffer (paced by the
 * slowest: memory stays within one buffer per reader). A reader that goes (destroys its stream) is dropped;
 * when none is left the source is destroyed, which cancels it (the transports' `readerGone`). The source's
 * end ends every reader; its failure fails every reader with the same error.
 */
import { Readable } from 'node:stream';

/** Bytes each reader may hold before the source waits for it. */
const HIGH_WATER = 64 * 1024;

export class FanOut {
  readonly outputs: Readable[];
  #source: Readable;
  #live: Set<Readable>;
  /**
   * Readers that asked for more since the last chunk (their `_read` ran). A Readable asks once and then waits
   * for a push, so a reader is not asked again whether it has room: the source goes on once every reader asked.
   */
  #hungry = new Set<Readable>();
  #ended = false;

  constructor(source: Readable, n: number) {
    this.#source = source;
    this.outputs = [];
    for (let i = 0; i < n; i++) {
      const out: Readable = new Readable({
        highWaterMark: HIGH_WATER,
        read: () => {
          this.#hungry.add(out);
          this.#pull();
        },
        destroy: (err, cb) => {
          this.#drop(out);
          cb(err);
        },
      });
      this.outputs.push(out);
    }
    this.#live = new Set(this.outputs);
    source.on('data', (c: Buffer) => {
      let full = false;
      this.#hungry.clear();
      for (const o of this.#live) if (!o.push(c)) full = true;
      if (full) source.pause();
    });
    source.once('end', () => {
      this.#ended = true;
      for (const o of this.#live) o.push(null);
    });
    source.once('close', () => {
      if (this.#ended) return;
      const err = source.errored ?? new Error('response body closed before its end');
      for (const o of [...this.#live]) o.destroy(err);
    });
    source.on('error', () => { /* told through 'close' */ });
  }

  /** A reader wants more: the source goes on once every reader has asked (the slowest sets the pace). */
  #pull(): void {
    if (!this.#source.isPaused()) return;
    for (const o of this.#live) if (!this.#hungry.has(o)) return;
    this.#source.resume();
  }

  #drop(o: Readable): void {
    this.#hungry.delete(o);
    if (!this.#live.delete(o)) return;
    if (this.#live.size === 0 && !this.#ended) this.#source.destroy();
    else this.#pull();
  }
}
