/**
 * A SessionStore shared by a fleet through Redis, with a bounded local tier
 * in front. TLS sessions and QUIC tickets are for one connection (RFC 8446
 * §C.4, RFC 9001 §4.5), so every ticket lives in exactly one place: in one
 * process's local tier ("owned") or in the key's Redis list ("shared"),
 * never both, and moving it from Redis to a process is one RPOP — atomic, so
 * two processes never get the same ticket.
 *
 * - `take`/`get` answer from the local tier only, at once. When that leaves
 *   the key without a ticket, one is claimed from Redis in the background for
 *   the next dial (a miss goes cold now, the claim serves the next one).
 * - `put` keeps the first ticket of a key locally (this process's next
 *   dial); further ones are shared: RPUSH to the key's list (newest last,
 *   trimmed to 4), batched with the other writes, TTL from the ticket's own
 *   lifetime (ticket-lifetime.ts).
 * - `ready()` connects and claims one ticket for each of the `warmKeys` most
 *   recently shared keys, so a fresh process starts warm; `close()` gives the
 *   owned tickets back to the fleet before disconnecting.
 * - With `encryptionKey`, entries are sealed with AES-256-GCM (seal.ts); an
 *   entry that fails to open (wrong key, tampered, written unencrypted) is
 *   ignored — pushed back for processes that can read it — counted and told
 *   once through `onWarning`, never thrown.
 * - Redis down: the local tier keeps working; writes are dropped and counted
 *   (redis-link.ts). No call here ever throws because of Redis.
 */
import { ErrorCode, OriginlinkError } from '../errors.js';
import { LruMap } from '../util/lru.js';
import { RedisLink, type RedisLinkOptions, type RedisLinkStats } from './redis-link.js';
import { readKeyFile, Sealer } from './seal.js';
import type { SessionStore } from './session-store.js';
import { sessionExpiresAt } from './ticket-lifetime.js';
import { RedisTier } from './redis-tier.js';
import { holdUntil } from '../util/hold.js';

/** Tickets kept per key, locally and in Redis (servers send one or two per connection). */
const PER_KEY = 4;
/** Most keys in the fleet index (a sorted set by expiry); the oldest go first. */
const INDEX_MAX = 100_000;

/** Largest shared entry taken (see #decode). */
const MAX_ENTRY_BYTES = 64 * 1024;

export interface RedisSessionStoreOptions extends Partial<RedisLinkOptions> {
  /** Use this connection (shared with a RedisOriginCache) instead of opening one from `url`. */
  link?: RedisLink;
  /** Keys held in the local tier. Default 1024. */
  maxEntries?: number;
  /** AES-256-GCM key (32 bytes) for entries at rest. Default: the URL's `keyFile`, else none. */
  encryptionKey?: Uint8Array;
  /** Lifetime when a session's own cannot be read, ms. Default 1 hour. */
  fallbackTtlMs?: number;
  /** Keys claimed by `ready()`. Default 64. */
  warmKeys?: number;
  /** Wall clock, epoch ms. Default Date.now. */
  now?: () => number;
}

export interface RedisSessionStoreStats {
  /** Keys in the local tier. */
  local: number;
  /** Tickets moved Redis → here, here → Redis (shared at put, returned at close). */
  claimed: number;
  shared: number;
  returned: number;
  /** Entries dropped: expired, or failing to open (wrong key / tampered / not sealed). */
  expired: number;
  decryptFailures: number;
  redis: RedisLinkStats;
}

interface Owned {
  v: Uint8Array;
  exp: number;
}

export class RedisSessionStore implements SessionStore {
  readonly link: RedisLink;
  readonly #tier: RedisTier;
  #local: LruMap<string, Owned[]>;
  #sealer: Sealer | null;
  #fallback: number;
  #warmKeys: number;
  #now: () => number;
  #claiming = new Set<string>();
  /** Keys whose claim waits for the next timer tick (#claim), and that tick. */
  #claimSoon = new Set<string>();
  #claimTimer: NodeJS.Timeout | null = null;
  #toldDecrypt = false;
  #closed = false;
  #n = { claimed: 0, shared: 0, returned: 0, expired: 0, decryptFailures: 0 };

  constructor(o: RedisSessionStoreOptions) {
    this.#tier = new RedisTier(o, 's', 'RedisSessionStore');
    this.link = this.#tier.link;
    this.#local = new LruMap(o.maxEntries ?? 1024);
    const key = o.encryptionKey ?? (this.link.keyFile ? readKeyFile(this.link.keyFile) : null);
    this.#sealer = key ? new Sealer(key) : null;
    this.#fallback = o.fallbackTtlMs ?? 3_600_000;
    this.#warmKeys = o.warmKeys ?? 64;
    this.#now = o.now ?? Date.now;
  }

  get(key: string): Uint8Array | undefined {
    const list = this.#fresh(key);
    if (list === undefined) this.#claim(key);
    return list?.[list.length - 1]?.v;
  }

  take(key: string): Uint8Array | undefined {
    const list = this.#fresh(key);
    const t = list?.pop();
    if (list !== undefined && list.length === 0) this.#local.delete(key);
    if (list === undefined || list.length === 0) this.#claim(key);
    return t?.v;
  }

  put(key: string, value: Uint8Array): void {
    const now = this.#now();
    const exp = sessionExpiresAt(value, now, this.#fallback);
    if (exp <= now) return;
    const v = Uint8Array.from(value);
    const list = this.#fresh(key);
    if (list === undefined) {
      // This process's next dial to the key.
      this.#local.set(key, [{ v, exp }]);
      return;
    }
    this.#share(key, v, exp);
    this.#n.shared++;
  }

  delete(key: string): void {
    this.#local.delete(key);
    this.#tier.forget(key);
  }

  get size(): number {
    return this.#local.size;
  }

  stats(): RedisSessionStoreStats {
    return { local: this.#local.size, ...this.#n, redis: this.link.stats() };
  }

  /**
   * Connect (waiting at most `timeoutMs`) and claim a ticket for each of the
   * most recently shared keys. Never rejects; resolves false when Redis was
   * not reachable in time.
   */
  async ready(timeoutMs = 500): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    if (!(await this.link.ready(timeoutMs))) return false;
    const now = this.#now();
    const keys = await this.link.read((r) =>
      r.zrange(this.#tier.index, '+inf', now, 'BYSCORE', 'REV', 'LIMIT', 0, this.#warmKeys),
    );
    if (!keys?.length) return true;
    const left = Math.max(1, deadline - Date.now());
    await Promise.race([
      Promise.all(keys.filter((k) => this.#local.peek(k) === undefined).map((k) => this.#claimNow(k))),
      new Promise((r) => setTimeout(r, left).unref()),
    ]);
    return true;
  }

  /** Give the owned tickets back to the fleet, send what is queued, disconnect (if the connection is ours). */
  close(): Promise<void> {
    return this.#closed ? Promise.resolve() : holdUntil(this.#close());
  }

  async #close(): Promise<void> {
    this.#closed = true;
    if (this.#claimTimer !== null) clearTimeout(this.#claimTimer);
    this.#claimTimer = null;
    this.#claimSoon.clear();
    const now = this.#now();
    for (const [key, list] of this.#local.entries()) {
      for (const t of list) {
        if (t.exp <= now) continue;
        this.#share(key, t.v, t.exp);
        this.#n.returned++;
      }
    }
    this.#local = new LruMap(this.#local.max);
    await this.#tier.release();
  }

  /** The key's owned tickets with the expired ones dropped; undefined when none remain. */
  #fresh(key: string): Owned[] | undefined {
    const list = this.#local.get(key);
    if (list === undefined) return undefined;
    const now = this.#now();
    const keep = list.filter((t) => t.exp > now);
    this.#n.expired += list.length - keep.length;
    if (keep.length === 0) {
      this.#local.delete(key);
      return undefined;
    }
    if (keep.length !== list.length) this.#local.set(key, keep);
    return keep;
  }

  #share(key: string, v: Uint8Array, exp: number): void {
    const rk = this.#tier.key(key);
    const entry = this.#encode(rk, v, exp);
    this.link.write((p) => p.rpush(rk, entry).ltrim(rk, -PER_KEY, -1).pexpireat(rk, exp), rk);
    const now = this.#now();
    this.#tier.indexWrite((p, index) =>
      p
        .zadd(index, exp, key)
        .zremrangebyscore(index, '-inf', now)
        .zremrangebyrank(index, 0, -INDEX_MAX - 1),
    );
  }

  /**
   * Background claim of one ticket for `key`, at most one in flight per key. Started on the next timer tick, not
   * in this call: a take() is on a dial's way to its first flight (connect/h3.ts takes the ticket just before it
   * makes the connection, whose first flight leaves at this turn's check phase), and the command's encoding and
   * write, cold in a fresh process, would come before that flight.
   */
  #claim(key: string): void {
    if (this.#closed || !this.link.up || this.#claiming.has(key)) return;
    this.#claimSoon.add(key);
    if (this.#claimTimer === null) {
      this.#claimTimer = setTimeout(this.#claimQueued, 0);
      this.#claimTimer.unref();
    }
  }

  #claimQueued = (): void => {
    this.#claimTimer = null;
    const keys = [...this.#claimSoon];
    this.#claimSoon.clear();
    if (this.#closed || !this.link.up) return;
    for (const k of keys) void this.#claimNow(k);
  };

  async #claimNow(key: string): Promise<void> {
    if (this.#claiming.has(key)) return;
    this.#claiming.add(key);
    const rk = this.#tier.key(key);
    try {
      // Bounded: a list holds at most PER_KEY entries; skip the expired and unreadable ones.
      for (let i = 0; i < PER_KEY; i++) {
        const raw = await this.link.read((r) => r.rpopBuffer(rk));
        if (!raw) return;
        const t = this.#decode(rk, raw);
        if (t === 'expired') continue;
        if (t === 'unreadable') {
          // Not ours to destroy (another process may hold the key): back at the old end, stop.
          this.link.write((p) => p.lpush(rk, raw), rk);
          return;
        }
        if (this.#closed) {
          this.#share(key, t.v, t.exp);
          this.#n.returned++;
          return;
        }
        const list = this.#local.peek(key) ?? [];
        list.push(t);
        if (list.length > PER_KEY) list.shift();
        this.#local.set(key, list);
        this.#n.claimed++;
        return;
      }
    } finally {
      this.#claiming.delete(key);
    }
  }

  /**
   * Entry: expiry (u64 BE, epoch ms) then the session; plain entries start with 0x00, sealed ones are seal.ts's (0x01).
   */
  #encode(rk: string, v: Uint8Array, exp: number): Buffer {
    const b = Buffer.allocUnsafe(9 + v.length);
    b[0] = 0x00;
    b.writeBigUInt64BE(BigInt(exp), 1);
    b.set(v, 9);
    return this.#sealer ? this.#sealer.seal(b.subarray(1), rk) : b;
  }

  #decode(rk: string, raw: Buffer): Owned | 'expired' | 'unreadable' {
    // A TLS session or QUIC ticket is a few KiB at most (a certificate chain inside): a larger entry is no ticket
    // of ours (an unsealed store took a 64 MiB one and handed it to TLS).
    if (raw.length > MAX_ENTRY_BYTES) {
      this.#n.decryptFailures++;
      return 'unreadable';
    }
    const b = this.#sealer ? this.#sealer.open(raw, rk) : raw[0] === 0x00 ? raw.subarray(1) : null;
    if (b === null || b.length <= 8) {
      this.#n.decryptFailures++;
      if (!this.#toldDecrypt) {
        this.#toldDecrypt = true;
        this.link.warn(
          new OriginlinkError(
            ErrorCode.STORE_DECRYPT_FAILED,
            'local',
            `originlink: a shared session entry under ${rk} could not be ${this.#sealer ? 'decrypted (wrong key, tampered, or not encrypted)' : 'read (encrypted, and no key is configured)'}; ignoring such entries`,
          ),
        );
      }
      return 'unreadable';
    }
    const exp = Number(b.readBigUInt64BE(0));
    if (exp <= this.#now()) {
      this.#n.expired++;
      return 'expired';
    }
    return { v: new Uint8Array(b.subarray(8)), exp };
  }
}
