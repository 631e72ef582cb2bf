/** A Map with a hard bound: reading an entry makes it the newest; adding past the bound drops the oldest. */
export class LruMap<K, V> {
  readonly max: number;
  #map = new Map<K, V>();

  constructor(max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError('an LRU bound must be a positive integer');
    this.max = max;
  }

  get(key: K): V | undefined {
    const v = this.#map.get(key);
    if (v !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, v);
    }
    return v;
  }

  /** The value without touching its recency. */
  peek(key: K): V | undefined {
    return this.#map.get(key);
  }

  set(key: K, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    while (this.#map.size > this.max) this.#map.delete(this.#map.keys().next().value as K);
  }

  /** The value for `key`, made by `make` (and stored) when absent. */
  upsert(key: K, make: () => V): V {
    const v = this.get(key);
    if (v !== undefined) return v;
    const n = make();
    this.set(key, n);
    return n;
  }

  has(key: K): boolean {
    return this.#map.has(key);
  }
  delete(key: K): boolean {
    return this.#map.delete(key);
  }
  get size(): number {
    return this.#map.size;
  }
  values(): IterableIterator<V> {
    return this.#map.values();
  }
  entries(): IterableIterator<[K, V]> {
    return this.#map.entries();
  }
}
