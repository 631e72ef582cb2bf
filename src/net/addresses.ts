/**
 * Every address of an origin: which one the next connection should try.
 *
 * - New connections spread over the addresses the resolver gives now, fewest
 *   open connections first (DNS order breaks ties), families interleaved for
 *   Happy Eyeballs (RFC 8305 §4).
 * - A failed attempt marks its address down for a backoff (base doubling to
 *   max, reset by a success); down addresses are tried last, only when no
 *   other is left.
 * - An address gone from DNS is simply not offered again: its connections
 *   live on until the pool retires them (idle timeout, max age), so a record
 *   change never drains a pool at once.
 *
 * Bounded: at most `maxOrigins` origins (LRU), and per origin only addresses
 * the resolver returned recently or that still have connections.
 */
import type { ConnEvent } from '../http/types.js';
import { LruMap } from '../util/lru.js';
import { interleaveFamilies } from './happy-eyeballs.js';
import type { Resolution, ResolvedAddress, Resolver } from './resolver.js';

/** Addresses of one family a dial considers from one answer (see order). */
const MAX_PER_FAMILY = 8;

export interface AddressBookOptions {
  /** First down time after a failed attempt, ms; doubled per further failure. Default 1000. */
  downBaseMs: number;
  /** Cap on the down time, ms. Default 60000. */
  downMaxMs: number;
  /** Most origins tracked. Default 1024. */
  maxOrigins: number;
  /** Clock, ms. Default performance.now. */
  now: () => number;
}

interface AddrState {
  address: ResolvedAddress;
  connections: number;
  /** Attempts in flight: counted like connections, so a burst of dials spreads too. */
  dialing: number;
  failures: number;
  downUntil: number;
}

interface OriginState {
  byAddress: Map<string, AddrState>;
}

/** One address as the book sees it (probe output, tests). */
export interface AddressReport {
  address: string;
  family: 4 | 6;
  connections: number;
  dialing: number;
  /** In the resolver's latest answer. */
  current: boolean;
  downForMs: number;
}

export class AddressBook {
  readonly resolver: Resolver;
  readonly opts: Readonly<AddressBookOptions>;
  #origins: LruMap<string, OriginState>;
  #udp: AddressBook | null = null;

  constructor(resolver: Resolver, opts: Partial<AddressBookOptions> = {}) {
    this.resolver = resolver;
    this.opts = Object.freeze({
      downBaseMs: 1000,
      downMaxMs: 60_000,
      maxOrigins: 1024,
      now: () => performance.now(),
      ...opts,
    });
    this.#origins = new LruMap(this.opts.maxOrigins);
  }

  /**
   * The book for QUIC dials: the same resolver and options, its own counts and
   * down marks — UDP blocked to an address says nothing about TCP to it.
   */
  get udp(): AddressBook {
    this.#udp ??= new AddressBook(this.resolver, this.opts);
    return this.#udp;
  }

  /** The addresses to try for a new connection, best first (resolve, then order). */
  async plan(host: string, port: number): Promise<ResolvedAddress[]> {
    return this.order(host, port, await this.resolver.resolve(host));
  }

  /**
   * Order a resolution's addresses for a new connection. Synchronous, so a
   * caller that starts its first attempt (`attempt()`) in the same turn is
   * counted before the next dial orders: concurrent dials spread.
   */
  order(host: string, port: number, resolution: Resolution): ResolvedAddress[] {
    const st = this.#state(host, port);
    const now = this.opts.now();
    const seen = new Set<string>();
    const up: Array<{ s: AddrState; i: number }> = [];
    const down: AddrState[] = [];
    // RFC 8305 §4 leaves the count open; an answer of 2,000 addresses made one dial try all 2,000 (and an error
    // message of 96 KB). The first MAX_PER_FAMILY of each family, in DNS order, are enough to find one that works.
    let v4 = 0;
    let v6 = 0;
    const usable = resolution.addresses.filter((a) => (a.family === 4 ? ++v4 : ++v6) <= MAX_PER_FAMILY);
    usable.forEach((a, i) => {
      seen.add(a.address);
      let s = st.byAddress.get(a.address);
      if (!s) {
        s = fresh(a);
        st.byAddress.set(a.address, s);
      }
      if (s.downUntil > now) down.push(s);
      else up.push({ s, i });
    });
    // Forget addresses that left DNS and hold no connection (the map stays as small as the answer).
    for (const [k, s] of st.byAddress)
      if (!seen.has(k) && s.connections === 0 && s.dialing === 0) st.byAddress.delete(k);
    up.sort((x, y) => x.s.connections + x.s.dialing - (y.s.connections + y.s.dialing) || x.i - y.i);
    down.sort((x, y) => x.downUntil - y.downUntil);
    return [...interleaveFamilies(up.map((x) => x.s.address)), ...down.map((s) => s.address)];
  }

  /** An attempt to `address` starts; call the returned function once when it ends (either way). */
  attempt(host: string, port: number, address: ResolvedAddress): () => void {
    const s = this.#addr(host, port, address);
    s.dialing++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      s.dialing--;
    };
  }

  /** An attempt to `address` failed: down for base·2^(failures−1), capped. */
  failed(host: string, port: number, address: ResolvedAddress): void {
    const s = this.#addr(host, port, address);
    s.failures++;
    s.downUntil = this.opts.now() + Math.min(this.opts.downMaxMs, this.opts.downBaseMs * 2 ** (s.failures - 1));
  }

  /** A connection to `address` is open; counted until its close event. */
  opened(host: string, port: number, address: ResolvedAddress, conn: { on(l: (ev: ConnEvent) => void): void }): void {
    const s = this.#addr(host, port, address);
    s.connections++;
    s.failures = 0;
    s.downUntil = 0;
    const counted = s;
    let closed = false;
    conn.on((ev) => {
      if (ev.type !== 'close' || closed) return;
      closed = true;
      counted.connections--;
    });
  }

  /** Marked down after a failure and not yet due again. */
  isDown(host: string, port: number, address: ResolvedAddress): boolean {
    const s = this.#origins.peek(`${host}:${port}`)?.byAddress.get(address.address);
    return s !== undefined && s.downUntil > this.opts.now();
  }

  report(host: string, port: number): AddressReport[] {
    const st = this.#origins.peek(`${host}:${port}`);
    if (!st) return [];
    const now = this.opts.now();
    const current = new Set(this.resolver.peek(host)?.addresses.map((a) => a.address) ?? []);
    return [...st.byAddress.values()].map((s) => ({
      address: s.address.address,
      family: s.address.family,
      connections: s.connections,
      dialing: s.dialing,
      current: current.has(s.address.address),
      downForMs: Math.max(0, s.downUntil - now),
    }));
  }

  #state(host: string, port: number): OriginState {
    return this.#origins.upsert(`${host}:${port}`, () => ({ byAddress: new Map() }));
  }

  #addr(host: string, port: number, address: ResolvedAddress): AddrState {
    const st = this.#state(host, port);
    let s = st.byAddress.get(address.address);
    if (!s) {
      s = fresh(address);
      st.byAddress.set(address.address, s);
    }
    return s;
  }
}

function fresh(address: ResolvedAddress): AddrState {
  return { address, connections: 0, dialing: 0, failures: 0, downUntil: 0 };
}
