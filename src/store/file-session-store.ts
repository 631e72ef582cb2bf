/**
 * A SessionStore backed by one JSON file, so a restarted process still
 * resumes TLS sessions and QUIC tickets (0-RTT on its first request).
 *
 * Invariants:
 * - Changes are written within 100 ms, together, and when the process exits,
 *   atomically (util/file-writer.ts: a random temp file created exclusively,
 *   fsync, rename), so a reader never sees a half-written file.
 * - The file holds resumption secrets: it is created with mode 0600.
 * - A missing file is an empty store; a corrupt or foreign file is ignored
 *   with a warning (and replaced on the next write), never a crash. A failed
 *   write is a warning too: the in-memory entries keep working.
 * - Bounded: at most `maxEntries` (least recently used dropped first) and
 *   entries older than `maxAgeMs` are dropped when the file is loaded.
 */
import { readFileSync } from 'node:fs';
import { DeferredFileWriter } from '../util/file-writer.js';
import { MemorySessionStore, type SessionStore } from './session-store.js';

const FORMAT = 'originlink-session-store';
const VERSION = 1;

export interface FileSessionStoreOptions {
  /** Most entries kept. Default 1024. */
  maxEntries?: number;
  /** Entries older than this are dropped at load, ms. Default 7 days (TLS 1.3 ticket lifetime cap, RFC 8446 §4.6.1). */
  maxAgeMs?: number;
  /** Where warnings go. Default `process.emitWarning`. */
  onWarning?: (message: string) => void;
  /** Clock for entry ages, ms since the epoch. Default `Date.now`. */
  now?: () => number;
}

interface FileShape {
  format: string;
  version: number;
  entries: Array<[key: string, value: string, savedAt: number]>;
}

export class FileSessionStore implements SessionStore {
  readonly path: string;
  #mem: MemorySessionStore;
  #savedAt = new Map<string, number>();
  #maxAge: number;
  #warn: (m: string) => void;
  #now: () => number;
  #file: DeferredFileWriter;

  constructor(path: string, opts: FileSessionStoreOptions = {}) {
    this.path = path;
    this.#mem = new MemorySessionStore(opts.maxEntries ?? 1024);
    this.#maxAge = opts.maxAgeMs ?? 7 * 24 * 3600 * 1000;
    this.#warn = opts.onWarning ?? ((m) => process.emitWarning(m, { code: 'ORIGINLINK_SESSION_STORE' }));
    this.#now = opts.now ?? Date.now;
    this.#file = new DeferredFileWriter(path, () => this.#render(), {
      mode: 0o600,
      onError: (e) => this.#warn(`session store ${this.path}: cannot write (${e.message})`),
    });
    this.#load();
  }

  /** Write the file now if a change waits (it is written within 100 ms anyway, and when the process exits). */
  flush(): void {
    this.#file.flush();
  }

  get(key: string): Uint8Array | undefined {
    return this.#mem.get(key);
  }

  /** Single use: the file keeps what is left (the key's next ticket, or nothing). */
  take(key: string): Uint8Array | undefined {
    const v = this.#mem.take(key);
    if (v !== undefined) {
      if (this.#mem.peek(key) === undefined) this.#savedAt.delete(key);
      this.#file.changed();
    }
    return v;
  }

  put(key: string, value: Uint8Array): void {
    this.#mem.put(key, Uint8Array.from(value));
    this.#savedAt.set(key, this.#now());
    this.#file.changed();
  }

  delete(key: string): void {
    if (this.#mem.get(key) === undefined) return;
    this.#mem.delete(key);
    this.#savedAt.delete(key);
    this.#file.changed();
  }

  get size(): number {
    return this.#mem.size;
  }

  #load(): void {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        this.#warn(`session store ${this.path}: cannot read (${(e as Error).message}); starting empty`);
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      this.#warn(`session store ${this.path}: not valid JSON; ignoring it`);
      return;
    }
    const f = parsed as Partial<FileShape> | null;
    if (!f || typeof f !== 'object' || f.format !== FORMAT || f.version !== VERSION || !Array.isArray(f.entries)) {
      this.#warn(`session store ${this.path}: not an originlink session store (format ${VERSION}); ignoring it`);
      return;
    }
    const now = this.#now();
    let bad = 0;
    for (const e of f.entries) {
      if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'string' || typeof e[2] !== 'number') {
        bad++;
        continue;
      }
      if (now - e[2] > this.#maxAge || e[2] > now + 60_000) continue;
      const bytes = Buffer.from(e[1], 'base64');
      if (bytes.length === 0) {
        bad++;
        continue;
      }
      this.#mem.put(e[0], new Uint8Array(bytes));
      this.#savedAt.set(e[0], e[2]);
    }
    if (bad) this.#warn(`session store ${this.path}: skipped ${bad} malformed entries`);
  }

  /** The file's content now. */
  #render(): string {
    const entries: FileShape['entries'] = [];
    for (const [key, at] of this.#savedAt) {
      const v = this.#mem.peek(key);
      if (v === undefined) {
        this.#savedAt.delete(key);
        continue;
      }
      entries.push([key, Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64'), at]);
    }
    return JSON.stringify({ format: FORMAT, version: VERSION, entries } satisfies FileShape);
  }
}
