/**
 * A UDP endpoint: one socket (a client's made by the addon, native-socket.ts; node:dgram's otherwise), many QUIC
 * connections routed by destination connection id. Every connection id we issue is CID_LEN bytes,
 * so short-header packets are routed without a parse. Bytes that are not a
 * QUIC packet for a known connection (or a valid new Initial, on a server)
 * are counted and dropped; nothing from the wire can throw out of here.
 */
import dgram from 'node:dgram';
import { createHmac } from 'node:crypto';
import { ipFamily } from '../util/ip.js';
import { constants as osConstants } from 'node:os';
import { ErrorCode, OriginlinkError } from '../errors.js';
import { quiche, quicRandom, type HostPort, type QuicheConfig, type QuicheConnection } from './quiche.js';
import { isLoopback } from './config.js';
import { QuicConnection, type QuicConnectionInit } from './connection.js';
import { PacketSink } from './packet-sink.js';
import { RetryTokens } from './retry.js';
import { cidKey, classifyDatagram, parseLongHeader, type LongHeader } from './accept.js';
import { ClientHelloReader, refusalInitial } from './initial.js';
import type { StrikeRegister } from './strike-register.js';
import { batchReceiver, type BatchReceiver } from './udp-rx.js';
import { bindDirect, udpAddon, udpAddonReason } from './udp-native.js';
import { NativeUdpSocket, openNativeSocket, type UdpSocket } from './native-socket.js';
import { boundTicketAge } from './ticket-age.js';

/** Socket errors that are a connected socket's ICMP report of an unreachable peer. */
const UNREACHABLE: ReadonlySet<string> = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN']);

/** A first flight's further Initials within this long of its Retry or refusal get none (#firstOfFlight), ms. */
const RETRY_ONCE_MS = 1000;
/** Most first flights remembered for that (a flood of distinct ones only shortens the memory). */
const RETRIED_MAX = 4096;

export const CID_LEN = 16;
const MAX_EXTRA_SOCKETS = 8;

export interface EndpointStats {
  datagramsIn: number;
  dropped: number;
  unparseable: number;
  accepted: number;
  retriesSent: number;
  versionNegotiations: number;
  connections: number;
  packetsOut: number;
  bytesOut: number;
  /** sendmsg(UDP_SEGMENT) calls that carried several packets (0 without the native/udp addon). */
  gsoSends: number;
  /** recvmmsg batches read (0 when datagrams come through dgram events). */
  rxBatches: number;
  /** New connections whose first datagrams were held until their ClientHello was read (ServerRole.byName). */
  helloHeld: number;
  /**
   * Of those, the ones whose ClientHello could not be read (or did not complete in bounds): given the default config.
   */
  helloUnread: number;
  /** Datagrams those connections had sent when their ClientHello was read (2 per connection: it spanned two). */
  helloDatagrams: number;
  /** ICMP unreachable reports on connected sockets (EndpointOptions.peer). */
  unreachable: number;
  /**
   * New connections refused (CONNECTION_REFUSED, no state made) while the server was over its budget
   * (ServerRole.overBudget).
   */
  refused: number;
  /**
   * New connections accepted without early data by the anti-replay (ServerRole.strikes): their 0-RTT ClientHello had
   * been seen before (a replay), or the table of held new connections was full (a flood) so it could not be read.
   */
  replayedEarly: number;
  /** Of those, the ones the fleet's record did not answer for within FLEET_ASK_MS (or failed to). */
  fleetUnanswered: number;
  /**
   * Short-header packets for a connection ID this endpoint does not hold: late packets of a connection that ended,
   * or, with several workers on one port, packets steered to the wrong one (0 while steering works).
   */
  strayShort: number;
  /** Stateless resets sent for them (EndpointOptions.resetKey; at most RESETS_PER_S). */
  resetsSent: number;
  /** Short-header packets under an ID its live connection's peer had retired (late, dropped; not strays). */
  lateRetired: number;
}

/** The configs a server uses for one certificate: everyone's, and loopback peers' (see ServerRole.loopback). */
export interface ServerConfigs {
  config: QuicheConfig;
  loopback?: { config: QuicheConfig; maxPacket: number };
  /** The same with early data off: for a ClientHello the strike register has seen (ServerRole.strikes). */
  noEarly?: { config: QuicheConfig; loopback?: { config: QuicheConfig; maxPacket: number } };
}

export interface ServerRole {
  config: QuicheConfig;
  /** Called for each accepted connection, before its first packet is processed. */
  onConnection: (conn: QuicConnection) => void;
  /**
   * Stateless Retry (address validation) before accepting every connection. Default false: Retry only while a
   * quarter of `maxConnections` are live (a flood of Initials from spoofed or silent addresses then creates no
   * state, and what we send to an unvalidated address is one Retry — quiche 0.18 sent 6.5× the Initial back).
   */
  retry?: boolean;
  /** The Retry tokens' HMAC key (32 bytes): one a fleet shares. Default: random per endpoint. */
  retryKey?: Uint8Array;
  /** Upper bound on live connections; new Initials beyond it are dropped. Default 10000. */
  maxConnections?: number;
  /**
   * True while the server holds more than it may (its memory budget): a client's first Initial gets a stateless Retry,
   * and one that comes back with the Retry's token — its address validated — a stateless CONNECTION_REFUSED
   * (RFC 9000 §5.2.2) instead of a connection. `host`: the client's address (one address may be over its own share
   * while others are admitted). Asked for every datagram of an unknown connection: keep it O(1).
   */
  overBudget?: (host: string) => boolean;
  /** Told of each connection refused for the budget (counted in EndpointStats.refused as well). */
  onRefused?: () => void;
  /**
   * Config for peers on a loopback address (larger datagrams, see
   * config.ts `loopbackPayload`), with its datagram size. Default: `config`.
   */
  loopback?: { config: QuicheConfig; maxPacket: number };
  /** `config` and `loopback` with early data off (ServerConfigs.noEarly; see `strikes`). */
  noEarly?: NonNullable<ServerConfigs['noEarly']>;
  /**
   * Several certificates: the configs for the server name a client asks for
   * (null when it sent none or it could not be read); return null for the
   * default (`config`/`loopback`). With this set, a new connection's first
   * datagrams are held until its ClientHello is whole (initial.ts; at most
   * HELD_DATAGRAMS datagrams and HELD_MS), then accepted with the chosen
   * config and fed to quiche in arrival order.
   */
  byName?: (serverName: string | null) => ServerConfigs | null;
  /**
   * 0-RTT anti-replay (strike-register.ts): each new connection's ClientHello is read before it is accepted (held
   * as for `byName`), and one that offers early data and was seen before gets its config's `noEarly`, so its early
   * data is refused. Needs `noEarly` on every config.
   */
  strikes?: StrikeRegister;
  /**
   * The fleet's record of 0-RTT ClientHellos (RFC 8446 §8: at most once across every instance that can open the
   * tickets), asked after `strikes` found one new here: resolves true when the ClientHello was recorded now (first in
   * the fleet), false when another instance had it. The connection waits with its held datagrams for the answer; one
   * that does not come within FLEET_ASK_MS, or fails, is a refusal of the early data (a full handshake, never an
   * unrecorded 0-RTT). Null: no fleet record now (the local register's answer stands, nothing waits).
   */
  fleetStrikes?: (key: string) => Promise<boolean> | null;
}

/** Bounds on held new connections (ServerRole.byName): datagrams each, bytes each, how many at once, how long. */
const HELD_DATAGRAMS = 8;
const HELD_BYTES = 32 * 1024;
const HELD_MAX = 512;
const HELD_MS = 1000;

interface Held {
  reader: ClientHelloReader;
  msgs: Buffer[];
  bytes: number;
  since: number;
  /** Whole, waiting for the fleet's record of 0-RTT ClientHellos (ServerRole.fleetStrikes). */
  asking?: boolean;
}

/** How long a new 0-RTT connection waits for the fleet's record (ServerRole.fleetStrikes), ms. */
export const FLEET_ASK_MS = 100;

export interface EndpointOptions {
  /** Address to bind. Default '0.0.0.0' (or '::' when `ipv6`). */
  host?: string;
  /** Port to bind. Default 0 (ephemeral). */
  port?: number;
  ipv6?: boolean;
  server?: ServerRole;
  /** Max UDP payload quiche may write. Default 1350 (matches buildConfig). */
  maxPacket?: number;
  /** Batch equal-size packets with UDP GSO when the native/udp addon loads. Default true. */
  gso?: boolean;
  /** Read datagrams in batches (recvmmsg) when the native/udp addon loads. Default true. */
  batchReceive?: boolean;
  /**
   * The application's no-error code for every connection of this endpoint (see QuicConnectionInit.appNoError). Default
   * 0.
   */
  appNoError?: number;
  /** SO_RCVBUF / SO_SNDBUF. Default 4 MiB each (best effort). */
  socketBuffer?: number;
  /** Pace every connection's packets (pacer.ts: 1.25 × cwnd / RTT once established). Default true. */
  pacing?: boolean;
  /**
   * A client endpoint for one server: each socket it binds is connected to it (UDP connect(2)). Packets then
   * leave without an address (the kernel keeps the destination and its route: cheaper sends), and an ICMP port
   * or host unreachable comes back to us as a socket error (RFC 1122 §4.1.3.3), which fails a handshake at once
   * as a refused connect instead of after the handshake timeout (QuicConnection.peerUnreachable).
   */
  peer?: HostPort;
  /**
   * One of several processes serving this port (the h3 front on every worker, docs/workers.md): the socket is bound
   * with SO_REUSEPORT and joins the port's group, whose eBPF program (native/udp/src/steer.c) sends each short-header
   * packet to the socket at the index its Destination Connection ID begins with, in the map `mapFd`; every connection
   * ID this endpoint issues begins with `index`. Needs the native/udp addon.
   */
  steer?: { mapFd: number; index: number };
  /**
   * The key of our stateless reset tokens (RFC 9000 §10.3.2: a token is HMAC(key, connection ID), so every process
   * holding the key makes the same one). Given, a server answers a short-header packet for a connection it does not
   * hold with a stateless reset (§10.3), so its client learns at once that the connection is gone (a worker that
   * died, a restart). Without it tokens are random and no reset is sent.
   */
  resetKey?: Uint8Array;
}

/** Stateless resets sent per second at most (RFC 9000 §10.3.3: they must not become an amplifier). */
const RESETS_PER_S = 200;
/** How long packets under a retired ID of a live connection count as late, ms, and how many such IDs are kept. */
const RETIRED_MS = 10_000;
const RETIRED_MAX = 65_536;
/** A client endpoint with more live connections than this checks no datagram for a stateless reset. */
const RESET_CHECKS_MAX = 64;

export interface ConnectOptions {
  config: QuicheConfig;
  /** IP literal (the binding resolves names synchronously; resolve first). */
  host: string;
  port: number;
  /** SNI / certificate name; default = host when it is a name, none for an IP literal. */
  serverName?: string | null;
  /** Name or IP the server certificate must match; null disables the extra check. */
  expectedHost?: string | null;
  /** The config shows a client certificate when asked (what a server's refusal is said to be about). */
  clientCert?: boolean;
  /** Resume a TLS session (enables 0-RTT when the ticket allows it). */
  session?: Uint8Array | null;
  connectTimeoutMs?: number;
  /** Largest datagram for this connection (must match the config's payload size). Default: the endpoint's. */
  maxPacket?: number;
}

/**
 * The address lookup of an endpoint's sockets (dgram's `lookup`): the hosts it sends to and binds are IP literals
 * (the binding's convention), so no resolver. dgram's default, dns.lookup, loads `node:dns` when a socket is made.
 */
function literalLookup(
  host: string,
  _family: unknown,
  cb: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  const f = ipFamily(host);
  if (f !== 0) cb(null, host, f);
  else cb(Object.assign(new Error(`not an IP address: ${host}`), { code: 'EINVAL' }), host, 0);
}

export class QuicEndpoint {
  #socket: UdpSocket;
  #sink: PacketSink;
  #local: HostPort;
  /** Sockets bound later for client migration (new local port), with their readers; bounded by MAX_EXTRA_SOCKETS. */
  #extra: Array<{ socket: UdpSocket; local: HostPort; rx: BatchReceiver | null }> = [];
  /** Native batched readers of our sockets (udp-rx.ts); stopped before the sockets close. */
  #receivers: BatchReceiver[] = [];
  #opts: EndpointOptions;
  #server: ServerRole | null;
  #conns = new Map<string, QuicConnection>();
  /**
   * The destination ID of the last short-header datagram routed, and its connection: the datagrams of a batch are
   * mostly for one connection, which they then reach without a string key and two map lookups. Forgotten whenever an
   * ID is added or removed, so a route taken from it is the one #conns gives.
   */
  #lastCid = new Uint8Array(CID_LEN);
  #lastConn: QuicConnection | null = null;
  #cidsOf = new Map<QuicConnection, string[]>();
  #live = new Set<QuicConnection>();
  #dirty = new Set<QuicConnection>();
  #later = new Set<QuicConnection>();
  #running = false;
  #immediate: NodeJS.Immediate | null = null;
  /** Retry tokens, always at hand: Retry is used always (`retry`) or under load (see ServerRole.retry). */
  #retry: RetryTokens;
  /**
   * Client first flights answered lately with a Retry or a refusal (`#firstOfFlight`): what|address|port|dcid → when.
   */
  #retried = new Map<string, number>();
  #retryAlways: boolean;
  #closed = false;
  #counters = {
    datagramsIn: 0,
    dropped: 0,
    unparseable: 0,
    accepted: 0,
    retriesSent: 0,
    versionNegotiations: 0,
    helloHeld: 0,
    helloUnread: 0,
    helloDatagrams: 0,
    unreachable: 0,
    refused: 0,
    replayedEarly: 0,
    fleetUnanswered: 0,
    strayShort: 0,
    resetsSent: 0,
    lateRetired: 0,
  };
  /** IDs of live connections that their peers retired, until when packets under them count as late (#removeCid). */
  #retired = new Map<string, number>();
  /** The first byte of every connection ID we issue (EndpointOptions.steer), or null: random. */
  #cidByte: number | null;
  /** Stateless resets sent in the current second (#resetWindow). */
  #resets = 0;
  #resetWindow = 0;
  /** New connections waiting for the rest of their ClientHello, by DCID (ServerRole.byName), oldest first. */
  #held = new Map<string, Held>();
  #vnBuf = Buffer.allocUnsafe(1350);

  private constructor(socket: UdpSocket, local: HostPort, opts: EndpointOptions) {
    this.#socket = socket;
    this.#local = local;
    this.#opts = opts;
    this.#server = opts.server ?? null;
    this.#retryAlways = opts.server?.retry === true;
    this.#retry = new RetryTokens(opts.server?.retryKey);
    this.#cidByte = opts.steer ? opts.steer.index : null;
    this.#sink = new PacketSink(socket, opts.maxPacket ?? 1350, opts.gso === false ? { gso: false } : {});
    this.#listen(socket, local);
  }

  /** Start reading `socket`; its batch receiver, or null when dgram's events deliver. */
  #listen(socket: UdpSocket, local: HostPort): BatchReceiver | null {
    // Batched receive when the native addon allows it; dgram's 'message' events otherwise. A socket of our own is made
    // only where batched receive is allowed (#bindSocket), and has no other reader.
    const rx =
      this.#opts.batchReceive === false
        ? null
        : batchReceiver(
            socket,
            (msg, host, port) => this.#onMessage(msg, host, port, local),
            this.#afterBatch,
            this.#onUnreachable,
          );
    if (rx) this.#receivers.push(rx);
    if (socket instanceof NativeUdpSocket) {
      if (rx) return rx;
      socket.close();
      throw new OriginlinkError(ErrorCode.CONNECT_FAILED, 'local', 'cannot read the UDP socket (native/udp rxStart)');
    }
    const dg = socket as dgram.Socket;
    dg.on('message', (msg, rinfo) => this.#onMessage(msg, rinfo.address, rinfo.port, local));
    dg.on('error', (e: NodeJS.ErrnoException) => {
      if (this.#opts.peer && e.code !== undefined && UNREACHABLE.has(e.code)) this.#onUnreachable(e.code);
      else this.#counters.dropped++;
    });
    return rx;
  }

  /** A connected socket's ICMP report: every connection of this endpoint goes to its one peer. */
  #onUnreachable = (code: string): void => {
    this.#counters.unreachable++;
    for (const c of [...this.#live]) c.peerUnreachable(code);
  };

  static async bind(opts: EndpointOptions = {}): Promise<QuicEndpoint> {
    quiche();
    const { socket, local } = await QuicEndpoint.#bindSocket(opts);
    const ep = new QuicEndpoint(socket, local, opts);
    if (opts.peer) await ep.#connectSocket(socket);
    return ep;
  }

  /** Connect a socket to the endpoint's one peer (EndpointOptions.peer); its packets then leave without an address. */
  async #connectSocket(socket: UdpSocket): Promise<void> {
    if (socket instanceof NativeUdpSocket) {
      // Connected when made (openNativeSocket).
      this.#sink.connected(socket);
      return;
    }
    await this.#connectDgram(socket as dgram.Socket);
    this.#sink.connected(socket);
  }

  async #connectDgram(socket: dgram.Socket): Promise<void> {
    const peer = this.#opts.peer as HostPort;
    await new Promise<void>((resolve, reject) => {
      const onErr = (e: Error): void => reject(e);
      socket.once('error', onErr);
      socket.connect(peer.port, peer.host, () => {
        socket.off('error', onErr);
        resolve();
      });
    }).catch((e: unknown) => {
      throw new OriginlinkError(
        ErrorCode.CONNECT_FAILED,
        'network',
        `cannot connect a UDP socket to ${peer.host}:${peer.port}: ${(e as Error).message}`,
        { cause: e, retrySafe: true },
      );
    });
  }

  static async #bindSocket(opts: EndpointOptions): Promise<{ socket: UdpSocket; local: HostPort }> {
    const ipv6 = opts.ipv6 ?? (opts.host !== undefined && ipFamily(opts.host) === 6);
    const host = opts.host ?? (ipv6 ? '::' : '0.0.0.0');
    const size = opts.socketBuffer ?? 4 * 1024 * 1024;
    // A client's socket for one peer: made, bound and connected by the addon, without node:dgram (native-socket.ts).
    if (opts.peer && !opts.steer && opts.batchReceive !== false) {
      let own: NativeUdpSocket | null;
      try {
        own = openNativeSocket(host, opts.port ?? 0, opts.peer, size);
      } catch (e) {
        throw new OriginlinkError(
          ErrorCode.CONNECT_FAILED,
          'local',
          `cannot bind UDP ${host}:${opts.port ?? 0} for ${opts.peer.host}:${opts.peer.port}: ${(e as Error).message}`,
          { cause: e },
        );
      }
      if (own) return { socket: own, local: own.local };
    }
    // Steered: a socket of the port's reuseport group, made by the addon and handed to dgram (steer.c).
    const fd = opts.steer ? steeredSocket(host, opts.port ?? 0) : null;
    const socket = dgram.createSocket({ type: ipv6 ? 'udp6' : 'udp4', lookup: literalLookup as never });
    await new Promise<void>((resolve, reject) => {
      if (fd === null && bindDirect(socket, host, opts.port ?? 0, ipv6)) return resolve();
      const onErr = (e: Error): void => reject(e);
      socket.once('error', onErr);
      // exclusive: in a cluster worker, dgram would otherwise ask the primary to open the fd (EINVAL there).
      socket.bind(
        fd !== null ? { fd, exclusive: true } : { address: host, port: opts.port ?? 0, exclusive: true },
        () => {
          socket.off('error', onErr);
          resolve();
        },
      );
    }).catch((e: unknown) => {
      socket.close();
      throw new OriginlinkError(
        ErrorCode.CONNECT_FAILED,
        'local',
        `cannot bind UDP ${host}:${opts.port ?? 0}: ${(e as Error).message}`,
        { cause: e },
      );
    });
    try {
      socket.setRecvBufferSize(size);
      socket.setSendBufferSize(size);
    } catch {
      // Capped by net.core.*mem_max; the defaults still work.
    }
    if (fd !== null) {
      const joined = udpAddon()!.steerJoin!(fd, opts.steer!.mapFd, opts.steer!.index);
      if (joined !== 0) {
        socket.close();
        throw new OriginlinkError(
          ErrorCode.CONNECT_FAILED,
          'local',
          `cannot steer UDP ${host}:${opts.port ?? 0} by connection ID: ${typeof joined === 'string' ? `the kernel refused the program: ${joined.slice(0, 400)}` : errnoName(joined)}`,
        );
      }
    }
    const a = socket.address();
    return { socket, local: { host: a.address, port: a.port } };
  }

  /**
   * Bind one more local socket (same address family and host, new port)
   * whose datagrams are routed like the primary socket's: the new path of a
   * client migration (RFC 9000 §9). At most MAX_EXTRA_SOCKETS; they close
   * with the endpoint.
   */
  async addSocket(): Promise<HostPort> {
    if (this.#closed) throw new OriginlinkError(ErrorCode.CONNECT_FAILED, 'local', 'QUIC endpoint is closed');
    if (this.#extra.length >= MAX_EXTRA_SOCKETS)
      throw new OriginlinkError(
        ErrorCode.QUIC_FAILED,
        'local',
        `no more than ${MAX_EXTRA_SOCKETS} migrations per connection`,
      );
    const { socket, local } = await QuicEndpoint.#bindSocket({
      ...this.#opts,
      host: this.#local.host,
      port: 0,
      ipv6: ipFamily(this.#local.host) === 6,
    });
    if (this.#closed) {
      socket.close();
      throw new OriginlinkError(ErrorCode.CONNECT_FAILED, 'local', 'QUIC endpoint is closed');
    }
    if (this.#opts.peer) {
      try {
        await this.#connectSocket(socket);
      } catch (e) {
        socket.close();
        throw e;
      }
    }
    const rx = this.#listen(socket, local);
    this.#extra.push({ socket, local, rx });
    return local;
  }

  /** Close an extra socket `addSocket` bound for a migration that did not happen. */
  dropSocket(local: HostPort): void {
    const i = this.#extra.findIndex((x) => x.local.port === local.port && x.local.host === local.host);
    if (i < 0) return;
    const [x] = this.#extra.splice(i, 1);
    if (x!.rx) {
      x!.rx.stop();
      this.#receivers.splice(this.#receivers.indexOf(x!.rx), 1);
    }
    try {
      x!.socket.close();
    } catch {
      /* already closed */
    }
  }

  /** What every connection of this endpoint is wired to (client and server alike). */
  #wiring(
    conn: QuicheConnection,
    role: 'client' | 'server',
    remote: HostPort,
  ): Pick<
    QuicConnectionInit,
    | 'conn'
    | 'role'
    | 'local'
    | 'remote'
    | 'sink'
    | 'socketFor'
    | 'addCid'
    | 'removeCid'
    | 'newCid'
    | 'schedule'
    | 'scheduleNextTurn'
    | 'release'
    | 'appNoError'
    | 'pacing'
  > {
    return {
      appNoError: this.#opts.appNoError ?? 0,
      pacing: this.#opts.pacing ?? true,
      conn,
      role,
      local: this.#local,
      remote,
      sink: this.#sink,
      socketFor: this.#socketFor,
      addCid: this.#addCid,
      removeCid: this.#removeCid,
      newCid: this.#newCid,
      schedule: this.#schedule,
      scheduleNextTurn: this.#scheduleNextTurn,
      release: this.#release,
    };
  }

  /** The socket bound to `local` (the primary one when unknown). */
  #socketFor = (local: HostPort): UdpSocket => {
    if (local.port === this.#local.port) return this.#socket;
    for (const e of this.#extra) if (e.local.port === local.port) return e.socket;
    return this.#socket;
  };

  #addCid = (c: QuicConnection, cid: Uint8Array): void => {
    this.#lastConn = null;
    const k = Buffer.from(cid.buffer, cid.byteOffset, cid.byteLength).toString('latin1');
    this.#conns.set(k, c);
    this.#cidsOf.get(c)?.push(k);
  };

  #removeCid = (c: QuicConnection, cid: Uint8Array): void => {
    this.#lastConn = null;
    const k = Buffer.from(cid.buffer, cid.byteOffset, cid.byteLength).toString('latin1');
    if (this.#conns.get(k) === c) {
      this.#conns.delete(k);
      // Retired by the peer while its connection lives: packets still in flight under it are late, not strays.
      this.#retired.set(k, performance.now() + RETIRED_MS);
      if (this.#retired.size > RETIRED_MAX) this.#retired.delete(this.#retired.keys().next().value as string);
    }
    const list = this.#cidsOf.get(c);
    if (list) {
      const i = list.indexOf(k);
      if (i >= 0) list.splice(i, 1);
    }
  };

  get address(): HostPort {
    return this.#local;
  }

  get connectionCount(): number {
    return this.#live.size;
  }

  stats(): EndpointStats {
    let rxBatches = 0;
    for (const r of this.#receivers) rxBatches += r.stats.batches;
    return {
      ...this.#counters,
      connections: this.#live.size,
      packetsOut: this.#sink.packetsOut,
      bytesOut: this.#sink.bytesOut,
      gsoSends: this.#sink.gsoSends,
      rxBatches,
    };
  }

  /**
   * New certificates (a config reload): connections accepted from now on get
   * these configs; live ones keep theirs. Connections still held for their
   * ClientHello are chosen for with the new `byName` when it completes.
   */
  setServerConfigs(c: ServerConfigs & { byName?: ServerRole['byName'] }): void {
    const srv = this.#server;
    if (!srv)
      throw new OriginlinkError(
        ErrorCode.INVALID_CONFIG,
        'local',
        'setServerConfigs on an endpoint without a server role',
      );
    srv.config = c.config;
    if (c.loopback) srv.loopback = c.loopback;
    else delete srv.loopback;
    if (c.byName) srv.byName = c.byName;
    else delete srv.byName;
    if (c.noEarly) srv.noEarly = c.noEarly;
    else delete srv.noEarly;
  }

  /** Let the process exit while only this endpoint is open. */
  unref(): void {
    this.#socket.unref();
    for (const e of this.#extra) e.socket.unref();
    for (const r of this.#receivers) r.unref();
  }

  connect(o: ConnectOptions): QuicConnection {
    if (this.#closed) throw new OriginlinkError(ErrorCode.CONNECT_FAILED, 'local', 'QUIC endpoint is closed');
    const b = quiche();
    const scid = quicRandom(CID_LEN);
    const remote = { host: o.host, port: o.port };
    let raw;
    try {
      raw = b.Connection.connect(o.serverName ?? null, scid, this.#local, remote, o.config);
      if (o.session) raw.setSession(boundTicketAge(o.session));
    } catch (e) {
      throw new OriginlinkError(ErrorCode.QUIC_FAILED, 'local', `QUIC connect failed: ${(e as Error).message}`, {
        cause: e,
        retrySafe: true,
      });
    }
    const init = {
      ...this.#wiring(raw, 'client', remote),
      expectedHost: o.expectedHost ?? null,
      clientCert: o.clientCert ?? false,
      ...(o.connectTimeoutMs !== undefined ? { connectTimeoutMs: o.connectTimeoutMs } : {}),
      ...(o.maxPacket !== undefined ? { maxPacket: o.maxPacket } : {}),
    };
    const conn = new QuicConnection(init);
    this.#register(conn, [scid.toString('latin1')]);
    // Without a ticket nothing can ride with the Initial (no 0-RTT: RFC 9001 §4.6.1), so it leaves now, not at this
    // turn's check phase: what the caller still sets up (the HTTP/3 layer, the pool's bookkeeping; in a fresh
    // process the first run of that code) then overlaps the server's answer instead of delaying the handshake.
    if (!o.session) conn.process();
    return conn;
  }

  /**
   * Close every connection with H3_NO_ERROR-style application close, give
   * the CONNECTION_CLOSE packets a moment to leave, then close the socket.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#held.clear();
    for (const c of [...this.#live]) c.destroy(null);
    if (this.#immediate) clearImmediate(this.#immediate);
    await new Promise<void>((r) => setImmediate(r));
    for (const r of this.#receivers) r.stop();
    await Promise.all(
      [this.#socket, ...this.#extra.map((e) => e.socket)].map((s) => new Promise<void>((r) => s.close(() => r()))),
    );
  }

  // ---- internals ----

  #register(conn: QuicConnection, cids: string[]): void {
    this.#lastConn = null;
    for (const k of cids) this.#conns.set(k, conn);
    this.#cidsOf.set(conn, cids);
    this.#live.add(conn);
  }

  #schedule = (c: QuicConnection): void => {
    this.#dirty.add(c);
    this.#immediate ??= setImmediate(this.#runDirty);
  };

  /** Process on the next turn (after this turn's microtasks); see QuicConnection's deferred send. */
  #scheduleNextTurn = (c: QuicConnection): void => {
    this.#later.add(c);
    if (!this.#running) this.#immediate ??= setImmediate(this.#runDirty);
  };

  /**
   * A received batch is a burst already: process its connections now rather than on the check phase, so what the
   * application answers in this callback's microtasks leaves on this loop turn's check phase, not the next one's.
   */
  #afterBatch = (): void => {
    if (this.#running || this.#immediate === null || this.#dirty.size === 0) return;
    clearImmediate(this.#immediate);
    this.#runDirty();
  };

  #runDirty = (): void => {
    this.#immediate = null;
    this.#running = true;
    for (const c of this.#later) this.#dirty.add(c);
    this.#later.clear();
    try {
      for (let round = 0; round < 8 && this.#dirty.size; round++) {
        const batch = [...this.#dirty];
        this.#dirty.clear();
        for (const c of batch) c.process();
      }
    } finally {
      this.#running = false;
    }
    if (this.#dirty.size || this.#later.size) this.#immediate = setImmediate(this.#runDirty);
  };

  #release = (c: QuicConnection): void => {
    this.#lastConn = null;
    for (const k of this.#cidsOf.get(c) ?? []) if (this.#conns.get(k) === c) this.#conns.delete(k);
    this.#cidsOf.delete(c);
    this.#live.delete(c);
    this.#dirty.delete(c);
    this.#later.delete(c);
  };

  #onMessage(msg: Buffer, host: string, port: number, local: HostPort): void {
    this.#counters.datagramsIn++;
    const last = this.#lastConn;
    if (last !== null && (msg[0]! & 0x80) === 0 && msg.length > CID_LEN && this.#isLastCid(msg)) {
      last.receive(msg, host, port, local);
      return;
    }
    const srv = this.#server;
    const d = classifyDatagram(msg, {
      cidLen: CID_LEN,
      known: this.#known,
      serving: srv !== null && !this.#closed,
      live: this.#live.size,
      maxConnections: srv?.maxConnections ?? 10_000,
      retry: this.#retryNow(host),
      versionSupported: this.#versionSupported,
    });
    switch (d.kind) {
      case 'route': {
        const c = this.#conns.get(d.key)!;
        if ((msg[0]! & 0x80) === 0) {
          this.#lastCid.set(msg.subarray(1, 1 + CID_LEN));
          this.#lastConn = c;
        }
        c.receive(msg, host, port, local);
        return;
      }
      case 'drop':
        // 0-RTT packets of a connection held for its ClientHello go to quiche with its Initials.
        if (d.reason === 'not-initial' && this.#held.size > 0 && this.#holdEarly(msg)) return;
        if (d.reason === 'unknown-cid' && srv !== null) {
          if (this.#lateForRetired(msg)) return;
          this.#counters.strayShort++;
          this.#statelessReset(msg, host, port);
          return;
        }
        // A client's connections: a datagram for no ID of ours may be its server's stateless reset (RFC 9000 §10.3.1).
        if (d.reason === 'unknown-cid' && msg.length >= 21 && this.#live.size <= RESET_CHECKS_MAX) {
          for (const c of this.#live) if (c.offerReset(msg, host, port, local)) return;
        }
        if (d.reason === 'unparseable') this.#counters.unparseable++;
        else this.#counters.dropped++;
        return;
      case 'version-negotiation':
        this.#reply(
          () => quiche().negotiateVersion(d.header.scid, d.header.dcid, this.#vnBuf),
          port,
          host,
          'versionNegotiations',
        );
        return;
      case 'retry':
        this.#sendRetry(d.header, host, port);
        return;
      case 'accept':
        this.#accept(msg, host, port, d.header, srv!);
        return;
    }
  }

  /** Whether a short-header datagram's destination ID (RFC 9000 §17.3.1: after the first byte) is #lastCid. */
  #isLastCid(msg: Buffer): boolean {
    const cid = this.#lastCid;
    for (let i = 0; i < CID_LEN; i++) if (msg[i + 1] !== cid[i]) return false;
    return true;
  }

  /**
   * RFC 9000 §10.3: a packet that looks like a short-header one, ending with the token of the DCID the stray packet
   * named. Smaller than the packet that caused it (§10.3.3: no loop between two endpoints), at least 21 bytes, at
   * most 43 (one byte shorter than the packet up to that); none without a reset key, or past RESETS_PER_S.
   */
  #statelessReset(msg: Buffer, host: string, port: number): void {
    const key = this.#opts.resetKey;
    if (!key || msg.length <= 21) return;
    const now = Math.floor(performance.now() / 1000);
    if (now !== this.#resetWindow) {
      this.#resetWindow = now;
      this.#resets = 0;
    }
    if (++this.#resets > RESETS_PER_S) return;
    const len = Math.min(msg.length - 1, 43);
    const out = quicRandom(len);
    out[0] = 0x40 | (out[0]! & 0x3f);
    resetTokenBytes(key, msg.subarray(1, 1 + CID_LEN)).copy(out, len - 16);
    try {
      this.#socket.send(out, port, host);
      this.#counters.resetsSent++;
    } catch {
      this.#counters.dropped++;
    }
  }

  /**
   * A packet under an ID its live connection's peer retired lately (RETIRED_MS): dropped and counted as late. No
   * stateless reset for it: quiche as a client checks a reset against its first ID's token only, whatever ID it
   * has moved to, so a reset for a retired first ID would end a connection that lives on.
   */
  #lateForRetired(msg: Buffer): boolean {
    if (this.#retired.size === 0) return false;
    const k = msg.toString('latin1', 1, 1 + CID_LEN);
    const until = this.#retired.get(k);
    if (until === undefined) return false;
    if (performance.now() > until) {
      this.#retired.delete(k);
      return false;
    }
    this.#counters.lateRetired++;
    return true;
  }

  /** A connection ID of ours: random, its first byte this worker's index when steered (EndpointOptions.steer). */
  #newCidBytes(): Buffer {
    const cid = quicRandom(CID_LEN);
    if (this.#cidByte !== null) cid[0] = this.#cidByte;
    return cid;
  }

  /** A connection ID of ours and its stateless reset token (RFC 9000 §10.3.2; random without a reset key). */
  #newCid = (): { cid: Buffer; token: bigint } => {
    const cid = this.#newCidBytes();
    return { cid, token: this.#tokenOf(cid) };
  };

  #tokenOf(cid: Uint8Array): bigint {
    const key = this.#opts.resetKey;
    const t = key ? resetTokenBytes(key, cid) : quicRandom(16);
    return BigInt(`0x${t.toString('hex')}`);
  }

  #holdEarly(msg: Buffer): boolean {
    const h = parseLongHeader(msg);
    const held = h ? this.#held.get(cidKey(h.dcid)) : undefined;
    if (!held || held.msgs.length >= HELD_DATAGRAMS || held.bytes + msg.length > HELD_BYTES) return false;
    held.msgs.push(Buffer.from(msg));
    held.bytes += msg.length;
    return true;
  }

  /**
   * A stateless Retry for a client's Initial — once per first flight: a ClientHello can span several Initial
   * datagrams (a post-quantum key share takes two), all with the same Destination Connection ID, and the client
   * sends its whole first flight again with the token anyway (RFC 9000 §17.2.5.2: it takes one Retry and
   * ignores the rest). Further Initials from the same address and DCID within RETRY_ONCE_MS are dropped.
   */
  #sendRetry(h: LongHeader, host: string, port: number): void {
    if (!this.#firstOfFlight('retry', h, host, port)) return;
    const t = this.#retry.mint(host, port, h.dcid);
    this.#reply(
      () => quiche().retry(h.scid, h.dcid, this.#newCidBytes(), t, h.version, this.#vnBuf),
      port,
      host,
      'retriesSent',
    );
  }

  /**
   * True for the first Initial of a client's first flight (address, port, DCID) that asks for `what` within
   * RETRY_ONCE_MS; the flight's further datagrams are dropped (counted): one stateless answer per flight.
   */
  #firstOfFlight(what: 'retry' | 'refuse', h: LongHeader, host: string, port: number): boolean {
    const key = `${what}|${host}|${port}|${cidKey(h.dcid)}`;
    const now = performance.now();
    const at = this.#retried.get(key);
    if (at !== undefined && now - at < RETRY_ONCE_MS) {
      this.#counters.dropped++;
      return false;
    }
    // Bounded: entries leave once older than RETRY_ONCE_MS (insertion order is time order), at most RETRIED_MAX held.
    for (const [k, t0] of this.#retried) {
      if (now - t0 < RETRY_ONCE_MS && this.#retried.size < RETRIED_MAX) break;
      this.#retried.delete(k);
    }
    this.#retried.set(key, now);
    return true;
  }

  /**
   * Retry before accepting: always when configured, else while a quarter of the connection cap is live or the server is
   * over its budget.
   */
  #retryNow(host: string): boolean {
    return (
      this.#retryAlways ||
      this.#live.size >= Math.max(1, Math.floor((this.#server?.maxConnections ?? 10_000) / 4)) ||
      this.#server?.overBudget?.(host) === true
    );
  }

  #known = (key: string): boolean => this.#conns.has(key);
  #versionSupported = (v: number): boolean => quiche().versionIsSupported(v);

  /** Send a stateless answer (Version Negotiation, Retry) built into #vnBuf. */
  #reply(build: () => number, port: number, host: string, counter: 'versionNegotiations' | 'retriesSent'): void {
    try {
      const n = build();
      this.#socket.send(Buffer.from(this.#vnBuf.subarray(0, n)), port, host);
      this.#counters[counter]++;
    } catch {
      this.#counters.dropped++;
    }
  }

  #accept(msg: Buffer, host: string, port: number, hdr: LongHeader, srv: ServerRole): void {
    let scid: Buffer = this.#newCidBytes();
    let odcid: Uint8Array | null = null;
    if (hdr.token !== null && hdr.token.length > 0) {
      // A token we minted names the DCID the client used first; the DCID it uses now is our Retry's SCID. (A Retry
      // sent under load is answered after the load may have gone: its token is honoured either way.)
      odcid = this.#retry.check(host, port, hdr.token);
      if (odcid && hdr.dcid.length === CID_LEN) scid = Buffer.from(hdr.dcid);
      else if (this.#retryNow(host)) {
        // RFC 9000 §8.1.3: a token we cannot validate is as no token — validation is still due: a Retry, or a drop
        // when retry is configured and this was meant to be its answer.
        if (this.#retryAlways) {
          this.#counters.dropped++;
          return;
        }
        this.#sendRetry(hdr, host, port);
        return;
      } else odcid = null; // a foreign or stale token (another server's NEW_TOKEN, a restart): served as none
    }
    if (odcid !== null && srv.overBudget?.(host)) {
      // RFC 9000 §5.2.2: refused with a CONNECTION_CLOSE in an Initial, made from the packet alone. Only to an address
      // our Retry validated (odcid): to any other it could be reflected at a victim. Once per first flight.
      if (!this.#firstOfFlight('refuse', hdr, host, port)) return;
      try {
        this.#socket.send(refusalInitial(hdr.dcid, hdr.scid, 'server busy'), port, host);
        this.#counters.refused++;
        srv.onRefused?.();
      } catch {
        this.#counters.dropped++;
      }
      return;
    }
    const dk = cidKey(hdr.dcid);
    let held: Held | undefined;
    let chosen: ServerConfigs | null = null;
    let replayed = false;
    const now = performance.now();
    if (srv.byName || srv.strikes) {
      for (const [k, h] of this.#held) {
        if (now - h.since < HELD_MS) break;
        this.#held.delete(k); // its client never completed a ClientHello: forget it (it resends its Initials)
      }
    }
    // A server holding new connections for anti-replay alone, its table of held ones full (a flood of first
    // datagrams): accepted at once, without early data — nothing unrecorded gets 0-RTT, and nobody waits behind the
    // flood (the Retry and the budget then bound it as they bound any new connection).
    if (!srv.byName && srv.strikes && srv.noEarly && this.#held.size >= HELD_MAX && !this.#held.has(dk)) {
      replayed = true;
      this.#counters.replayedEarly++;
    } else if (srv.byName || srv.strikes) {
      // RFC 9001 §5.2: anyone can read a ClientHello; hold this connection's datagrams until its name is known.
      held = this.#held.get(dk);
      if (held?.asking) {
        // Its ClientHello is whole and waits on the fleet's record: the rest of its flight waits with it.
        if (held.msgs.length < HELD_DATAGRAMS && held.bytes + msg.length <= HELD_BYTES) {
          held.msgs.push(Buffer.from(msg));
          held.bytes += msg.length;
        } else this.#counters.dropped++;
        return;
      }
      if (!held) {
        // Full: the oldest goes (its client resends its Initials), not the newcomer — 512 partial ClientHellos
        // refreshed every few seconds kept every new client of a server with several certificates out.
        if (this.#held.size >= HELD_MAX) this.#held.delete(this.#held.keys().next().value as string);
        held = { reader: new ClientHelloReader(hdr.dcid), msgs: [], bytes: 0, since: now };
        this.#held.set(dk, held);
        this.#counters.helloHeld++;
      }
      held.msgs.push(Buffer.from(msg)); // the receive buffer may be reused
      held.bytes += msg.length;
      const r = held.reader.push(msg);
      if (!r.done && held.msgs.length < HELD_DATAGRAMS && held.bytes < HELD_BYTES) return;
      this.#held.delete(dk);
      this.#counters.helloDatagrams += held.msgs.length;
      if (!r.done || r.why !== undefined) this.#counters.helloUnread++;
      if (srv.byName) chosen = srv.byName(r.done ? r.serverName : null);
      // RFC 8446 §8: a 0-RTT ClientHello is accepted with early data at most once.
      if (r.done && r.replayKey && srv.strikes) {
        if (!srv.strikes.first(r.replayKey, now)) {
          replayed = true;
          this.#counters.replayedEarly++;
        } else {
          const asked = srv.fleetStrikes?.(r.replayKey) ?? null;
          if (asked !== null) {
            this.#askFleet(asked, held, { scid, odcid, host, port, srv, chosen, dk });
            return;
          }
        }
      }
    }
    this.#admit({ scid, odcid, host, port, srv, chosen, dk }, replayed, held ? held.msgs : [msg]);
  }

  /**
   * A new 0-RTT connection kept (with its datagrams, `held`) until the fleet's record says whether its ClientHello is
   * new; then accepted, with early data only if it is. Dropped instead if it left the held table meanwhile (expired,
   * pushed out, the endpoint closed): its client sends its Initials again.
   */
  #askFleet(asked: Promise<boolean>, held: Held, a: Admission): void {
    const dk = a.dk;
    held.asking = true;
    this.#held.set(dk, held);
    let timer: NodeJS.Timeout | undefined;
    const unanswered = new Promise<null>((r) => {
      timer = setTimeout(() => r(null), FLEET_ASK_MS);
    });
    void Promise.race([asked.catch(() => null), unanswered]).then((first) => {
      clearTimeout(timer);
      if (this.#closed || this.#held.get(dk) !== held) return;
      this.#held.delete(dk);
      if (first !== true) this.#counters.replayedEarly++;
      if (first === null) this.#counters.fleetUnanswered++;
      this.#admit(a, first !== true, held.msgs);
    });
  }

  /** A new server connection made from its first datagrams `msgs` (quiche gets them in arrival order). */
  #admit(a: Admission, replayed: boolean, msgs: Buffer[]): void {
    const { scid, odcid, host, port, srv, chosen, dk } = a;
    const b = quiche();
    const remote = { host, port };
    const base: ServerConfigs = chosen ?? srv;
    const set = replayed && base.noEarly ? base.noEarly : base;
    const lo = set.loopback && isLoopback(host) ? set.loopback : null;
    let raw;
    try {
      raw = b.Connection.accept(scid, odcid, this.#local, remote, lo ? lo.config : set.config, this.#tokenOf(scid));
    } catch {
      this.#counters.dropped++;
      return;
    }
    const conn = new QuicConnection({
      ...this.#wiring(raw, 'server', remote),
      ...(lo ? { maxPacket: lo.maxPacket } : {}),
    });
    const keys = [scid.toString('latin1')];
    if (dk !== keys[0]) keys.push(dk);
    this.#register(conn, keys);
    this.#counters.accepted++;
    try {
      srv.onConnection(conn);
    } catch {
      conn.destroy(null);
      return;
    }
    for (const m of msgs) conn.receive(m, host, port, this.#local);
  }
}

/** What accepting a new connection needs besides its datagrams (#accept, #admit). */
interface Admission {
  scid: Buffer;
  odcid: Uint8Array | null;
  host: string;
  port: number;
  srv: ServerRole;
  chosen: ServerConfigs | null;
  /** The key of the client's first Destination Connection ID (it routes to the connection too). */
  dk: string;
}

/** The stateless reset token of `cid` under `key` (RFC 9000 §10.3.2): the first 16 bytes of HMAC-SHA256. */
function resetTokenBytes(key: Uint8Array, cid: Uint8Array): Buffer {
  return createHmac('sha256', key).update(cid).digest().subarray(0, 16);
}

/** A UDP socket with SO_REUSEPORT bound to host:port by the native addon (EndpointOptions.steer), its fd. */
function steeredSocket(host: string, port: number): number {
  const a = udpAddon();
  if (!a?.reuseportBind)
    throw new OriginlinkError(
      ErrorCode.CONNECT_FAILED,
      'local',
      `cannot bind UDP ${host}:${port} for several workers: the native udp addon is ${udpAddonReason() ?? 'an older build'}`,
    );
  const fd = a.reuseportBind(host, port);
  if (fd < 0)
    throw new OriginlinkError(ErrorCode.CONNECT_FAILED, 'local', `cannot bind UDP ${host}:${port}: ${errnoName(fd)}`);
  return fd;
}

/** `-errno` as its name (EADDRINUSE, …). */
function errnoName(neg: number): string {
  const name = Object.entries(osConstants.errno).find(([, v]) => v === -neg)?.[0];
  return name ?? `errno ${-neg}`;
}
