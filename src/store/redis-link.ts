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
import { Redis, type ChainableCommander, type RedisOptions } from 'ioredis';
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

/** Parsed `redis://` / `rediss://` URL and its query parameters. */
export interface RedisUrl {
  options: RedisOptions;
  prefix: string | null;
  keyFile: string | null;
  /** The URL without credentials (for logs). */
  display: string;
}

export function isRedisUrl(s: string): boolean {
  return /^rediss?:\/\//i.test(s);
}

export function parseRedisUrl(url: string): RedisUrl {
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
      `Redis URL must start with redis:// or rediss:// (got ${u.protocol})`,
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
  #cmd: Redis;
  #sub: Redis | null = null;
  #subs = new Map<string, (message: Buffer) => void>();
  #options: RedisOptions;
  #queue: Op[] = [];
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
    };
    if (o.username !== undefined) options.username = o.username;
    if (o.password !== undefined) options.password = o.password;
    if (o.tls && parsed.options.tls) options.tls = { ...parsed.options.tls, ...o.tls };
    this.#options = options;
    this.#cmd = new Redis(options);
    this.#cmd.on('ready', () => {
      this.#stats.up = true;
      this.#toldDown = false;
      for (const w of this.#readyWaiters.splice(0)) w();
    });
    this.#cmd.on('error', (e: Error) => this.#down(e));
    this.#cmd.on('close', () => this.#down(null));
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

  /** Queue writes for the next pipeline. Dropped (counted) while Redis is down or the queue is full. */
  write(op: Op): void {
    if (this.#closed || !this.#stats.up || this.#queue.length >= this.#maxQueue) {
      this.#stats.droppedWrites++;
      return;
    }
    this.#queue.push(op);
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
    this.#stats.reads++;
    if (!this.#stats.up || this.#closed) {
      this.#stats.failedReads++;
      return undefined;
    }
    try {
      return await fn(this.#cmd);
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
      const sub = new Redis({ ...this.#options, enableOfflineQueue: true });
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
    this.write((p) => p.publish(this.prefix + channel, message));
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
    const p = this.#cmd.pipeline();
    for (const op of ops) op(p);
    this.#stats.batches++;
    this.#stats.writes += p.length;
    const settled = (): void => {
      this.#inFlight = null;
      if (this.#queue.length > 0 && !this.#closed) void this.#flush();
    };
    this.#inFlight = p.exec().then(
      (res) => {
        let timedOut = false;
        for (const [err] of res ?? []) {
          if (!err) continue;
          this.#stats.droppedWrites++;
          if (/timed out/i.test(err.message)) timedOut = true;
        }
        if (timedOut) this.#stalled();
        settled();
      },
      (e: Error) => {
        this.#stats.droppedWrites += ops.length;
        if (/timed out/i.test(e.message)) this.#stalled();
        settled();
      },
    );
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
