/**
 * One Redis connection shared by the fleet stores (RedisSessionStore,
 * RedisOriginCache): URL parsing, health, batched writes, bounded reads.
 *
 * Invariants:
 * - Nothing here ever makes a request wait: reads are only started in the
 *   background by the stores, and a command issued while Redis is down fails
 *   at once (no offline queue) instead of waiting for a reconnect.
 * - Writes are queued and sent as one pipeline per flush window
 *   (`flushMs`); the queue is bounded (`maxQueue`), and writes are dropped
 *   (counted) while Redis is down: the local tier keeps working.
 * - Redis going down is told once per outage (one warning, `outages` +1);
 *   ioredis reconnects with our backoff (doubling, jittered, capped).
 * - The subscriber connection (pub/sub) exists only once a store subscribes.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { ChainableCommander, Cluster, Redis, RedisOptions } from 'ioredis';
import { keySlot } from './key-slot.js';
import { ErrorCode, OriginlinkError } from '../errors.js';
import { redact } from '../util/redact.js';
import { holdUntil } from '../util/hold.js';

export interface RedisLinkOptions {
  /**
   * `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS). Query
   * parameters: `prefix` (key prefix), `ca` (PEM file for rediss),
   * `keyFile` (a file holding the 32-byte encryption key for tickets, hex or base64).
   */
  url: string;
  /** Prefix of every key and channel. Default `originlink:` (or the URL's `prefix`). */
  prefix?: string;
  /** Overrides the URL's user / password. */
  username?: string;
  password?: string;
  /** rediss:// only: trust these CAs (PEM); verification stays on unless `rejectUnauthorized: false`. */
  tls?: { ca?: string | Buffer; rejectUnauthorized?: boolean; servername?: string };
  /** Connect timeout per attempt, ms. Default 1000. */
  connectTimeoutMs?: number;
  /** Batch window for writes, ms. Default 2. */
  flushMs?: number;
  /** Most writes waiting for a flush; more are dropped and counted. Default 10000. */
  maxQueue?: number;
  /**
   * A command (or a pipeline of writes) unanswered this long fails, and the connection is taken as down and
   * reconnected, ms. Default 1000. A Redis that stalls with its connection open (SIGSTOP, a full disk, a
   * blocked event loop) held every command, and a new pipeline went out every flushMs behind them: memory grew
   * without bound (115,800 commands queued in 10 s).
   */
  commandTimeoutMs?: number;
  /** Reconnect backoff: first delay and cap, ms. Default 100 and 5000. */
  backoffMs?: number;
  backoffMaxMs?: number;
  /** Where the one warning per outage (and decryption failures) go. Default `process.emitWarning`. */
  onWarning?: (err: OriginlinkError) => void;
}

export interface RedisLinkStats {
  /** Connected and ready now. */
  up: boolean;
  /** Times Redis went away (each told by one warning). */
  outages: number;
  /** Commands sent in pipelines, and the pipelines. */
  writes: number;
  batches: number;
  /** Writes dropped: Redis down, queue full, or a failed pipeline. */
  droppedWrites: number;
  /** Background reads started, and those that failed or found Redis down. */
  reads: number;
  failedReads: number;
  /** Pub/sub messages received from other processes. */
  messages: number;
}

type Op = (p: ChainableCommander) => void;

/**
 * ioredis, loaded when the first link is made: tens of ms of a process's start that an Agent without a Redis store
 * (and the CLI's commands) never needs (issue 58). CommonJS, so a synchronous require serves a constructor. From the
 * package's bundle, the build's one-file copy with its code cache (scripts/bundle.mjs `PREBUILT`, offered by the
 * bundle's stub under a registered symbol); else (tsc's modules, a build without it) the package as installed.
 */
let ioredis: typeof import('ioredis') | null = null;
const lib = (): typeof import('ioredis') =>
  (ioredis ??= (prebuilt('ioredis') ?? createRequire(import.meta.url)('ioredis')) as typeof import('ioredis'));

/** `name` from the bundle's own one-file copy (its stub's loader, keyed by dist/bundle/'s URL), or null. */
function prebuilt(name: string): unknown {
  const loaders = (globalThis as Record<symbol, Map<string, (name: string) => unknown> | undefined>)[
    Symbol.for('originlink.prebuilt')
  ];
  return loaders?.get(new URL('../bundle/', import.meta.url).href)?.(name) ?? null;
}
/** A queued write and the key it touches (its Cluster slot: the writes of one pipeline are on one node). */
interface Write {
  op: Op;
  key: string;
}

/** Parsed `redis://` / `rediss://` URL and its query parameters. */
export interface RedisUrl {
  options: RedisOptions;
  /** `redis-cluster://`: the seed nodes of a Redis Cluster (`options` then apply to each node's connection). */
  cluster: Array<{ host: string; port: number }> | null;
  prefix: string | null;
  keyFile: string | null;
  /** The URL without credentials (for logs). */
  display: string;
}

export function isRedisUrl(s: string): boolean {
  return /^(rediss?|redis-sentinel|redis-cluster):\/\//i.test(s);
}

/** `host:port[,host:port…]` (IPv6 in brackets; `dflt` when a port is left out). */
function hostList(hosts: string, dflt: number, what: string): Array<{ host: string; port: number }> {
  return hosts.split(',').map((h) => {
    const hp = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(h.trim());
    if (!hp)
      throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', `${what}: not host:port: ${JSON.stringify(h)}`);
    return { host: (hp[1] as string).replace(/^\[|\]$/g, ''), port: hp[2] ? Number(hp[2]) : dflt };
  });
}

/** `user:password` of a URL's authority, percent-decoded, into `options`. */
function credentials(auth: string | undefined, options: RedisOptions): void {
  if (!auth) return;
  const i = auth.indexOf(':');
  const user = decodeURIComponent(i < 0 ? auth : auth.slice(0, i));
  const pass = i < 0 ? '' : decodeURIComponent(auth.slice(i + 1));
  if (user) options.username = user;
  if (pass) options.password = pass;
}

/** The query of a Sentinel or Cluster URL: `prefix`, `keyFile`. */
function multiHostParams(query: string | undefined, what: string): URLSearchParams {
  const params = new URLSearchParams(query ?? '');
  for (const k of params.keys())
    if (!['prefix', 'keyFile'].includes(k))
      throw new OriginlinkError(
        ErrorCode.INVALID_ARGUMENT,
        'local',
        `unknown ${what} URL parameter ${JSON.stringify(k)} (known: prefix, keyFile)`,
      );
  return params;
}

/**
 * `redis-cluster://[user:password@]host:port[,host:port…][?prefix=&keyFile=]`: seed nodes of a Redis Cluster (ioredis's
 * Cluster: it learns the slots from them and follows MOVED and fail-overs).
 */
function parseClusterUrl(url: string): RedisUrl {
  const m = /^redis-cluster:\/\/(?:([^@/]*)@)?([^/?]+)\/?(?:\?(.*))?$/i.exec(url);
  if (!m)
    throw new OriginlinkError(
      ErrorCode.INVALID_ARGUMENT,
      'local',
      `not a Cluster URL (redis-cluster://host:port[,host:port…]): ${JSON.stringify(redact(url))}`,
    );
  const [, auth, hosts, query] = m as unknown as [string, string | undefined, string, string | undefined];
  const cluster = hostList(hosts, 6379, 'Cluster URL');
  const params = multiHostParams(query, 'Cluster');
  const options: RedisOptions = {};
  credentials(auth, options);
  return {
    options,
    cluster,
    prefix: params.get('prefix'),
    keyFile: params.get('keyFile'),
    display: `redis-cluster://${cluster.map((s) => `${s.host}:${s.port}`).join(',')}`,
  };
}

/**
 * `redis-sentinel://[user:password@]host:port[,host:port…]/MASTER[/DB][?prefix=&keyFile=]`: the sentinels of a Redis
 * Sentinel deployment and the name of the master they watch (ioredis's own Sentinel support: it asks them for the
 * master, and again after a fail-over). The credentials are the master's (and the replicas'), as `requirepass`.
 */
function parseSentinelUrl(url: string): RedisUrl {
  const m = /^redis-sentinel:\/\/(?:([^@/]*)@)?([^/?]+)\/([^/?]+)(?:\/(\d{1,2}))?\/?(?:\?(.*))?$/i.exec(url);
  if (!m)
    throw new OriginlinkError(
      ErrorCode.INVALID_ARGUMENT,
      'local',
      `not a Sentinel URL (redis-sentinel://host:port[,host:port…]/MASTER[/DB]): ${JSON.stringify(redact(url))}`,
    );
  const [, auth, hosts, name, db, query] = m as unknown as [
    string,
    string | undefined,
    string,
    string,
    string | undefined,
    string | undefined,
  ];
  const sentinels = hostList(hosts, 26379, 'Sentinel URL');
  const params = multiHostParams(query, 'Sentinel');
  const options: RedisOptions = { sentinels, name: decodeURIComponent(name), db: db ? Number(db) : 0 };
  credentials(auth, options);
  return {
    options,
    cluster: null,
    prefix: params.get('prefix'),
    keyFile: params.get('keyFile'),
    display: `redis-sentinel://${sentinels.map((s) => `${s.host}:${s.port}`).join(',')}/${name}${db ? `/${db}` : ''}`,
  };
}

export function parseRedisUrl(url: string): RedisUrl {
  if (/^redis-sentinel:/i.test(url)) return parseSentinelUrl(url);
  if (/^redis-cluster:/i.test(url)) return parseClusterUrl(url);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', `not a Redis URL: ${JSON.stringify(redact(url))}`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new OriginlinkError(
      ErrorCode.INVALID_ARGUMENT,
      'local',
      `Redis URL must start with redis://, rediss://, redis-sentinel:// or redis-cluster:// (got ${u.protocol})`,
    );
  const db = u.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d{1,2}$/.test(db))
    throw new OriginlinkError(
      ErrorCode.INVALID_ARGUMENT,
      'local',
      `Redis URL database must be a number (got ${JSON.stringify(db)})`,
    );
  for (const k of u.searchParams.keys()) {
    if (!['prefix', 'ca', 'keyFile'].includes(k))
      throw new OriginlinkError(
        ErrorCode.INVALID_ARGUMENT,
        'local',
        `unknown Redis URL parameter ${JSON.stringify(k)} (known: prefix, ca, keyFile)`,
      );
  }
  const options: RedisOptions = {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : 6379,
    db: db === '' ? 0 : Number(db),
  };
  if (u.username) options.username = decodeURIComponent(u.username);
  if (u.password) options.password = decodeURIComponent(u.password);
  if (u.protocol === 'rediss:') {
    const ca = u.searchParams.get('ca');
    options.tls = ca ? { ca: readFileSync(ca) } : {};
  }
  return {
    options,
    cluster: null,
    prefix: u.searchParams.get('prefix'),
    keyFile: u.searchParams.get('keyFile'),
    display: `${u.protocol}//${u.host}${u.pathname}`,
  };
}

export class RedisLink {
  readonly prefix: string;
  readonly display: string;
  /** The encryption key file named by the URL, if any (the stores read it). */
  readonly keyFile: string | null;
  #cmd: Redis | Cluster;
  #sub: Redis | Cluster | null = null;
  /** Redis Cluster seed nodes (null: one server, or Sentinel's master). */
  readonly #seeds: Array<{ host: string; port: number }> | null;
  #subs = new Map<string, (message: Buffer) => void>();
  #options: RedisOptions;
  #queue: Write[] = [];
  #timer: NodeJS.Timeout | null = null;
  #flushMs: number;
  #maxQueue: number;
  #warn: (err: OriginlinkError) => void;
  #toldDown = false;
  #closed = false;
  #stats: RedisLinkStats = {
    up: false,
    outages: 0,
    writes: 0,
    batches: 0,
    droppedWrites: 0,
    reads: 0,
    failedReads: 0,
    messages: 0,
  };
  #readyWaiters: Array<() => void> = [];
  /** A pipeline of writes sent and not yet answered: the next waits for it (the queue, bounded, fills meanwhile). */
  #inFlight: Promise<void> | null = null;

  constructor(o: RedisLinkOptions) {
    const parsed = parseRedisUrl(o.url);
    this.prefix = o.prefix ?? parsed.prefix ?? 'originlink:';
    this.display = parsed.display;
    this.keyFile = parsed.keyFile;
    this.#flushMs = o.flushMs ?? 2;
    this.#maxQueue = o.maxQueue ?? 10_000;
    this.#warn = o.onWarning ?? ((e) => process.emitWarning(e.message, { code: e.code }));
    const min = o.backoffMs ?? 100;
    const max = o.backoffMaxMs ?? 5000;
    const options: RedisOptions = {
      ...parsed.options,
      connectTimeout: o.connectTimeoutMs ?? 1000,
      commandTimeout: o.commandTimeoutMs ?? 1000,
      // A command while disconnected fails at once: no request may wait for a reconnect.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // Doubling from `min` to `max`, ±25% jitter so a fleet does not reconnect in step.
      retryStrategy: (times: number) =>
        Math.round(Math.min(max, min * 2 ** Math.min(times - 1, 20)) * (0.75 + Math.random() * 0.5)),
      lazyConnect: false,
      // At close, how long a socket that does not close after its end (a Redis never reached, a blackhole) is
      // waited for before it is destroyed: ioredis's 2 s held a finished process that long (fetch: 2.85 s against
      // 0.22 without a store).
      disconnectTimeout: 100,
    };
    if (o.username !== undefined) options.username = o.username;
    if (o.password !== undefined) options.password = o.password;
    if (o.tls && parsed.options.tls) options.tls = { ...parsed.options.tls, ...o.tls };
    this.#options = options;
    this.#seeds = parsed.cluster;
    this.#cmd = this.#connect(options);
    this.#cmd.on('ready', () => {
      if (this.#badDb) return;
      this.#stats.up = true;
      this.#toldDown = false;
      for (const w of this.#readyWaiters.splice(0)) w();
    });
    this.#cmd.on('error', (e: Error) => {
      this.#down(e);
      // The URL's database does not exist on this server (SELECT refused): the connection would go on in
      // database 0, mixing this fleet's entries with what uses that one. The link stays down for good.
      if (/DB index is out of range|invalid DB index/i.test(e.message)) {
        this.#badDb = true;
        this.#cmd.disconnect();
      }
    });
    this.#cmd.on('close', () => this.#down(null));
  }

  /** The server refused the URL's database: down for good (never up on database 0). */
  #badDb = false;

  /** A connection as the URL says: to one server (or Sentinel's master), or to a Cluster through its seeds. */
  #connect(options: RedisOptions): Redis | Cluster {
    if (this.#seeds === null) return new (lib().Redis)(options);
    const { retryStrategy, enableOfflineQueue, ...node } = options;
    return new (lib().Cluster)(this.#seeds, {
      redisOptions: node,
      enableOfflineQueue: enableOfflineQueue ?? false,
      clusterRetryStrategy: retryStrategy as (times: number) => number,
      // A fail-over moves slots: ask again soon after a node is lost, and follow MOVED at once.
      slotsRefreshTimeout: options.connectTimeout ?? 1000,
    });
  }

  /** Resolves once connected, or after `timeoutMs` (never rejects): for a bounded wait at startup. */
  ready(timeoutMs = 500): Promise<boolean> {
    if (this.#stats.up) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(this.#stats.up), timeoutMs);
      t.unref();
      this.#readyWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  get up(): boolean {
    return this.#stats.up;
  }

  stats(): RedisLinkStats {
    return { ...this.#stats };
  }

  /**
   * Queue writes for the next pipeline: `op` touches `key` only (in a Cluster the writes are grouped by its slot, one
   * pipeline per slot). Dropped (counted) while Redis is down or the queue is full.
   */
  write(op: Op, key: string): void {
    if (this.#closed || !this.#stats.up || this.#queue.length >= this.#maxQueue) {
      this.#stats.droppedWrites++;
      return;
    }
    this.#queue.push({ op, key });
    if (this.#timer === null) {
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.#flush();
      }, this.#flushMs);
      this.#timer.unref();
    }
  }

  /** A background read; resolves undefined when Redis is down or the command fails (counted). */
  async read<T>(fn: (r: Redis) => Promise<T>): Promise<T | undefined> {
    // A Cluster takes the same single-key commands (it routes each by its key's slot).
    this.#stats.reads++;
    if (!this.#stats.up || this.#closed) {
      this.#stats.failedReads++;
      return undefined;
    }
    try {
      return await fn(this.#cmd as Redis);
    } catch (e) {
      this.#stats.failedReads++;
      if (/timed out/i.test((e as Error).message)) this.#stalled();
      return undefined;
    }
  }

  /** Receive messages published on `prefix + channel` by any process (ourselves included). */
  subscribe(channel: string, onMessage: (message: Buffer) => void): void {
    const name = this.prefix + channel;
    this.#subs.set(name, onMessage);
    if (this.#sub === null) {
      // Subscriber mode needs its own connection; ioredis resubscribes after a reconnect.
      const sub = this.#connect({ ...this.#options, enableOfflineQueue: true });
      sub.on('error', () => {
        /* the command connection tells outages */
      });
      sub.on('messageBuffer', (ch: Buffer, msg: Buffer) => {
        this.#stats.messages++;
        this.#subs.get(ch.toString())?.(msg);
      });
      this.#sub = sub;
    }
    void this.#sub.subscribe(name).catch(() => {
      /* retried by ioredis on reconnect */
    });
  }

  publish(channel: string, message: string | Buffer): void {
    this.write((p) => p.publish(this.prefix + channel, message), this.prefix + channel);
  }

  /** Tell a store-level problem (e.g. an entry that fails decryption) through the same warning sink. */
  warn(err: OriginlinkError): void {
    this.#warn(err);
  }

  /** Send what is queued (after the pipeline already out), then disconnect (bounded by `timeoutMs`). */
  close(timeoutMs = 1000): Promise<void> {
    return this.#closed ? Promise.resolve() : holdUntil(this.#close(timeoutMs));
  }

  async #close(timeoutMs: number): Promise<void> {
    const drained = (async (): Promise<void> => {
      while (this.#inFlight !== null) await this.#inFlight;
      await this.#flush();
    })();
    await Promise.race([drained, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    this.#closed = true;
    this.#sub?.disconnect();
    this.#cmd.disconnect();
    this.#stats.up = false;
  }

  #flush(): Promise<void> {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    if (this.#inFlight !== null && this.#stats.up) return this.#inFlight; // sent when the one out is answered
    const ops = this.#queue.splice(0);
    if (ops.length === 0 || !this.#stats.up) {
      this.#stats.droppedWrites += ops.length;
      return Promise.resolve();
    }
    // One pipeline, or in a Cluster one per slot (ioredis refuses a pipeline whose keys live on several nodes).
    const groups = new Map<number, Write[]>();
    if (this.#seeds === null) groups.set(0, ops);
    else
      for (const w of ops) {
        const slot = keySlot(w.key);
        const g = groups.get(slot);
        if (g) g.push(w);
        else groups.set(slot, [w]);
      }
    let timedOut = false;
    const sent = [...groups.values()].map((g) => {
      const p = this.#cmd.pipeline();
      for (const w of g) w.op(p);
      this.#stats.batches++;
      this.#stats.writes += p.length;
      const n = p.length;
      return p.exec().then(
        (res) => {
          for (const [err] of res ?? []) {
            if (!err) continue;
            this.#stats.droppedWrites++;
            if (/timed out/i.test(err.message)) timedOut = true;
          }
        },
        (e: Error) => {
          this.#stats.droppedWrites += n;
          if (/timed out/i.test(e.message)) timedOut = true;
        },
      );
    });
    this.#inFlight = Promise.all(sent).then(() => {
      if (timedOut) this.#stalled();
      this.#inFlight = null;
      if (this.#queue.length > 0 && !this.#closed) void this.#flush();
    });
    return this.#inFlight;
  }

  /** Commands time out on an open connection: Redis is stalled. Down (writes dropped, reads local) and reconnected. */
  #stalled(): void {
    if (this.#closed || !this.#stats.up) return;
    this.#down(new Error(`no answer within ${this.#options.commandTimeout} ms`));
    this.#cmd.disconnect(true);
  }

  #down(e: Error | null): void {
    const wasUp = this.#stats.up;
    this.#stats.up = false;
    if (this.#closed || this.#toldDown) return;
    // One warning per outage (or for never reaching Redis at all), however many errors follow.
    if (wasUp || e !== null) {
      this.#toldDown = true;
      this.#stats.outages++;
      this.#warn(
        new OriginlinkError(
          ErrorCode.STORE_UNAVAILABLE,
          'network',
          `originlink: Redis ${this.display} unavailable (${e?.message ?? 'connection closed'}); using the local tier only, reconnecting with backoff`,
          { cause: e ?? undefined },
        ),
      );
    }
  }
}
