/**
 * What an Agent is given: its options and an origin's overrides (each field
 * documented with its default), a request's options, and the one check that
 * refuses an option name it does not know (OL_INVALID_CONFIG naming it).
 */
import type { Context } from '@opentelemetry/api';
import type { ConnectContext, OriginSpec, ProtocolPolicy } from '../connect/connect.js';
import type { EarlyDataPolicy } from '../http/early-data.js';
import { isAuthority } from '../http/fields.js';
import type { HeaderList, PooledConnection, RequestBody } from '../http/types.js';
import type { LookupFn, Resolver, ResolverOptions } from '../net/resolver.js';
import type { ProxyOptions } from '../net/proxy.js';
import { clientIdentity } from '../net/tls-context.js';
import { ErrorCode, OriginlinkError } from '../errors.js';
import {
  configError,
  DEFAULT_POOL_OPTIONS,
  resolvePoolOptions,
  unknownOption,
  type PoolOptions,
} from '../pool/options.js';
import { DEFAULT_ATTEMPT_DELAY_MS, MIN_ATTEMPT_DELAY_MS } from '../net/happy-eyeballs.js';
import { keepAliveProbesProblem } from '../net/tfo.js';
import { h3Settings } from '../wire/h3-settings.js';
import { DEFAULT_RETRY_BUFFER_BYTES } from './replay-body.js';
import type { OriginCache } from '../store/origin-cache.js';
import type { SelectionOptions } from '../probe/state.js';
import { bbrTuningError, CC_ALGORITHMS, type BbrTuning, type CcAlgorithm } from '../quic/cc.js';
import type { SessionStore } from '../store/session-store.js';
import type { QpackOptions } from '../wire/h3-settings.js';
import { GROUP_KEYS, type GroupOptions } from '../group/options.js';
import type { SignalLike } from '../util/leg-signal.js';

export interface TlsOptions {
  /** Extra trusted CA certificate(s), PEM. Default: Node's bundled roots. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Verify the origin's certificate chain and name. Default true. */
  rejectUnauthorized?: boolean;
  /** SNI and certificate name; default the URL host. */
  servername?: string;
  /**
   * A client certificate (chain), PEM, shown to an origin that asks for one (mutual TLS: nginx
   * `ssl_verify_client`, RFC 8446 §4.4.2), on h1, h2 and h3. Needs `key`; part of the reuse key.
   */
  cert?: string | Buffer;
  /** The private key of `cert`, PEM. */
  key?: string | Buffer;
}

/**
 * An origin's overrides; any origin-group field (`endpoints`, `balance`, `health`, `outlier`, `retryBudget`,
 * `hedge`, `collapse`: group/options.ts, docs/config.md) makes it a group — requests to the key's origin go to its
 * endpoints (without `endpoints`: to the key's own URL, as the group's one endpoint).
 */
export interface OriginOverrides extends Partial<GroupOptions> {
  protocol?: ProtocolPolicy;
  pool?: Partial<PoolOptions>;
  tls?: TlsOptions;
  tfo?: boolean;
  /**
   * Share this origin's requests with h2/h3 connections of other names (RFC 9113 §9.1.1, RFC 9114 §3.3). Default: the
   * agent's `selection.coalesce`.
   */
  coalesce?: boolean;
  /**
   * 0-RTT early data on resumed h3 connections: 'never', 'safe' (GET/HEAD/OPTIONS) or 'always'. Default: the agent's
   * `earlyData`.
   */
  earlyData?: EarlyDataPolicy;
  /** Egress proxies for this origin; null: direct even when the agent has a proxy. Default: the agent's `proxy`. */
  proxy?: ProxyOptions | null;
  /** h3: congestion controller for this origin's connections. Default: the agent's `quicCongestionControl`. */
  quicCongestionControl?: CcAlgorithm;
  /** h3: our QPACK decoder's limits towards this origin. Default: the agent's `quicQpack`. */
  quicQpack?: QpackOptions;
  /** h3: BBR tuning for this origin's connections. Default: the agent's `quicBbr`. */
  quicBbr?: BbrTuning;
  /**
   * Reach this origin over the unix-domain stream socket at this absolute path instead of TCP to its host (curl's
   * `--unix-socket`, undici's `socketPath`): HTTP/1.1 or HTTP/2, cleartext or TLS (the URL's host is then the name the
   * certificate must carry); never h3, and never through a proxy. The fleet's workers link over such sockets.
   */
  socketPath?: string;
}

/**
 * What is wrong with reaching an origin over the unix socket `path` (an Agent's `origins[URL].socketPath`, the
 * service's `origins.NAME.socketPath`), or null.
 */
export function socketPathProblem(
  path: unknown,
  protocol: ProtocolPolicy | undefined,
  proxied: boolean,
): string | null {
  // sun_path holds 108 bytes with its terminating NUL (unix(7)).
  if (typeof path !== 'string' || !path.startsWith('/') || Buffer.byteLength(path) > 107)
    return 'must be an absolute path of at most 107 bytes';
  if (protocol === 'h3') return 'a unix socket carries h1 or h2, not h3';
  if (proxied) return 'a unix socket is reached directly, not through a proxy';
  return null;
}

export interface AgentOptions {
  /** Protocol policy for every origin unless overridden. Default `auto`. */
  protocol?: ProtocolPolicy;
  /**
   * Which requests may be sent as 0-RTT early data on a resumed h3 connection.
   * Default 'safe' (GET, HEAD, OPTIONS: replay-safe, RFC 8470 §4); a request the
   * server refuses early is resent after the handshake.
   */
  earlyData?: EarlyDataPolicy;
  /** Pool options for every origin (see PoolOptions for the defaults). */
  pool?: Partial<PoolOptions>;
  tls?: TlsOptions;
  /**
   * h3: quiche's congestion controller for what this Agent sends on QUIC (request bodies; the origin's own
   * controller paces downloads). 'reno', 'cubic' or 'bbr'; default the QUIC layer's DEFAULT_CC.
   */
  quicCongestionControl?: CcAlgorithm;
  /**
   * h3: the QPACK dynamic table we let origins use towards us (RFC 9204 §5: `maxTableCapacity` bytes,
   * `blockedStreams`, `ackDelayMs`), and `minReferenceSaving`: the bytes a field section must save for our encoder to
   * refer to the table the origin lets us build. Defaults 4096, 16, 25 ms, 32 (wire/h3-settings.ts h3Settings).
   */
  quicQpack?: QpackOptions;
  /**
   * h3: BBR tuning on our quiche 0.30 engine (quic/cc.ts): `lossThreshold`, the loss rate per round above which
   * BBR lowers its inflight ceiling. Default 0.1 (quiche's own 0.015 took random loss for congestion: bench/RESULTS.md
   * `loss`).
   */
  quicBbr?: BbrTuning;
  /** Retries on top of the first attempt, under the policy above. Default 2. */
  maxRetries?: number;
  /**
   * A streamed request body (a Readable or an iterable) is kept as it is read, up to this many bytes, so
   * that an attempt the origin did not process (refused stream, above GOAWAY's last id, never connected)
   * can be sent again (agent/replay-body.ts); past it the body is not replayed. Held only until the
   * response head arrives. 0: streamed bodies are never replayed. Default 262144 (256 KiB).
   */
  retryBufferBytes?: number;
  /** Store for TLS sessions (and QUIC tickets); default in-memory, 1024 entries. */
  sessionStore?: SessionStore;
  /** Use TCP Fast Open when the native addon is available. Default true. */
  tfo?: boolean;
  /** TCP keepalive probes on pooled sockets; null leaves the OS defaults. Default 300 s / 75 s / 9. */
  keepAliveProbes?: { idleS: number; intervalS: number; count: number } | null;
  /** Per-origin overrides, keyed by `scheme://host:port`. */
  origins?: Record<string, OriginOverrides>;
  /**
   * Origin groups by name (letters, digits, `.`, `_`, `-`), requested as `{ group: NAME, path }`: each needs
   * `endpoints`, and takes every field an origin's group takes (balance, health, hedge, collapse…) and the
   * overrides its endpoints' connections use (protocol, pool, tls…). An origin's own key in `origins` may still
   * define a group answering for that URL.
   */
  groups?: Record<string, OriginOverrides>;
  /** Per-origin capability facts (Alt-Svc, ALPN, RTT, broken h3); default in-memory, 1024 origins. */
  originCache?: OriginCache;
  /** Racing, broken-h3 backoff and coalescing knobs (see docs/selection.md). */
  selection?: Partial<SelectionOptions>;
  /** Resolve host names (addresses, preferred first) instead of DNS; answers are kept `dns.systemTtlMs`. */
  lookup?: LookupFn;
  /** Name resolution and dialling every address of an origin (see DnsOptions). */
  dns?: DnsOptions;
  /**
   * Egress through forward proxies (http://, https:// CONNECT; socks5://), a
   * list of nodes and a rotation policy. Pools are per origin and node (and
   * credentials); h3 is never attempted through a proxy. Default: direct.
   */
  proxy?: ProxyOptions;
  /**
   * How a TCP-based connection to an origin is opened (the h3 path is always
   * our QUIC connector). Default: TCP (+TLS with ALPN h2/http1.1, TFO when
   * available). A custom connector may add socket options or a tunnel, or be
   * a test double; it must honour `ctx.signal` and the origin's policy.
   */
  connect?: (origin: OriginSpec, ctx: ConnectContext) => Promise<PooledConnection>;
  /**
   * Most origins with state held at once: pools (busy ones are never
   * evicted), selection state, coalescing opt-outs, counters of forgotten
   * pools. Default 1024.
   */
  maxOrigins?: number;
  /**
   * A pool with nothing in flight or queued and no request for this long is closed and forgotten, ms. Default 60000.
   */
  originIdleTimeoutMs?: number;
}

/**
 * Resolver options (servers, TTL clamps, serve-stale: net/resolver.ts)
 * plus how addresses are dialled.
 */
export interface DnsOptions extends Partial<Omit<ResolverOptions, 'lookup' | 'now'>> {
  /** RFC 8305 §5 Connection Attempt Delay between Happy Eyeballs attempts, ms (≥ 10). Default 250. */
  attemptDelayMs?: number;
  /** A failed address is skipped for this long, doubling per further failure, ms. Default 1000. */
  addressDownBaseMs?: number;
  /** Cap on an address's down time, ms. Default 60000. */
  addressDownMaxMs?: number;
  /** Share one resolver (and its cache) between agents; the options above except the last three are then ignored. */
  resolver?: Resolver;
}

/**
 * A request names its target either by `url`, or by `origin` (`https://host:port`)
 * plus `path` — the second form skips parsing a URL per request (as undici's
 * `pool.request({ path })` does) and suits callers that already split them.
 * `origin` may be a list: an ordered failover (the service's URLs of one
 * origin) — a failure that says the origin was unreachable moves to the next.
 */
export type RequestOptions = RequestTarget & RequestCommon;
export type RequestTarget =
  | { url: string | URL; origin?: never; path?: never; group?: never }
  | { origin: string | readonly string[]; path: string; url?: never; group?: never }
  /** A named origin group (AgentOptions.groups): the Agent picks its endpoint per attempt. */
  | { group: string; path: string; url?: never; origin?: never };

export interface RequestCommon {
  method?: string;
  headers?: Record<string, string | string[] | undefined> | HeaderList;
  body?: RequestBody;
  /**
   * Aborts the request: an AbortSignal, or any object with its abort subset (`aborted`, `reason`,
   * `addEventListener('abort', …)`, `removeEventListener`), as the service's forwarder is.
   */
  signal?: SignalLike;
  /** Per-request protocol policy (overrides agent and origin). */
  protocol?: ProtocolPolicy;
  /** Host / :authority to send instead of the URL's (the connection still goes to the URL's origin). */
  authority?: string;
  /** Permit 0-RTT early data for this request (h3; only for requests safe to replay, RFC 8470). */
  allowEarlyData?: boolean;
  /**
   * Response bytes read from the origin ahead of this request's body reader (nginx's proxy_buffering, in
   * memory): a response that fits is read whole, and its connection freed, however slowly it is consumed.
   */
  responseBufferBytes?: number;
  /** Interim (1xx) responses before the final one, e.g. 103 Early Hints: see ConnRequest.onInformational. */
  onInformational?: (status: number, headers: HeaderList, reason: string) => void;
  /**
   * OpenTelemetry parent context of this request's span (default: the active context). The service passes the incoming
   * request's.
   */
  traceContext?: Context;
}

/**
 * The option names an Agent and an origin override take: any other is refused (OL_INVALID_CONFIG) rather than
 * ignored, so a misspelt or misplaced option (a pool option at the top level) is not silently a default.
 * The `satisfies` and the checks below keep these lists and the interfaces the same.
 */
export const AGENT_KEYS = [
  'protocol',
  'earlyData',
  'pool',
  'tls',
  'quicCongestionControl',
  'quicQpack',
  'quicBbr',
  'maxRetries',
  'retryBufferBytes',
  'sessionStore',
  'tfo',
  'keepAliveProbes',
  'origins',
  'groups',
  'originCache',
  'selection',
  'lookup',
  'dns',
  'proxy',
  'connect',
  'maxOrigins',
  'originIdleTimeoutMs',
] as const satisfies ReadonlyArray<keyof AgentOptions>;
export const ORIGIN_KEYS = [
  'protocol',
  'pool',
  'tls',
  'tfo',
  'coalesce',
  'earlyData',
  'proxy',
  'quicCongestionControl',
  'quicQpack',
  'quicBbr',
  'socketPath',
  ...GROUP_KEYS,
] as const satisfies ReadonlyArray<keyof OriginOverrides>;
export const TLS_KEYS = ['ca', 'rejectUnauthorized', 'servername', 'cert', 'key'] as const satisfies ReadonlyArray<
  keyof TlsOptions
>;
/**
 * What a request may name (RequestTarget and RequestCommon): a misspelt field (`methd`) was ignored and the request
 * sent as a GET.
 */
const REQUEST_KEYS: ReadonlySet<string> = new Set([
  'url',
  'origin',
  'path',
  'group',
  'method',
  'headers',
  'body',
  'signal',
  'protocol',
  'authority',
  'allowEarlyData',
  'responseBufferBytes',
  'onInformational',
  'traceContext',
] satisfies ReadonlyArray<keyof RequestTarget | keyof RequestCommon>);
const allAgentKeys: Exclude<keyof AgentOptions, (typeof AGENT_KEYS)[number]> extends never ? true : never = true;
const allOriginKeys: Exclude<keyof OriginOverrides, (typeof ORIGIN_KEYS)[number]> extends never ? true : never = true;
const allTlsKeys: Exclude<keyof TlsOptions, (typeof TLS_KEYS)[number]> extends never ? true : never = true;
void allAgentKeys;
void allOriginKeys;
void allTlsKeys;

export const PROTOCOL_POLICIES: readonly ProtocolPolicy[] = ['auto', 'h1', 'h2', 'h3'];
const EARLY_DATA: readonly EarlyDataPolicy[] = ['never', 'safe', 'always'];

/**
 * The values an Agent and its origin overrides are given, checked once at construction (OL_INVALID_CONFIG naming
 * the field): `protocol: 'h4'` ran as h2, and a `tls.ca` given a file name failed every connect later as "unable to
 * verify the first certificate".
 */
function checkOptionValues(opts: AgentOptions): void {
  checkLayer(opts, '');
  for (const [k, o] of Object.entries(opts.origins ?? {})) checkLayer(o, `origins["${k}"]`);
}

/** The Agent's own numbers, checked, with their defaults. */
export interface ResolvedAgentOptions {
  maxRetries: number;
  retryBufferBytes: number;
  maxOrigins: number;
  originIdleMs: number;
  attemptDelayMs: number;
}

/**
 * Every option of an Agent and of its origins checked (names, values, pool options, QUIC tuning), before anything is
 * made: OL_INVALID_CONFIG naming the field.
 */
export function resolveAgentOptions(opts: AgentOptions): ResolvedAgentOptions {
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts))
    throw configError('options', 'must be an object (or nothing)');
  checkKeys(opts, AGENT_KEYS, '');
  for (const [k, o] of Object.entries(opts.origins ?? {})) {
    checkKeys(o, ORIGIN_KEYS, `origins["${k}"]`);
    const u = URL.canParse(k) ? new URL(k) : null;
    if (u === null || (u.protocol !== 'https:' && u.protocol !== 'http:') || u.pathname !== '/' || u.search !== '')
      throw configError(`origins["${k}"]`, 'the key must be an origin, scheme://host:port');
    if (o.socketPath !== undefined) {
      const why = socketPathProblem(o.socketPath, o.protocol ?? opts.protocol, Boolean(o.proxy));
      if (why !== null) throw configError(`origins["${k}"].socketPath`, why);
    }
  }
  checkOptionValues(opts);
  const r: ResolvedAgentOptions = {
    maxRetries: opts.maxRetries ?? 2,
    retryBufferBytes: opts.retryBufferBytes ?? DEFAULT_RETRY_BUFFER_BYTES,
    maxOrigins: opts.maxOrigins ?? 1024,
    originIdleMs: opts.originIdleTimeoutMs ?? 60_000,
    attemptDelayMs: opts.dns?.attemptDelayMs ?? DEFAULT_ATTEMPT_DELAY_MS,
  };
  if (!Number.isInteger(r.maxRetries) || r.maxRetries < 0)
    throw configError('maxRetries', 'must be a non-negative integer');
  if (!Number.isInteger(r.retryBufferBytes) || r.retryBufferBytes < 0)
    throw configError('retryBufferBytes', 'must be a non-negative integer');
  if (!Number.isInteger(r.maxOrigins) || r.maxOrigins < 1)
    throw configError('maxOrigins', 'must be a positive integer');
  if (!Number.isFinite(r.originIdleMs) || r.originIdleMs <= 0)
    throw configError('originIdleTimeoutMs', 'must be a positive number of ms');
  // A store is an object with the methods the Agent calls (a URL string, `{}` or a function failed every request
  // later as a connect failure or a TypeError): store/open-stores.ts makes one from a URL.
  for (const [field, v, methods] of [
    ['sessionStore', opts.sessionStore, ['get', 'take', 'put', 'delete']],
    ['originCache', opts.originCache, ['get', 'put', 'delete']],
  ] as const) {
    if (v === undefined) continue;
    const missing = methods.filter((m) => typeof (v as unknown as Record<string, unknown> | null)?.[m] !== 'function');
    if (typeof v !== 'object' || v === null || missing.length > 0)
      throw configError(
        field,
        typeof v === 'string'
          ? 'must be a store object, not a URL: open one first (openStores({ sessionStore: url }), docs/module.md)'
          : `must be a store object with ${methods.join(', ')} (lacks ${missing.join(', ')})`,
      );
  }
  if (opts.keepAliveProbes != null) {
    // Checked here, not at the first connect: a bad value failed every dial (retried) and left its socket open.
    const why = keepAliveProbesProblem(opts.keepAliveProbes);
    if (why) throw configError(why.field ? `keepAliveProbes.${why.field}` : 'keepAliveProbes', why.reason);
  }
  if (opts.quicCongestionControl !== undefined && !CC_ALGORITHMS.includes(opts.quicCongestionControl))
    throw configError('quicCongestionControl', `must be one of ${CC_ALGORITHMS.join(', ')}`);
  if (opts.quicQpack !== undefined) h3Settings('client', opts.quicQpack); // range checks, OL_INVALID_CONFIG
  for (const [where, b] of [
    ['quicBbr', opts.quicBbr],
    ...Object.entries(opts.origins ?? {}).map(([k, o]) => [`origins["${k}"].quicBbr`, o.quicBbr]),
  ] as Array<[string, BbrTuning | undefined]>) {
    const why = b === undefined ? null : bbrTuningError(b);
    if (why) throw configError(`${where}.${why.field}`, why.reason);
  }
  resolvePoolOptions(opts.pool);
  for (const [k, o] of Object.entries(opts.origins ?? {})) resolvePoolOptions(o.pool, `origins["${k}"].pool`);
  if (!(r.attemptDelayMs >= MIN_ATTEMPT_DELAY_MS))
    throw configError('dns.attemptDelayMs', `must be ≥ ${MIN_ATTEMPT_DELAY_MS} ms (RFC 8305 §5)`);
  return r;
}

function checkLayer(o: AgentOptions | OriginOverrides, where: string): void {
  const at = (f: string): string => (where ? `${where}.${f}` : f);
  if (o.protocol !== undefined && !PROTOCOL_POLICIES.includes(o.protocol))
    throw configError(
      at('protocol'),
      `must be one of ${PROTOCOL_POLICIES.join(', ')}, got ${JSON.stringify(o.protocol)}`,
    );
  if (o.earlyData !== undefined && !EARLY_DATA.includes(o.earlyData))
    throw configError(at('earlyData'), `must be one of ${EARLY_DATA.join(', ')}, got ${JSON.stringify(o.earlyData)}`);
  if (o.tfo !== undefined && typeof o.tfo !== 'boolean')
    throw configError(at('tfo'), `must be true or false, got ${JSON.stringify(o.tfo)}`);
  const tls = o.tls;
  if (tls === undefined) return;
  if (tls === null || typeof tls !== 'object') throw configError(at('tls'), 'must be an object');
  checkKeys(tls, TLS_KEYS, at('tls'));
  if (tls.rejectUnauthorized !== undefined && typeof tls.rejectUnauthorized !== 'boolean')
    throw configError(
      at('tls.rejectUnauthorized'),
      `must be true or false, got ${JSON.stringify(tls.rejectUnauthorized)}`,
    );
  if (tls.servername !== undefined && (typeof tls.servername !== 'string' || tls.servername === ''))
    throw configError(at('tls.servername'), 'must be a host name');
  if (tls.ca !== undefined) for (const c of Array.isArray(tls.ca) ? tls.ca : [tls.ca]) checkPem(c, at('tls.ca'));
  if (tls.cert !== undefined || tls.key !== undefined) {
    if (tls.cert === undefined || tls.key === undefined)
      throw configError(
        at(`tls.${tls.cert === undefined ? 'cert' : 'key'}`),
        'a client certificate needs tls.cert and tls.key',
      );
    for (const f of ['cert', 'key'] as const) {
      const v = tls[f];
      if (typeof v !== 'string' && !Buffer.isBuffer(v)) throw configError(at(`tls.${f}`), 'must be PEM text or bytes');
    }
    try {
      clientIdentity(tls.cert, tls.key, at('tls'));
    } catch (e) {
      const d = (e as OriginlinkError).details;
      throw configError(String(d?.['field'] ?? at('tls')), (e as Error).message.replace(/^[^:]*: /, ''));
    }
  }
}

/** A trusted CA is PEM text or bytes (what tls.createSecureContext takes), never the name of a file. */
function checkPem(c: unknown, field: string): void {
  if (typeof c !== 'string' && !Buffer.isBuffer(c))
    throw configError(field, 'must be PEM text or bytes (a string or a Buffer), or a list of them');
  const text = typeof c === 'string' ? c : c.subarray(0, 64 * 1024).toString('latin1');
  if (text.includes('-----BEGIN CERTIFICATE-----')) return;
  const looksLikePath = typeof c === 'string' && c.length < 4096 && !/[\r\n]/.test(c);
  throw configError(
    field,
    looksLikePath
      ? `expects the certificate's PEM text, not a file name: read it first (tls: { ca: readFileSync(${JSON.stringify(c)}) })`
      : 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)',
  );
}

/**
 * A request's own fields (a hot path: one pass over its keys, no allocation): an unknown one is OL_INVALID_ARGUMENT
 * naming it, as is a protocol policy that does not exist.
 */
export function checkRequest(o: RequestOptions): void {
  if (o === null || typeof o !== 'object') throw badRequestField('request', 'must be an object { url, … }');
  for (const k in o) {
    if (!REQUEST_KEYS.has(k))
      throw new OriginlinkError(
        ErrorCode.INVALID_ARGUMENT,
        'local',
        `request field ${JSON.stringify(k)} is not known (known: ${[...REQUEST_KEYS].join(', ')})`,
        { details: { field: k } },
      );
  }
  if (o.protocol !== undefined && !PROTOCOL_POLICIES.includes(o.protocol)) {
    throw new OriginlinkError(
      ErrorCode.INVALID_ARGUMENT,
      'local',
      `request protocol must be one of ${PROTOCOL_POLICIES.join(', ')}, got ${JSON.stringify(o.protocol)}`,
      { details: { field: 'protocol' } },
    );
  }
  // What goes into the request line or :authority unchecked otherwise: `a\r\nX: y` was a field of its own on h1.
  if (o.authority !== undefined && (typeof o.authority !== 'string' || !isAuthority(o.authority)))
    throw badRequestField('authority', 'must be host[:port] (RFC 3986 §3.2)');
  const rb = o.responseBufferBytes;
  if (rb !== undefined && !(Number.isSafeInteger(rb) && rb >= 0))
    throw badRequestField('responseBufferBytes', 'must be a non-negative integer');
  const s = o.signal as unknown;
  if (
    s != null &&
    (typeof s !== 'object' ||
      typeof (s as SignalLike).aborted !== 'boolean' ||
      typeof (s as SignalLike).addEventListener !== 'function')
  )
    throw badRequestField('signal', 'must be an AbortSignal');
}

/** OL_INVALID_ARGUMENT naming a request's field: the caller's error, found before anything is sent. */
export function badRequestField(field: string, reason: string): OriginlinkError {
  return new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', `${field}: ${reason}`, { details: { field } });
}

/** Refuse an option name `known` does not hold; a pool option in the wrong place is named with its place. */
export function checkKeys(o: object, known: readonly string[], where: string): void {
  for (const k of Object.keys(o)) {
    if (known.includes(k)) continue;
    const field = where ? `${where}.${k}` : k;
    // A pool option one level too high: where it belongs says more than the list.
    if (k in DEFAULT_POOL_OPTIONS)
      throw configError(field, `unknown option (a pool option: ${where ? `${where}.` : ''}pool.${k})`);
    throw unknownOption(field, known);
  }
}
