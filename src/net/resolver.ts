/**
 * Host names to addresses, with their TTLs. A and AAAA are asked of the
 * configured DNS servers (node:dns `Resolver`, `ttl: true`); the system
 * resolver (getaddrinfo: /etc/hosts, `localhost`) answers when no server is
 * configured, for `localhost` names, and when the servers know no such name.
 *
 * Bounded: at most `maxEntries` names (least recently used go first), one
 * query in flight per name. An answer is kept for its TTL clamped to
 * [minTtlMs, maxTtlMs]; when a refresh fails for any reason other than "no
 * such name", the expired answer is served for up to `serveStaleMs` more
 * (RFC 8767 §4), re-asking at most every `staleRecheckMs`.
 */
import { Resolver as DnsResolver, lookup as systemLookup } from 'node:dns/promises';
import { ErrorCode, OriginlinkError } from '../errors.js';
import { LruMap } from '../util/lru.js';
import { ipFamily } from '../util/ip.js';
import { quicSystemLookup } from '../quic/quiche.js';

/** A name resolver a caller may supply (the Agent's `lookup`): addresses for a host name, preferred first. */
export type LookupFn = (hostname: string) => Promise<string[]>;

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Where an answer came from. `stale`: an expired answer served because the refresh failed (RFC 8767). */
export type ResolutionSource = 'dns' | 'system' | 'literal' | 'custom' | 'stale';

export interface Resolution {
  name: string;
  /** DNS: AAAA answers first, then A, each in the server's order; system: getaddrinfo's order. */
  addresses: readonly ResolvedAddress[];
  source: ResolutionSource;
  /** Clamped TTL of this answer, ms. */
  ttlMs: number;
  /** `now()` after which the answer is refreshed. */
  expiresAt: number;
}

export interface ResolverOptions {
  /**
   * DNS servers, `ADDR` or `ADDR:PORT` (`[v6]:PORT`). Empty: the system
   * resolver only (getaddrinfo), whose answers carry no TTL and are kept
   * `systemTtlMs`. Default [].
   */
  servers: readonly string[];
  /** Shortest time an answer is kept, ms (a TTL of 0 would mean a query per connection). Default 1000. */
  minTtlMs: number;
  /** Longest time an answer is kept, whatever its TTL, ms. Default 300000. */
  maxTtlMs: number;
  /** How long a system-resolver (or custom lookup) answer is kept, ms. Default 30000. */
  systemTtlMs: number;
  /**
   * How long past its expiry an answer may still be served while refreshes fail, ms (RFC 8767 §4: bounded). 0 = never.
   * Default 600000.
   */
  serveStaleMs: number;
  /** While serving stale, ask again at most this often, ms (RFC 8767 §4 suggests 30 s). Default 30000. */
  staleRecheckMs: number;
  /** Per-query timeout of one try at the DNS servers, ms. Default 2000. */
  queryTimeoutMs: number;
  /** Tries per query. Default 2. */
  queryTries: number;
  /** Ask the system resolver when the servers say the name does not exist (hosts-file names). Default true. */
  systemFallback: boolean;
  /** Most names cached. Default 1024. */
  maxEntries: number;
  /** A custom source of addresses instead of DNS (the Agent's `lookup`); answers kept `systemTtlMs`. */
  lookup?: ((name: string) => Promise<string[]>) | undefined;
  /** Clock, ms (tests). Default Date.now. */
  now: () => number;
}

export const DEFAULT_RESOLVER_OPTIONS: Readonly<ResolverOptions> = Object.freeze({
  servers: [],
  minTtlMs: 1000,
  maxTtlMs: 300_000,
  systemTtlMs: 30_000,
  serveStaleMs: 600_000,
  staleRecheckMs: 30_000,
  queryTimeoutMs: 2000,
  queryTries: 2,
  systemFallback: true,
  maxEntries: 1024,
  now: Date.now,
});

/** Codes meaning "the servers answered: no such name / no such record", as opposed to "no answer". */
const NO_SUCH_NAME = new Set(['ENOTFOUND', 'ENODATA', 'NXDOMAIN']);

interface Entry {
  res: Resolution;
  /** Serve-stale limit: expiresAt of the last fresh answer + serveStaleMs. */
  staleUntil: number;
}

export interface ResolverStats {
  queries: number;
  cacheHits: number;
  staleServed: number;
  failures: number;
  systemAnswers: number;
  entries: number;
}

export class Resolver {
  readonly opts: Readonly<ResolverOptions>;
  #dns: DnsResolver | null;
  #cache: LruMap<string, Entry>;
  #inflight = new Map<string, Promise<Resolution>>();
  #stats = { queries: 0, cacheHits: 0, staleServed: 0, failures: 0, systemAnswers: 0 };

  constructor(opts: Partial<ResolverOptions> = {}) {
    const o = { ...DEFAULT_RESOLVER_OPTIONS, ...stripUndefined(opts) };
    for (const k of ['minTtlMs', 'maxTtlMs', 'systemTtlMs', 'serveStaleMs', 'staleRecheckMs'] as const) {
      if (!Number.isFinite(o[k]) || o[k] < 0) throw resolverConfigError(k, 'must be a non-negative number of ms');
    }
    if (o.minTtlMs > o.maxTtlMs) throw resolverConfigError('minTtlMs', `must be ≤ maxTtlMs (${o.maxTtlMs})`);
    if (!Number.isInteger(o.maxEntries) || o.maxEntries < 1)
      throw resolverConfigError('maxEntries', 'must be a positive integer');
    if (!Number.isInteger(o.queryTries) || o.queryTries < 1)
      throw resolverConfigError('queryTries', 'must be a positive integer');
    if (!(o.queryTimeoutMs > 0)) throw resolverConfigError('queryTimeoutMs', 'must be a positive number of ms');
    this.opts = Object.freeze({ ...o, servers: Object.freeze([...o.servers]) });
    this.#cache = new LruMap(o.maxEntries);
    if (o.servers.length > 0 && !o.lookup) {
      this.#dns = new DnsResolver({ timeout: o.queryTimeoutMs, tries: o.queryTries });
      try {
        this.#dns.setServers([...o.servers]);
      } catch (e) {
        throw resolverConfigError('servers', `${(e as Error).message} (want ADDR or ADDR:PORT)`);
      }
    } else {
      this.#dns = null;
    }
  }

  /** Addresses of `name`, from the cache while fresh. Rejects with OL_DNS_FAILED when there is none. */
  resolve(name: string): Promise<Resolution> {
    const host = name.startsWith('[') && name.endsWith(']') ? name.slice(1, -1) : name;
    const fam = ipFamily(host);
    const now = this.opts.now();
    if (fam !== 0)
      return Promise.resolve({
        name: host,
        addresses: [{ address: host, family: fam as 4 | 6 }],
        source: 'literal',
        ttlMs: Infinity,
        expiresAt: Infinity,
      });
    const key = host.toLowerCase();
    const e = this.#cache.get(key);
    if (e && now < e.res.expiresAt) {
      this.#stats.cacheHits++;
      return Promise.resolve(e.res);
    }
    let p = this.#inflight.get(key);
    if (!p) {
      p = this.#refresh(key).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, p);
    }
    return p;
  }

  /** A LookupFn view: addresses only, AAAA first. */
  readonly lookup = async (name: string): Promise<string[]> =>
    (await this.resolve(name)).addresses.map((a) => a.address);

  /** What is cached for `name` now, without asking (tests, probe output). */
  peek(name: string): Resolution | undefined {
    return this.#cache.peek(name.toLowerCase())?.res;
  }

  stats(): ResolverStats {
    return { ...this.#stats, entries: this.#cache.size };
  }

  async #refresh(key: string): Promise<Resolution> {
    const now = this.opts.now();
    let res: Resolution;
    try {
      res = await this.#ask(key, now);
    } catch (err) {
      this.#stats.failures++;
      const old = this.#cache.peek(key);
      const code = (err as { code?: string }).code ?? '';
      // RFC 8767 §4: serve stale only when the servers could not answer, never over a "no such name".
      if (old && !NO_SUCH_NAME.has(code) && now < old.staleUntil && old.res.addresses.length > 0) {
        this.#stats.staleServed++;
        const res2: Resolution = {
          ...old.res,
          source: 'stale',
          expiresAt: Math.min(old.staleUntil, now + this.opts.staleRecheckMs),
        };
        this.#cache.set(key, { res: res2, staleUntil: old.staleUntil });
        return res2;
      }
      if (NO_SUCH_NAME.has(code)) this.#cache.delete(key);
      throw new OriginlinkError(
        ErrorCode.DNS_FAILED,
        'network',
        `cannot resolve ${key}: ${code || (err as Error).message}`,
        { cause: err, retrySafe: true, details: { name: key, dnsCode: code } },
      );
    }
    this.#cache.set(key, { res, staleUntil: res.expiresAt + this.opts.serveStaleMs });
    return res;
  }

  async #ask(name: string, now: number): Promise<Resolution> {
    if (this.opts.lookup) {
      const list = await this.opts.lookup(name);
      const addresses = list
        .map((a) => ({ address: a, family: (ipFamily(a) === 6 ? 6 : 4) as 4 | 6 }))
        .filter((a) => ipFamily(a.address) !== 0);
      if (addresses.length === 0)
        throw Object.assign(new Error(`lookup returned no address for ${name}`), { code: 'ENOTFOUND' });
      return this.#answer(name, addresses, 'custom', this.opts.systemTtlMs, now);
    }
    // RFC 6761 §6.3: localhost names are loopback, answered locally, never sent to DNS servers.
    const local = name === 'localhost' || name.endsWith('.localhost');
    if (this.#dns && !local) {
      this.#stats.queries++;
      const [v6, v4] = await Promise.allSettled([
        this.#dns.resolve6(name, { ttl: true }),
        this.#dns.resolve4(name, { ttl: true }),
      ]);
      const addresses: ResolvedAddress[] = [];
      let ttlS = Infinity;
      for (const [r, family] of [
        [v6, 6],
        [v4, 4],
      ] as const) {
        if (r.status !== 'fulfilled') continue;
        for (const rec of r.value) {
          addresses.push({ address: rec.address, family });
          ttlS = Math.min(ttlS, rec.ttl);
        }
      }
      if (addresses.length > 0) return this.#answer(name, addresses, 'dns', ttlS * 1000, now);
      const codes = [v6, v4].map((r) =>
        r.status === 'rejected' ? ((r.reason as { code?: string }).code ?? 'EUNKNOWN') : 'ENODATA',
      );
      const noSuch = codes.every((c) => NO_SUCH_NAME.has(c));
      if (!noSuch || !this.opts.systemFallback) {
        const bad = codes.find((c) => !NO_SUCH_NAME.has(c)) ?? codes[0] ?? 'ENOTFOUND';
        throw Object.assign(new Error(`DNS ${bad} for ${name}`), { code: bad });
      }
    }
    const addresses = await systemAddresses(name);
    this.#stats.systemAnswers++;
    if (addresses.length === 0) throw Object.assign(new Error(`no address for ${name}`), { code: 'ENOTFOUND' });
    // getaddrinfo's order already follows RFC 6724 destination selection (RFC 8305 §4): kept.
    return this.#answer(name, addresses, 'system', this.opts.systemTtlMs, now);
  }

  #answer(
    name: string,
    addresses: ResolvedAddress[],
    source: ResolutionSource,
    ttlMs: number,
    now: number,
  ): Resolution {
    const clamped = Math.min(this.opts.maxTtlMs, Math.max(this.opts.minTtlMs, ttlMs));
    return { name, addresses, source, ttlMs: clamped, expiresAt: now + clamped };
  }
}

/**
 * getaddrinfo's answer for `name`, in its order. Through the QUIC binding when it is loaded (an HTTP/3 client's, whose
 * process may need nothing else of `node:net`): `node:dns`'s `lookup` first tests the name with `net.isIP`, and V8
 * compiles that IPv6 regular expression at its first use, several milliseconds of a fresh process's first request
 * (bench/RESULTS.md, startup). The binding asks getaddrinfo as `node:dns` does; a name with other than the characters
 * of a host name goes to `node:dns`, which converts it (IDNA) first.
 */
async function systemAddresses(name: string): Promise<ResolvedAddress[]> {
  const native = quicSystemLookup();
  if (native !== null && HOST_NAME.test(name)) {
    const r = await native(name);
    if (typeof r === 'string') throw Object.assign(new Error(`getaddrinfo ${r} ${name}`), { code: r });
    return r.map((address) => ({ address, family: ipFamily(address) === 6 ? 6 : 4 }));
  }
  const all = await systemLookup(name, { all: true, verbatim: true });
  return all.map((a) => ({ address: a.address, family: (a.family === 6 ? 6 : 4) as 4 | 6 }));
}

/** The characters of a host name (RFC 1123 §2.1 letters, digits, hyphens and dots; underscores as DNS allows). */
const HOST_NAME = /^[A-Za-z0-9._-]+$/;

let shared: Resolver | null = null;
/**
 * The resolver of a dial or lookup that names none (a module user's own `connectH3`, a connector called
 * directly): one per process, system resolver, cached by the same rules. Every name in originlink is
 * resolved by a Resolver; none reaches a socket's own lookup.
 */
export function defaultResolver(): Resolver {
  shared ??= new Resolver();
  return shared;
}

function resolverConfigError(field: string, reason: string): OriginlinkError {
  return new OriginlinkError(ErrorCode.INVALID_CONFIG, 'local', `dns.${field}: ${reason}`, {
    details: { field: `dns.${field}`, reason },
  });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
