/**
 * Stores named by a string, the same way everywhere (CLI flags, the service's
 * `stores:` section, the module API): `redis://…` / `rediss://…` is the
 * fleet store in Redis, anything else is a file path. A session store and an
 * origin cache on the same Redis URL share one connection.
 */
import type { OriginCache } from './origin-cache.js';
import { FileOriginCache } from './origin-cache.js';
import { RedisOriginCache } from './redis-origin-cache.js';
import { FileSessionStore } from './file-session-store.js';
import { isRedisUrl, RedisLink, type RedisLinkOptions, type RedisLinkStats } from './redis-link.js';
import { RedisSessionStore } from './redis-session-store.js';
import type { SessionStore } from './session-store.js';
import { holdUntil } from '../util/hold.js';

export interface StoresOptions {
  /** Where TLS sessions and QUIC tickets go: a file path or a Redis URL. */
  sessionStore?: string;
  /** Where per-origin protocol facts go: a file path or a Redis URL. */
  originCache?: string;
  /** Redis only: key prefix, credentials, TLS, timings (see RedisLinkOptions); the URL comes from the fields above. */
  redis?: Omit<RedisLinkOptions, 'url'>;
  /** Redis only: AES-256-GCM key for tickets at rest (32 bytes). Default: the URL's `keyFile`, else none. */
  encryptionKey?: Uint8Array;
  /** Local tier bound for each store. Default 1024. */
  maxEntries?: number;
}

export interface Stores {
  sessionStore?: SessionStore;
  originCache?: OriginCache;
  /** Wait (at most `timeoutMs`) for Redis and warm the local tiers from it; resolves at once for files. */
  ready(timeoutMs?: number): Promise<void>;
  /** Give owned tickets back to the fleet, send queued writes, disconnect. */
  close(): Promise<void>;
  /** Each Redis connection (URL without credentials, the stores on it) and its counters; none for files. */
  links(): StoreLinkStats[];
}

export interface StoreLinkStats extends RedisLinkStats {
  /** `redis://host:port/db`, never the password. */
  url: string;
  /** Which stores use the connection: `sessions`, `origins` or both (`sessions+origins`). */
  stores: string;
}

export function openStores(o: StoresOptions): Stores {
  const links = new Map<string, { link: RedisLink; stores: string[] }>();
  const link = (url: string, store: string): RedisLink => {
    let l = links.get(url);
    if (!l) {
      l = { link: new RedisLink({ ...o.redis, url }), stores: [] };
      links.set(url, l);
    }
    l.stores.push(store);
    return l.link;
  };
  const max = o.maxEntries ?? 1024;
  const out: Stores = {
    ready: async (timeoutMs = 500) => {
      await Promise.all([
        out.sessionStore instanceof RedisSessionStore ? out.sessionStore.ready(timeoutMs) : null,
        out.originCache instanceof RedisOriginCache ? out.originCache.ready(timeoutMs) : null,
      ]);
    },
    close: () =>
      holdUntil(
        (async () => {
          // Tickets first: returning them queues writes on the link that closes after.
          if (out.sessionStore instanceof RedisSessionStore) await out.sessionStore.close();
          if (out.originCache instanceof RedisOriginCache) await out.originCache.close();
          await Promise.all([...links.values()].map((l) => l.link.close()));
          // File stores: what waits for the next write goes now.
          for (const store of [out.sessionStore, out.originCache])
            (store as { flush?: () => void } | undefined)?.flush?.();
        })(),
      ),
    links: () =>
      [...links.values()].map((l) => ({ ...l.link.stats(), url: l.link.display, stores: l.stores.join('+') })),
  };
  try {
    if (o.sessionStore) {
      out.sessionStore = isRedisUrl(o.sessionStore)
        ? new RedisSessionStore({
            link: link(o.sessionStore, 'sessions'),
            maxEntries: max,
            ...(o.encryptionKey ? { encryptionKey: o.encryptionKey } : {}),
          })
        : new FileSessionStore(o.sessionStore, { maxEntries: max });
    }
    if (o.originCache) {
      out.originCache = isRedisUrl(o.originCache)
        ? new RedisOriginCache({ link: link(o.originCache, 'origins'), maxEntries: max })
        : new FileOriginCache(o.originCache, { maxEntries: max });
    }
  } catch (e) {
    // A store that cannot be made (its keyFile missing or of the wrong size): the connections opened for it go
    // too, or they held the process for ever after the error (a fetch that never exited).
    for (const l of links.values()) void l.link.close();
    throw e;
  }
  return out;
}
