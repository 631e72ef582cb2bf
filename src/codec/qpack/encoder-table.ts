/**
 * The encoder's view of the dynamic table (RFC 9204 §2.1): entries with
 * reference counts from unacknowledged field sections, the Known Received
 * Count, and the eviction rule.
 *
 * Invariant: an entry is evictable only when its absolute index is below
 * the Known Received Count and no unacknowledged section references it
 * (§2.1.1); eviction is oldest first, so a pinned oldest entry blocks it.
 */
import { FieldIndex } from '../field-index.js';
import { entrySize } from '../rfc7541/dynamic-table.js';

interface Entry {
  name: string;
  value: string;
  size: number;
  refs: number;
}

export class EncoderTable {
  #entries: Entry[] = [];
  #head = 0;
  #dropped = 0;
  #inserted = 0;
  #size = 0;
  #capacity = 0;
  /** Inserts the decoder is known to have received (§2.1.4). */
  knownReceived = 0;
  /** Exact field -> newest absolute index. */
  #exact = new FieldIndex();
  /** name -> newest absolute index. */
  #byName = new Map<string, number>();

  get insertCount(): number {
    return this.#inserted;
  }
  get capacity(): number {
    return this.#capacity;
  }

  setCapacity(cap: number): void {
    this.#capacity = cap;
  }

  has(abs: number): boolean {
    return abs >= this.#dropped && abs < this.#inserted;
  }

  #at(abs: number): Entry {
    return this.#entries[this.#head + abs - this.#dropped]!;
  }

  name(abs: number): string {
    return this.#at(abs).name;
  }

  /** Newest acknowledged entry matching exactly, or -1. */
  findExactAcked(name: string, value: string): number {
    const abs = this.#exact.get(name, value);
    return abs !== undefined && this.has(abs) && abs < this.knownReceived ? abs : -1;
  }

  /** Newest entry (acknowledged or not) matching exactly, or -1. */
  findExact(name: string, value: string): number {
    const abs = this.#exact.get(name, value);
    return abs !== undefined && this.has(abs) ? abs : -1;
  }

  /** Newest acknowledged entry with this name, or -1. */
  findNameAcked(name: string): number {
    const abs = this.#byName.get(name);
    return abs !== undefined && this.has(abs) && abs < this.knownReceived ? abs : -1;
  }

  ref(abs: number): void {
    this.#at(abs).refs++;
  }

  unref(abs: number): void {
    if (this.has(abs)) this.#at(abs).refs--;
  }

  /**
   * RFC 9204 §2.1.1.1 (avoiding prohibited insertions): once the table is more than half full, entries
   * in its oldest quarter are draining — the encoder stops referencing them (re-inserting what is still
   * in use), so they become evictable instead of pinning the oldest slot for good. Returns the absolute
   * index below which entries are draining (the oldest one when nothing is).
   */
  drainingBound(): number {
    if (this.#size * 2 <= this.#capacity) return this.#dropped;
    let used = 0;
    let abs = this.#dropped;
    while (abs < this.#inserted) {
      used += this.#at(abs).size;
      if (used > this.#capacity / 4) break;
      abs++;
    }
    return abs;
  }

  /** Whether an entry of `size` fits after evicting only evictable entries. */
  canInsert(size: number): boolean {
    if (size > this.#capacity) return false;
    let free = this.#capacity - this.#size;
    for (let abs = this.#dropped; free < size && abs < this.#inserted; abs++) {
      const e = this.#at(abs);
      if (abs >= this.knownReceived || e.refs > 0) return false;
      free += e.size;
    }
    return free >= size;
  }

  /** Insert (caller checked `canInsert`); returns the new absolute index. */
  insert(name: string, value: string): number {
    const size = entrySize(name, value);
    while (this.#capacity - this.#size < size) this.#evictOldest();
    this.#entries.push({ name, value, size, refs: 0 });
    this.#size += size;
    const abs = this.#inserted++;
    this.#exact.set(name, value, abs);
    this.#byName.set(name, abs);
    return abs;
  }

  #evictOldest(): void {
    const e = this.#entries[this.#head]!;
    const abs = this.#dropped;
    this.#size -= e.size;
    this.#head++;
    this.#dropped++;
    this.#exact.deleteIf(e.name, e.value, abs);
    if (this.#byName.get(e.name) === abs) this.#byName.delete(e.name);
    if (this.#head > 1024 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
  }
}
