/**
 * The only module that loads a native quiche binding. Two engines, one
 * surface (the interfaces below):
 * - ours, `native/quic` (Rust, napi-rs, quiche 0.30.0 from crates.io,
 *   built by `npm install`: native-notes/quic-addon.md) — the default;
 * - the prebuilt `@matrixai/quic-linux-x64` 2.0.9 (quiche 0.18 + BoringSSL)
 *   — the fallback where ours was not built (no Rust toolchain), with one
 *   warning when it is taken.
 * `ORIGINLINK_QUIC_ENGINE=matrixai` (or `originlink`) picks one;
 * `ORIGINLINK_QUIC_BINDING=/path/x.node` loads that file instead.
 * Everything else in originlink sees the typed surface below.
 *
 * Binding conventions (measured, see native-notes/quiche.md):
 * - `send`, `streamRecv`, `streamSend` return null for quiche's `Done`.
 * - Other quiche errors are thrown as `Error` whose message is the Rust
 *   Debug form: `StreamReset(268)`, `StreamStopped(256)`, `TlsFail`...
 * - Host/port pairs are resolved with `to_socket_addrs`: pass IP literals.
 * - `timeout()` is relative, in whole ms; `pathStats()[i].rtt` is whole ms.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, OriginlinkError } from '../errors.js';
import { loadAddon } from '../util/addon.js';
import { useNativeSha256 } from '../util/digest.js';
import { knobs } from '../util/knobs.js';

export interface HostPort {
  host: string;
  port: number;
}

export interface RecvInfo {
  from: HostPort;
  to: HostPort;
}

export interface SendInfo {
  from: HostPort;
  to: HostPort;
  /** Opaque pacing instant; unused by our driver. */
  at: unknown;
}

export interface QuicheConnectionError {
  isApp: boolean;
  errorCode: number;
  reason: Uint8Array;
}

export interface QuicheStats {
  recv: number;
  sent: number;
  lost: number;
  retrans: number;
  sentBytes: number;
  recvBytes: number;
  lostBytes: number;
  streamRetransBytes: number;
  pathsCount: number;
  peerMaxIdleTimeout: number;
  peerMaxUdpPayloadSize: number;
  peerInitialMaxStreamsBidi: number;
  peerInitialMaxStreamsUni: number;
  /**
   * Our engine only: DATA_BLOCKED + STREAM_DATA_BLOCKED frames sent (our sending held by the peer's flow control) and
   * received.
   */
  dataBlockedSent?: number;
  streamDataBlockedSent?: number;
  dataBlockedRecv?: number;
  streamDataBlockedRecv?: number;
}

export interface QuichePathStats {
  localHost: HostPort;
  peerHost: HostPort;
  active: boolean;
  recv: number;
  sent: number;
  lost: number;
  retrans: number;
  rtt: number;
  cwnd: number;
  sentBytes: number;
  recvBytes: number;
  lostBytes: number;
  pmtu: number;
  deliveryRate: number;
}

/** Our engine's `ccStats()`: the active path's congestion controller (read for stats only, not on the send path). */
export interface QuicheCcStats {
  /** bbr2_gcongestion's bandwidth estimate, bytes/s (null for other controllers). */
  maxBandwidth: number | null;
  /** Where and why the controller first left startup (null while in it). */
  startupExit: StartupExit | null;
}

/** The window and bandwidth estimate (bytes/s) when the controller first left startup, and quiche's reason. */
export interface StartupExit {
  cwnd: number;
  bandwidth: number | null;
  reason: string;
}

export interface QuicheConfig {
  loadCertChainFromPemFile(file: string): void;
  loadPrivKeyFromPemFile(file: string): void;
  loadVerifyLocationsFromFile(file: string): void;
  loadVerifyLocationsFromDirectory(dir: string): void;
  verifyPeer(verify: boolean): void;
  grease(grease: boolean): void;
  logKeys(): void;
  setTicketKey(key: Uint8Array): void;
  enableEarlyData(): void;
  setApplicationProtos(protos: string[]): void;
  setMaxIdleTimeout(ms: number): void;
  setMaxRecvUdpPayloadSize(size: number): void;
  setMaxSendUdpPayloadSize(size: number): void;
  setInitialMaxData(v: number): void;
  setInitialMaxStreamDataBidiLocal(v: number): void;
  setInitialMaxStreamDataBidiRemote(v: number): void;
  setInitialMaxStreamDataUni(v: number): void;
  setInitialMaxStreamsBidi(v: number): void;
  setInitialMaxStreamsUni(v: number): void;
  setMaxConnectionWindow(v: number): void;
  setMaxStreamWindow(v: number): void;
  setActiveConnectionIdLimit(v: number): void;
  setDisableActiveMigration(v: boolean): void;
  setCcAlgorithmName(name: string): void;
  enablePacing(v: boolean): void;
  enableHystart(v: boolean): void;
}

export interface QuicheConnection {
  setSession(session: Uint8Array): void;
  recv(data: Uint8Array, info: RecvInfo): number;
  send(out: Uint8Array): [number, SendInfo] | null;
  streamRecv(streamId: number, out: Uint8Array): [number, boolean] | null;
  /** streamRecv as one number (no array per read): -1 when nothing is readable, else bytes × 2 + 1 at the end. */
  streamRead(streamId: number, out: Uint8Array): number;
  streamSend(streamId: number, data: Uint8Array, fin: boolean): number | null;
  streamShutdown(streamId: number, direction: number, code: number): void;
  streamCapacity(streamId: number): number;
  streamFinished(streamId: number): boolean;
  peerStreamsLeftBidi(): number;
  /** Ours: the peer's initial_max_streams_bidi alone (0 before it is known); the fallback binding has only stats(). */
  peerInitialMaxStreamsBidi?(): number;
  peerStreamsLeftUni(): number;
  readable(): Iterable<number>;
  /**
   * How many streams are readable; their ids fill `out` in quiche's order, as many as fit (one crossing, no array
   * made: `readable()` makes one).
   */
  readableInto(out: Float64Array): number;
  /**
   * quiche's own scheduling of a stream's buffered data (RFC 9218 urgency 0–7, incremental). Throws for an unknown
   * stream.
   */
  streamPriority(streamId: number, urgency: number, incremental: boolean): void;
  writable(): Iterable<number>;
  maxSendUdpPayloadSize(): number;
  timeout(): number | null;
  /**
   * What a pass ends on, in one call: PASS_CLOSED, PASS_DRAINING, -1 when no timer is due, else `timeout()`'s
   * milliseconds.
   */
  passState(): number;
  onTimeout(): void;
  close(app: boolean, code: number, reason: Uint8Array): void;
  applicationProto(): Uint8Array;
  serverName(): string | null;
  peerCertChain(): Uint8Array[] | null;
  session(): Uint8Array | null;
  sourceId(): Uint8Array;
  destinationId(): Uint8Array;
  isEstablished(): boolean;
  isResumed(): boolean;
  isInEarlyData(): boolean;
  isDraining(): boolean;
  isClosed(): boolean;
  isTimedOut(): boolean;
  peerError(): QuicheConnectionError | null;
  /** Whether a datagram ends with the peer's stateless reset token (RFC 9000 §10.3.1); the fallback engine lacks it. */
  isStatelessReset?(buf: Uint8Array): boolean;
  localError(): QuicheConnectionError | null;
  stats(): QuicheStats;
  pathStats(): QuichePathStats[];
  /** Our engine only (absent on the fallback): the active path's congestion controller; null without one. */
  ccStats?(): QuicheCcStats | null;
  sendAckEliciting(): void;
  // Paths and connection ids (RFC 9000 §5.1, §9).
  /** Connection ids the peer issued us that are still unused. */
  availableDcids(): number;
  /** Move the active path to a new local address; needs a spare peer connection id. */
  migrateSource(local: HostPort): number;
  /**
   * Retire the peer's connection id of sequence `seq` (RETIRE_CONNECTION_ID); retiring the one the active path uses
   * moves that path to the lowest spare one. Throws for an unknown `seq`, or when no spare is left.
   */
  retireDestinationCid(seq: number): void;
  /** How many more connection ids we may issue (the peer's active_connection_id_limit). */
  sourceCidsLeft(): number;
  /** How many of our connection ids are active (not retired by the peer). */
  activeSourceCids(): number;
  newSourceCid(cid: Uint8Array, resetToken: bigint, retireIfNeeded: boolean): number;
  /** A connection id of ours the peer retired, or null. */
  retiredScidNext(): Uint8Array | null;
  pathEventNext(): PathEvent | null;
  // Batched, address-id calls (native on our engine; over send()/recv() in JS for the fallback: addBatchCalls).
  /**
   * Up to `max` packets written one after another into `out` (room for the largest datagram each). `meta[0]` =
   * the path table's generation, then per packet its length and path index. The count; 0 = nothing to send.
   */
  sendPackets(out: Uint8Array, max: number, meta: Int32Array): number;
  /** The (local, peer) pair of a path index, as SendInfo's `from` and `to`. */
  pathAddresses(index: number): { from: HostPort; to: HostPort };
  /** The path index of datagrams arriving from `peer` at `local`, for recvPacket. */
  registerPath(local: HostPort, peer: HostPort): number;
  /** The path table's generation: indexes of an older one are void (recvPacket throws `StalePath`). */
  readonly pathGeneration: number;
  /**
   * One datagram that arrived on a path (registerPath), of table generation `generation`; RECV_LAST_ID,
   * RECV_PATH_WORK and RECV_STOPPED flags (below).
   */
  recvPacket(data: Uint8Array, pathIndex: number, generation: number): number;
}

/**
 * recvPacket: the connection is down to one source connection id with room for more. Issue one before the next
 * datagram: quiche fails the connection when a peer's RETIRE_CONNECTION_ID, even a retransmitted one for an id
 * already retired, arrives while it holds a single id.
 */
export const RECV_LAST_ID = 1;
/** recvPacket: a path event or an id of ours the peer retired waits (pathEventNext, retiredScidNext). */
export const RECV_PATH_WORK = 2;
/** recvPacket: the peer stopped a stream of ours (STOP_SENDING), which quiche reports only to a write. */
export const RECV_STOPPED = 4;
/** passState: the connection is closed. */
export const PASS_CLOSED = -3;
/** passState: the connection is draining (RFC 9000 §10.2.2). */
export const PASS_DRAINING = -2;

/** One quiche path event (binding: serde-tagged object). */
export interface PathEvent {
  type: string;
  local?: HostPort;
  peer?: HostPort;
  old?: unknown;
  new?: unknown;
}

export interface QuicheHeader {
  ty: number;
  version: number;
  dcid: Uint8Array;
  scid: Uint8Array;
  token?: Uint8Array | null;
}

interface Binding {
  /**
   * Ours: a TLS context with `pems` loaded from memory, and the system's trust store unless `systemRoots` is false.
   * The fallback binding takes no arguments (it always loads the system store; PEM goes in by file).
   */
  Config: new (
    systemRoots?: boolean,
    pems?: { ca?: Buffer; cert?: Buffer; key?: Buffer },
  ) => QuicheConfig;
  Connection: {
    connect(
      serverName: string | null,
      scid: Uint8Array,
      local: HostPort,
      remote: HostPort,
      config: QuicheConfig,
    ): QuicheConnection;
    accept(
      scid: Uint8Array,
      odcid: Uint8Array | null,
      local: HostPort,
      remote: HostPort,
      config: QuicheConfig,
      /** `scid`'s stateless reset token (transport parameter); ignored by the fallback engine. */
      resetToken?: bigint | null,
    ): QuicheConnection;
  };
  Header: { fromSlice(data: Uint8Array, dcidLen: number): QuicheHeader };
  negotiateVersion(scid: Uint8Array, dcid: Uint8Array, out: Uint8Array): number;
  retry(
    scid: Uint8Array,
    dcid: Uint8Array,
    newScid: Uint8Array,
    token: Uint8Array,
    version: number,
    out: Uint8Array,
  ): number;
  versionIsSupported(version: number): boolean;
  /** Ours: fills the array from BoringSSL's RAND_bytes (the fallback binding lacks it). */
  fillRandom?(out: Uint8Array): void;
  /** SHA-256 of `data` into `out`'s first 32 bytes (util/digest.ts uses it once registered). Ours only. */
  sha256Into?(data: Uint8Array, out: Uint8Array): void;
  /** Ours: whether a DER certificate's subjectAltName names the IP address (throws for a bad certificate). */
  certMatchesIp?(der: Uint8Array, ip: string): boolean;
  /**
   * Ours: getaddrinfo(host) on libuv's thread pool as `node:dns`'s `lookup` asks it (`AF_UNSPEC`, `SOCK_STREAM`, the
   * answer's order): the address strings, or the failure's code as a string (`ENOTFOUND`, `EAI_AGAIN`, ...).
   */
  lookupSystem?(host: string): Promise<string[] | string>;
  Shutdown: { Read: number; Write: number };
  Type: {
    Initial: number;
    Retry: number;
    Handshake: number;
    ZeroRTT: number;
    VersionNegotiation: number;
    Short: number;
  };
}

export const BINDING_PACKAGE = '@matrixai/quic-linux-x64';

/** Which engine is loaded (or would be): what `originlink info` reports. */
export interface QuicEngine {
  /** `originlink-quic` (native/quic) or the fallback package's name. */
  binding: string;
  /** The quiche release inside it. */
  quiche: string | null;
  /** The .node file. */
  path: string;
  /** Why our own addon is not the one loaded (null when it is). */
  fallbackReason: string | null;
}

let cached: Binding | null = null;
let loadError: OriginlinkError | null = null;
let engine: QuicEngine | null = null;
let warn: (message: string) => void = (m) => console.warn(m);

/** Where the one-time "fallback engine" line goes (default console.warn). */
export function setQuicLogger(fn: (message: string) => void): void {
  warn = fn;
}

// src/quic/ and dist/quic/ both sit two levels below the package root.
function ownAddonPath(): string {
  return fileURLToPath(new URL('../../native/quic/build/quic.node', import.meta.url));
}

/** The engine to load: a path, what it is, and why ours is not it. */
function choose(): QuicEngine {
  const forced = knobs.quicBinding;
  if (forced !== undefined)
    return {
      binding: forced.includes('native/quic') ? 'originlink-quic' : 'custom',
      quiche: null,
      path: forced,
      fallbackReason: forced.includes('native/quic') ? null : 'ORIGINLINK_QUIC_BINDING names another binding',
    };
  const fallback = (reason: string): QuicEngine => {
    let path = `${BINDING_PACKAGE}/node.napi.node`;
    try {
      path = createRequire(import.meta.url).resolve(path);
    } catch {
      // Reported when loading.
    }
    return { binding: BINDING_PACKAGE, quiche: '0.18.0', path, fallbackReason: reason };
  };
  if (knobs.quicEngine === 'matrixai') return fallback('ORIGINLINK_QUIC_ENGINE=matrixai');
  const own = ownAddonPath();
  if (existsSync(own)) return { binding: 'originlink-quic', quiche: null, path: own, fallbackReason: null };
  return fallback(`native/quic not built (${own}: run npm install with a Rust toolchain, native-notes/quic-addon.md)`);
}

/** The engine loaded, or the one that would be (never throws). */
export function quicEngine(): QuicEngine {
  if (!engine) engine = choose();
  if (cached && engine.quiche === null)
    engine.quiche = (cached as Binding & { QUICHE_VERSION?: string }).QUICHE_VERSION ?? null;
  return engine;
}

/**
 * Load the binding once. Throws OriginlinkError(UNSUPPORTED_PROTOCOL) when
 * the native module is missing or does not load on this platform; callers
 * treat that as "HTTP/3 unavailable" (h1/h2 keep working).
 */
export function quiche(): Binding {
  if (cached) return cached;
  if (loadError) throw loadError;
  const e = quicEngine();
  try {
    // A resolved path (ours, or the fallback package's file) by dlopen; an unresolved name as require reports it.
    const b = (isAbsolute(e.path) ? loadAddon(e.path) : createRequire(import.meta.url)(e.path)) as Binding;
    if (typeof b.Connection?.connect !== 'function' || typeof b.Config !== 'function') {
      throw new Error('binding lacks Connection.connect/Config');
    }
    addBatchCalls(b.Connection as unknown as { prototype: object });
    if (b.sha256Into) useNativeSha256(b.sha256Into);
    cached = b;
    quicEngine();
    if (e.fallbackReason !== null && knobs.quicEngine !== 'matrixai') {
      warn(
        `originlink: HTTP/3 runs on the fallback QUIC engine ${e.binding} (quiche ${e.quiche ?? '0.18'}): ${e.fallbackReason}`,
      );
    }
    return b;
  } catch (err) {
    loadError = new OriginlinkError(
      ErrorCode.UNSUPPORTED_PROTOCOL,
      'local',
      `HTTP/3 unavailable: cannot load the QUIC binding ${e.binding} (${e.path}, ${process.platform}-${process.arch}): ${(err as Error).message}`,
      { cause: err, details: { binding: e.binding, path: e.path } },
    );
    throw loadError;
  }
}

/**
 * `n` random bytes for connection IDs and reset tokens (RFC 9000 §5.1, §10.3: unguessable): from the loaded binding's
 * BoringSSL where it has the call, so an HTTP/3 client need not load `node:crypto`; else node:crypto's.
 */
export function quicRandom(n: number): Buffer {
  const fill = cached?.fillRandom;
  if (fill === undefined) return randomBytes(n);
  const out = Buffer.allocUnsafe(n);
  fill(out);
  return out;
}

/**
 * The loaded binding's system lookup (net/resolver.ts asks it instead of `node:dns` when there is one), or null while
 * the binding is not loaded or lacks it: a name lookup never loads the binding.
 */
export function quicSystemLookup(): ((host: string) => Promise<string[] | string>) | null {
  return cached?.lookupSystem ?? null;
}

/** True when the binding loads; never throws. */
export function quicheAvailable(): boolean {
  try {
    quiche();
    return true;
  } catch {
    return false;
  }
}

/** Parsed form of a thrown binding error: `StreamReset(268)` → {name:'StreamReset', code:268}. */
export interface QuicheErrorInfo {
  name: string;
  code: number | null;
}

const ERR_RE = /^([A-Za-z]+)(?:\((\d+)\))?/;

export function parseQuicheError(e: unknown): QuicheErrorInfo {
  const msg = e instanceof Error ? e.message : String(e);
  const m = ERR_RE.exec(msg);
  if (!m) return { name: msg, code: null };
  return { name: m[1] ?? msg, code: m[2] === undefined ? null : Number(m[2]) };
}

export function shutdownDir(dir: 'read' | 'write'): number {
  const s = quiche().Shutdown;
  return dir === 'read' ? s.Read : s.Write;
}

/** Long-header packet types used by the endpoint. */
export function packetTypes(): Binding['Type'] {
  return quiche().Type;
}

/** A connection's path table, for the fallback engine's JS batch calls. */
interface PathTable {
  list: Array<[HostPort, HostPort]>;
  gen: number;
  /** The largest datagram the peer takes: the handshake path's size once established (quiche 0.18 probes no PMTU). */
  peerMax: number;
}

/**
 * The batch calls our engine has natively (native/quic connection.rs), written over `send()`/`recv()` (and
 * `streamRecv()`/`readable()`) for the fallback engine, so the driver has one way to talk to either.
 */
function addBatchCalls(C: { prototype: object }): void {
  const p = C.prototype as Partial<QuicheConnection>;
  if (typeof p.streamRead !== 'function') {
    p.streamRead = function (this: QuicheConnection, id: number, out: Uint8Array): number {
      const r = this.streamRecv(id, out);
      return r === null ? -1 : r[0] * 2 + (r[1] ? 1 : 0);
    };
  }
  if (typeof p.passState !== 'function') {
    p.passState = function (this: QuicheConnection): number {
      if (this.isClosed()) return PASS_CLOSED;
      if (this.isDraining()) return PASS_DRAINING;
      return this.timeout() ?? -1;
    };
  }
  if (typeof p.readableInto !== 'function') {
    p.readableInto = function (this: QuicheConnection, out: Float64Array): number {
      let n = 0;
      for (const id of this.readable()) {
        if (n < out.length) out[n] = id;
        n++;
      }
      return n;
    };
  }
  if (typeof p.sendPackets === 'function') return;
  const tables = new WeakMap<object, PathTable>();
  const tableOf = (c: object): PathTable => {
    let t = tables.get(c);
    if (!t) tables.set(c, (t = { list: [], gen: 0, peerMax: 0 }));
    return t;
  };
  const same = (a: HostPort, b: HostPort): boolean => a.port === b.port && a.host === b.host;
  p.registerPath = function (this: QuicheConnection, local: HostPort, peer: HostPort): number {
    const t = tableOf(this);
    const i = t.list.findIndex(([l, r]) => same(l, local) && same(r, peer));
    if (i >= 0) return i;
    if (t.list.length >= 64) {
      t.list = [];
      t.gen++;
    }
    t.list.push([local, peer]);
    return t.list.length - 1;
  };
  p.pathAddresses = function (this: QuicheConnection, index: number) {
    const e = tableOf(this).list[index];
    if (!e) throw new Error('unknown path index');
    return { from: e[0], to: e[1] };
  };
  Object.defineProperty(p, 'pathGeneration', {
    get(this: QuicheConnection) {
      return tableOf(this).gen;
    },
    configurable: true,
  });
  p.sendPackets = function (this: QuicheConnection, out: Uint8Array, max: number, meta: Int32Array): number {
    const t = tableOf(this);
    // As in our engine (connection.rs send_packets): quiche sizes a path made after the handshake by our config, not
    // by the peer's max_udp_payload_size; the handshake path's size, read once established, is the peer's limit.
    let slot = this.maxSendUdpPayloadSize();
    if (t.peerMax === 0 && this.isEstablished()) t.peerMax = slot;
    if (t.peerMax > 0 && slot > t.peerMax) slot = t.peerMax;
    // Every index of one batch names the same generation: a table that could fill mid-batch starts again first.
    if (t.list.length + Math.min(max, 64) > 64) {
      t.list = [];
      t.gen++;
    }
    let off = 0;
    let n = 0;
    for (; n < Math.min(max, 64) && 2 + 2 * n < meta.length && off + slot <= out.length; n++) {
      let r: [number, SendInfo] | null;
      try {
        r = this.send(out.subarray(off, off + slot));
      } catch (e) {
        if (n === 0) throw e;
        break;
      }
      if (r === null) break;
      meta[1 + 2 * n] = r[0];
      meta[2 + 2 * n] = this.registerPath(r[1].from, r[1].to);
      off += r[0];
    }
    meta[0] = t.gen;
    return n;
  };
  p.recvPacket = function (this: QuicheConnection, data: Uint8Array, index: number, generation: number): number {
    const t = tableOf(this);
    const e = t.list[index];
    if (generation !== t.gen || !e) throw new Error('StalePath');
    this.recv(data, { from: e[1], to: e[0] });
    // No peek at quiche's path events or stopped streams here: always say there may be some.
    return (
      RECV_PATH_WORK | RECV_STOPPED | (this.activeSourceCids() <= 1 && this.sourceCidsLeft() > 0 ? RECV_LAST_ID : 0)
    );
  };
}
