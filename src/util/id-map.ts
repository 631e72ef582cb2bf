/**
 * A Map from non-negative integer keys (stream ids, serial numbers) to values,
 * for tables on a hot path whose entries come and go all the time: one
 * connection's streams, the requests in flight.
 *
 * Why not Map: V8's Map replaces its hash table with a new one when it fills
 * with deleted entries, grows or shrinks, and the old table keeps a link to the
 * new one and its stale entries (so that live iterators can follow). Once a
 * Map's table has been promoted to the old generation, every replacement
 * table, and every value in it, is reached from there in the next scavenge and
 * promoted too — a chain that ends only at a full GC. A long-lived Map of
 * in-flight requests thus promoted every request's objects
 * (`npm run bench -- gc`; bench/RESULTS.md `gc`). This table never replaces
 * its arrays in steady state: deleted slots are cleared at once and compacted
 * in place; the arrays only grow (to the largest size the table has held), and
 * old ones are cleared when they do.
 *
 * Same semantics as Map for what we use: insertion-ordered iteration,
 * deleting during iteration, entries added during iteration are visited.
 */
const EMPTY = -1;
const MIN_CAPACITY = 8;

export class IdMap<V> implements Iterable<[number, V]> {
  /** Dense, in insertion order; EMPTY where an entry was deleted. */
  #keys: Float64Array;
  #vals: Array<V | undefined>;
  /** Hash chains: the first dense index per bucket, and the next index of each entry (-1: none). */
  #buckets: Int32Array;
  #next: Int32Array;
  #used = 0;
  #size = 0;
  #iterating = 0;

  constructor(capacity = MIN_CAPACITY) {
    let cap = MIN_CAPACITY;
    while (cap < capacity) cap *= 2;
    this.#keys = new Float64Array(cap);
    this.#vals = new Array<V | undefined>(cap).fill(undefined);
    this.#buckets = new Int32Array(cap).fill(-1);
    this.#next = new Int32Array(cap).fill(-1);
  }

  get size(): number {
    return this.#size;
  }

  #bucket(key: number): number {
    const h = Math.imul((key | 0) ^ ((key / 4294967296) | 0), 0x9e3779b1);
    return (h >>> 0) & (this.#buckets.length - 1);
  }

  #find(key: number): number {
    for (let i = this.#buckets[this.#bucket(key)] as number; i !== -1; i = this.#next[i] as number) {
      if (this.#keys[i] === key) return i;
    }
    return -1;
  }

  has(key: number): boolean {
    return this.#find(key) !== -1;
  }

  get(key: number): V | undefined {
    const i = this.#find(key);
    return i === -1 ? undefined : this.#vals[i];
  }

  set(key: number, value: V): this {
    if (!(key >= 0) || !Number.isInteger(key))
      throw new RangeError(`IdMap key must be a non-negative integer, not ${key}`);
    const i = this.#find(key);
    if (i !== -1) {
      this.#vals[i] = value;
      return this;
    }
    if (this.#used === this.#keys.length) this.#makeRoom();
    const at = this.#used++;
    const b = this.#bucket(key);
    this.#keys[at] = key;
    this.#vals[at] = value;
    this.#next[at] = this.#buckets[b] as number;
    this.#buckets[b] = at;
    this.#size++;
    return this;
  }

  delete(key: number): boolean {
    const b = this.#bucket(key);
    let prev = -1;
    for (let i = this.#buckets[b] as number; i !== -1; prev = i, i = this.#next[i] as number) {
      if (this.#keys[i] !== key) continue;
      if (prev === -1) this.#buckets[b] = this.#next[i] as number;
      else this.#next[prev] = this.#next[i] as number;
      this.#keys[i] = EMPTY;
      this.#vals[i] = undefined;
      this.#next[i] = -1;
      this.#size--;
      // Trailing holes are given back at once (entries mostly leave in the order they came).
      if (this.#iterating === 0) while (this.#used > 0 && this.#keys[this.#used - 1] === EMPTY) this.#used--;
      if (this.#size === 0 && this.#iterating === 0) this.#used = 0;
      return true;
    }
    return false;
  }

  clear(): void {
    this.#keys.fill(EMPTY, 0, this.#used);
    this.#vals.fill(undefined, 0, this.#used);
    this.#next.fill(-1, 0, this.#used);
    this.#buckets.fill(-1);
    if (this.#iterating === 0) this.#used = 0;
    this.#size = 0;
  }

  /** Full: compact in place when at most half is live and nobody iterates, else double. */
  #makeRoom(): void {
    const cap = this.#keys.length;
    if (this.#iterating === 0 && this.#size <= cap / 2) {
      let w = 0;
      for (let r = 0; r < this.#used; r++) {
        const k = this.#keys[r] as number;
        if (k === EMPTY) continue;
        if (w !== r) {
          this.#keys[w] = k;
          this.#vals[w] = this.#vals[r];
        }
        w++;
      }
      this.#keys.fill(EMPTY, w, this.#used);
      this.#vals.fill(undefined, w, this.#used);
      this.#used = w;
      this.#rechain();
      return;
    }
    // Grow: positions are kept (an iterator in progress reads the same indices).
    const keys = new Float64Array(cap * 2);
    keys.set(this.#keys);
    const vals = new Array<V | undefined>(cap * 2).fill(undefined);
    for (let i = 0; i < this.#used; i++) vals[i] = this.#vals[i];
    this.#vals.fill(undefined); // the old array may be old-generation garbage: it must not keep values alive
    this.#keys = keys;
    this.#vals = vals;
    this.#buckets = new Int32Array(cap * 2);
    this.#next = new Int32Array(cap * 2);
    this.#rechain();
  }

  #rechain(): void {
    this.#buckets.fill(-1);
    this.#next.fill(-1);
    for (let i = this.#used - 1; i >= 0; i--) {
      const k = this.#keys[i] as number;
      if (k === EMPTY) continue;
      const b = this.#bucket(k);
      this.#next[i] = this.#buckets[b] as number;
      this.#buckets[b] = i;
    }
  }

  *entries(): IterableIterator<[number, V]> {
    this.#iterating++;
    try {
      for (let i = 0; i < this.#used; i++) {
        const k = this.#keys[i] as number;
        if (k !== EMPTY) yield [k, this.#vals[i] as V];
      }
    } finally {
      this.#iterating--;
    }
  }

  *values(): IterableIterator<V> {
    this.#iterating++;
    try {
      for (let i = 0; i < this.#used; i++) {
        if (this.#keys[i] !== EMPTY) yield this.#vals[i] as V;
      }
    } finally {
      this.#iterating--;
    }
  }

  [Symbol.iterator](): IterableIterator<[number, V]> {
    return this.entries();
  }
}
