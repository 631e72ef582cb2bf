/**
 * An OriginCache shared by a fleet through Redis, with the bounded memory
 * cache as its local tier.
 *
 * - `get` answers from the local tier at once. A miss starts one background
 *   GET (single flight per origin; a miss in Redis too is remembered for
 *   `missRetryMs`), and the answer is merged in and `generation` bumped, so
 *   the origin's selection state reads it before its next request.
 * - `put` writes through asynchronously: SET with the facts' own expiry
 *   (`factsExpireAt`), batched into the link's next pipeline, plus the
 *   origin in an index (sorted by update time) that `ready()` warms from.
 * - A change of the broken-h3 mark (set or cleared) is also published; every
 *   other process merges it at once (pub/sub), so the fleet stops trying a
 *   broken QUIC path within one message delivery.
 * - Merging keeps the newest facts and the latest broken mark: a mark from
 *   anywhere is honoured until it expires or a newer success clears it.
 */
import { randomBytes } from 'node:crypto';
import { RedisLink, type RedisLinkOptions, type RedisLinkStats } from './redis-link.js';
import { LruMap } from '../util/lru.js';
import { factsExpireAt, MemoryOriginCache, validFacts, type OriginCache, type OriginFacts } from './origin-cache.js';
import { RedisTier } from './redis-tier.js';
import { holdUntil } from '../util/hold.js';

const INDEX_MAX = 100_000;
const CHANNEL = 'o:broken';

export interface RedisOriginCacheOptions extends Partial<RedisLinkOptions> {
  /** Use this connection (shared with a RedisSessionStore) instead of opening one from `url`. */
  link?: RedisLink;
  /** Origins held in the local tier. Default 1024. */
  maxEntries?: number;
  /** After Redis had nothing for an origin, ask again no sooner than this, ms. Default 5000. */
  missRetryMs?: number;
  /** Origins loaded by `ready()`. Default 256. */
  warmOrigins?: number;
  /** Wall clock, epoch ms. Default Date.now. */
  now?: () => number;
}

export interface RedisOriginCacheStats {
  local: number;
  /** Background fetches answered with facts, and those that found nothing. */
  fetched: number;
  missed: number;
  /** Broken-h3 changes published, and received from other processes. */
  published: number;
  received: number;
  redis: RedisLinkStats;
}

interface BrokenMessage {
  from: string;
  origin: string;
  facts: OriginFacts;
}

/** The newest facts, with the latest broken mark of either side. */
function merge(local: OriginFacts | undefined, remote: OriginFacts): OriginFacts {
  if (!local) return remote;
  const base = remote.updatedAt > local.updatedAt ? remote : local;
  const mark = remote.brokenUntil > local.brokenUntil ? remote : local;
  return base === mark ? base : { ...base, brokenUntil: mark.brokenUntil, brokenCount: mark.brokenCount };
}

/** The largest stored value or message read as an origin's facts (bytes of JSON). */
const MAX_FACTS_BYTES = 16 * 1024;

export class RedisOriginCache implements OriginCache {
  readonly link: RedisLink;
  /** Identifies this process's messages (its own are ignored). */
  readonly instance = randomBytes(8).toString('hex');
  readonly #tier: RedisTier;
  #local: MemoryOriginCache;
  #gen = 0;
  #fetching = new Set<string>();
  #missUntil: LruMap<string, number>;
  #missRetry: number;
  #warm: number;
  #now: () => number;
  #closed = false;
  #n = { fetched: 0, missed: 0, published: 0, received: 0 };

  constructor(o: RedisOriginCacheOptions) {
    this.#tier = new RedisTier(o, 'o', 'RedisOriginCache');
    this.link = this.#tier.link;
    const max = o.maxEntries ?? 1024;
    this.#local = new MemoryOriginCache(max);
    this.#missUntil = new LruMap(max);
    this.#missRetry = o.missRetryMs ?? 5000;
    this.#warm = o.warmOrigins ?? 256;
    this.#now = o.now ?? Date.now;
    this.link.subscribe(CHANNEL, (m) => this.#onMessage(m));
  }

  get generation(): number {
    return this.#gen;
  }

  get(origin: string): OriginFacts | undefined {
    const f = this.#local.get(origin);
    if (f === undefined) this.#fetch(origin);
    return f;
  }

  put(origin: string, facts: OriginFacts): void {
    const prev = this.#local.get(origin);
    this.#local.put(origin, facts);
    this.#missUntil.delete(origin);
    const k = this.#tier.key(origin);
    const json = JSON.stringify(facts);
    const exp = factsExpireAt(facts);
    this.link.write((p) => p.set(k, json, 'PXAT', exp), k);
    this.#tier.indexWrite((p, index) =>
      p.zadd(index, facts.updatedAt, origin).zremrangebyrank(index, 0, -INDEX_MAX - 1),
    );
    if ((prev?.brokenUntil ?? 0) !== facts.brokenUntil) {
      this.#n.published++;
      this.link.publish(CHANNEL, JSON.stringify({ from: this.instance, origin, facts } satisfies BrokenMessage));
    }
  }

  delete(origin: string): void {
    this.#local.delete(origin);
    this.#tier.forget(origin);
  }

  get size(): number {
    return this.#local.size;
  }

  stats(): RedisOriginCacheStats {
    return { local: this.#local.size, ...this.#n, redis: this.link.stats() };
  }

  /** Connect (waiting at most `timeoutMs`) and load the most recently updated origins. Never rejects. */
  async ready(timeoutMs = 500): Promise<boolean> {
    if (!(await this.link.ready(timeoutMs))) return false;
    const origins = await this.link.read((r) => r.zrevrange(this.#tier.index, 0, this.#warm - 1));
    if (!origins?.length) return true;
    // One GET each, sent together: MGET spans keys of several Cluster slots (CROSSSLOT there).
    const values = await this.link.read((r) => Promise.all(origins.map((o) => r.get(this.#tier.key(o)))));
    let changed = false;
    origins.forEach((o, i) => {
      changed = this.#apply(o, values?.[i] ?? null) || changed;
    });
    if (changed) this.#gen++;
    return true;
  }

  /** Send what is queued and disconnect (if the connection is ours). */
  close(): Promise<void> {
    return this.#closed ? Promise.resolve() : holdUntil(this.#close());
  }

  async #close(): Promise<void> {
    this.#closed = true;
    await this.#tier.release();
  }

  #fetch(origin: string): void {
    if (
      this.#closed ||
      !this.link.up ||
      this.#fetching.has(origin) ||
      (this.#missUntil.peek(origin) ?? 0) > this.#now()
    )
      return;
    this.#fetching.add(origin);
    void this.link
      .read((r) => r.get(this.#tier.key(origin)))
      .then((v) => {
        this.#fetching.delete(origin);
        if (v === undefined) return; // Redis down: ask again on a later miss.
        if (this.#apply(origin, v)) {
          this.#n.fetched++;
          this.#gen++;
        } else {
          this.#n.missed++;
          this.#missUntil.set(origin, this.#now() + this.#missRetry);
        }
      });
  }

  /** Merge one stored JSON value into the local tier; true when it held usable facts. */
  #apply(origin: string, json: string | null): boolean {
    // An origin's facts are a few hundred bytes of JSON: a larger value is no entry of ours (a 64 MiB one was parsed
    // on the event loop and kept, for each origin, up to maxEntries of them).
    if (json === null || json.length > MAX_FACTS_BYTES) return false;
    let f: OriginFacts | null = null;
    try {
      f = validFacts(JSON.parse(json));
    } catch {
      f = null;
    }
    if (f === null || factsExpireAt(f) <= this.#now()) return false;
    this.#local.put(origin, merge(this.#local.get(origin), f));
    return true;
  }

  #onMessage(raw: Buffer): void {
    if (raw.length > MAX_FACTS_BYTES) return;
    let m: BrokenMessage;
    try {
      m = JSON.parse(raw.toString()) as BrokenMessage;
    } catch {
      return;
    }
    if (m.from === this.instance || typeof m.origin !== 'string') return;
    const f = validFacts(m.facts);
    if (f === null) return;
    this.#n.received++;
    const local = this.#local.get(m.origin);
    // A clear from a newer success wins over an older mark; otherwise the latest mark wins.
    const next =
      f.brokenUntil === 0 && local && f.updatedAt >= local.updatedAt
        ? { ...local, brokenUntil: 0, brokenCount: 0 }
        : merge(local, f);
    this.#local.put(m.origin, next);
    this.#gen++;
  }
}
