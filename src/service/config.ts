/**
 * Service configuration: YAML in, one validated, frozen `ServiceConfig` out.
 * Every field has a documented default (docs/config.md); unknown fields are
 * errors. A bad value throws `ConfigError` naming the file, the field path,
 * the line when known, and the reason.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument, isMap, isSeq, type Document } from 'yaml';
import type { ProtocolPolicy } from '../connect/connect.js';
import { ErrorCode, OriginlinkError } from '../errors.js';
import type { GroupOptions } from '../group/options.js';
import type { ProxyPolicy } from '../net/proxy.js';
import type { PoolOptions } from '../pool/options.js';
import type { BbrTuning, CcAlgorithm } from '../quic/cc.js';
import type { QpackOptions } from '../wire/h3-settings.js';
import { Reader } from './config-reader.js';
import {
  fileReaders,
  readAdmin,
  readDns,
  readFleet,
  readTickets,
  readEgress,
  readListeners,
  readLimits,
  readLogging,
  readOrigins,
  readProxy,
  readRoutes,
  readShutdown,
  readStores,
} from './config-sections.js';

export {
  DEFAULT_DNS,
  DEFAULT_H3_MEMORY_BYTES,
  DEFAULT_LIMITS,
  DEFAULT_MAX_REQUEST_TEMP_FILE_BYTES,
  DEFAULT_MAX_TEMP_FILE_BYTES,
  DEFAULT_REQUEST_BUFFER_BYTES,
  DEFAULT_TEMP_FILE_TOTAL_BYTES,
} from './config-sections.js';

export type ListenerKind = 'https' | 'http' | 'h2c' | 'h3';
export type EarlyDataPolicy = 'never' | 'safe' | 'always';
export type ForwardedPolicy = 'append' | 'replace' | 'off';
/** How an origin's requests go among the members of a fleet (docs/fleet.md). */
export type FleetRoute = 'auto' | 'owner' | 'direct';

export interface ListenerCert {
  cert: Buffer;
  key: Buffer;
  certPath: string;
  keyPath: string;
}

/**
 * Client certificates on a front (`tls.clientCa`, `tls.clientAuth`, `tls.clientCertHeader`): the CAs a client's
 * certificate must chain to, whether one is required, and the request field that carries the verified subject and
 * fingerprint to the origin (null: none; the client's own field of that name is always removed).
 */
export interface FrontClientAuth {
  ca: Buffer;
  caPath: string;
  mode: 'require' | 'optional';
  header: string | null;
}

export interface ListenerConfig {
  name: string;
  kind: ListenerKind;
  host: string;
  port: number;
  /**
   * PEM bytes read at load time (https, h3). `cert`/`key` is the default certificate; `certificates`
   * are more, each served to clients whose TLS server_name it holds (server/certificates.ts).
   */
  tls: (ListenerCert & { certificates: ListenerCert[]; client: FrontClientAuth | null }) | null;
  /** https only: offer h2 through ALPN. */
  http2: boolean;
  /** h3 only: the QUIC congestion controller of what this listener sends (null: the default). */
  congestionControl: CcAlgorithm | null;
  /** h3 only: our QPACK decoder's limits towards clients (`quic.qpack`; null: the defaults, 4096-byte table). */
  qpack: QpackOptions | null;
  /** `quic.bbr`: BBR's tuning (h3), null: the default. */
  bbr: BbrTuning | null;
}

export interface OriginConfig {
  name: string;
  /** Normalised `scheme://host:port` strings, at least one: the endpoints' URLs, in order. */
  urls: string[];
  /**
   * The origin group (docs/origin-groups.md), checked: `endpoints` with their weights (from `url`, `urls` or
   * `endpoints`) and the group fields given. Null for a plain origin: one `url` and no group field.
   */
  group: GroupOptions | null;
  /** Among the members of a fleet: to the origin's owner, direct, or `auto` (docs/fleet.md). */
  fleetRoute: FleetRoute;
  /** A group endpoint's own client certificate (`endpoints[].tls.cert/key`), by its URL; the origin's otherwise. */
  endpointCerts: Map<string, ClientCertConfig>;
  protocol: ProtocolPolicy;
  tls: {
    ca: Buffer | null;
    caPath: string | null;
    servername: string | null;
    verify: boolean;
    /** The client certificate shown to the origin (`tls.cert`, `tls.key`: mutual TLS), or null. */
    client: ClientCertConfig | null;
  };
  earlyData: EarlyDataPolicy;
  retries: number;
  /** Bytes of a streamed request body kept for a retry (Agent retryBufferBytes); 0: never replayed. */
  retryBufferBytes: number;
  tfo: boolean;
  /** `socketPath`: the origin is reached over this unix-domain stream socket (h1/h2), not TCP; null: TCP. */
  socketPath: string | null;
  pool: Readonly<PoolOptions>;
  /** The service's `stores:` (the same for every origin; kept here so an Upstream opens them itself). */
  stores: StoresConfig | null;
  /** Egress proxy nodes for this origin (its own `proxy`, else the global `proxy.egress`); null: direct. */
  egress: EgressConfig | null;
  /** Name resolution (the global `dns` section). */
  dns: DnsConfig;
  /** h3: the QUIC congestion controller of what we send to this origin (null: the default). */
  congestionControl: CcAlgorithm | null;
  /** h3: our QPACK decoder's limits towards this origin (`quic.qpack`; null: the defaults, 4096-byte table). */
  qpack: QpackOptions | null;
  /** `quic.bbr`: BBR's tuning (h3), null: the default. */
  bbr: BbrTuning | null;
}

/** `stores:`: where TLS sessions / QUIC tickets and origin facts live (a file path or a Redis URL each). */
export interface StoresConfig {
  sessions: string | null;
  origins: string | null;
  /** Redis key and channel prefix. */
  prefix: string;
  /** AES-256-GCM key for tickets at rest in Redis, read from `encryptionKeyFile`. */
  encryptionKey: Buffer | null;
  encryptionKeyFile: string | null;
  /** rediss:// only. */
  tls: { ca: Buffer | null; caPath: string | null; verify: boolean };
  /** Local tier bound of each store. */
  maxEntries: number;
}

export interface EgressConfig {
  /** Proxy URLs (http://, https://, socks5://, credentials allowed). */
  nodes: string[];
  policy: ProxyPolicy;
  stickyWindowMs: number;
  /** HTTP/2 CONNECT to https:// nodes: tunnels as streams of one connection per node. */
  http2: boolean;
  /** TLS to https:// nodes (`tls: { ca, verify }`); absent: the origin's. */
  tls?: { ca?: Buffer; rejectUnauthorized: boolean; cert?: Buffer; key?: Buffer };
}

/** A client certificate and its key as read (PEM bytes and the files they came from). */
export interface ClientCertConfig {
  cert: Buffer;
  key: Buffer;
  certPath: string;
  keyPath: string;
}

export interface DnsConfig {
  /** DNS servers `ADDR[:PORT]`; empty: the system resolver. */
  servers: string[];
  minTtlMs: number;
  maxTtlMs: number;
  serveStaleMs: number;
  /** RFC 8305 §5 Connection Attempt Delay, ms. */
  attemptDelayMs: number;
}

export interface RouteConfig {
  /** Host to match (lower-case, no port), `*.example.com`, or null for any. */
  host: string | null;
  /** Path prefix; `/` matches everything. */
  path: string;
  origin: string;
  /** `origin` sends the upstream's authority, `preserve` the client's, anything else is sent literally. */
  hostHeader: string;
  stripPrefix: boolean;
  /**
   * Read a request body whole before the origin is asked (`proxy.requestBufferBytes`, `maxRequestTempFileBytes`);
   * false: every body streams.
   */
  requestBuffering: boolean;
}

export interface LimitsConfig {
  maxHeaderBytes: number;
  maxHeaderCount: number;
  requestHeaderTimeoutMs: number;
  maxBodyBytes: number;
  keepAliveTimeoutMs: number;
  maxConcurrentStreams: number;
  /**
   * A response write to a client that makes no progress for this long cuts that client (h1: the connection, h2: the
   * stream).
   */
  clientSendTimeoutMs: number;
  /** Upstream requests one client connection may have at a time (more wait their turn); 0: no limit. */
  maxUpstreamPerClient: number;
  /**
   * Upstream requests all the connections of one client address may have at a time (more wait their turn); 0: no limit.
   */
  maxUpstreamPerAddress: number;
  /** A request body read whole before forwarding must be in within this of its head, ms. */
  clientBodyTimeoutMs: number;
  /** Client connections one TCP listener keeps at once; more are closed as they are accepted. 0: no limit. */
  maxClientConnections: number;
  /** What one h3 listener's connections may hold together, bytes (H3ServerOptions.memoryBudgetBytes); 0: no limit. */
  h3MemoryBytes: number;
}

export interface ProxyConfig {
  via: string;
  xForwardedFor: ForwardedPolicy;
  altSvcMaxAge: number;
  responseBufferBytes: number;
  requestBufferBytes: number;
  normalizePath: boolean;
  /** Pass request field names with `_` on (nginx's underscores_in_headers); false: dropped. */
  underscoresInHeaders: boolean;
  /**
   * Name the origin and what failed in the body of a 502/503/504 (the log line always does); false: the error code
   * only.
   */
  errorDetails: boolean;
  /**
   * Most bytes of one response kept in its temporary file ahead of a slow client (nginx's proxy_max_temp_file_size); 0:
   * none.
   */
  maxTempFileBytes: number;
  /**
   * A request body of a declared length up to this (and over `requestBufferBytes`) is read whole into a temporary file
   * first.
   */
  maxRequestTempFileBytes: number;
  /** Bytes in temporary files for all requests of the process at once. */
  tempFileTotalBytes: number;
  /** Directory of the temporary files (they have no name there: O_TMPFILE, or unlinked at once). */
  tempDir: string;
}

export interface ServiceConfig {
  file: string;
  listeners: ListenerConfig[];
  /** `hosts`: names the admin listener answers to beyond its addresses, localhost and this machine's name. */
  admin: { host: string; port: number; hosts: string[] } | null;
  limits: LimitsConfig;
  /**
   * `altSvcMaxAge`: `ma` of the Alt-Svc the https fronts send for the h3 listeners (RFC 7838 §3.1), seconds; 0 sends
   * none.
   */
  /** `responseBufferBytes`: origin response bytes read ahead of a slow client (nginx's proxy_buffering, in memory). */
  /**
   * `requestBufferBytes`: a request body of a declared length up to this is read whole before the origin is asked
   * (nginx's proxy_request_buffering, in memory); 0: always streamed.
   */
  /**
   * `normalizePath`: route and forward the request path normalised (http/target.ts), a `..` above the root a 400;
   * false: as the client sent it.
   */
  proxy: ProxyConfig;
  shutdown: { graceMs: number };
  logging: {
    level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
    requests: boolean;
    flushMs: number;
  };
  origins: Map<string, OriginConfig>;
  routes: RouteConfig[];
  stores: StoresConfig | null;
  /** The fleet's default route for every origin, and the members of other instances (docs/fleet.md). */
  fleet: FleetConfig;
  /** The fronts' session-ticket keys (service/ticket-keys.ts): their period, and the fleet secret they derive from. */
  tickets: TicketsConfig;
  /** `dns:`, as every origin has it (the fleet's members by DNS resolve through it too). */
  dns: DnsConfig;
}

export interface FleetConfig {
  route: FleetRoute;
  /**
   * A fleet of instances (`fleet.members`): every member's `host:port`, this process's own included; null: the
   * members are the workers of this `serve --workers` only (loopback, told by the primary).
   */
  members: string[] | null;
  /**
   * `fleet.members: { dns, slots }`: the members are every address of a DNS name (a Kubernetes headless service),
   * `slots` member ports each from `member.port`, re-resolved by the answer's TTL. Null: a static list or none.
   */
  dns: { name: string; slots: number } | null;
  /**
   * `fleet.members: redis`: every member registers itself in the `stores:` Redis with a heartbeat, and the members are
   * those whose registration is fresh.
   */
  redis: boolean;
  /** This process's member listener when `members` is given: TLS with mutual certificates. */
  member: FleetMemberConfig | null;
}

export interface FleetMemberConfig {
  host: string;
  /** The first worker slot's port; slot s listens on port + s - 1 (one process: port). */
  port: number;
  /** The host others reach it by (its entry in `members`): default `host`. */
  advertise: string;
  /**
   * Its share of the origins against the others' (weighted rendezvous; default 1): a machine with twice the cores
   * takes 2. The others learn it from its heartbeats' answers; a reload changes it.
   */
  weight: number;
  /** This member's certificate (shown on both ends of a link) and the CA every member's chains to. */
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

export interface TicketsConfig {
  rotateMs: number;
  /** From `secretFile` (32 bytes as 64 hex digits or base64, as `stores.encryptionKeyFile`); null: see ticket-keys.ts. */
  secret: Buffer | null;
  secretFile: string | null;
}

export class ConfigError extends OriginlinkError {
  constructor(file: string, field: string, reason: string, line?: number) {
    super(ErrorCode.INVALID_CONFIG, 'local', `${file}${line ? `:${line}` : ''}: ${field}: ${reason}`, {
      details: { file, field, reason, line },
    });
  }
}

/** `${NAME}` and `${NAME:-default}` are replaced from the environment before parsing. */
export function interpolateEnv(text: string, env: NodeJS.ProcessEnv = process.env): string {
  return text.replace(
    /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g,
    (_m, name: string, def: string | undefined) => env[name] ?? def ?? '',
  );
}

export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): ServiceConfig {
  const abs = resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (e) {
    throw new ConfigError(file, '(file)', `cannot read: ${(e as Error).message}`);
  }
  return parseConfig(interpolateEnv(text, env), file, dirname(abs));
}

/** Parse and validate config text. `baseDir` resolves relative certificate paths. */
export function parseConfig(text: string, file: string, baseDir: string): ServiceConfig {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    const line = first.linePos?.[0]?.line ?? lc.linePos(first.pos[0]).line;
    throw new ConfigError(file, '(yaml)', first.message.split('\n')[0] ?? 'parse error', line);
  }
  const lineOf = (path: Array<string | number>): number | undefined => lineFor(doc, lc, path);
  let data: unknown;
  try {
    // Some YAML faults surface only here (an alias whose anchor is set after it, a cycle): a config error too.
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new ConfigError(file, '(yaml)', (e as Error).message.split('\n')[0] ?? 'cannot resolve the document');
  }
  const r = new Reader(data ?? {}, [], (path, reason) => new ConfigError(file, fmtPath(path), reason, lineOf(path)));
  r.keys([
    'listeners',
    'admin',
    'limits',
    'proxy',
    'shutdown',
    'logging',
    'origins',
    'routes',
    'stores',
    'dns',
    'fleet',
    'tickets',
  ]);
  const files = fileReaders(baseDir);
  const { readPem, readCa } = files;
  const listeners = readListeners(r, files);
  const admin = readAdmin(r, listeners);
  const limits = readLimits(r);
  const proxy = readProxy(r, baseDir);
  const egress = r.has('proxy') && r.obj('proxy').has('egress') ? readEgress(r.obj('proxy'), 'egress', files) : null;
  const dns = readDns(r);
  const shutdown = readShutdown(r);
  const logging = readLogging(r);
  const stores = r.has('stores') ? readStores(r.obj('stores'), readPem, readCa) : null;
  const fleet = readFleet(r, files);
  const tickets = readTickets(r, readPem);
  const origins = readOrigins(r, files, egress, stores, dns, fleet.route);
  const routes = readRoutes(r, origins);
  return { file, listeners, admin, limits, proxy, shutdown, logging, origins, routes, stores, fleet, tickets, dns };
}

/**
 * A failure of the config at run time (a listener that cannot bind at start or reload: another process holds its
 * port) as the config error it is: the file, the field's line in it (read again; null when gone) and the reason.
 */
export function configErrorAt(
  file: string,
  path: Array<string | number>,
  reason: string,
  env: NodeJS.ProcessEnv = process.env,
): ConfigError {
  let line: number | undefined;
  try {
    const lc = new LineCounter();
    const doc = parseDocument(interpolateEnv(readFileSync(resolve(file), 'utf8'), env), {
      lineCounter: lc,
      prettyErrors: false,
    });
    line = lineFor(doc, lc, path);
  } catch {
    // The file changed or went: the field and the reason still say what failed.
  }
  return new ConfigError(file, fmtPath(path), reason, line);
}

/** The config field a failed start or reload names (a listener's or the admin's bind), or null. */
export function failedField(e: unknown, config: ServiceConfig): Array<string | number> | null {
  if (!(e instanceof OriginlinkError) || e.code !== ErrorCode.INVALID_CONFIG) return null;
  if (e.details['admin'] === true) return ['admin', 'port'];
  const i = config.listeners.findIndex((l) => l.name === e.details['listener']);
  return i >= 0 ? ['listeners', i, 'port'] : null;
}

function fmtPath(path: Array<string | number>): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s ? `.${p}` : p;
  return s || '(root)';
}

function lineFor(doc: Document, lc: LineCounter, path: Array<string | number>): number | undefined {
  for (let n = path.length; n > 0; n--) {
    const parentPath = path.slice(0, n - 1);
    const parent = parentPath.length ? doc.getIn(parentPath, true) : doc.contents;
    const key = path[n - 1];
    if (isMap(parent)) {
      const pair = parent.items.find((it) => (it.key as { value?: unknown } | null)?.value === key);
      const range = (pair?.key as { range?: [number, number, number] } | undefined)?.range;
      if (range) return lc.linePos(range[0]).line;
    } else if (isSeq(parent) && typeof key === 'number') {
      const range = (parent.items[key] as { range?: [number, number, number] } | undefined)?.range;
      if (range) return lc.linePos(range[0]).line;
    }
  }
  return undefined;
}
