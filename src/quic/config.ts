/**
 * Typed QUIC options → a quiche Config. Every default is stated on its
 * field. Validation happens once; a bad value throws INVALID_CONFIG naming it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, OriginlinkError } from '../errors.js';
import { contentId } from '../util/digest.js';
import { makeRunDir, releaseRunDir } from '../util/run-dir.js';
import { quiche, quicEngine, type QuicheConfig } from './quiche.js';

import { bbrTuningError, CC_ALGORITHMS, DEFAULT_BBR, DEFAULT_CC, type BbrTuning, type CcAlgorithm } from './cc.js';

export type { CcAlgorithm };

export interface QuicOptions {
  /** ALPN protocols offered / accepted. Default ['h3']. */
  alpn?: string[];
  /** Client: verify the server certificate chain and name. Default true. */
  verifyPeer?: boolean;
  /** Client: trusted CAs, a PEM file path or PEM text/bytes. Default: BoringSSL's built-in store (none). */
  caFile?: string | Uint8Array;
  /**
   * Server: the CAs a client's certificate must chain to (PEM file path or text/bytes). Given, every handshake asks
   * the client for a certificate (SSL_VERIFY_PEER) and one that does not verify fails it; a client may still show
   * none (the caller decides whether that is acceptable).
   */
  clientCa?: string | Uint8Array;
  /**
   * PEM certificate chain (file path, or PEM text/bytes): a server's, or a client's shown when the server asks for one
   * (mutual TLS; the client needs `key` too).
   */
  cert?: string | Uint8Array;
  /** PEM private key of `cert` (file path, or PEM text/bytes). */
  key?: string | Uint8Array;
  /** Idle timeout in ms advertised to the peer. Default 30000. */
  idleTimeoutMs?: number;
  /** Connection-level flow-control window. Default 16 MiB. */
  maxData?: number;
  /** Per-stream flow-control window (bidi local/remote, uni). Default 4 MiB. */
  maxStreamData?: number;
  /** Concurrent bidi streams the peer may open. Default 128. */
  maxStreamsBidi?: number;
  /** Concurrent uni streams the peer may open. Default 16. */
  maxStreamsUni?: number;
  /** Max UDP payload we send/receive. Default 1350. */
  maxUdpPayload?: number;
  /** Congestion control of what this endpoint sends. Default DEFAULT_CC. */
  cc?: CcAlgorithm;
  /**
   * BBR tuning on our quiche 0.30 engine (its `internal` API, tied to the pinned version): `lossThreshold`, the
   * loss rate per round above which BBR lowers its inflight ceiling (quiche's default 0.015; 0.001 – 0.2). Ignored
   * by other controllers and by the fallback engine. Default: DEFAULT_BBR (cc.ts).
   */
  bbr?: BbrTuning;
  /**
   * quiche keeps release times for its packets (its pacer): with BBR on our quiche 0.30 engine (gcongestion) the
   * driver sends by them (QuicConnection #drainSend); otherwise it paces by itself (pacer.ts) and they are
   * ignored. Default true.
   */
  pacing?: boolean;
  /** Accept/send 0-RTT early data. Default true. */
  earlyData?: boolean;
  /** Server: 48-byte session ticket key shared by a fleet. Default random per process. */
  ticketKey?: Uint8Array;
  /**
   * Connection ids we accept from the peer (spares for migration, RFC 9000 §5.1.1); quiche also bounds a
   * connection's paths by it. Default 4 (our h3 server: 8, server/h3.ts).
   */
  activeConnectionIdLimit?: number;
  /** Write TLS secrets to SSLKEYLOGFILE when set in the environment. Default false. */
  logKeys?: boolean;
}

export const DEFAULT_UDP_PAYLOAD = 1350;

/** True for 127.0.0.0/8, ::1 and ::ffff:127.x: traffic that never leaves the host. */
export function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1' || ip.startsWith('::ffff:127.');
}

let loCache: number | null = null;

/**
 * Datagram payload for loopback peers: the `lo` MTU minus IPv6 + UDP
 * headers (48 bytes), capped at 65527 (RFC 9000 §18.2 max_udp_payload_size
 * limit). Loopback has no path MTU below the device MTU, so this is the
 * QUIC counterpart of TCP's 64 KiB segments on `lo`; it cuts per-packet
 * cost ~45×. A listener or Agent that sets `maxUdpPayload` itself keeps it.
 */
export function loopbackPayload(): number {
  if (loCache !== null) return loCache;
  let mtu = 65536;
  try {
    mtu = Number.parseInt(readFileSync('/sys/class/net/lo/mtu', 'utf8'), 10) || DEFAULT_UDP_PAYLOAD + 48;
  } catch {
    // Not Linux or no sysfs: the usual lo MTU.
  }
  loCache = Math.max(1200, Math.min(65527, mtu - 48));
  return loCache;
}

function bad(name: string, why: string): never {
  throw new OriginlinkError(ErrorCode.INVALID_CONFIG, 'local', `quic option ${name}: ${why}`, {
    details: { option: name },
  });
}

function posInt(name: string, v: number | undefined, dflt: number, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 0 || v > max) bad(name, `must be an integer in [0, ${max}], got ${v}`);
  return v;
}

/** Materialise PEM text/bytes into a private temp file (the binding loads files only). */
export class PemFiles {
  #dir: string | null = null;
  path(name: string, v: string | Uint8Array): string {
    if (typeof v === 'string' && !v.includes('-----BEGIN')) return v;
    this.#dir ??= makeRunDir('originlink-quic');
    const p = join(this.#dir, name);
    writeFileSync(p, v, { mode: 0o600 });
    return p;
  }
  dispose(): void {
    if (this.#dir) releaseRunDir(this.#dir);
    this.#dir = null;
  }
}

/** PEM given as text or bytes, or a file name (a string without a PEM header): its bytes. */
function pemBytes(name: string, v: string | Uint8Array): Buffer {
  if (typeof v !== 'string') return Buffer.from(v);
  if (v.includes('-----BEGIN')) return Buffer.from(v);
  try {
    return readFileSync(v);
  } catch (e) {
    throw new OriginlinkError(
      ErrorCode.INVALID_CONFIG,
      'local',
      `quic option ${name}: cannot load ${v} (${(e as Error).message})`,
      {
        cause: e,
        details: { option: name },
      },
    );
  }
}

/**
 * A config's TLS context: this end's certificate and key, the CAs the peer's chain may end at (a client's `caFile`, a
 * server's `clientCa`), and the system roots only for a client that verifies by them — a client's own CA replaces
 * them, as Node's `ca` does for h1/h2 (quiche's own `Config::new` would add it to them), and a server or a client
 * that verifies nothing has no use for them. Our binding loads the PEM from memory; the fallback binding loads files
 * only, so there it goes through private temporary files (and a CA adds to the system roots).
 */
function tlsConfig(role: 'client' | 'server', o: QuicOptions): QuicheConfig {
  const b = quiche();
  if (role === 'server' && (o.cert === undefined || o.key === undefined)) bad('cert/key', 'a server needs both');
  if ((o.cert === undefined) !== (o.key === undefined)) bad('cert/key', 'a client certificate needs both');
  const caName = role === 'server' ? 'clientCa' : 'caFile';
  const ca = role === 'server' ? o.clientCa : o.caFile;
  const verify = role === 'server' ? o.clientCa !== undefined : (o.verifyPeer ?? true);
  const failed = (name: string, e: unknown): OriginlinkError => {
    const what = name === 'caFile' ? ` ${typeof ca === 'string' && !ca.includes('-----BEGIN') ? ca : 'PEM data'}` : '';
    return new OriginlinkError(
      ErrorCode.INVALID_CONFIG,
      'local',
      `quic option ${name}: cannot load${what} (${(e as Error).message})`,
      { cause: e, details: { option: name } },
    );
  };
  let c: QuicheConfig;
  if (quicEngine().binding === 'originlink-quic') {
    const pems: { ca?: Buffer; cert?: Buffer; key?: Buffer } = {};
    if (ca !== undefined) pems.ca = pemBytes(caName, ca);
    if (o.cert !== undefined && o.key !== undefined) {
      pems.cert = pemBytes('cert/key', o.cert);
      pems.key = pemBytes('cert/key', o.key);
    }
    try {
      c = new b.Config(role === 'client' && verify && ca === undefined, pems);
    } catch (e) {
      const m = (e as Error).message;
      throw failed(
        m.startsWith('ca:') ? caName : m.startsWith('cert:') || m.startsWith('key:') ? 'cert/key' : 'tls',
        e,
      );
    }
  } else {
    c = new b.Config();
    const files = new PemFiles();
    try {
      if (o.cert !== undefined && o.key !== undefined) {
        try {
          c.loadCertChainFromPemFile(files.path('cert.pem', o.cert));
          c.loadPrivKeyFromPemFile(files.path('key.pem', o.key));
        } catch (e) {
          throw failed('cert/key', e);
        }
      }
      if (ca !== undefined) {
        try {
          c.loadVerifyLocationsFromFile(files.path('ca.pem', ca));
        } catch (e) {
          throw failed(caName, e);
        }
      }
    } finally {
      files.dispose();
    }
  }
  c.verifyPeer(verify);
  return c;
}

export function buildConfig(role: 'client' | 'server', o: QuicOptions): QuicheConfig {
  const alpn = o.alpn ?? ['h3'];
  if (alpn.length === 0) bad('alpn', 'must not be empty');
  const c = tlsConfig(role, o);
  c.setApplicationProtos(alpn);
  if (role === 'server' && o.ticketKey !== undefined) {
    if (o.ticketKey.length !== 48) bad('ticketKey', 'must be 48 bytes');
    c.setTicketKey(o.ticketKey);
  }
  const udp = posInt('maxUdpPayload', o.maxUdpPayload, DEFAULT_UDP_PAYLOAD, 65527);
  if (udp < 1200) bad('maxUdpPayload', 'must be >= 1200 (RFC 9000 §14)');
  c.setMaxIdleTimeout(posInt('idleTimeoutMs', o.idleTimeoutMs, 30_000));
  c.setMaxRecvUdpPayloadSize(udp);
  c.setMaxSendUdpPayloadSize(udp);
  const maxData = posInt('maxData', o.maxData, 16 * 1024 * 1024);
  const streamData = posInt('maxStreamData', o.maxStreamData, 4 * 1024 * 1024);
  c.setInitialMaxData(maxData);
  c.setInitialMaxStreamDataBidiLocal(streamData);
  c.setInitialMaxStreamDataBidiRemote(streamData);
  c.setInitialMaxStreamDataUni(streamData);
  c.setMaxConnectionWindow(Math.max(maxData, 24 * 1024 * 1024));
  c.setMaxStreamWindow(Math.max(streamData, 16 * 1024 * 1024));
  c.setInitialMaxStreamsBidi(posInt('maxStreamsBidi', o.maxStreamsBidi, 128));
  c.setInitialMaxStreamsUni(posInt('maxStreamsUni', o.maxStreamsUni, 16));
  c.setActiveConnectionIdLimit(posInt('activeConnectionIdLimit', o.activeConnectionIdLimit, 4));
  const cc = o.cc ?? DEFAULT_CC;
  if (!CC_ALGORITHMS.includes(cc)) bad('cc', `unknown algorithm ${String(cc)}`);
  try {
    c.setCcAlgorithmName(cc);
  } catch (e) {
    // quiche 0.18 (the fallback engine) knows BBR as `bbr` only.
    if (cc !== 'bbr2') throw e;
    c.setCcAlgorithmName('bbr');
  }
  const bbr = { ...DEFAULT_BBR, ...o.bbr };
  const why = bbrTuningError(bbr);
  if (why) bad(`bbr.${why.field}`, why.reason);
  const tune = (
    c as QuicheConfig & {
      setBbrParams?: (
        lossThreshold: number | null,
        startupFullLossCount: number | null,
        bwLoReduction: string | null,
      ) => void;
    }
  ).setBbrParams;
  if ((cc === 'bbr' || cc === 'bbr2') && tune && (bbr.lossThreshold !== undefined || bbr.bwLoReduction !== undefined))
    tune.call(c, bbr.lossThreshold ?? null, null, bbr.bwLoReduction ?? null);
  c.enablePacing(o.pacing ?? true);
  if (o.earlyData ?? true) c.enableEarlyData();
  if (o.logKeys) c.logKeys();
  return c;
}

/**
 * Creating a quiche Config builds a BoringSSL context (~5 ms here), so
 * client configs are shared by every connection with the same options.
 * Bounded LRU; the key covers every option (CA bytes by hash).
 */
const CLIENT_CACHE_MAX = 32;
const clientCache = new Map<string, QuicheConfig>();

function cacheKey(o: QuicOptions): string {
  return JSON.stringify(keyValue(o));
}

/**
 * `v` for the key, its certificate material by content id. Not a JSON.stringify replacer: a Buffer reaches one as its
 * toJSON() array already, every byte a number — a CA bundle's bytes written into the key at every lookup.
 */
function keyValue(v: unknown): unknown {
  if (v instanceof Uint8Array || (typeof v === 'string' && v.includes('-----BEGIN'))) return contentId(v);
  if (Array.isArray(v)) return v.map(keyValue);
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = keyValue(x);
  return out;
}

export function clientConfig(o: QuicOptions): QuicheConfig {
  const key = cacheKey(o);
  const hit = clientCache.get(key);
  if (hit) {
    clientCache.delete(key);
    clientCache.set(key, hit);
    return hit;
  }
  const c = buildConfig('client', o);
  clientCache.set(key, c);
  if (clientCache.size > CLIENT_CACHE_MAX) clientCache.delete(clientCache.keys().next().value as string);
  return c;
}
