/**
 * Per-origin capability facts that outlive a connection: the HTTP/3
 * alternative (Alt-Svc or probe) with its expiry, the ALPN seen over TCP,
 * an RTT estimate, the broken-h3 mark. One small interface (like
 * SessionStore) so a shared store can replace these; times are wall-clock
 * epoch ms because they are persisted.
 */
import { existsSync, readFileSync } from 'node:fs';
import { DeferredFileWriter } from '../util/file-writer.js';

export interface H3Alternative {
  /** '' = the origin's own host. */
  host: string;
  port: number;
  /** Epoch ms after which the advertisement is stale (Alt-Svc `ma`). */
  expiresAt: number;
  /** Where it was learned. */
  source: 'alt-svc' | 'probe';
}

export interface OriginFacts {
  h3: H3Alternative | null;
  /** ALPN chosen the last time TCP+TLS was used (`h2`, `http/1.1`), or null. */
  alpn: string | null;
  /** Smoothed RTT estimate, ms. */
  rttMs: number | null;
  /** Epoch ms until which h3 is considered broken (0: not broken). */
  brokenUntil: number;
  /** Consecutive h3 failures (drives the doubling backoff). */
  brokenCount: number;
  updatedAt: number;
  /** The last probe result, when one ran (opaque JSON). */
  probe?: unknown;
}

export interface OriginCache {
  get(origin: string): OriginFacts | undefined;
  put(origin: string, facts: OriginFacts): void;
  delete(origin: string): void;
  readonly size: number;
  /**
   * Bumped whenever entries change from outside this process's `put`s (a
   * shared cache's background fetch or a fleet message): holders of facts
   * read `get` again when it moved. Absent for purely local caches.
   */
  readonly generation?: number;
}

/** How long an entry with nothing else keeping it stays (ALPN and RTT facts). */
export const PLAIN_FACTS_TTL_MS = 7 * 86_400_000;

/** The time after which an entry says nothing useful. */
export function factsExpireAt(f: OriginFacts): number {
  return Math.max(f.h3?.expiresAt ?? 0, f.brokenUntil, f.updatedAt + PLAIN_FACTS_TTL_MS);
}

/** Bounded LRU in memory. */
export class MemoryOriginCache implements OriginCache {
  #max: number;
  protected map = new Map<string, OriginFacts>();
  constructor(maxEntries = 1024) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError('maxEntries must be a positive integer');
    this.#max = maxEntries;
  }
  get(origin: string): OriginFacts | undefined {
    const v = this.map.get(origin);
    if (v !== undefined) {
      this.map.delete(origin);
      this.map.set(origin, v);
    }
    return v;
  }
  put(origin: string, facts: OriginFacts): void {
    this.map.delete(origin);
    this.map.set(origin, facts);
    while (this.map.size > this.#max) this.map.delete(this.map.keys().next().value as string);
  }
  delete(origin: string): void {
    this.map.delete(origin);
  }
  get size(): number {
    return this.map.size;
  }
}

export interface FileOriginCacheOptions {
  maxEntries?: number;
  /** Called when the file exists but cannot be used. Default: console.warn. */
  warn?: (message: string) => void;
  /** Wall clock for dropping stale entries at load (tests pass their own). */
  now?: number;
}

const FORMAT = 'originlink-origin-cache/1';

/**
 * The memory cache, loaded from and written to one JSON file. Changes are
 * written within 100 ms and when the process exits, atomically
 * (util/file-writer.ts), so a crash leaves the old or the new content, never
 * half of one. A corrupt file is ignored with
 * a warning and replaced on the next write.
 */
export class FileOriginCache extends MemoryOriginCache {
  readonly path: string;
  #warn: (m: string) => void;
  #file: DeferredFileWriter;

  constructor(path: string, o: FileOriginCacheOptions = {}) {
    super(o.maxEntries ?? 1024);
    this.path = path;
    this.#warn = o.warn ?? ((m) => console.warn(m));
    this.#file = new DeferredFileWriter(
      path,
      () => JSON.stringify({ format: FORMAT, origins: Object.fromEntries(this.map) }),
      {
        mode: 0o600,
        onError: (e) => this.#warn(`originlink: cannot write origin cache ${this.path}: ${e.message}`),
      },
    );
    this.#load(o.now ?? Date.now());
  }

  #load(now: number): void {
    if (!existsSync(this.path)) return;
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(this.path, 'utf8'));
    } catch (e) {
      this.#warn(`originlink: ignoring unreadable origin cache ${this.path}: ${(e as Error).message}`);
      return;
    }
    const d = doc as { format?: unknown; origins?: unknown };
    if (
      typeof d !== 'object' ||
      d === null ||
      d.format !== FORMAT ||
      typeof d.origins !== 'object' ||
      d.origins === null
    ) {
      this.#warn(`originlink: ignoring origin cache ${this.path}: not a ${FORMAT} file`);
      return;
    }
    for (const [k, v] of Object.entries(d.origins as Record<string, unknown>)) {
      const f = validFacts(v);
      if (f && factsExpireAt(f) > now) super.put(k, f);
    }
  }

  override put(origin: string, facts: OriginFacts): void {
    super.put(origin, facts);
    this.#save();
  }

  override delete(origin: string): void {
    super.delete(origin);
    this.#save();
  }

  #save(): void {
    this.#file.changed();
  }

  /** Write the file now if a change waits (it is written within 100 ms anyway, and when the process exits). */
  flush(): void {
    this.#file.flush();
  }
}

function num(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/** The facts in a parsed JSON value, or null when it is not a well-formed entry. */
export function validFacts(v: unknown): OriginFacts | null {
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  if (!num(o['brokenUntil']) || !num(o['brokenCount']) || !num(o['updatedAt'])) return null;
  let h3: H3Alternative | null = null;
  const h = o['h3'] as Record<string, unknown> | null | undefined;
  if (h) {
    if (typeof h['host'] !== 'string' || !num(h['port']) || !num(h['expiresAt'])) return null;
    h3 = {
      host: h['host'],
      port: h['port'],
      expiresAt: h['expiresAt'],
      source: h['source'] === 'probe' ? 'probe' : 'alt-svc',
    };
  }
  const f: OriginFacts = {
    h3,
    alpn: typeof o['alpn'] === 'string' ? o['alpn'] : null,
    rttMs: num(o['rttMs']) ? o['rttMs'] : null,
    brokenUntil: o['brokenUntil'],
    brokenCount: o['brokenCount'],
    updatedAt: o['updatedAt'],
  };
  if (o['probe'] !== undefined) f.probe = o['probe'];
  return f;
}
