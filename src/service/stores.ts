/**
 * The service's `stores:`, opened once and shared by every Upstream that
 * names them (reference counted: the last Upstream to close closes them, so a
 * reload that keeps the same `stores:` keeps the same connections and local
 * tiers). Opening warms from Redis in the background: the service never
 * waits on Redis to serve.
 */
import { createHash } from 'node:crypto';
import { openStores, type Stores } from '../store/open-stores.js';
import type { OriginlinkError } from '../errors.js';
import { isRedisUrl, RedisLink } from '../store/redis-link.js';
import { workerSlot } from './worker-slot.js';
import type { StoresConfig } from './config.js';

const held = new Map<string, { stores: Stores; refs: number }>();

/** A stable identity for a `stores:` section (the encryption key only as a digest). */
export function storesFingerprint(c: StoresConfig): string {
  const digest = (b: Buffer | null): string | null => (b ? createHash('sha256').update(b).digest('hex') : null);
  return JSON.stringify({ ...c, encryptionKey: digest(c.encryptionKey), tls: { ...c.tls, ca: digest(c.tls.ca) } });
}

/**
 * A file store's path for this process: `<file>.<slot>` in a worker (docs/workers.md). Workers that shared one file
 * each rewrote it from their own memory: a ticket one had used came back in the file and another used it again
 * (RFC 8446 §C.4: single use). A slot keeps its file across restarts; Redis is for sharing.
 */
function perWorker(store: string): string {
  const slot = workerSlot();
  return slot === null || isRedisUrl(store) ? store : `${store}.${slot}`;
}

/** The Redis URL of a `stores:` section (its sessions' or its origins'), or null when both are local. */
export function storesRedisUrl(c: StoresConfig | null | undefined): string | null {
  return [c?.sessions, c?.origins].find((u): u is string => typeof u === 'string' && isRedisUrl(u)) ?? null;
}

/**
 * A link of its own to the Redis of `c` (its prefix and TLS), for the fleet's shared state beside the stores (the
 * ticket secret, the members' registry, the record of 0-RTT handshakes); null when `c` names no Redis.
 */
export function storesRedisLink(
  c: StoresConfig | null | undefined,
  onWarning: (e: OriginlinkError) => void,
): RedisLink | null {
  const url = storesRedisUrl(c);
  if (!c || url === null) return null;
  return new RedisLink({
    url,
    prefix: c.prefix,
    tls: { rejectUnauthorized: c.tls.verify, ...(c.tls.ca ? { ca: c.tls.ca } : {}) },
    onWarning,
  });
}

export function acquireStores(c: StoresConfig): { stores: Stores; release(): void } {
  const id = storesFingerprint(c);
  let h = held.get(id);
  if (!h) {
    const tls = { rejectUnauthorized: c.tls.verify, ...(c.tls.ca ? { ca: c.tls.ca } : {}) };
    const stores = openStores({
      ...(c.sessions ? { sessionStore: perWorker(c.sessions) } : {}),
      ...(c.origins ? { originCache: perWorker(c.origins) } : {}),
      redis: { prefix: c.prefix, tls },
      ...(c.encryptionKey ? { encryptionKey: c.encryptionKey } : {}),
      maxEntries: c.maxEntries,
    });
    void stores.ready(2000);
    h = { stores, refs: 0 };
    held.set(id, h);
  }
  h.refs++;
  const entry = h;
  let released = false;
  return {
    stores: entry.stores,
    release: () => {
      if (released) return;
      released = true;
      if (--entry.refs > 0) return;
      held.delete(id);
      void entry.stores.close();
    },
  };
}
