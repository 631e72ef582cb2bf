/**
 * The Agent maps origins to pools and owns the retry policy. Users call
 * `agent.request({ url, ... })`; everything below is per origin.
 *
 * Retry policy (never a silent replay of anything else):
 *  - the body is replayable (absent, string or bytes), and
 *  - either the failure proves the origin did not process the request
 *    (connect failure, refused stream, above GOAWAY's last id), or the method
 *    is idempotent (RFC 9110 §9.2.2) or carries `Idempotency-Key`, the
 *    connection was reused, and no response byte had arrived (the stale
 *    keep-alive race).
 */
import { performance } from 'node:perf_hooks';
import { ErrorCode, OriginlinkError, toOriginlinkError } from '../errors.js';
import { connectOrigin, type OriginSpec, type ProtocolPolicy } from '../transport/connect.js';
import { isIdempotent, isReplayable } from '../util/body.js';
import { publishRequestEnd } from './diagnostics.js';
import { configError, resolvePoolOptions, type PoolOptions } from './options.js';
import { Pool } from './pool.js';
import { OriginResponse } from './response.js';
import { MemorySessionStore, type SessionStore } from './session-store.js';
import type { PoolStats } from './stats.js';
import type { ConnRequest, HeaderList, RequestBody } from './types.js';

export interface TlsOptions {
  /** Extra trusted CA certificate(s), PEM. Default: Node's bundled roots. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Verify the origin's certificate chain and name. Default true. */
  rejectUnauthorized?: boolean;
  /** SNI and certificate name; default the URL host. */
  servername?: string;
}

export interface OriginOverrides {
  protocol?: ProtocolPolicy;
  pool?: Partial<PoolOptions>;
  tls?: TlsOptions;
  tfo?: boolean;
}

export interface AgentOptions {
  /** Protocol policy for every origin unless overridden. Default `auto`. */
  protocol?: ProtocolPolicy;
  /** Pool options for every origin (see PoolOptions for the defaults). */
  pool?: Partial<PoolOptions>;
  tls?: TlsOptions;
  /** Retries on top of the first attempt, under the policy above. Default 2. */
  maxRetries?: number;
  /** Store for TLS sessions (and QUIC tickets); default in-memory, 1024 entries. */
  sessionStore?: SessionStore;
  /** Use TCP Fast Open when the native addon is available. Default true. */
  tfo?: boolean;
  /** TCP keepalive probes on pooled sockets; null leaves the OS defaults. Default 300 s / 75 s / 9. */
  keepAliveProbes?: { idleS: number; intervalS: number; count: number } | null;
  /** Per-origin overrides, keyed by `scheme://host:port`. */
  origins?: Record<string, OriginOverrides>;
}

export interface RequestOptions {
  url: string | URL;
  method?: string;
  headers?: Record<string, string | string[] | undefined> | HeaderList;
  body?: RequestBody;
  signal?: AbortSignal;
  /** Per-request protocol policy (overrides agent and origin). */
  protocol?: ProtocolPolicy;
}

// RFC 9110 §7.6.1 / RFC 9113 §8.2.2: connection-specific fields never cross a hop.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings']);

let connectionIds = 0;
const nextId = (): number => ++connectionIds;

export class Agent {
  #opts: AgentOptions;
  #pools = new Map<string, Pool>();
  #sessions: SessionStore;
  #maxRetries: number;
  #closed = false;

  constructor(opts: AgentOptions = {}) {
    this.#maxRetries = opts.maxRetries ?? 2;
    if (!Number.isInteger(this.#maxRetries) || this.#maxRetries < 0) throw configError('maxRetries', 'must be a non-negative integer');
    resolvePoolOptions(opts.pool); // validate early
    for (const [k, o] of Object.entries(opts.origins ?? {})) resolvePoolOptions(o.pool, `origins["${k}"].pool`);
    this.#opts = opts;
    this.#sessions = opts.sessionStore ?? new MemorySessionStore();
  }

  get sessionStore(): SessionStore { return this.#sessions; }

  /** The pool for a URL's origin under a protocol policy (created on first use). */
  pool(url: string | URL, protocol?: ProtocolPolicy): Pool {
    if (this.#closed) throw new OriginlinkError(ErrorCode.POOL_CLOSED, 'local', 'agent is closed');
    const u = typeof url === 'string' ? new URL(url) : url;
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', `unsupported URL scheme ${u.protocol}`);
    const scheme = u.protocol === 'https:' ? 'https' : 'http';
    const port = u.port ? Number(u.port) : scheme === 'https' ? 443 : 80;
    const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
    const originName = `${scheme}://${u.host}`;
    const over = this.#opts.origins?.[originName] ?? this.#opts.origins?.[`${scheme}://${u.hostname}:${port}`] ?? {};
    const policy: ProtocolPolicy = protocol ?? over.protocol ?? this.#opts.protocol ?? 'auto';
    const tlsOpts = { ...this.#opts.tls, ...over.tls };
    const key = `${scheme}://${host}:${port}|${policy}|sni=${tlsOpts.servername ?? ''}|verify=${tlsOpts.rejectUnauthorized !== false}|ca=${caId(tlsOpts.ca)}`;
    let pool = this.#pools.get(key);
    if (pool) return pool;
    const spec: OriginSpec = {
      scheme,
      host,
      port,
      servername: tlsOpts.servername,
      protocol: policy,
      ca: tlsOpts.ca,
      rejectUnauthorized: tlsOpts.rejectUnauthorized !== false,
      tfo: over.tfo ?? this.#opts.tfo ?? true,
      keepAliveProbes: this.#opts.keepAliveProbes === undefined ? { idleS: 300, intervalS: 75, count: 9 } : this.#opts.keepAliveProbes,
    };
    const poolOpts = resolvePoolOptions({ ...this.#opts.pool, ...over.pool });
    const sessions = this.#sessions;
    pool = new Pool(key, originName, poolOpts, (signal) => connectOrigin(spec, { pool: poolOpts, sessionStore: sessions, sessionKey: key, nextId, signal }), policy === 'auto' ? null : policy);
    this.#pools.set(key, pool);
    return pool;
  }

  async request(o: RequestOptions): Promise<OriginResponse> {
    const t0 = performance.now();
    const url = typeof o.url === 'string' ? new URL(o.url) : o.url;
    const method = (o.method ?? 'GET').toUpperCase();
    const headers = normalizeHeaders(o.headers);
    const body = o.body ?? null;
    const pool = this.pool(url, o.protocol);
    const req: ConnRequest = {
      method,
      path: `${url.pathname}${url.search}`,
      authority: url.host,
      scheme: url.protocol === 'https:' ? 'https' : 'http',
      headers,
      body,
      signal: o.signal,
    };
    const replayable = isReplayable(body);
    const idempotent = isIdempotent(method, headers);
    for (let attempt = 1; ; attempt++) {
      try {
        const r = await pool.request(req);
        const ttfbMs = performance.now() - t0;
        publishRequestEnd({ origin: pool.origin, method, path: req.path, status: r.res.status, protocol: r.conn.protocol, reused: r.reused, attempts: attempt, ttfbMs, error: null });
        return new OriginResponse({
          status: r.res.status,
          headers: r.res.headers,
          body: r.res.body,
          trailers: r.res.trailers,
          protocol: r.conn.protocol,
          reused: r.reused,
          attempts: attempt,
          earlyData: r.res.earlyData ?? false,
          connectionId: r.conn.id,
          connection: r.conn.facts,
          timings: { queueMs: r.queueMs, ttfbMs },
        });
      } catch (e) {
        const err = toOriginlinkError(e);
        const retry = attempt <= this.#maxRetries && replayable && !o.signal?.aborted && err.code !== ErrorCode.ABORTED &&
          (err.retrySafe || (idempotent && err.details['reused'] === true && err.details['responseStarted'] === false));
        if (!retry) {
          err.details['attempts'] = attempt;
          publishRequestEnd({ origin: pool.origin, method, path: req.path, status: null, protocol: pool.protocol, reused: err.details['reused'] === true, attempts: attempt, ttfbMs: performance.now() - t0, error: err });
          throw err;
        }
        pool.counters.retries++;
      }
    }
  }

  /** Pre-connect `n` connections to an origin. */
  warm(url: string | URL, n = 1, protocol?: ProtocolPolicy): Promise<void> {
    return this.pool(url, protocol).warm(n);
  }

  stats(): PoolStats[] {
    return [...this.#pools.values()].map((p) => p.stats());
  }

  pools(): Pool[] {
    return [...this.#pools.values()];
  }

  /** Finish in-flight requests, then close every connection. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#pools.values()].map((p) => p.close()));
  }

  destroy(error?: Error): void {
    this.#closed = true;
    for (const p of this.#pools.values()) p.destroy(error);
  }
}

function normalizeHeaders(h: RequestOptions['headers']): HeaderList {
  const out: HeaderList = [];
  if (!h) return out;
  const push = (name: string, value: string): void => {
    const n = name.toLowerCase();
    if (HOP_BY_HOP.has(n)) return;
    if (n === 'te' && value.trim().toLowerCase() !== 'trailers') return;
    out.push([n, value]);
  };
  if (Array.isArray(h)) {
    for (const [n, v] of h) push(n, v);
  } else {
    for (const [n, v] of Object.entries(h)) {
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const x of v) push(n, x);
      else push(n, v);
    }
  }
  return out;
}

const caIds = new WeakMap<object, number>();
let caCounter = 0;
function caId(ca: TlsOptions['ca']): string {
  if (ca === undefined) return '-';
  if (typeof ca === 'string') return `s${ca.length}:${ca.slice(-32)}`;
  let id = caIds.get(ca as object);
  if (id === undefined) { id = ++caCounter; caIds.set(ca as object, id); }
  return `o${id}`;
}
