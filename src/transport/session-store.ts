/**
 * Bounded stores for resumption state: TLS sessions (TCP transports) and QUIC
 * session tickets. One tiny interface so a file-backed (FileSessionStore,
 * file-session-store.ts) or shared store can replace the in-memory default.
 * Keys are origin identities (`h3:` prefix for QUIC); values are opaque.
 */
export interface SessionStore {
  /** The newest entry for a key, without removing it. */
  get(key: string): Uint8Array | undefined;
  /** Remember an entry (replacing the previous one for the key). */
  put(key: string, value: Uint8Array): void;
  delete(key: string): void;
  readonly size: number;
}

/** Least-recently-used map with a hard bound on entries. */
export class MemorySessionStore implements SessionStore {
  #max: number;
  #map = new Map<string, Uint8Array>();
  constructor(maxEntries = 1024) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError('maxEntries must be a positive integer');
    this.#max = maxEntries;
  }
  get(key: string): Uint8Array | undefined {
    const v = this.#map.get(key);
    if (v !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, v);
    }
    return v;
  }
  /** The entry without touching its recency. */
  peek(key: string): Uint8Array | undefined {
    return this.#map.get(key);
  }
  put(key: string, value: Uint8Array): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    while (this.#map.size > this.#max) {
      const oldest = this.#map.keys().next().value as string;
      this.#map.delete(oldest);
    }
  }
  delete(key: string): void {
    this.#map.delete(key);
  }
  get size(): number {
    return this.#map.size;
  }
}
