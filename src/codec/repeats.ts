/**
 * The last few field sections a decoder read, by their bytes: a connection's heads repeat (a server's response head,
 * a client's request), and a decoder whose answer for the same bytes holds (codec/hpack/decoder.ts,
 * codec/qpack/decoder.ts: each says when) returns what it made of them instead of decoding them again. A few heads
 * per connection, not a cache of them: at most REPEATS of at most REPEAT_MAX_BYTES bytes each, whose fields come to
 * at most REPEAT_MAX_LIST (name + value + 32 a field, as RFC 7541 §4.1 and RFC 9204 §3.2.1 count them). The second
 * bound is what holds memory: a few bytes may refer to large table entries, which a kept list keeps alive after the
 * table evicted them; so a peer can make a connection hold at most REPEATS × REPEAT_MAX_LIST more than its table.
 */
const REPEATS = 4;
const REPEAT_MAX_BYTES = 512;
const REPEAT_MAX_LIST = 2048;

export class RepeatBlocks<T> {
  readonly #bytes: Uint8Array[] = [];
  readonly #values: T[] = [];
  #next = 0;

  /** Whether a block this large, whose fields come to `listSize`, is kept at all. */
  static fits(block: Uint8Array, listSize: number): boolean {
    return block.length <= REPEAT_MAX_BYTES && listSize <= REPEAT_MAX_LIST;
  }

  /** What was kept for exactly these bytes, if anything. */
  get(block: Uint8Array): T | undefined {
    const kept = this.#bytes;
    for (let i = 0; i < kept.length; i++) {
      const b = kept[i]!;
      // Buffer.compare: memcmp, cheaper than a loop over a head's bytes.
      if (b.length === block.length && Buffer.compare(b, block) === 0) return this.#values[i];
    }
    return undefined;
  }

  /** Keep `value` for these bytes (in place of what the same bytes had, else of the oldest). */
  set(block: Uint8Array, value: T): void {
    const kept = this.#bytes;
    let i = 0;
    while (i < kept.length && !(kept[i]!.length === block.length && Buffer.compare(kept[i]!, block) === 0)) i++;
    if (i === kept.length) {
      i = kept.length < REPEATS ? kept.length : this.#next;
      this.#next = (i + 1) % REPEATS;
    }
    // A copy: the block is often a view of a socket read, which a kept slice would pin whole.
    kept[i] = new Uint8Array(block);
    this.#values[i] = value;
  }
}
