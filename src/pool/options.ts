/**
 * Pool options: one typed object, every default documented on its field,
 * validated and frozen once. A bad value is a clear error naming the field.
 */
import { ErrorCode, OriginlinkError } from '../errors.js';

export interface PoolOptions {
  /** Most connections to this origin at once (h1: also the most concurrent requests). Default 32. */
  maxConnections: number;
  /** Connections opened ahead of demand and kept open. Default 0. */
  minWarm: number;
  /**
   * Predictive warmth (0 = off, the default; else 1 … 10): keep ready connections for this
   * ratio × the recent peak of concurrent requests (in flight + queued; for h2/h3 divided by a
   * connection's stream limit), rounded up, within maxConnections. The remembered peak halves
   * every `preconnectHalfLifeMs` once demand falls, and a peak below half a request is forgotten;
   * connections above the target retire at their idle timeout. Envoy's
   * per_upstream_preconnect_ratio is the anchor: 1.5 keeps half again as many as the peak needed,
   * so a burst after a lull finds them warm.
   */
  preconnectRatio: number;
  /** Half-life of the remembered peak concurrency, ms. Default 30000. */
  preconnectHalfLifeMs: number;
  /** h1: most dials in flight at once; meanwhile freed connections serve the queue. Default 4. */
  maxConnecting: number;
  /** Most requests waiting for a connection; one more fails with OL_QUEUE_FULL. Default 1024. */
  maxPending: number;
  /** Longest a request waits for a connection before OL_QUEUE_TIMEOUT, ms. Default 30000. */
  pendingTimeoutMs: number;
  /**
   * Close a connection idle this long, ms. Default 30000. An h1 connection idle for an
   * eighth of this while another h1 connection of the pool is also idle is surplus
   * (LIFO picking never reaches it) and closes then — the whole of this for a while after
   * a surplus close had to be dialled again (Pool's regret).
   */
  idleTimeoutMs: number;
  /** When the server hints `Keep-Alive: timeout=T`, close at T minus this margin, ms. Default 1000. */
  keepAliveMarginMs: number;
  /** Drain a connection after this age, ms (0 = never). Default 600000 (10 min). */
  maxAgeMs: number;
  /** Fraction of maxAgeMs subtracted at random per connection, so connections do not recycle in step. Default 0.1. */
  maxAgeJitter: number;
  /** Drain a connection after it served this many requests (0 = no limit). Default 0. */
  maxRequestsPerConnection: number;
  /** PING an idle h2/h3 connection after this much silence, ms (0 = never). Default 15000. */
  pingIntervalMs: number;
  /** A PING unanswered this long marks the connection dead, ms. Default 5000. */
  pingTimeoutMs: number;
  /**
   * Recycle a connection after this many consecutive failed requests (failures of the connection or the origin; not
   * requests our side aborted). Default 5.
   */
  maxConsecutiveErrors: number;
  /** TCP connect + TLS handshake (or QUIC handshake) deadline, ms. Default 10000. */
  connectTimeoutMs: number;
  /** First delay after a failed connect, doubled per further failure, with full jitter, ms. Default 100. */
  connectBackoffBaseMs: number;
  /** Cap on the connect backoff, ms. Default 10000. */
  connectBackoffMaxMs: number;
  /** Deadline from request sent to response head, ms. Default 30000. */
  headersTimeoutMs: number;
  /**
   * Longest silence while a request body leaves or a response body arrives, ms (0 = none; our own stalls — a body
   * source with nothing to send, a reader that is behind — are not the origin's: Exchange.timedOut). Default 30000.
   */
  bodyTimeoutMs: number;
  /** Largest response header section accepted, bytes. Default 65536. */
  maxHeaderBytes: number;
  /** Most response header fields accepted. Default 256. */
  maxHeaderCount: number;
  /** HTTP/2 and HTTP/3 receive window per stream, bytes (the connection's is 4×). Default 4 MiB. */
  windowSize: number;
  /**
   * h3: move to a new local UDP port after this many probe timeouts in a row with nothing heard (0 = never). Default 3.
   */
  migrateAfterProbeTimeouts: number;
  /**
   * h1: acknowledge each response at once (TCP_QUICKACK) instead of letting the ACK ride on the next request.
   * An origin whose Nagle algorithm holds a second, unsolicited response until our ACK then sends it while the
   * connection is idle, where it closes the connection (OL_UNSOLICITED_RESPONSE); riding on our next request, it
   * would arrive just before that request's answer and be read as it. Costs an ACK packet per response (~10 % of
   * the CPU per request on the loopback proxy bench). 'auto' (default): from the first unsolicited response an
   * origin sends on any connection of the pool; 'always'; 'never'. Bytes waiting on an idle connection close it
   * whatever this says.
   */
  quickAck: 'auto' | 'always' | 'never';
}

export const DEFAULT_POOL_OPTIONS: Readonly<PoolOptions> = Object.freeze({
  maxConnections: 32,
  minWarm: 0,
  preconnectRatio: 0,
  preconnectHalfLifeMs: 30_000,
  maxConnecting: 4,
  maxPending: 1024,
  pendingTimeoutMs: 30_000,
  idleTimeoutMs: 30_000,
  keepAliveMarginMs: 1_000,
  maxAgeMs: 600_000,
  maxAgeJitter: 0.1,
  maxRequestsPerConnection: 0,
  pingIntervalMs: 15_000,
  pingTimeoutMs: 5_000,
  maxConsecutiveErrors: 5,
  connectTimeoutMs: 10_000,
  connectBackoffBaseMs: 100,
  connectBackoffMaxMs: 10_000,
  headersTimeoutMs: 30_000,
  bodyTimeoutMs: 30_000,
  maxHeaderBytes: 65_536,
  maxHeaderCount: 256,
  // 8 MiB: under random loss a stream's window stays behind the hole a lost packet leaves until it is resent (one
  // RTT or more), and quiche's autotuning does not grow it then; at 4 MiB an h3 bulk download under loss was held
  // back by its own flow control (bench/RESULTS.md `loss`). Chromium's and quic-go's windows are 6 MB per stream,
  // 15 MB per connection.
  windowSize: 8 * 1024 * 1024,
  migrateAfterProbeTimeouts: 3,
  quickAck: 'auto',
});

/** The longest delay setTimeout keeps (2^31 − 1 ms): every `…Ms` option is bounded by it. */
const MAX_TIMER_MS = 2 ** 31 - 1;

type NumericKey = { [K in keyof PoolOptions]: PoolOptions[K] extends number ? K : never }[keyof PoolOptions];
type ChoiceKey = Exclude<keyof PoolOptions, NumericKey>;

const RULES: { [K in NumericKey]: { min: number; max?: number; int?: boolean } } = {
  maxConnections: { min: 1, int: true },
  minWarm: { min: 0, int: true },
  preconnectRatio: { min: 0, max: 10 },
  preconnectHalfLifeMs: { min: 1 },
  maxConnecting: { min: 1, int: true },
  maxPending: { min: 0, int: true },
  pendingTimeoutMs: { min: 1 },
  idleTimeoutMs: { min: 1 },
  keepAliveMarginMs: { min: 0 },
  maxAgeMs: { min: 0 },
  maxAgeJitter: { min: 0, max: 1 },
  maxRequestsPerConnection: { min: 0, int: true },
  pingIntervalMs: { min: 0 },
  pingTimeoutMs: { min: 1 },
  maxConsecutiveErrors: { min: 1, int: true },
  connectTimeoutMs: { min: 1 },
  connectBackoffBaseMs: { min: 0 },
  connectBackoffMaxMs: { min: 0 },
  headersTimeoutMs: { min: 1 },
  bodyTimeoutMs: { min: 0 },
  maxHeaderBytes: { min: 256, int: true },
  maxHeaderCount: { min: 1, int: true },
  windowSize: { min: 65_535, max: 2 ** 31 - 1, int: true },
  migrateAfterProbeTimeouts: { min: 0, max: 100, int: true },
};

/** Options that take one of a few words. */
const CHOICES: { [K in ChoiceKey]: readonly PoolOptions[K][] } = {
  quickAck: ['auto', 'always', 'never'],
};

/**
 * How long a connection may sit idle with an origin that hinted `Keep-Alive: timeout=hintMs`: the hint less the
 * margin, never past our own idle timeout (the origin closes at its timeout; ours goes first). Null: no hint.
 */
export function idleAfterHint(
  o: Pick<PoolOptions, 'idleTimeoutMs' | 'keepAliveMarginMs'>,
  hintMs: number | null,
): number {
  if (hintMs === null) return o.idleTimeoutMs;
  return Math.max(1, Math.min(o.idleTimeoutMs, hintMs - o.keepAliveMarginMs));
}

/** Merge, validate and freeze. `where` prefixes field names in errors (e.g. a config path). */
export function resolvePoolOptions(input: Partial<PoolOptions> | undefined, where = 'pool'): Readonly<PoolOptions> {
  const out: PoolOptions = { ...DEFAULT_POOL_OPTIONS };
  for (const [key, value] of Object.entries(input ?? {})) {
    if (key in CHOICES) {
      if (value === undefined) continue;
      const allowed = CHOICES[key as ChoiceKey] as readonly unknown[];
      if (!allowed.includes(value))
        throw configError(`${where}.${key}`, `must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
      (out as unknown as Record<string, unknown>)[key] = value;
      continue;
    }
    if (!(key in RULES)) throw unknownOption(`${where}.${key}`, Object.keys(DEFAULT_POOL_OPTIONS));
    if (value === undefined) continue;
    const rule = RULES[key as NumericKey];
    if (typeof value !== 'number' || !Number.isFinite(value))
      throw configError(`${where}.${key}`, `must be a number, got ${JSON.stringify(value)}`);
    if (rule.int && !Number.isInteger(value)) throw configError(`${where}.${key}`, `must be an integer, got ${value}`);
    if (value < rule.min) throw configError(`${where}.${key}`, `must be ≥ ${rule.min}, got ${value}`);
    if (rule.max !== undefined && value > rule.max)
      throw configError(`${where}.${key}`, `must be ≤ ${rule.max}, got ${value}`);
    // A duration goes to setTimeout, which fires at once past 2^31 − 1 ms (a queue timeout of 2^31 answered 503 at
    // once).
    if (key.endsWith('Ms') && value > MAX_TIMER_MS)
      throw configError(`${where}.${key}`, `must be ≤ ${MAX_TIMER_MS} ms (about 24.8 days), got ${value}`);
    out[key as NumericKey] = value;
  }
  if (out.minWarm > out.maxConnections)
    throw configError(`${where}.minWarm`, `must be ≤ maxConnections (${out.maxConnections})`);
  if (out.preconnectRatio > 0 && out.preconnectRatio < 1)
    throw configError(`${where}.preconnectRatio`, `must be 0 (off) or 1 … 10, got ${out.preconnectRatio}`);
  return Object.freeze(out);
}

export function configError(field: string, reason: string): OriginlinkError {
  return new OriginlinkError(ErrorCode.INVALID_CONFIG, 'local', `${field}: ${reason}`, { details: { field, reason } });
}

/**
 * An option name that is not among `allowed`: the error lists them, as the service config's reader does for its
 * fields, so a misspelt name shows the right one.
 */
export function unknownOption(field: string, allowed: readonly string[]): OriginlinkError {
  return configError(field, `unknown option (allowed: ${allowed.join(', ')})`);
}
