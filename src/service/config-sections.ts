/**
 * The sections of the service's config (config.ts parseConfig reads them in this order): listeners, admin, limits,
 * proxy (with its egress), dns, shutdown, logging, stores, origins, routes — each a function of the config's Reader,
 * with the defaults it fills in. A bad value throws the Reader's ConfigError naming the field.
 */
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { ipFamily } from '../util/ip.js';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { socketPathProblem } from '../agent/options.js';
import { DEFAULT_RETRY_BUFFER_BYTES } from '../agent/replay-body.js';
import { OriginlinkError } from '../errors.js';
import { resolveGroupOptions, type GroupOptions } from '../group/options.js';
import { ProxyRotation } from '../net/proxy.js';
import { Resolver } from '../net/resolver.js';
import { resolvePoolOptions, type PoolOptions } from '../pool/options.js';
import { BW_LO_REDUCTIONS, CC_ALGORITHMS, type BbrTuning, type CcAlgorithm } from '../quic/cc.js';
import { caProblem, certificatePairProblem } from '../net/pem.js';
import { certificateNames } from '../server/certificates.js';
import { isRedisUrl, parseRedisUrl } from '../store/redis-link.js';
import { parseKey, readKeyFile as readKeyFileAt } from '../store/seal.js';
import { redact } from '../util/redact.js';
import { DEFAULT_TICKET_ROTATE_MS } from './ticket-keys.js';
import {
  QPACK_MAX_ACK_DELAY_MS,
  QPACK_MAX_BLOCKED_STREAMS,
  QPACK_MAX_REFERENCE_SAVING,
  QPACK_MAX_TABLE_CAPACITY,
  type QpackOptions,
} from '../wire/h3-settings.js';
import type {
  ClientCertConfig,
  DnsConfig,
  FleetConfig,
  FrontClientAuth,
  EgressConfig,
  FleetRoute,
  LimitsConfig,
  ListenerCert,
  ListenerConfig,
  ListenerKind,
  OriginConfig,
  ProxyConfig,
  RouteConfig,
  ServiceConfig,
  StoresConfig,
  TicketsConfig,
} from './config.js';
import type { Reader } from './config-reader.js';

export const DEFAULT_DNS: Readonly<DnsConfig> = Object.freeze({
  servers: [],
  minTtlMs: 1000,
  maxTtlMs: 300_000,
  serveStaleMs: 600_000,
  attemptDelayMs: 250,
});

/**
 * `proxy.requestBufferBytes` by default: nginx's client_body_buffer_size on 64-bit (two pages), the size of most
 * API request bodies; larger ones stream, kept for a retry up to the origin's retryBufferBytes.
 */
export const DEFAULT_REQUEST_BUFFER_BYTES = 16_384;
/** `proxy.maxTempFileBytes`: nginx's proxy_max_temp_file_size default. */
export const DEFAULT_MAX_TEMP_FILE_BYTES = 1 << 30;
/**
 * `proxy.maxRequestTempFileBytes`: nginx's client_max_body_size default (nginx refuses more with 413; here it streams).
 */
export const DEFAULT_MAX_REQUEST_TEMP_FILE_BYTES = 1 << 20;
/** `proxy.tempFileTotalBytes`: every temporary file of the process together. */
export const DEFAULT_TEMP_FILE_TOTAL_BYTES = 2 ** 31;

/** `limits.h3MemoryBytes`: about 5,000 idle h3 connections (src/server/h3.ts CONNECTION_BYTES). */
export const DEFAULT_H3_MEMORY_BYTES = 256 * 1024 * 1024;

export const DEFAULT_LIMITS: Readonly<LimitsConfig> = Object.freeze({
  maxHeaderBytes: 16_384,
  maxHeaderCount: 100,
  requestHeaderTimeoutMs: 10_000,
  maxBodyBytes: 0,
  keepAliveTimeoutMs: 5_000,
  maxConcurrentStreams: 100,
  clientSendTimeoutMs: 60_000,
  // Half the default pool (maxConnections 32): one client connection cannot hold all of an HTTP/1.1 origin's.
  maxUpstreamPerClient: 16,
  maxUpstreamPerAddress: 0,
  clientBodyTimeoutMs: 60_000,
  maxClientConnections: 16_384,
  h3MemoryBytes: DEFAULT_H3_MEMORY_BYTES,
});

/** Reads a file a field names (relative to the config's directory): its bytes and its path. */
export type ReadFile = (p: Reader, field: string) => { bytes: Buffer; path: string };

/** The file readers of a config in `baseDir`: any file, and a file of trusted CA certificates (checked as such). */
export function fileReaders(baseDir: string): { readPem: ReadFile; readCa: ReadFile } {
  const readPem: ReadFile = (p, field) => {
    const rel = p.str(field);
    const path = resolve(baseDir, rel);
    try {
      return { bytes: readFileSync(path), path };
    } catch (e) {
      throw p.fail(field, `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  // Trusted CAs are read as the certificates they must be: a file without one trusted nothing, and every dial
  // failed later as "unable to verify". Once per file and load: a config of 100 origins naming one CA file read and
  // parsed it 100 times (~25 ms of every reload, bench/RESULTS.md fleet-reuse); a reload reads it again.
  const cas = new Map<string, { bytes: Buffer; path: string }>();
  const readCa: ReadFile = (p, field) => {
    const path = resolve(baseDir, p.str(field));
    const seen = cas.get(path);
    if (seen !== undefined) return seen;
    const ca = readPem(p, field);
    const bad = caProblem(ca.bytes, ca.path);
    if (bad) throw p.fail(field, bad);
    cas.set(path, ca);
    return ca;
  };
  return { readPem, readCa };
}

/** The file readers of a config (fileReaders). */
export interface FileReaders {
  readPem: ReadFile;
  readCa: ReadFile;
}

/**
 * A client certificate for mutual TLS (`tls.cert` and `tls.key` of an origin or an egress): both or neither, checked
 * as a pair now (a key of another certificate is this field's error at --check, start and reload).
 */
export function readClientCert(t: Reader, files: FileReaders): ClientCertConfig | null {
  if (!t.has('cert') && !t.has('key')) return null;
  if (!t.has('cert') || !t.has('key'))
    throw t.fail(t.has('cert') ? 'key' : 'cert', 'a client certificate needs both cert and key');
  const cert = files.readPem(t, 'cert');
  const key = files.readPem(t, 'key');
  const bad = certificatePairProblem(cert.bytes, key.bytes, cert.path, key.path);
  if (bad) throw t.fail(bad.field, bad.reason);
  return { cert: cert.bytes, key: key.bytes, certPath: cert.path, keyPath: key.path };
}

/** `listeners`: each checked, its TLS context built now (a key that fits no certificate fails here), binds apart. */
export function readListeners(r: Reader, { readPem, readCa }: FileReaders): ListenerConfig[] {
  const listeners: ListenerConfig[] = r.list('listeners', 1).map((l) => {
    l.keys(['name', 'kind', 'host', 'port', 'tls', 'http2', 'quic']);
    const kind = l.oneOf('kind', ['https', 'http', 'h2c', 'h3'] as const);
    const port = l.int('port', 0, 65_535);
    let tls: ListenerConfig['tls'] = null;
    if (kind === 'https' || kind === 'h3') {
      const t = l.obj('tls');
      t.keys(['cert', 'key', 'certificates', 'clientCa', 'clientAuth', 'clientCertHeader']);
      // The TLS context the listener will build, built now: a key that is a certificate or belongs to another
      // certificate is this field's error here, at --check, start and reload alike (never a dying `serve`).
      const pair = (p: Reader): ListenerCert => {
        const cert = readPem(p, 'cert');
        const key = readPem(p, 'key');
        const bad = certificatePairProblem(cert.bytes, key.bytes, cert.path, key.path);
        if (bad) throw p.fail(bad.field, bad.reason);
        return { cert: cert.bytes, key: key.bytes, certPath: cert.path, keyPath: key.path };
      };
      const certificates = t.list('certificates').map((c, i) => {
        c.keys(['cert', 'key']);
        const one = pair(c);
        // A certificate that names nothing could never be chosen.
        let names: string[];
        try {
          names = certificateNames(one.cert);
        } catch (e) {
          throw t.fail('certificates', `entry ${i}: ${(e as Error).message}`);
        }
        if (names.length === 0)
          throw t.fail('certificates', `entry ${i}: ${one.certPath} holds no DNS name to be chosen by`);
        return one;
      });
      let client: FrontClientAuth | null = null;
      if (t.has('clientCa')) {
        const ca = readCa(t, 'clientCa');
        const header = t.optStr('clientCertHeader')?.toLowerCase() ?? null;
        if (header !== null && !/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(header))
          throw t.fail('clientCertHeader', `not a field name: ${JSON.stringify(header)}`);
        client = {
          ca: ca.bytes,
          caPath: ca.path,
          mode: t.has('clientAuth') ? t.oneOf('clientAuth', ['require', 'optional'] as const) : 'require',
          header,
        };
      } else {
        for (const f of ['clientAuth', 'clientCertHeader'])
          if (t.has(f)) throw t.fail(f, 'needs tls.clientCa (the CAs client certificates are checked against)');
      }
      tls = { ...pair(t), certificates, client };
    } else if (l.has('tls')) {
      throw l.fail('tls', `not allowed for kind ${kind} (cleartext)`);
    }
    if (l.has('quic') && kind !== 'h3') throw l.fail('quic', `only for kind h3 (got ${kind})`);
    return {
      name: l.optStr('name') ?? `${kind}:${port}`,
      kind,
      host: l.optStr('host') ?? '0.0.0.0',
      port,
      tls,
      http2: l.optBool('http2') ?? true,
      congestionControl: readQuic(l),
      bbr: readBbr(l),
      qpack: readQpack(l),
    };
  });
  listeners.forEach((l, i) => {
    for (let j = 0; j < i; j++) {
      const other = listeners[j] as ListenerConfig;
      const why = bindsOverlap(l, other);
      if (why !== null)
        throw r
          .at(['listeners', i])
          .fail(
            'port',
            `${l.host}:${l.port} is already taken by listener ${JSON.stringify(other.name)} (${other.host}:${other.port}${why})`,
          );
    }
  });
  return listeners;
}

/** `admin`: its bind (apart from every listener), or null when turned off. */
export function readAdmin(r: Reader, listeners: readonly ListenerConfig[]): ServiceConfig['admin'] {
  let admin: ServiceConfig['admin'] = { host: '127.0.0.1', port: 9464, hosts: [] };
  if (r.has('admin')) {
    if (r.raw('admin') === false || r.raw('admin') === null) admin = null;
    else {
      const a = r.obj('admin');
      a.keys(['host', 'port', 'hosts']);
      const hosts = a.list('hosts').map((x) => x.self());
      hosts.forEach((h, i) => {
        if (!/^[A-Za-z0-9.-]+$/.test(h))
          throw a.fail('hosts', `entry ${i}: must be a host name, got ${JSON.stringify(h)}`);
      });
      admin = { host: a.optStr('host') ?? '127.0.0.1', port: a.int('port', 0, 65_535), hosts };
      for (const other of listeners) {
        const why = bindsOverlap({ ...admin, kind: 'http' }, other);
        if (why !== null)
          throw a.fail(
            'port',
            `${admin.host}:${admin.port} is already taken by listener ${JSON.stringify(other.name)} (${other.host}:${other.port}${why})`,
          );
      }
    }
  }
  return admin;
}

/** `limits`, over DEFAULT_LIMITS. */
export function readLimits(r: Reader): LimitsConfig {
  const limits: LimitsConfig = { ...DEFAULT_LIMITS };
  if (r.has('limits')) {
    const l = r.obj('limits');
    l.keys(Object.keys(DEFAULT_LIMITS));
    limits.maxHeaderBytes = l.optInt('maxHeaderBytes', 1024, 1 << 20) ?? limits.maxHeaderBytes;
    limits.maxHeaderCount = l.optInt('maxHeaderCount', 8, 10_000) ?? limits.maxHeaderCount;
    limits.requestHeaderTimeoutMs = l.optInt('requestHeaderTimeoutMs', 100, 3_600_000) ?? limits.requestHeaderTimeoutMs;
    limits.maxBodyBytes = l.optInt('maxBodyBytes', 0, Number.MAX_SAFE_INTEGER) ?? limits.maxBodyBytes;
    limits.keepAliveTimeoutMs = l.optInt('keepAliveTimeoutMs', 100, 3_600_000) ?? limits.keepAliveTimeoutMs;
    limits.maxConcurrentStreams = l.optInt('maxConcurrentStreams', 1, 10_000) ?? limits.maxConcurrentStreams;
    limits.clientSendTimeoutMs = l.optInt('clientSendTimeoutMs', 100, 3_600_000) ?? limits.clientSendTimeoutMs;
    limits.maxUpstreamPerClient = l.optInt('maxUpstreamPerClient', 0, 100_000) ?? limits.maxUpstreamPerClient;
    limits.maxUpstreamPerAddress = l.optInt('maxUpstreamPerAddress', 0, 1_000_000) ?? limits.maxUpstreamPerAddress;
    limits.clientBodyTimeoutMs = l.optInt('clientBodyTimeoutMs', 100, 3_600_000) ?? limits.clientBodyTimeoutMs;
    limits.maxClientConnections = l.optInt('maxClientConnections', 0, 10_000_000) ?? limits.maxClientConnections;
    limits.h3MemoryBytes = l.optInt('h3MemoryBytes', 0, Number.MAX_SAFE_INTEGER) ?? limits.h3MemoryBytes;
  }
  return limits;
}

/** `proxy` (its `egress` is readEgress's); `tempDir` must be a writable directory. */
export function readProxy(r: Reader, baseDir: string): ProxyConfig {
  const proxy: ProxyConfig = {
    via: 'originlink',
    xForwardedFor: 'append',
    altSvcMaxAge: 86_400,
    responseBufferBytes: 65_536,
    requestBufferBytes: DEFAULT_REQUEST_BUFFER_BYTES,
    normalizePath: true,
    underscoresInHeaders: false,
    errorDetails: false,
    maxTempFileBytes: DEFAULT_MAX_TEMP_FILE_BYTES,
    maxRequestTempFileBytes: DEFAULT_MAX_REQUEST_TEMP_FILE_BYTES,
    tempFileTotalBytes: DEFAULT_TEMP_FILE_TOTAL_BYTES,
    tempDir: tmpdir(),
  };
  if (r.has('proxy')) {
    const p = r.obj('proxy');
    p.keys([
      'via',
      'xForwardedFor',
      'altSvcMaxAge',
      'responseBufferBytes',
      'requestBufferBytes',
      'normalizePath',
      'underscoresInHeaders',
      'errorDetails',
      'maxTempFileBytes',
      'maxRequestTempFileBytes',
      'tempFileTotalBytes',
      'tempDir',
      'egress',
    ]);
    const via = p.optStr('via');
    if (via !== undefined) {
      if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z:]+$/.test(via))
        throw p.fail('via', 'must be a token (RFC 9110 §7.6.3 pseudonym)');
      proxy.via = via;
    }
    proxy.xForwardedFor = p.has('xForwardedFor')
      ? p.oneOf('xForwardedFor', ['append', 'replace', 'off'] as const)
      : 'append';
    proxy.altSvcMaxAge = p.optInt('altSvcMaxAge', 0, 2_147_483_647) ?? proxy.altSvcMaxAge;
    proxy.responseBufferBytes = p.optInt('responseBufferBytes', 16_384, 1 << 30) ?? proxy.responseBufferBytes;
    proxy.requestBufferBytes = p.optInt('requestBufferBytes', 0, 64 << 20) ?? proxy.requestBufferBytes;
    proxy.normalizePath = p.optBool('normalizePath') ?? true;
    proxy.underscoresInHeaders = p.optBool('underscoresInHeaders') ?? false;
    proxy.errorDetails = p.optBool('errorDetails') ?? false;
    proxy.maxTempFileBytes = p.optInt('maxTempFileBytes', 0, Number.MAX_SAFE_INTEGER) ?? proxy.maxTempFileBytes;
    proxy.maxRequestTempFileBytes = p.optInt('maxRequestTempFileBytes', 0, 1 << 30) ?? proxy.maxRequestTempFileBytes;
    proxy.tempFileTotalBytes = p.optInt('tempFileTotalBytes', 0, Number.MAX_SAFE_INTEGER) ?? proxy.tempFileTotalBytes;
    const dir = p.optStr('tempDir');
    if (dir !== undefined) {
      const abs = resolve(baseDir, dir);
      try {
        if (!statSync(abs).isDirectory()) throw p.fail('tempDir', `${abs} is not a directory`);
        accessSync(abs, constants.W_OK);
      } catch (e) {
        if (e instanceof OriginlinkError) throw e; // the field's own error, from p.fail
        throw p.fail('tempDir', `cannot write to ${abs}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      proxy.tempDir = abs;
    }
  }
  return proxy;
}

/** `dns`, over DEFAULT_DNS; the resolver is made once to check the servers. */
export function readDns(r: Reader): DnsConfig {
  const dns: DnsConfig = { ...DEFAULT_DNS };
  if (r.has('dns')) {
    const d = r.obj('dns');
    d.keys(['servers', 'minTtlMs', 'maxTtlMs', 'serveStaleMs', 'attemptDelayMs']);
    if (d.has('servers')) dns.servers = d.list('servers').map((x) => x.self());
    dns.minTtlMs = d.optInt('minTtlMs', 0, 86_400_000) ?? dns.minTtlMs;
    dns.maxTtlMs = d.optInt('maxTtlMs', 0, 86_400_000) ?? dns.maxTtlMs;
    dns.serveStaleMs = d.optInt('serveStaleMs', 0, 7 * 86_400_000) ?? dns.serveStaleMs;
    dns.attemptDelayMs = d.optInt('attemptDelayMs', 10, 60_000) ?? dns.attemptDelayMs;
    try {
      new Resolver({
        servers: dns.servers,
        minTtlMs: dns.minTtlMs,
        maxTtlMs: dns.maxTtlMs,
        serveStaleMs: dns.serveStaleMs,
      });
    } catch (e) {
      const field = String((e as OriginlinkError).details?.['field'] ?? 'dns.servers').replace(/^dns\./, '');
      throw d.fail(field, String((e as OriginlinkError).details?.['reason'] ?? (e as Error).message));
    }
  }
  return dns;
}

/** `shutdown`. */
export function readShutdown(r: Reader): ServiceConfig['shutdown'] {
  const shutdown = { graceMs: 10_000 };
  if (r.has('shutdown')) {
    const s = r.obj('shutdown');
    s.keys(['graceMs']);
    shutdown.graceMs = s.optInt('graceMs', 0, 3_600_000) ?? shutdown.graceMs;
  }
  return shutdown;
}

/** `logging`. */
export function readLogging(r: Reader): ServiceConfig['logging'] {
  const logging: ServiceConfig['logging'] = { level: 'info', requests: true, flushMs: 100 };
  if (r.has('logging')) {
    const g = r.obj('logging');
    g.keys(['level', 'requests', 'flushMs']);
    if (g.has('level'))
      logging.level = g.oneOf('level', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const);
    logging.requests = g.optBool('requests') ?? true;
    logging.flushMs = g.optInt('flushMs', 0, 60_000) ?? logging.flushMs;
  }
  return logging;
}

/** `origins`: at least one; each with the shared stores and dns. */
export function readOrigins(
  r: Reader,
  files: FileReaders,
  egress: EgressConfig | null,
  stores: StoresConfig | null,
  dns: DnsConfig,
  fleetRoute: FleetRoute,
): Map<string, OriginConfig> {
  const origins = new Map<string, OriginConfig>();
  const or = r.obj('origins');
  for (const name of or.keysPresent()) {
    if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw or.fail(name, 'origin names use letters, digits, "_", "." and "-"');
    origins.set(name, { ...readOrigin(or.obj(name), name, files, egress, fleetRoute), stores, dns });
  }
  if (origins.size === 0) throw r.fail('origins', 'at least one origin is required');
  return origins;
}

/** `routes`: at least one, each to a known origin. */
export function readRoutes(r: Reader, origins: ReadonlyMap<string, OriginConfig>): RouteConfig[] {
  const routes: RouteConfig[] = r.list('routes', 1).map((x) => {
    x.keys(['host', 'path', 'origin', 'hostHeader', 'stripPrefix', 'requestBuffering']);
    const origin = x.str('origin');
    if (!origins.has(origin))
      throw x.fail('origin', `unknown origin ${JSON.stringify(origin)} (known: ${[...origins.keys()].join(', ')})`);
    const host = x.optStr('host');
    if (host !== undefined && !/^(\*\.)?[A-Za-z0-9.-]+$|^\*$/.test(host))
      throw x.fail('host', `must be a host name, "*.domain" or "*", got ${JSON.stringify(host)}`);
    const path = x.optStr('path') ?? '/';
    if (!path.startsWith('/')) throw x.fail('path', `must start with "/", got ${JSON.stringify(path)}`);
    const hostHeader = x.optStr('hostHeader') ?? 'origin';
    if (/[\s\r\n\0]/.test(hostHeader) || hostHeader === '')
      throw x.fail('hostHeader', 'must be "origin", "preserve" or a host[:port]');
    return {
      host: host === undefined || host === '*' ? null : host.toLowerCase(),
      path,
      origin,
      hostHeader,
      stripPrefix: x.optBool('stripPrefix') ?? false,
      requestBuffering: x.optBool('requestBuffering') ?? true,
    };
  });
  return routes;
}

/**
 * Whether two binds would take the same port of the same transport (null: they would not; else why, for the
 * message). An address overlaps itself; 0.0.0.0 takes the port on every IPv4 address (and names, which may
 * resolve to one); :: on every address, IPv4 too (Linux dual-stack sockets, net.ipv6.bindv6only = 0, Node's
 * default). `serve --check` passed 0.0.0.0:7443 beside 127.0.0.1:7443, and `serve` then failed with EADDRINUSE.
 */
function bindsOverlap(
  a: { kind: ListenerKind; host: string; port: number },
  b: { kind: ListenerKind; host: string; port: number },
): string | null {
  if (a.port === 0 || a.port !== b.port || (a.kind === 'h3') !== (b.kind === 'h3')) return null;
  const ha = bareHost(a.host);
  const hb = bareHost(b.host);
  if (ha === hb) return '';
  for (const [w, x] of [
    [ha, hb],
    [hb, ha],
  ] as const) {
    if (w === '::') return ': :: takes the port on every address';
    if (w === '0.0.0.0' && ipFamily(x) !== 6) return ': 0.0.0.0 takes the port on every IPv4 address';
  }
  return null;
}

function bareHost(h: string): string {
  const x = h.toLowerCase();
  return x.startsWith('[') && x.endsWith(']') ? x.slice(1, -1) : x;
}

/** Reads a file a field names (relative to the config's directory), or fails naming the field. */
export function readStores(s: Reader, readPem: ReadFile, readCa: ReadFile): StoresConfig {
  s.keys(['sessions', 'origins', 'prefix', 'encryptionKeyFile', 'tls', 'maxEntries']);
  const place = (field: string): string | null => {
    const v = s.optStr(field);
    if (v === undefined || v === '') return null;
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) {
      try {
        // The URL's keyFile read now, as the store will read it: a missing or short one failed the start (or the
        // reload) after --check had said ok.
        const keyFile = parseRedisUrl(v).keyFile;
        if (keyFile) readKeyFileAt(keyFile);
      } catch (e) {
        throw s.fail(field, (e as Error).message);
      }
    }
    return v;
  };
  const out: StoresConfig = {
    sessions: place('sessions'),
    origins: place('origins'),
    prefix: s.optStr('prefix') ?? 'originlink:',
    encryptionKey: null,
    encryptionKeyFile: null,
    tls: { ca: null, caPath: null, verify: true },
    maxEntries: s.optInt('maxEntries', 1, 10_000_000) ?? 1024,
  };
  if (s.has('encryptionKeyFile')) {
    const k = readKeyFile(s, 'encryptionKeyFile', readPem);
    out.encryptionKey = k.key;
    out.encryptionKeyFile = k.path;
  }
  if (s.has('tls')) {
    const t = s.obj('tls');
    t.keys(['ca', 'verify']);
    if (t.has('ca')) {
      const p = readCa(t, 'ca');
      out.tls.ca = p.bytes;
      out.tls.caPath = p.path;
    }
    out.tls.verify = t.optBool('verify') ?? true;
  }
  return out;
}

/** `proxy: none` (direct) or `{ nodes, policy, stickyWindowMs, http2 }`, checked as the Agent will take it. */
/** `quic: { congestionControl }` of an origin or an h3 listener (quiche's controllers); `quic.qpack` is readQpack's. */
function readQuic(parent: Reader): CcAlgorithm | null {
  if (!parent.has('quic')) return null;
  const q = parent.obj('quic');
  q.keys(['congestionControl', 'bbr', 'qpack']);
  return q.has('congestionControl') ? q.oneOf('congestionControl', CC_ALGORITHMS) : null;
}

/**
 * `quic: { bbr: { lossThreshold, bwLoReduction } }`: BBR's tuning on our quiche 0.30 engine (quic/cc.ts DEFAULT_BBR has
 * the default and its measurement).
 */
function readBbr(parent: Reader): BbrTuning | null {
  if (!parent.has('quic') || !parent.obj('quic').has('bbr')) return null;
  const b = parent.obj('quic').obj('bbr');
  b.keys(['lossThreshold', 'bwLoReduction']);
  const lossThreshold = b.optNumber('lossThreshold', 0.001, 0.2);
  const bwLoReduction = b.has('bwLoReduction') ? b.oneOf('bwLoReduction', BW_LO_REDUCTIONS) : undefined;
  return {
    ...(lossThreshold === undefined ? {} : { lossThreshold }),
    ...(bwLoReduction === undefined ? {} : { bwLoReduction }),
  };
}

/**
 * `quic: { qpack: { maxTableCapacity, blockedStreams, ackDelayMs, minReferenceSaving } }`: the QPACK dynamic table we let
 * the peer build towards us, and when our encoder refers to the one it lets us build.
 */
function readQpack(parent: Reader): QpackOptions | null {
  if (!parent.has('quic') || !parent.obj('quic').has('qpack')) return null;
  const q = parent.obj('quic').obj('qpack');
  q.keys(['maxTableCapacity', 'blockedStreams', 'ackDelayMs', 'minReferenceSaving']);
  const out: QpackOptions = {};
  const cap = q.optInt('maxTableCapacity', 0, QPACK_MAX_TABLE_CAPACITY);
  const blocked = q.optInt('blockedStreams', 0, QPACK_MAX_BLOCKED_STREAMS);
  const delay = q.optInt('ackDelayMs', 0, QPACK_MAX_ACK_DELAY_MS);
  const saving = q.optInt('minReferenceSaving', 0, QPACK_MAX_REFERENCE_SAVING);
  if (saving !== undefined) out.minReferenceSaving = saving;
  if (cap !== undefined) out.maxTableCapacity = cap;
  if (blocked !== undefined) out.blockedStreams = blocked;
  if (delay !== undefined) out.ackDelayMs = delay;
  return out;
}

export function readEgress(parent: Reader, field: string, files: FileReaders): EgressConfig | null {
  if (parent.raw(field) === 'none' || parent.raw(field) === null) return null;
  const e = parent.obj(field);
  e.keys(['nodes', 'policy', 'stickyWindowMs', 'http2', 'tls']);
  const cfg: EgressConfig = {
    nodes: e.list('nodes', 1).map((x) => x.self()),
    policy: e.has('policy') ? e.oneOf('policy', ['sticky', 'per-origin', 'round-robin'] as const) : 'sticky',
    stickyWindowMs: e.optInt('stickyWindowMs', 1, 86_400_000) ?? 60_000,
    http2: e.optBool('http2') ?? false,
  };
  if (e.has('tls')) {
    const t = e.obj('tls');
    t.keys(['ca', 'verify', 'cert', 'key']);
    cfg.tls = { rejectUnauthorized: t.optBool('verify') ?? true };
    if (t.has('ca')) cfg.tls.ca = files.readCa(t, 'ca').bytes;
    const id = readClientCert(t, files);
    if (id) {
      cfg.tls.cert = id.cert;
      cfg.tls.key = id.key;
    }
  }
  try {
    new ProxyRotation(cfg);
  } catch (err) {
    const d = (err as OriginlinkError).details;
    throw e.fail(d?.['field'] === 'proxy.http2' ? 'http2' : 'nodes', String(d?.['reason'] ?? (err as Error).message));
  }
  return cfg;
}

/** The group fields of an origin besides `endpoints` (group/options.ts checks them). */
const GROUP_FIELDS = ['balance', 'health', 'outlier', 'retryBudget', 'hedge', 'collapse'] as const;

function readOrigin(
  o: Reader,
  name: string,
  files: FileReaders,
  egress: EgressConfig | null,
  fleetRoute: FleetRoute,
): Omit<OriginConfig, 'stores' | 'dns'> {
  o.keys([
    'url',
    'urls',
    'endpoints',
    ...GROUP_FIELDS,
    'protocol',
    'tls',
    'earlyData',
    'retries',
    'retryBufferBytes',
    'tfo',
    'timeouts',
    'pool',
    'proxy',
    'quic',
    'fleet',
    'socketPath',
  ]);
  const given = (['url', 'urls', 'endpoints'] as const).filter((k) => o.has(k));
  if (given.length !== 1) throw o.fail(given[1] ?? 'url', 'give exactly one of url, urls or endpoints');
  const form = given[0] as 'url' | 'urls' | 'endpoints';
  const url = (s: string, at: Reader, field: string | number): string => {
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      throw at.fail(field, `not a URL: ${JSON.stringify(redact(s))}`);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:')
      throw at.fail(field, `scheme must be http or https, got ${u.protocol}`);
    if ((u.pathname !== '/' && u.pathname !== '') || u.search || u.hash || u.username)
      throw at.fail(field, 'must be scheme://host[:port] only (no path, query or credentials)');
    return u.origin;
  };
  const endpoints: Array<{ url: string; weight?: number }> =
    form === 'url'
      ? [{ url: url(o.str('url'), o, 'url') }]
      : form === 'urls'
        ? o.list('urls', 1).map((u, i) => ({ url: url(u.self(), o.at(['urls']), i) }))
        : o.list('endpoints', 1).map((e) => {
            e.keys(['url', 'weight', 'tls']);
            const ep: { url: string; weight?: number } = { url: url(e.str('url'), e, 'url') };
            const w = e.optInt('weight', 1, 1000);
            if (w !== undefined) ep.weight = w;
            return ep;
          });
  const urls = endpoints.map((e) => e.url);
  // An endpoint's own client certificate (mutual TLS to that endpoint alone): beside the group's fields, not in them.
  const endpointCerts = new Map<string, ClientCertConfig>();
  if (form === 'endpoints')
    o.list('endpoints', 1).forEach((e, i) => {
      if (!e.has('tls')) return;
      const t = e.obj('tls');
      t.keys(['cert', 'key']);
      const c = readClientCert(t, files);
      if (c) endpointCerts.set(endpoints[i]?.url as string, c);
    });
  // A group: several URLs (`urls` is today's ordered failover, `balance: failover`), `endpoints`, or any group field.
  let group: GroupOptions | null = null;
  if (form !== 'url' || GROUP_FIELDS.some((f) => o.has(f))) {
    const raw: Record<string, unknown> = { endpoints, name };
    if (form === 'urls') raw['balance'] = 'failover';
    for (const f of GROUP_FIELDS) if (o.has(f)) raw[f] = o.raw(f);
    try {
      resolveGroupOptions(raw as unknown as GroupOptions, '@');
    } catch (e) {
      // The field the check names, as a path under this origin (its line in the file).
      const path = String((e as OriginlinkError).details?.['field'] ?? '@')
        .replace(/^@\.?/, '')
        .split(/\.|\[(\d+)\]\.?/)
        .filter((x) => x !== undefined && x !== '')
        .map((x) => (/^\d+$/.test(x) ? Number(x) : x));
      const last = path.pop() ?? 'endpoints';
      throw o.at(path).fail(last, String((e as OriginlinkError).details?.['reason'] ?? (e as Error).message));
    }
    group = raw as unknown as GroupOptions;
  }
  const protocol = o.has('protocol') ? o.oneOf('protocol', ['auto', 'h1', 'h2', 'h3'] as const) : 'auto';
  if (protocol === 'h3' && urls.some((u) => u.startsWith('http:'))) throw o.fail('protocol', 'h3 needs https URLs');
  // nginx's `server unix:PATH`, HAProxy's `server NAME /PATH`: one origin on a unix-domain stream socket.
  const socketPath = o.optStr('socketPath') ?? null;
  if (socketPath !== null) {
    if (group !== null) throw o.fail('socketPath', 'a unix socket is one origin: give `url`, not a group');
    const why = socketPathProblem(socketPath, protocol, o.has('proxy'));
    if (why !== null) throw o.fail('socketPath', why);
  }
  const tls: OriginConfig['tls'] = { ca: null, caPath: null, servername: null, verify: true, client: null };
  if (o.has('tls')) {
    const t = o.obj('tls');
    t.keys(['ca', 'servername', 'verify', 'cert', 'key']);
    tls.client = readClientCert(t, files);
    if (t.has('ca')) {
      const p = files.readCa(t, 'ca');
      tls.ca = p.bytes;
      tls.caPath = p.path;
    }
    tls.servername = t.optStr('servername') ?? null;
    tls.verify = t.optBool('verify') ?? true;
  }
  const pool: Partial<PoolOptions> = {};
  if (o.has('pool')) {
    const p = o.obj('pool');
    for (const k of p.keysPresent()) (pool as Record<string, unknown>)[k] = p.raw(k);
  }
  if (o.has('timeouts')) {
    const t = o.obj('timeouts');
    const map = {
      connectMs: 'connectTimeoutMs',
      headersMs: 'headersTimeoutMs',
      bodyMs: 'bodyTimeoutMs',
      queueMs: 'pendingTimeoutMs',
      idleMs: 'idleTimeoutMs',
    } as const;
    t.keys(Object.keys(map));
    for (const [k, poolKey] of Object.entries(map)) {
      if (!t.has(k)) continue;
      if (poolKey in pool) throw t.fail(k, `also set as pool.${poolKey}; set it in one place`);
      (pool as Record<string, unknown>)[poolKey] = t.raw(k);
    }
  }
  let resolved: Readonly<PoolOptions>;
  try {
    resolved = resolvePoolOptions(pool, 'pool');
  } catch (e) {
    const field = (e as OriginlinkError).details?.['field'];
    throw o.fail(
      typeof field === 'string' ? field : 'pool',
      String((e as OriginlinkError).details?.['reason'] ?? (e as Error).message),
    );
  }
  return {
    name,
    urls,
    group,
    protocol,
    tls,
    earlyData: o.has('earlyData') ? o.oneOf('earlyData', ['never', 'safe', 'always'] as const) : 'safe',
    retries: o.optInt('retries', 0, 10) ?? 2,
    retryBufferBytes: o.optInt('retryBufferBytes', 0, 64 << 20) ?? DEFAULT_RETRY_BUFFER_BYTES,
    tfo: o.optBool('tfo') ?? true,
    socketPath,
    pool: resolved,
    // A unix socket's origin never goes through the global egress.
    egress: socketPath !== null ? null : o.has('proxy') ? readEgress(o, 'proxy', files) : egress,
    congestionControl: readQuic(o),
    qpack: readQpack(o),
    bbr: readBbr(o),
    fleetRoute: o.has('fleet') ? readFleetRoute(o.obj('fleet')) : fleetRoute,
    endpointCerts,
  };
}

/** A `fleet:` section's route (the top level's, or an origin's own). */
function readFleetRoute(f: Reader): FleetRoute {
  f.keys(['route']);
  return f.has('route') ? f.oneOf('route', ['auto', 'owner', 'direct'] as const) : 'auto';
}

/** The config has a `stores:` Redis (its sessions or origins a Redis URL). */
function hasRedisStore(r: Reader): boolean {
  if (!r.has('stores')) return false;
  const s = r.obj('stores');
  return ['sessions', 'origins'].some((k) => {
    const v = s.has(k) ? s.raw(k) : null;
    return typeof v === 'string' && isRedisUrl(v);
  });
}

/** `tickets:` (service/ticket-keys.ts): the fronts' ticket keys' period and the secret file they derive from. */
export function readTickets(r: Reader, readPem: ReadFile): TicketsConfig {
  const out: TicketsConfig = { rotateMs: DEFAULT_TICKET_ROTATE_MS, secret: null, secretFile: null };
  if (!r.has('tickets')) return out;
  const t = r.obj('tickets');
  t.keys(['rotateMs', 'secretFile']);
  // At least a second (a test's boundary), at most a week: a key older than that is what rotation is against.
  out.rotateMs = t.optInt('rotateMs', 1000, 7 * 86_400_000) ?? DEFAULT_TICKET_ROTATE_MS;
  if (t.has('secretFile')) {
    const k = readKeyFile(t, 'secretFile', readPem);
    out.secret = k.key;
    out.secretFile = k.path;
  }
  return out;
}

/** A file that holds a 32-byte key (64 hex digits or base64: store/seal.ts parseKey), else this field's error. */
function readKeyFile(r: Reader, field: string, readPem: ReadFile): { key: Buffer; path: string } {
  const k = readPem(r, field);
  try {
    return { key: parseKey(k.bytes.toString('utf8'), k.path), path: k.path };
  } catch (e) {
    throw r.fail(field, (e as Error).message);
  }
}

/**
 * A fleet member's address, host:port (a name or IPv4 address, or an IPv6 address in brackets; a port 1…65535): one
 * rule for the config's list and for what other members registered in Redis (a bad entry there crashed every member
 * that read it).
 */
export function isMemberAddress(v: unknown): v is string {
  if (typeof v !== 'string') return false;
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[2]) : 0;
  return port >= 1 && port <= 65_535;
}

/**
 * `fleet:` (docs/fleet.md): the route an origin's requests take among the members, unless the origin says; and, for
 * a fleet of instances, its members and this process's member listener.
 */
export function readFleet(r: Reader, files: FileReaders): FleetConfig {
  if (!r.has('fleet')) return { route: 'auto', members: null, dns: null, redis: false, member: null };
  const f = r.obj('fleet');
  f.keys(['route', 'members', 'member']);
  const route = f.has('route') ? f.oneOf('route', ['auto', 'owner', 'direct'] as const) : 'auto';
  if (!f.has('members')) {
    if (f.has('member')) throw f.fail('member', 'needs fleet.members (the members it joins)');
    return { route, members: null, dns: null, redis: false, member: null };
  }
  let dns: FleetConfig['dns'] = null;
  const raw = f.raw('members');
  const redis = raw === 'redis';
  if (redis && !hasRedisStore(r))
    throw f.fail(
      'members',
      'redis: the members register in the stores: Redis (stores.sessions or stores.origins a Redis URL)',
    );
  if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) {
    const d = f.obj('members');
    d.keys(['dns', 'slots']);
    const name = d.str('dns');
    if (!/^[A-Za-z0-9.-]+$/.test(name)) throw d.fail('dns', `not a DNS name: ${JSON.stringify(name)}`);
    dns = { name: name.toLowerCase(), slots: d.optInt('slots', 1, 64) ?? 1 };
  }
  const members = (dns || redis ? [] : f.list('members', 1)).map((m, i) => {
    const v = m.self();
    if (!isMemberAddress(v)) throw f.at(['members']).fail(i, `want host:port, got ${JSON.stringify(v)}`);
    return v.toLowerCase();
  });
  if (new Set(members).size !== members.length) throw f.fail('members', 'a member is named twice');
  if (!f.has('member')) throw f.fail('member', "fleet.members needs this process's member listener (fleet.member)");
  const m = f.obj('member');
  m.keys(['host', 'port', 'advertise', 'weight', 'tls']);
  const host = m.optStr('host') ?? '127.0.0.1';
  const t = m.obj('tls');
  t.keys(['cert', 'key', 'ca']);
  const pair = readClientCert(t, files);
  if (pair === null) throw t.fail('cert', 'a member shows a certificate (cert and key) on both ends of its links');
  return {
    route,
    members,
    dns,
    redis,
    member: {
      host,
      port: m.int('port', 1, 65_535),
      advertise: (m.optStr('advertise') ?? host).toLowerCase(),
      weight: m.optInt('weight', 1, 1000) ?? 1,
      cert: pair.cert,
      key: pair.key,
      ca: files.readCa(t, 'ca').bytes,
    },
  };
}
