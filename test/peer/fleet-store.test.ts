/**
 * The Redis fleet stores against a real redis-server (Debian), in one
 * process: single-use tickets across instances, encryption at rest, the
 * bounded local tier, batched writes, origin facts fetched in the background
 * and broken-h3 marks by pub/sub, and Redis being down.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Redis } from 'ioredis';
import { RedisSessionStore } from '../../src/store/redis-session-store.js';
import { RedisOriginCache } from '../../src/store/redis-origin-cache.js';
import { sessionExpiresAt } from '../../src/store/ticket-lifetime.js';
import { emptyFacts } from '../../src/probe/state.js';
import type { OriginlinkError } from '../../src/errors.js';
import { startRedis, type RedisPeer } from '../helpers/redis.js';
import { CLOSED_PORT } from '../helpers/ports.js';

let redis: RedisPeer;
let raw: Redis;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const prefix = (): string => `t${randomBytes(4).toString('hex')}:`;
/** Poll `cond` every 5 ms for at most `ms`. */
async function within(ms: number, cond: () => boolean): Promise<number> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`not within ${ms} ms`);
    await sleep(5);
  }
  return Date.now() - t0;
}

beforeAll(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url);
}, 20_000);

afterAll(async () => {
  raw?.disconnect();
  await redis?.stop();
});

describe('RedisSessionStore', () => {
  it('keeps the first ticket of a key local, shares the rest; each shared ticket is claimed by exactly one process', async () => {
    const p = prefix();
    const a = new RedisSessionStore({ url: redis.url, prefix: p });
    const stores = Array.from({ length: 4 }, () => new RedisSessionStore({ url: redis.url, prefix: p }));
    try {
      await a.ready();
      for (let i = 0; i < 5; i++) a.put('k', Uint8Array.of(i + 1));
      await within(1000, () => a.stats().redis.writes >= 4);
      expect(await raw.llen(`${p}s:k`)).toBe(4); // 1 kept locally, 4 shared
      // Four fresh processes warm at once: RPOP hands each ticket to one of them.
      await Promise.all(stores.map((s) => s.ready()));
      const got = stores
        .map((s) => s.take('k'))
        .filter((v) => v !== undefined)
        .map((v) => v![0]);
      expect(got.sort()).toEqual([2, 3, 4, 5]);
      expect(await raw.exists(`${p}s:k`)).toBe(0);
      expect(a.take('k')![0]).toBe(1);
      expect(a.take('k')).toBeUndefined(); // a miss goes cold at once
    } finally {
      await Promise.all([a, ...stores].map((s) => s.close()));
    }
  });

  it('a local miss claims in the background, after the take: the next dial has a ticket', async () => {
    const p = prefix();
    const a = new RedisSessionStore({ url: redis.url, prefix: p });
    const b = new RedisSessionStore({ url: redis.url, prefix: p });
    try {
      await Promise.all([a.ready(), b.ready()]);
      a.put('k', Uint8Array.of(1));
      a.put('k', Uint8Array.of(2));
      await within(1000, () => a.stats().redis.batches >= 1);
      await sleep(20);
      const reads = b.stats().redis.reads;
      expect(b.take('k')).toBeUndefined();
      expect(b.take('k')).toBeUndefined(); // a second miss in the same turn: still one claim
      // Nothing sent inside the take, nor at this turn's check phase, where a dial's first flight leaves: the claim
      // waits for the next timer tick.
      expect(b.stats().redis.reads).toBe(reads);
      await new Promise((r) => setImmediate(r));
      expect(b.stats().redis.reads).toBe(reads);
      await within(1000, () => b.size === 1);
      expect(b.stats().redis.reads).toBe(reads + 1);
      expect(b.take('k')![0]).toBe(2);
      expect(b.stats().claimed).toBe(1);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('an entry larger than any ticket (64 MiB written by whoever can write to Redis) is not taken', async () => {
    const p = prefix();
    const b = new RedisSessionStore({ url: redis.url, prefix: p });
    try {
      await b.ready();
      const huge = Buffer.alloc(64 << 20);
      huge[0] = 0x00; // an unsealed entry: 0x00, expiry, then "the session"
      huge.writeBigUInt64BE(BigInt(Date.now() + 3_600_000), 1);
      await raw.rpush(`${p}s:k`, huge);
      expect(b.take('k')).toBeUndefined(); // a miss: claims in the background
      await within(2000, () => b.stats().decryptFailures === 1);
      expect(b.size).toBe(0);
    } finally {
      await b.close();
    }
  });

  it('close() gives owned tickets back to the fleet; TTL follows the session lifetime', async () => {
    const p = prefix();
    const a = new RedisSessionStore({ url: redis.url, prefix: p, fallbackTtlMs: 30_000 });
    await a.ready();
    a.put('k', Uint8Array.of(7));
    await a.close();
    expect(await raw.llen(`${p}s:k`)).toBe(1);
    const ttl = await raw.pttl(`${p}s:k`);
    expect(ttl).toBeGreaterThan(25_000);
    expect(ttl).toBeLessThanOrEqual(30_000);
    const b = new RedisSessionStore({ url: redis.url, prefix: p });
    try {
      await b.ready();
      expect(b.take('k')![0]).toBe(7);
    } finally {
      await b.close();
    }
  });

  it('encryption at rest: AES-256-GCM entries; a wrong key or no key ignores them with one typed warning, never a throw', async () => {
    const p = prefix();
    const key = randomBytes(32);
    const secret = Buffer.from('a-very-secret-session-ticket');
    const warnings: OriginlinkError[] = [];
    const a = new RedisSessionStore({ url: redis.url, prefix: p, encryptionKey: key });
    await a.ready();
    a.put('k', secret);
    a.put('k', secret);
    a.put('k', secret);
    await a.close(); // 3 entries shared
    const stored = await raw.lrangeBuffer(`${p}s:k`, 0, -1);
    expect(stored.length).toBe(3);
    for (const e of stored) expect(e.includes(secret)).toBe(false);

    const wrong = new RedisSessionStore({
      url: redis.url,
      prefix: p,
      encryptionKey: randomBytes(32),
      onWarning: (e) => warnings.push(e),
    });
    await wrong.ready();
    expect(wrong.take('k')).toBeUndefined();
    await within(1000, () => wrong.stats().decryptFailures >= 2);
    await wrong.close();
    expect(warnings.map((w) => w.code)).toEqual(['OL_STORE_DECRYPT_FAILED']);
    // A store that cannot read them does not destroy them: they are pushed back for the right key.
    expect(await raw.llen(`${p}s:k`)).toBe(3);
    const plainReader = new RedisSessionStore({
      url: redis.url,
      prefix: p,
      onWarning: (e) => warnings.push(e),
      warmKeys: 0,
    });
    const right = new RedisSessionStore({ url: redis.url, prefix: p, encryptionKey: key });
    try {
      await right.ready();
      expect(Buffer.from(right.take('k')!).equals(secret)).toBe(true);
      // An encrypted entry met by a store without the key is ignored too.
      const c = new RedisSessionStore({ url: redis.url, prefix: p, encryptionKey: key });
      await c.ready();
      c.put('j', secret);
      c.put('j', secret);
      await c.close();
      await plainReader.ready();
      expect(plainReader.take('j')).toBeUndefined();
      await within(1000, () => plainReader.stats().decryptFailures >= 1);
      expect(warnings.length).toBe(2);
      expect(warnings[1]!.code).toBe('OL_STORE_DECRYPT_FAILED');
    } finally {
      await right.close();
      await plainReader.close();
    }
  });

  it('bounds the local tier (least recently used keys go) and batches writes into few pipelines', async () => {
    const p = prefix();
    const a = new RedisSessionStore({ url: redis.url, prefix: p, maxEntries: 3 });
    try {
      await a.ready();
      for (let i = 0; i < 10; i++) a.put(`k${i}`, Uint8Array.of(i));
      expect(a.size).toBe(3);
      expect(a.get('k9')).toBeDefined();
      expect(a.get('k0')).toBeUndefined();
      for (let i = 0; i < 200; i++) a.put('hot', Uint8Array.of(i)); // 1 kept, 199 shared
      await within(1000, () => a.stats().shared === 199 && a.stats().redis.writes >= 199 * 6);
      const s = a.stats().redis;
      expect(s.batches).toBeLessThanOrEqual(3);
      expect(await raw.llen(`${p}s:hot`)).toBe(4);
    } finally {
      await a.close();
    }
  });

  it('a Redis that stalls with its connection open (SIGSTOP): down after commandTimeoutMs, writes dropped, not queued without bound; back when it resumes', async () => {
    const own = await startRedis();
    const warnings: OriginlinkError[] = [];
    const a = new RedisSessionStore({
      url: own.url,
      prefix: prefix(),
      commandTimeoutMs: 200,
      onWarning: (e) => warnings.push(e),
      backoffMs: 20,
      backoffMaxMs: 100,
    });
    const pid = own.pid() as number;
    try {
      expect(await a.ready(2000)).toBe(true);
      process.kill(pid, 'SIGSTOP');
      // 2,000 tickets a second for a second into a Redis that answers nothing.
      for (let t = 0; t < 20; t++) {
        for (let i = 0; i < 100; i++) a.put(`k${i}`, randomBytes(64));
        await sleep(50);
      }
      const s = a.stats().redis;
      expect(s.up).toBe(false);
      expect(warnings.some((w) => w.code === 'OL_STORE_UNAVAILABLE')).toBe(true);
      // One pipeline out at a time and the queue bounded: before, a new pipeline every 2 ms, 115,800 commands in 10 s.
      expect(s.writes).toBeLessThan(2000 * 6);
      expect(s.droppedWrites).toBeGreaterThan(0);
      process.kill(pid, 'SIGCONT');
      await within(3000, () => a.stats().redis.up);
    } finally {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        /* gone */
      }
      await a.close();
      await own.stop();
    }
  });

  it('a database the server does not have (/50 of 16): the link stays down, nothing is written to database 0', async () => {
    const p = prefix();
    const warnings: OriginlinkError[] = [];
    const a = new RedisSessionStore({
      url: `${redis.url.replace(/\/0$/, '')}/50`,
      prefix: p,
      onWarning: (e) => warnings.push(e),
    });
    try {
      expect(await a.ready(500)).toBe(false);
      for (let i = 0; i < 5; i++) a.put(`k${i}`, Uint8Array.of(i));
      await sleep(300);
      expect(a.stats().redis.up).toBe(false);
      expect(warnings.map((w) => w.message)).toEqual([expect.stringMatching(/DB index is out of range/)]);
      expect(await raw.keys(`${p}*`)).toEqual([]); // before: written to database 0, beside another fleet's
    } finally {
      await a.close();
    }
  });

  it('closed while its Redis never answered (a blackhole): nothing of it is left holding the process', async () => {
    const hole = net.createServer(() => {}); // accepts, never speaks
    await new Promise<void>((r) => hole.listen(0, '127.0.0.1', r));
    const timers = (): number => process.getActiveResourcesInfo().filter((t) => t === 'Timeout').length;
    const before = timers();
    const a = new RedisSessionStore({ url: `redis://127.0.0.1:${(hole.address() as net.AddressInfo).port}/0` });
    try {
      expect(await a.ready(200)).toBe(false);
      await a.close();
      await sleep(400);
      // ioredis waited 2 s (its disconnectTimeout) for the socket to close after its end, a timer holding the process.
      expect(timers()).toBeLessThanOrEqual(before);
    } finally {
      hole.close();
    }
  });

  it('Redis unreachable: the local tier works, one warning, an outage counted, nothing throws', async () => {
    const port = CLOSED_PORT;
    const warnings: OriginlinkError[] = [];
    const a = new RedisSessionStore({
      url: `redis://127.0.0.1:${port}/0`,
      onWarning: (e) => warnings.push(e),
      backoffMs: 20,
      backoffMaxMs: 50,
    });
    try {
      expect(await a.ready(200)).toBe(false);
      for (let i = 0; i < 50; i++) a.put(`k${i % 3}`, Uint8Array.of(i));
      expect(a.take('k0')).toBeDefined();
      await sleep(300); // several reconnect attempts
      expect(warnings.length).toBe(1);
      expect(warnings[0]!.code).toBe('OL_STORE_UNAVAILABLE');
      expect(a.stats().redis).toMatchObject({ up: false, outages: 1 });
      expect(a.stats().redis.droppedWrites).toBeGreaterThan(0);
    } finally {
      await a.close();
    }
  });

  it('reads a session lifetime from the DER inside (OpenSSL and quiche shapes), else the fallback, capped at a week', () => {
    // SEQUENCE { INTEGER 1, [1] { INTEGER time }, [2] { INTEGER timeout } }
    const der = (time: number, timeout: number): Buffer => {
      const int = (v: number): Buffer => {
        const b = Buffer.alloc(4);
        b.writeUInt32BE(v);
        return Buffer.concat([Buffer.of(0x02, 5, 0), b]);
      };
      const t = int(time);
      const to = int(timeout);
      const body = Buffer.concat([Buffer.of(0x02, 1, 1), Buffer.of(0xa1, t.length), t, Buffer.of(0xa2, to.length), to]);
      return Buffer.concat([Buffer.of(0x30, body.length), body]);
    };
    const now = 1_700_000_000_000;
    expect(sessionExpiresAt(der(1_700_000_000, 300), now, 1)).toBe(now + 300_000);
    const q = der(1_700_000_000, 7200);
    const len = Buffer.alloc(8);
    len.writeBigUInt64BE(BigInt(q.length));
    expect(sessionExpiresAt(Buffer.concat([len, q, Buffer.alloc(8), Buffer.of(1, 2)]), now, 1)).toBe(now + 7_200_000);
    expect(sessionExpiresAt(Buffer.of(1, 2, 3), now, 5000)).toBe(now + 5000);
    expect(sessionExpiresAt(der(1_700_000_000, 30 * 86_400), now, 1)).toBe(now + 7 * 86_400_000);
  });
});

describe('RedisOriginCache', () => {
  it('a miss answers at once and fetches in the background; the answer serves the next get', async () => {
    const p = prefix();
    const a = new RedisOriginCache({ url: redis.url, prefix: p });
    const b = new RedisOriginCache({ url: redis.url, prefix: p });
    try {
      await Promise.all([a.ready(), b.ready()]);
      const now = Date.now();
      a.put('https://o:443', {
        ...emptyFacts(now),
        h3: { host: '', port: 443, expiresAt: now + 60_000, source: 'alt-svc' },
      });
      await within(1000, () => a.stats().redis.batches >= 1);
      await sleep(10);
      const g0 = b.generation;
      expect(b.get('https://o:443')).toBeUndefined();
      await within(1000, () => b.generation > g0);
      expect(b.get('https://o:443')?.h3?.port).toBe(443);
      const ttl = await raw.pttl(`${p}o:https://o:443`);
      expect(ttl).toBeGreaterThan(7 * 86_400_000 - 5000); // plain facts keep a week (factsExpireAt)
      // A fresh instance warms from the index.
      const c = new RedisOriginCache({ url: redis.url, prefix: p });
      await c.ready();
      expect(c.get('https://o:443')?.h3?.port).toBe(443);
      await c.close();
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a value far larger than any facts (64 MiB written by whoever can write to Redis) is not read as facts', async () => {
    const p = prefix();
    const now = Date.now();
    const facts = { ...emptyFacts(now), h3: { host: '', port: 443, expiresAt: now + 60_000, source: 'alt-svc' } };
    // Valid JSON, padded: it was parsed on the event loop and kept in the local tier.
    await raw.set(`${p}o:https://big:443`, JSON.stringify({ ...facts, pad: 'x'.repeat(64 << 20) }));
    await raw.zadd(`${p}o:index`, now, 'https://big:443');
    const b = new RedisOriginCache({ url: redis.url, prefix: p });
    try {
      await b.ready();
      const g0 = b.generation;
      expect(b.get('https://big:443')).toBeUndefined();
      await sleep(300);
      expect(b.get('https://big:443')).toBeUndefined();
      expect(b.generation).toBe(g0);
    } finally {
      await b.close();
    }
  });

  it('a broken-h3 mark reaches another instance by pub/sub well within a second', async () => {
    const p = prefix();
    const a = new RedisOriginCache({ url: redis.url, prefix: p });
    const b = new RedisOriginCache({ url: redis.url, prefix: p });
    try {
      await Promise.all([a.ready(), b.ready()]);
      await sleep(50); // subscriptions in place
      const now = Date.now();
      a.put('https://x:443', { ...emptyFacts(now), brokenUntil: now + 60_000, brokenCount: 1 });
      const ms = await within(1000, () => (b.get('https://x:443')?.brokenUntil ?? 0) > Date.now());
      expect(ms).toBeLessThan(1000);
      expect(b.stats().received).toBe(1);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
