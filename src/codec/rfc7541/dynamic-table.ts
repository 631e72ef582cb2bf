/**
 * The dynamic table of HPACK (RFC 7541 §2.3.2, §4) and QPACK (RFC 9204
 * §3.2): entries addressed by absolute index (0 = first ever inserted),
 * evicted oldest first to stay within the capacity. Entry size is name +
 * value octets + 32 (RFC 7541 §4.1); names and values are latin1 strings,
 * one char per octet. HPACK addresses entries relative to the newest
 * (`insertCount - 1 - i`); QPACK relative to its base.
 *
 * Invariant: entries live at absolute indexes [#dropped, #inserted) and
 * `#size` is the sum of their sizes, never above `#capacity`.
 */
export const ENTRY_OVERHEAD = 32;

export function entrySize(name: string, value: string): number {
  return name.length + value.length + ENTRY_OVERHEAD;
}

export class DynamicTable {
  #names: string[] = [];
  #values: string[] = [];
  /** Index in #names of the oldest live entry. */
  #head = 0;
  #dropped = 0;
  #inserted = 0;
  #size = 0;
  #capacity = 0;
  readonly maxCapacity: number;

  constructor(maxCapacity: number) {
    this.maxCapacity = maxCapacity;
  }

  get insertCount(): number {
    return this.#inserted;
  }
  get droppedCount(): number {
    return this.#dropped;
  }
  get size(): number {
    return this.#size;
  }
  get capacity(): number {
    return this.#capacity;
  }
  /** RFC 9204 §3.2.2: MaxEntries = floor(MaxTableCapacity / 32). */
  get maxEntries(): number {
    return Math.floor(this.maxCapacity / ENTRY_OVERHEAD);
  }

  /** Returns false when `cap` exceeds the maximum capacity (caller raises the error). */
  setCapacity(cap: number): boolean {
    if (cap > this.maxCapacity) return false;
    this.#capacity = cap;
    this.#evictTo(cap);
    return true;
  }

  /** Returns false when the entry cannot fit even in an empty table (RFC 9204 §3.2.2). */
  insert(name: string, value: string): boolean {
    const sz = entrySize(name, value);
    if (sz > this.#capacity) return false;
    this.#evictTo(this.#capacity - sz);
    this.#names.push(name);
    this.#values.push(value);
    this.#inserted++;
    this.#size += sz;
    return true;
  }

  /** Evict every entry (HPACK §4.4: an entry larger than the table empties it). */
  clear(): void {
    this.#evictTo(0);
  }

  /** True when the absolute index refers to a live entry. */
  has(abs: number): boolean {
    return abs >= this.#dropped && abs < this.#inserted;
  }

  name(abs: number): string {
    return this.#names[this.#head + abs - this.#dropped]!;
  }

  value(abs: number): string {
    return this.#values[this.#head + abs - this.#dropped]!;
  }

  #evictTo(target: number): void {
    while (this.#size > target && this.#dropped < this.#inserted) {
      this.#size -= entrySize(this.#names[this.#head]!, this.#values[this.#head]!);
      this.#head++;
      this.#dropped++;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#names.length) {
      this.#names = this.#names.slice(this.#head);
      this.#values = this.#values.slice(this.#head);
      this.#head = 0;
    }
  }
}
