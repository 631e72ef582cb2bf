/**
 * Bounded stores for resumption state: TLS sessions (TCP transports) and QUIC
 * session tickets. One tiny interface so a file-backed (FileSessionStore,
 * file-session-store.ts) or shared store can replace the in-memory default.
 * Keys are origin identities (`h3:` prefix for QUIC); values are opaque.
 */
export interface SessionStore {
  /** The newest entry for a key, without removing it. */
  get(key: string): Uint8Array | undefined;
  /**
   * Remove and return the newest entry for a key. A TLS 1.3 ticket is meant
   * for one connection (RFC 8446 §C.4, RFC 9001 §4.5 for QUIC): dials take
   * theirs, so concurrent dials get a ticket each, or none.
   */
  take(key: string): Uint8Array | undefined;
  /** Remember an entry (beside the key's earlier ones, newest first out). */
  put(key: string, value: Uint8Array): void;
  delete(key: string): void;
  /** Keys held. */
  readonly size: number;
}

/** Tickets kept per key: servers send one or two per connection (OpenSSL sends two). */
const PER_KEY = 4;

/** Least-recently-used map of keys with a hard bound, a few entries per key. */
export class MemorySessionStore implements SessionStore {
  #max: number;
  #map = new Map<string, Uint8Array[]>();
  constructor(maxEntries = 1024) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError('maxEntries must be a positive integer');
    this.#max = maxEntries;
  }
  get(key: string): Uint8Array | undefined {
    const v = this.#map.get(key);
    if (v === undefined) return undefined;
    this.#map.delete(key);
    this.#map.set(key, v);
    return v[v.length - 1];
  }
  take(key: string): Uint8Array | undefined {
    const v = this.#map.get(key);
    if (v === undefined) return undefined;
    const t = v.pop();
    if (v.length === 0) this.#map.delete(key);
    return t;
  }
  /** The newest entry without touching its recency. */
  peek(key: string): Uint8Array | undefined {
    const v = this.#map.get(key);
    return v?.[v.length - 1];
  }
  put(key: string, value: Uint8Array): void {
    const v = this.#map.get(key) ?? [];
    this.#map.delete(key);
    v.push(value);
    if (v.length > PER_KEY) v.shift();
    this.#map.set(key, v);
    while (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value as string);
  }
  delete(key: string): void {
    this.#map.delete(key);
  }
  get size(): number {
    return this.#map.size;
  }
}
