/**
 * One QUIC connection driven over the quiche binding. Thin driver: owns one
 * timer, queues stream writes, and turns quiche state into
 * QuicStreamHandler calls. Sockets belong to the endpoint, which feeds
 * datagrams in (`receive`) and hands our packets out (`Output`).
 *
 * Call order invariant: every input (datagram, stream write, timer) marks the
 * connection dirty; `process()` then runs once per event-loop turn: read
 * streams (stream-reader.ts) → flush write queues (write-queue.ts, in
 * slices) → drain `send()` fully → re-arm the timer → report state changes.
 * Outside a pass, a burst of ended streams drains `send()` every
 * EARLY_SEND_STREAMS streams (see there).
 * Handler callbacks may call back into us; writes made during `process()`
 * are picked up by the same pass.
 *
 * Deferred send: when a pass delivered stream data to the handler, draining
 * `send()` waits one event-loop turn (at most once in a row), so what the
 * application answers in its promise continuations (a response, the next
 * request) leaves in the same datagram as the ACK instead of one after it.
 * The wait is bounded by one turn; a pass that follows a deferred one always
 * drains. (Sending at once after passes that delivered 64 KiB or more was
 * tried for bulk receivers: with it, a streamed POST answered by a streamed
 * echo through the proxy under load sometimes never saw its response end —
 * quiche losing a lone FIN, now handled in write-queue.ts; see
 * native-notes/quiche.md. Every delivering pass still defers.)
 */
import { Pacer } from './pacer.js';
import { ErrorCode, OriginlinkError } from '../errors.js';
import type { QuicStreamHandler, QuicStreamTransport } from '../h3/quic-seam.js';
import {
  parseQuicheError,
  shutdownDir,
  type HostPort,
  type PathEvent,
  type QuicheConnection,
  type RecvInfo,
  type StartupExit,
  PASS_CLOSED,
  PASS_DRAINING,
  RECV_LAST_ID,
  RECV_PATH_WORK,
  RECV_STOPPED,
} from './quiche.js';
import { closeError, CRYPTO_ERROR_BASE } from './errors.js';
import { WriteQueues } from './write-queue.js';
import { checkPeerName } from './peer-name.js';
import { PacketSink } from './packet-sink.js';
import { Paths } from './paths.js';
import { afterFirstFlight, earlyReported, inEarlyData, type Handshake } from './handshake.js';
import { StreamReader } from './stream-reader.js';
import type { UdpSocket } from './native-socket.js';
import { DeadlineTimer, OneShot } from './timers.js';

export interface QuicStatsSnapshot {
  rttMs: number | null;
  cwnd: number | null;
  lost: number;
  retransmitted: number;
  packetsSent: number;
  packetsReceived: number;
  bytesSent: number;
  bytesReceived: number;
  /** Stream bytes queued in JS waiting for flow-control credit. */
  bufferedBytes: number;
  /** Paths quiche knows (active or probing). */
  paths: number;
  /** Our local port on the active path (the socket's, after a port-only move: Paths.migrateTo). */
  localPort: number | null;
  /** The peer's connection id our packets carry now (hex); a migration changes it (RFC 9000 §9.5). */
  destinationCid: string;
  /** Path changes: our migrations (client) or the peer's (server, NAT rebinding). */
  migrations: number;
  /** Path events seen, by quiche's type name (New, Validated, FailedValidation, Closed, PeerMigrated...). */
  pathEvents: Record<string, number>;
  /** Connection ids the peer issued us that are still unused (spares for migration). */
  spareDcids: number;
  /** Server: validations we re-requested for a peer address after quiche failed its path. */
  reprobes: number;
  /** The controller's bandwidth estimate on the active path, bytes/s: BBR on our engine; null otherwise. */
  bandwidth: number | null;
  /** Where and why the active path's controller first left startup: our engine only; null until then. */
  startupExit: StartupExit | null;
  /**
   * DATA_BLOCKED and STREAM_DATA_BLOCKED frames (RFC 9000 §19.12–19.13) we sent — our sending held by the peer's
   * flow control — and received (the peer held by ours). Our engine only; null on the fallback.
   */
  flowBlocked: { sent: number; received: number } | null;
}

/** quiche 0.18's urgency for a stream never given a priority (stream.rs `DEFAULT_URGENCY`). */
const QUICHE_DEFAULT_URGENCY = 127;

export type QuicConnectionEvent =
  | { type: 'established'; early: boolean }
  | { type: 'path'; event: PathEvent }
  /** After `openEarly`: the stored ticket allows no early data; what was written goes in 1-RTT. */
  | { type: 'early-unavailable' }
  | { type: 'closed'; error: OriginlinkError | null };

export interface QuicConnectionInit {
  conn: QuicheConnection;
  role: 'client' | 'server';
  local: HostPort;
  remote: HostPort;
  sink: PacketSink;
  /** The local socket bound to an address (packets leave from the path's local address). */
  socketFor?: (local: HostPort) => UdpSocket;
  /** Route datagrams for a connection id we issued (NEW_CONNECTION_ID) / stop routing a retired one. */
  addCid?: (c: QuicConnection, cid: Uint8Array) => void;
  removeCid?: (c: QuicConnection, cid: Uint8Array) => void;
  /** A new connection ID of ours and its stateless reset token (the endpoint's rule). Default: random both. */
  newCid?: () => { cid: Uint8Array; token: bigint };
  /** Ask the owner to call process() soon (batched per event-loop turn). */
  schedule: (c: QuicConnection) => void;
  /**
   * Ask the owner to call process() on the next event-loop turn, after the
   * microtasks of this one (so the application's reaction to delivered
   * data rides in the same packets as our ACKs). Default: `schedule`.
   */
  scheduleNextTurn?: (c: QuicConnection) => void;
  /** Called once after the connection is closed and its timer cleared. */
  release: (c: QuicConnection) => void;
  /** Client: the name or IP literal the certificate must match; null = no check. */
  expectedHost?: string | null;
  /** Client: a client certificate is shown when asked. */
  clientCert?: boolean;
  /** Client: handshake deadline in ms. Default 10000. */
  connectTimeoutMs?: number;
  /** Largest datagram quiche may write for this connection. Default: the sink's. */
  maxPacket?: number;
  /** Pace what we send at 1.25 × cwnd / RTT once established (pacer.ts). Default true. */
  pacing?: boolean;
  /**
   * The application protocol's no-error code: `destroy()` closes with it and
   * a peer's application close with it is clean (HTTP/3: H3_NO_ERROR 0x100,
   * RFC 9114 §8.1). Default 0.
   */
  appNoError?: number;
}

/** BoringSSL's `ssl_early_data_accepted` (ssl_early_data_reason_t). */
const EARLY_DATA_ACCEPTED = 2;

/** Packets one sendPackets call may write (the sink's slab holds them: fewer when packets are large). */
const SEND_BATCH = 32;
/** Bytes one sendPackets call may ask the sink for. */
const SEND_BATCH_BYTES = 128 * 1024;

/**
 * Once this many streams were ended (FIN written) outside a pass since send() was last drained, what quiche holds
 * leaves at once rather than at the pass that ends the turn. A burst of small exchanges written in one turn (a
 * client's 100 requests from one pump, a server's answers to one received batch) then reaches the peer in pieces
 * it starts on while the rest is still being written, instead of as one flight after all of it: the two ends work
 * in parallel. quiche puts one STREAM frame in a packet, so a piece is 16 packets: one GSO send. It shortened the
 * 100-concurrent case of `npm run bench -- h3` (bench/RESULTS.md `h3`).
 */
const EARLY_SEND_STREAMS = 16;

/** Stream bytes moved into quiche per slice, and slices per pass (see #sendSlices). */
const FLUSH_SLICE = 256 * 1024;
const MAX_SLICES = 256;
const NOOP_HANDLER: QuicStreamHandler = {
  onStreamData() {},
  onStreamReset() {},
  onStopSending() {},
  onStreamsAvailable() {},
  onConnected() {},
  onClosed() {},
};

/** A writer waiting for room (QuicConnection.waitWritable). */
interface WriteWaiter {
  id: number;
  max: number;
  connMax: number;
  floor: number;
  resolve: () => void;
}

export class QuicConnection implements QuicStreamTransport {
  readonly isClient: boolean;
  readonly remote: HostPort;
  readonly local: HostPort;
  readonly startedAt = performance.now();
  /** performance.now() when the handshake completed; null before. */
  establishedAt: number | null = null;
  /** performance.now() of the latest datagram from the peer. */
  lastPacketAt = performance.now();
  #q: QuicheConnection;
  #init: QuicConnectionInit;
  #maxPacket: number | undefined;
  #handler: QuicStreamHandler = NOOP_HANDLER;
  #listeners: Array<(ev: QuicConnectionEvent) => void> = [];
  #writes = new WriteQueues();
  #recvInfo: RecvInfo;
  /** quiche's deadline (quic/timers.ts). */
  readonly #deadline = new DeadlineTimer(() => this.#onTimer());
  /** The handshake's deadline (connectTimeoutMs), ref'd: a connect in progress holds the process. */
  readonly #connectTimer = new OneShot(() => this.#onConnectTimeout(), true);
  #nextBidi: number;
  /** A bidi stream `openBidi` numbered and quiche has not seen yet (-1: none); see `send`. */
  #uncreated = -1;
  #nextUni: number;
  #bidiBlocked = false;
  #uniBlocked = false;
  #hs: Handshake = { phase: 'fresh' };
  #earlyAccepted = false;
  /** Server: client-initiated bidirectional streams with data read while in 0-RTT (before the client's Finished). */
  #earlyStreams: Set<number> | null = null;
  #closed = false;
  #overrideError: OriginlinkError | null = null;
  #processing = false;
  #dirty = false;
  #recvErrors = 0;
  /** quiche's error name from the last recv() that failed (the cause when quiche then closes locally). */
  #lastRecvError: string | null = null;
  #sendDeferred = false;
  #lastFrom: HostPort | null = null;
  #lastSocket: UdpSocket | undefined;
  /** Connection ids, path events, migration, stall counting (paths.ts). */
  #paths: Paths;
  /** The read side: which streams to read, backpressure, where the bytes land. */
  #reader: StreamReader;
  /**
   * Peer-initiated bidi streams whose sending side we have not ended. quiche
   * reports a peer's STOP_SENDING only to a write, so these are probed after
   * input (RFC 9000 §3.5: the peer no longer wants the reply, e.g. a
   * cancelled request whose response is not written yet), and our own uni
   * streams, which HTTP/3 never ends (a STOP_SENDING on its control or QPACK
   * streams closes the connection, RFC 9114 §6.2.1, RFC 9204 §4.2). Bounded
   * by our stream limit.
   */
  #replyPending = new Set<number>();
  /** Null when pacing is off (QuicConnectionInit.pacing). */
  readonly #pacer: Pacer | null;
  /** The path index (registerPath) of the address pair in #recvInfo, -1: to register; and its table generation. */
  #recvPath = -1;
  #recvGen = 0;
  /** sendPackets' lengths and path indexes (2 words a packet, after the table generation). */
  readonly #sendMeta = new Int32Array(1 + 2 * SEND_BATCH);
  /** Packets per sendPackets call for this connection's packet size (SEND_BATCH, SEND_BATCH_BYTES). */
  #sendBatch: number;
  /**
   * A client's port-only move (Paths.migrateTo): quiche's path keeps its local address (`path`, an object kept for
   * identity), datagrams leave from the socket bound to `socket`, and those arriving on any socket the path was
   * ever on (`ports`: the peer keeps sending to an old one until it sees us move) go to that one path. Null until
   * the first such move.
   */
  #alias: { path: HostPort; socket: HostPort; ports: Set<number> } | null = null;
  /** Datagrams received per local port while a move settles (Paths.#settle); null otherwise. */
  #portCounts: Map<number, number> | null = null;
  /** The path index of the last packet sent, its generation, and where it goes. */
  #sendPath = -1;
  #sendGen = -1;
  #sendTo: HostPort | null = null;
  /** The pacer's wait (unref'd like the deadline: the socket is ref'd while the connection is busy). */
  readonly #paceTimer = new OneShot(() => {
    if (!this.#closed) this.#markDirty();
  }, false);
  /** Stream bytes queued in JS waiting for flow-control credit (what stats() reports, without crossing to quiche). */
  get bufferedBytes(): number {
    return this.#writes.bufferedBytes;
  }

  /** Times the pacer held packets back and set a wake-up (a counter for tests and benchmarks). */
  pacedWaits = 0;
  /** A datagram brought a STOP_SENDING (recvPacket's RECV_STOPPED): probe the streams owing a reply (#checkStopped). */
  #stopCheckDue = false;
  /** Some datagram brought a STOP_SENDING: new peer streams are probed too (the reader's peerBidi). */
  #stopsSeen = false;
  /** Streams ended (FIN written) outside a pass since send() was last drained: see EARLY_SEND_STREAMS. */
  #endedSinceDrain = 0;
  #writeWaiters: WriteWaiter[] = [];
  #packetWaiters: Array<() => void> = [];

  constructor(init: QuicConnectionInit) {
    this.#init = init;
    this.#q = init.conn;
    this.#maxPacket = init.maxPacket;
    this.#pacer = init.pacing === false ? null : new Pacer(this.#maxPacket ?? init.sink.slot, performance.now());
    this.#sendBatch = Math.max(
      1,
      Math.min(SEND_BATCH, Math.floor(SEND_BATCH_BYTES / (this.#maxPacket ?? init.sink.slot))),
    );
    this.isClient = init.role === 'client';
    const self = this;
    this.#paths = new Paths(
      init.conn,
      {
        isClient: this.isClient,
        get closed() {
          return self.#closed;
        },
        get established() {
          return self.established;
        },
        addCid: init.addCid ? (cid) => init.addCid!(this, cid) : undefined,
        removeCid: init.removeCid ? (cid) => init.removeCid!(this, cid) : undefined,
        newCid: init.newCid,
        pathEvent: (ev: PathEvent) => {
          // Where a path's packets go may change with it (PathGuard.sendTo): looked up again at the next packet.
          this.#sendPath = -1;
          this.#emit({ type: 'path', event: ev });
        },
        drainSend: () => this.#drainSend(),
        markDirty: () => this.#markDirty(),
        rebind: (local: HostPort) => this.#rebind(local),
        receivedOn: (port: number) => this.#portCounts?.get(port) ?? 0,
        countPorts: (on: boolean) => {
          this.#portCounts = on ? new Map() : null;
        },
      },
      init.local,
      init.remote,
    );
    this.remote = init.remote;
    this.local = init.local;
    this.#recvInfo = { from: init.remote, to: init.local };
    this.#nextBidi = this.isClient ? 0 : 1;
    this.#nextUni = this.isClient ? 2 : 3;
    this.#reader = new StreamReader(init.conn, this.isClient, {
      data: (id, data, fin) => this.#handler.onStreamData(id, data, fin),
      reset: (id, code) => this.#handler.onStreamReset(id, code),
      peerBidi: (id) => {
        this.#replyPending.add(id);
        // A STOP_SENDING may arrive before the stream's first bytes (those lost and sent again): once the peer has
        // stopped any stream, a new one is probed too.
        if (this.#stopsSeen) this.#stopCheckDue = true;
      },
      closed: () => this.#closed,
    });
    // Clients and servers alike: a server's half-open connection (an Initial from an address that never answers
    // again) lived for the whole idle timeout, 30 s of a connection-table slot.
    const ms = init.connectTimeoutMs ?? 10_000;
    this.#connectTimer.arm(ms);
  }

  /** The stream consumer (the HTTP/3 connection). Set before the first datagram is processed. */
  setHandler(h: QuicStreamHandler): void {
    this.#handler = h;
  }

  on(listener: (ev: QuicConnectionEvent) => void): void {
    this.#listeners.push(listener);
  }

  get closed(): boolean {
    return this.#closed;
  }
  get established(): boolean {
    return this.#hs.phase === 'established';
  }
  get alpn(): string | null {
    const p = this.#q.applicationProto();
    return p.length ? Buffer.from(p).toString('latin1') : null;
  }
  get resumed(): boolean {
    return this.#q.isResumed();
  }
  get inEarlyData(): boolean {
    return inEarlyData(this.#hs, this.#q);
  }
  /**
   * Server: this connection accepted the client's 0-RTT (its early data
   * counts, whether its requests were read before the handshake completed
   * or, arriving with the client's Finished, after).
   */
  get earlyDataAccepted(): boolean {
    return this.#earlyAccepted;
  }
  /** Server: how many client request streams (bidirectional) had data arrive in 0-RTT packets. */
  get earlyStreams(): number {
    return this.#earlyStreams?.size ?? 0;
  }

  #noteEarlyStreams(): void {
    for (const id of this.#q.readable()) {
      if ((id & 3) === 0) (this.#earlyStreams ??= new Set()).add(id);
    }
  }
  get serverName(): string | null {
    return this.#q.serverName();
  }
  /** The latest TLS session (for resumption / 0-RTT); null until a ticket arrived. */
  session(): Uint8Array | null {
    return this.#q.session();
  }
  peerStreamsLeftBidi(): number {
    return this.#q.peerStreamsLeftBidi();
  }
  /** The peer's certificate chain (DER, leaf first) once the handshake is done; null without one. */
  peerCertChain(): Uint8Array[] | null {
    return this.#q.peerCertChain();
  }
  /** The peer's initial_max_streams_bidi transport parameter (RFC 9000 §18.2); 0 before it is known. */
  peerMaxStreamsBidi(): number {
    return this.#q.peerInitialMaxStreamsBidi?.() ?? this.#q.stats().peerInitialMaxStreamsBidi;
  }
  /** The raw quiche handle: internal (tests read transport parameters through it); nothing outside quic/ uses it. */
  get raw(): QuicheConnection {
    return this.#q;
  }

  /** The active path's smoothed RTT in whole ms (null before one is active): stats().rttMs without the rest of it. */
  rttMs(): number | null {
    const p = this.#q.pathStats().find((x) => x.active);
    return p ? p.rtt : null;
  }

  stats(): QuicStatsSnapshot {
    const s = this.#q.stats();
    const p = this.#q.pathStats().find((x) => x.active);
    const cc = this.#q.ccStats?.() ?? null;
    return {
      rttMs: p ? p.rtt : null,
      cwnd: p ? p.cwnd : null,
      lost: s.lost,
      retransmitted: s.retrans,
      packetsSent: s.sent,
      packetsReceived: s.recv,
      bytesSent: s.sentBytes,
      bytesReceived: s.recvBytes,
      bufferedBytes: this.#writes.bufferedBytes,
      paths: s.pathsCount,
      localPort:
        this.#alias !== null && p?.localHost.port === this.#alias.path.port
          ? this.#alias.socket.port
          : p
            ? p.localHost.port
            : null,
      migrations: this.#paths.migrations,
      pathEvents: { ...this.#paths.events },
      destinationCid: Buffer.from(this.#q.destinationId()).toString('hex'),
      spareDcids: this.#paths.spareDcids(),
      reprobes: this.#paths.guard?.reprobes ?? 0,
      bandwidth: cc?.maxBandwidth ?? null,
      startupExit: cc?.startupExit ?? null,
      flowBlocked:
        s.dataBlockedSent === undefined
          ? null
          : {
              sent: s.dataBlockedSent + (s.streamDataBlockedSent ?? 0),
              received: (s.dataBlockedRecv ?? 0) + (s.streamDataBlockedRecv ?? 0),
            },
    };
  }

  /**
   * Client: move the connection to another local address (a socket the
   * endpoint bound with `addSocket`); resolves once the peer has moved and
   * the old path is quiet (Paths.migrateTo, RFC 9000 §9).
   */
  migrateTo(local: HostPort): Promise<void> {
    return this.#paths.migrateTo(local);
  }

  /**
   * Call `fn` once `after` consecutive probe timeouts pass without any
   * datagram from the peer: quiche timer expiries, and PINGs sent while the
   * previous one is unanswered (see `ping`). The count restarts after each
   * call, after a migration and after each received datagram.
   */
  onPathStalled(after: number, fn: (c: QuicConnection) => void): void {
    this.#paths.onStalled(after, () => fn(this));
  }

  /** Bytes of one stream still waiting in our queue (backpressure signal). */
  queuedBytes(streamId: number): number {
    return this.#writes.queued(streamId);
  }

  /**
   * Receive-side backpressure: stop reading a stream from quiche, so its
   * flow-control window stops opening, until `resumeStream`.
   */
  pauseStream(streamId: number): void {
    this.#reader.pause(streamId);
  }

  resumeStream(streamId: number): void {
    if (this.#reader.resume(streamId)) this.#markDirty();
  }

  /**
   * Resolves once the stream may queue more (or the connection closed): at most `maxQueued` bytes of it wait in our
   * queue and, above `floor` of them, at most `connMax` bytes of all the connection's streams (a connection-wide
   * bound that still lets every stream keep `floor` queued).
   */
  waitWritable(streamId: number, maxQueued: number, connMax = Infinity, floor = 0): Promise<void> {
    if (this.#closed || this.#writable(streamId, maxQueued, connMax, floor)) return Promise.resolve();
    return new Promise((resolve) => this.#writeWaiters.push({ id: streamId, max: maxQueued, connMax, floor, resolve }));
  }

  #writable(id: number, max: number, connMax: number, floor: number): boolean {
    const q = this.#writes.queued(id);
    return q <= floor || (q <= max && this.#writes.bufferedBytes <= connMax);
  }

  /**
   * Client with a session set: report 0-RTT readiness before the first
   * flight is written, so streams opened now (HTTP/3 control streams, the
   * first request) leave in the same datagram as the Initial. quiche
   * accepts stream writes once the session restored the peer's transport
   * parameters (measured). If the ticket turns out to allow no early data,
   * an 'early-unavailable' event follows the first flight and the bytes go
   * after the handshake instead.
   */
  openEarly(): void {
    if (!this.isClient || this.#hs.phase !== 'fresh' || this.#closed) return;
    this.#hs = { phase: 'opened' };
    this.#handler.onConnected(true);
    this.#emit({ type: 'established', early: true });
    this.#markDirty();
  }

  /** Resolves when the next datagram for this connection arrives (or it closed). */
  nextPacket(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#packetWaiters.push(resolve));
  }

  // ---- QuicStreamTransport ----

  openBidi(): number | null {
    if (this.#closed) return null;
    // Opened and not yet written: quiche must count it before the next one is numbered.
    this.#materialize(this.#uncreated);
    if (this.#q.peerStreamsLeftBidi() <= 0) {
      this.#bidiBlocked = true;
      return null;
    }
    const id = this.#nextBidi;
    // Created in quiche by the stream's first write when that follows at once (`send`), which saves a native
    // call per request; `#create` otherwise.
    this.#uncreated = id;
    this.#nextBidi += 4;
    return id;
  }

  openUni(): number | null {
    if (this.#closed) return null;
    if (this.#q.peerStreamsLeftUni() <= 0) {
      this.#uniBlocked = true;
      return null;
    }
    const id = this.#nextUni;
    if (!this.#create(id)) {
      this.#uniBlocked = true;
      return null;
    }
    this.#nextUni += 4;
    this.#replyPending.add(id); // see #replyPending: a STOP_SENDING on it is looked for like one on a reply
    return id;
  }

  send(streamId: number, data: Uint8Array, fin: boolean): void {
    if (this.#closed) return;
    // The write below reaches quiche now (creating the stream) only when no other stream waits and it has bytes.
    if (streamId === this.#uncreated) {
      if (this.#writes.waiting > 0 || data.length === 0) this.#materialize(streamId);
      else this.#uncreated = -1;
    }
    if (fin) this.#replyPending.delete(streamId);
    const f = this.#writes.write(this.#q, streamId, data, fin);
    if (f?.kind === 'stopped') this.#stopped(streamId, f.code);
    this.#markDirty();
    // EARLY_SEND_STREAMS. Inside a pass, the pass's own drain follows; before the handshake completes, the first
    // flight's bookkeeping (process) must see it written.
    if (fin && !this.#processing && this.#hs.phase === 'established' && ++this.#endedSinceDrain >= EARLY_SEND_STREAMS)
      this.#drainSend();
  }

  /**
   * Bytes the application protocol lets a FIN with no data of its own ride
   * on, on bidi streams (HTTP/3: an empty reserved frame, RFC 9114 §7.2.8),
   * so quiche cannot lose that FIN (write-queue.ts, issue 17).
   */
  setFinCarrier(bytes: Uint8Array): void {
    this.#writes.setFinCarrier(bytes);
  }

  /**
   * RFC 9218 priority of a stream we send on: freed credit goes to more
   * urgent streams first (write-queue.ts), and quiche schedules what it
   * already holds the same way. Also after the stream's last byte was
   * written (`written`), for the part not yet on the wire.
   */
  setPriority(streamId: number, urgency: number, incremental: boolean, opts?: { written: boolean }): void {
    if (this.#closed) return;
    // `written`: the application has handed over the stream's last byte (its FIN), so only what waits in
    // our queue or in quiche is reordered; an urgency kept for a stream that will never write again would leak.
    if (!opts?.written || this.#writes.has(streamId)) this.#writes.setUrgency(streamId, urgency);
    try {
      // quiche ranks streams by a u8 urgency whose default, for every stream never given one, is 127
      // (quiche 0.18 stream.rs DEFAULT_URGENCY). Passing RFC 9218's 0–7 as is put any prioritised
      // stream, even u=7, ahead of all default ones (measured: a default 2 MiB response finished after
      // a later u=7 4 MiB one). Shifted so that u=3, the RFC's default, is quiche's default.
      this.#q.streamPriority(streamId, QUICHE_DEFAULT_URGENCY - 3 + urgency, incremental);
    } catch {
      // Not created on our side yet or already gone: the queue order still applies.
    }
  }

  resetStream(streamId: number, code: number): void {
    if (this.#closed) return;
    this.#materialize(streamId);
    this.#replyPending.delete(streamId);
    // A stream whose first bytes are still queued here is unknown to quiche: hand them over first, so the
    // peer gets RESET_STREAM for a stream it knows (bytes not yet sent are discarded by the reset).
    this.#writes.flushStream(this.#q, streamId);
    this.#writes.drop(streamId);
    try {
      this.#q.streamShutdown(streamId, shutdownDir('write'), code);
    } catch {
      // Already finished or unknown: nothing to reset.
    }
    this.#markDirty();
  }

  stopSending(streamId: number, code: number): void {
    if (this.#closed) return;
    this.#materialize(streamId);
    this.#reader.forget(streamId);
    // Our own stream whose bytes (a request and its FIN, say) are still queued here: quiche does not know
    // it yet and would drop the STOP_SENDING, the peer would then get the request without it.
    const f = this.#writes.flushStream(this.#q, streamId);
    if (f?.kind === 'stopped') this.#stopped(streamId, f.code);
    try {
      this.#q.streamShutdown(streamId, shutdownDir('read'), code);
    } catch {
      // Already finished or unknown.
    }
    this.#markDirty();
  }

  close(code: number, reason: string): void {
    this.#closeWith(true, code, reason);
  }

  /** Close at the transport level (CONNECTION_CLOSE 0x1c) with a transport error code. */
  closeTransport(code: number, reason: string): void {
    this.#closeWith(false, code, reason);
  }

  /**
   * Elicit an ACK from the peer (liveness probe / keep-alive). A PING sent
   * while the previous one is still unanswered (nothing received since)
   * counts as a probe timeout for `onPathStalled`: every ack-eliciting
   * packet restarts quiche's PTO (RFC 9002 §6.2.1), so on a dead path that
   * is kept busy with PINGs the PTO itself would never expire N times.
   */
  ping(): void {
    if (this.#closed) return;
    this.#paths.pinging(performance.now(), this.lastPacketAt);
    try {
      this.#q.sendAckEliciting();
    } catch {
      // Not possible in the current state; the idle timer will tell.
    }
    this.#markDirty();
  }

  /**
   * A resumed handshake in which the server declined our 0-RTT (RFC 9001 §4.6.2: the early packets are lost to
   * it; quiche sends their stream data again in 1-RTT). From BoringSSL's early-data reason on our own engine;
   * null where the engine cannot tell (quiche 0.18, the fallback).
   */
  get earlyDataDeclined(): boolean | null {
    const q = this.#q as QuicheConnection & { earlyDataReason?: () => number };
    if (typeof q.earlyDataReason !== 'function') return null;
    return q.earlyDataReason() !== EARLY_DATA_ACCEPTED;
  }

  /**
   * The peer's port or host is unreachable: an ICMP report on our connected socket (RFC 1122 §4.1.3.3 passes it
   * to the application; RFC 8085 §5.2 asks UDP applications to act on it). Before the handshake completed nothing
   * of ours reached a QUIC server there: the connect is refused at once, as TCP's RST refuses it. After it, an
   * ICMP message proves little (it can be forged: RFC 9000 §14.2.1 has endpoints validate or ignore them): ignored, the
   * connection's own timers decide.
   */
  peerUnreachable(code: string): void {
    if (this.#closed || this.established) return;
    const what =
      code === 'ECONNREFUSED'
        ? 'nothing listens on that UDP port (ICMP port unreachable)'
        : `no route to it (ICMP ${code === 'ENETUNREACH' ? 'network' : 'host'} unreachable, ${code})`;
    this.#overrideError ??= new OriginlinkError(
      ErrorCode.CONNECT_FAILED,
      'network',
      `QUIC handshake with ${this.remote.host}:${this.remote.port} refused: ${what}`,
      {
        retrySafe: true,
        details: { code },
      },
    );
    this.destroy(this.#overrideError);
  }

  /** Close now without waiting for the peer (draining is skipped). */
  destroy(error: OriginlinkError | null): void {
    if (this.#closed) return;
    this.#overrideError ??= error;
    try {
      this.#q.close(true, this.#init.appNoError ?? 0, new Uint8Array(0));
    } catch {
      // Already closing.
    }
    this.#drainSend(true);
    this.#finish();
  }

  // ---- endpoint side ----

  /** One datagram for this connection. */
  /**
   * A datagram from this connection's peer for no connection ID of ours: if it ends with the peer's stateless reset
   * token (RFC 9000 §10.3.1), quiche takes it (it closes the connection, sending nothing: closeError names it).
   */
  offerReset(msg: Uint8Array, fromHost: string, fromPort: number, to: HostPort): boolean {
    if (this.#closed || !this.isClient || this.#q.isStatelessReset?.(msg) !== true) return false;
    this.receive(msg, fromHost, fromPort, to);
    return true;
  }

  receive(msg: Uint8Array, fromHost: string, fromPort: number, to: HostPort = this.#init.local): void {
    if (this.#closed) return;
    this.#paths.heard();
    this.lastPacketAt = performance.now();
    if (this.#portCounts) this.#portCounts.set(to.port, (this.#portCounts.get(to.port) ?? 0) + 1);
    const alias = this.#alias;
    if (alias !== null && alias.ports.has(to.port)) to = alias.path;
    const ri = this.#recvInfo;
    if (ri.from.port !== fromPort || ri.from.host !== fromHost || ri.to !== to) {
      this.#recvInfo = { from: { host: fromHost, port: fromPort }, to };
      this.#recvPath = -1;
    }
    const guard = this.#paths.guard;
    if (guard && !guard.idle && !guard.admit(msg, this.#recvInfo)) {
      this.#markDirty();
      return;
    }
    // The path goes to quiche as an index (registered once per address pair), not as address strings per datagram.
    const q = this.#q;
    for (let attempt = 0; attempt < 2; attempt++) {
      if (this.#recvPath < 0) {
        this.#recvPath = q.registerPath(this.#recvInfo.to, this.#recvInfo.from);
        this.#recvGen = q.pathGeneration;
      }
      try {
        const flags = q.recvPacket(msg, this.#recvPath, this.#recvGen);
        if (flags & RECV_PATH_WORK) this.#paths.due = true;
        if (flags & RECV_STOPPED) this.#stopCheckDue = this.#stopsSeen = true;
        if (flags & RECV_LAST_ID) this.#paths.issueCids();
        break;
      } catch (e) {
        const name = parseQuicheError(e).name;
        if (name === 'StalePath' && attempt === 0) {
          this.#recvPath = -1; // the table started again (past its bound): register anew
          continue;
        }
        // Undecryptable / malformed packets are dropped by quiche; fatal errors
        // surface through isClosed() in process().
        this.#recvErrors++;
        this.#lastRecvError = name;
        break;
      }
    }
    // Server in 0-RTT (RFC 9001 §4.6.1): note which request streams the early packets carried, whether or
    // not they are read before the Finished (which may arrive in the same batch and be processed with them).
    if (!this.isClient && !this.established && this.#q.isInEarlyData()) this.#noteEarlyStreams();
    if (this.#packetWaiters.length) {
      const w = this.#packetWaiters;
      this.#packetWaiters = [];
      for (const r of w) r();
    }
    this.#markDirty();
  }

  get recvErrors(): number {
    return this.#recvErrors;
  }

  /** Run one pass; called by the endpoint's batch scheduler or directly. */
  process(): void {
    this.#dirty = false;
    if (this.#closed || this.#processing) return;
    this.#processing = true;
    try {
      this.#checkEstablished();
      // Before any deferral: a FailedValidation raised by onTimeout() must
      // reach the path guard before the next datagram is handed to quiche.
      if (this.established && this.#paths.due) this.#paths.check();
      // Peer streams (incl. uni streams opened during the handshake) are read whenever quiche has data.
      const delivered = this.#overrideError ? 0 : this.#reader.read();
      const failures = this.#writes.flush(this.#q, FLUSH_SLICE);
      for (const f of failures) if (f.kind === 'stopped') this.#stopped(f.streamId, f.code);
      if (this.#stopCheckDue) this.#checkStopped();
      if (delivered > 0 && !this.#sendDeferred && this.#init.scheduleNextTurn) {
        const state = this.#q.passState();
        if (state !== PASS_CLOSED) {
          this.#sendDeferred = true;
          this.#init.scheduleNextTurn(this);
          this.#armFrom(state);
          return;
        }
      }
      this.#sendDeferred = false;
      this.#drainSend();
      this.#sendSlices();
      // Only the first flight changes the handshake phase: later passes skip its two native calls.
      const ph = this.#hs.phase;
      if (ph === 'opened' || ph === 'fresh') {
        const flight = afterFirstFlight(this.#hs, this.#q.isInEarlyData(), this.#q.isEstablished());
        this.#hs = flight.next;
        if (flight.lost) this.#emit({ type: 'early-unavailable' });
      }
      // A client enters 0-RTT only once its first flight is written.
      if (this.#hs.phase === 'sent' && this.isClient && this.#q.isInEarlyData()) {
        this.#checkEstablished();
        this.#markDirty();
      }
      this.#creditCheck();
    } finally {
      this.#processing = false;
    }
    // The peer closed (RFC 9000 §10.2.2: draining, nothing more is sent or delivered): done now, not 3 PTOs later —
    // a client refused in its handshake (CONNECTION_REFUSED) heard of it after 3 s. One call asks that and the timer.
    const state = this.#q.passState();
    if (state === PASS_CLOSED || state === PASS_DRAINING) {
      this.#finish();
      return;
    }
    this.#armFrom(state);
    if (this.#writeWaiters.length) this.#wakeWriters();
    if (this.#dirty) this.#init.schedule(this);
  }

  #wakeWriters(): void {
    const still: WriteWaiter[] = [];
    for (const w of this.#writeWaiters) {
      if (this.#writable(w.id, w.max, w.connMax, w.floor)) w.resolve();
      else still.push(w);
    }
    this.#writeWaiters = still;
  }

  // ---- internals ----

  #markDirty(): void {
    if (this.#dirty || this.#closed) return;
    this.#dirty = true;
    if (!this.#processing) this.#init.schedule(this);
  }

  /** Create in quiche the stream `openBidi` numbered, if `id` is that one and it is not yet created. */
  #materialize(id: number): void {
    if (id !== this.#uncreated || id === -1) return;
    this.#uncreated = -1;
    this.#create(id);
  }

  #create(id: number): boolean {
    try {
      // A zero-length write without FIN creates the stream in quiche, so
      // peerStreamsLeft* counts it from now on.
      this.#q.streamSend(id, new Uint8Array(0), false);
      return true;
    } catch {
      return false;
    }
  }

  #checkEstablished(): void {
    if (this.established) return;
    // Server: quiche is in early data once it accepted the client's 0-RTT (RFC 9001 §4.6.1), until the
    // client's Finished. Seen at the first pass, which always comes before our first flight leaves.
    if (!this.isClient && !this.#earlyAccepted && this.#q.isInEarlyData()) this.#earlyAccepted = true;
    if (this.isClient && !earlyReported(this.#hs) && this.#q.isInEarlyData()) {
      this.#hs = { phase: 'early', opened: false };
      this.#handler.onConnected(true);
      this.#emit({ type: 'established', early: true });
    }
    if (!this.#q.isEstablished()) return;
    if (this.isClient) {
      const bad = checkPeerName(this.#q, this.#init.expectedHost ?? null);
      if (bad) {
        this.#overrideError = bad;
        try {
          // RFC 9001 §4.8: TLS alert 42 (bad_certificate) as CRYPTO_ERROR.
          this.#q.close(false, CRYPTO_ERROR_BASE + 42, Buffer.from('certificate name mismatch'));
        } catch {
          // Already closing.
        }
        return;
      }
    }
    this.#hs = { phase: 'established' };
    this.establishedAt = performance.now();
    this.#connectTimer.stop();
    this.#handler.onConnected(false);
    this.#emit({ type: 'established', early: false });
  }

  #stopped(streamId: number, code: number): void {
    this.#replyPending.delete(streamId);
    this.#handler.onStopSending(streamId, code);
  }

  /** Probe the streams still owing a reply for a STOP_SENDING from the peer (see #replyPending). */
  #checkStopped(): void {
    this.#stopCheckDue = false;
    for (const id of this.#replyPending) {
      if (this.#closed) return;
      if (this.#writes.has(id)) continue; // the next write reports it
      try {
        this.#q.streamCapacity(id);
      } catch (e) {
        const info = parseQuicheError(e);
        // A stream quiche dropped while we still owed the reply: it only drops one whose
        // sending side is done, and ours is not, so the peer stopped it (and quiche
        // answered with RESET_STREAM before we looked). The code is gone with it.
        // StreamStopped carries the peer's code; InvalidStreamState carries the stream id, not a code.
        if (info.name === 'StreamStopped') this.#stopped(id, info.code ?? 0);
        else if (info.name === 'InvalidStreamState') this.#stopped(id, 0);
        else this.#replyPending.delete(id);
      }
    }
  }

  #creditCheck(): void {
    if (!this.established && !this.inEarlyData) return;
    let fire = false;
    if (this.#bidiBlocked && this.#q.peerStreamsLeftBidi() > 0) {
      this.#bidiBlocked = false;
      fire = true;
    }
    if (this.#uniBlocked && this.#q.peerStreamsLeftUni() > 0) {
      this.#uniBlocked = false;
      fire = true;
    }
    if (fire) this.#handler.onStreamsAvailable();
  }

  /**
   * Move queued stream bytes into quiche a slice at a time, each slice
   * packetised before the next: quiche then encrypts bytes that are still
   * in cache, where one big flush (MBs once the window is open) made it
   * read them back from memory. Stops when quiche takes less than a slice.
   */
  #sendSlices(): void {
    for (let i = 0; i < MAX_SLICES && this.#writes.accepted >= FLUSH_SLICE && !this.#closed; i++) {
      const failures = this.#writes.flush(this.#q, FLUSH_SLICE);
      for (const f of failures) if (f.kind === 'stopped') this.#stopped(f.streamId, f.code);
      this.#drainSend();
    }
  }

  /**
   * Hand quiche's packets to the socket sink, as far as the pacer allows (`force`: all of them — a
   * CONNECTION_CLOSE on destroy must leave now). When the pacer holds packets back, a timer wakes the
   * connection when the next may leave.
   */
  #drainSend(force = false): void {
    this.#endedSinceDrain = 0;
    const q = this.#q;
    // Lone FINs go to quiche here and nowhere else: between this and the send() loop below no
    // datagram can be received, so an ACK cannot make quiche forget them (write-queue.ts). That
    // holds only if the loop drains send() to the end: a drain that hands FINs is not paced (a
    // paced stop let the peer's ACK in before the FIN left — test/peer/quic-lone-fin.test.ts).
    const handsFins = this.#writes.loneFins > 0;
    const paced = !force && !handsFins && this.established && this.#pacer !== null;
    // Our pacer at 1.25 × cwnd / RTT (pacer.ts), not quiche's own release times: driven by this loop's millisecond
    // timers they collapsed BBR's window under random loss (native-notes/quic-addon.md, "Pacing").
    const pacer = paced ? this.#pacer : null;
    let refreshed = false;
    const finFailures = this.#writes.handLoneFins(q);
    for (const f of finFailures) if (f.kind === 'stopped') this.#stopped(f.streamId, f.code);
    const sink = this.#init.sink;
    const socketFor = this.#init.socketFor;
    for (let guard = 0; guard < 100_000; guard++) {
      const now = pacer ? performance.now() : 0;
      if (pacer) {
        let wait = pacer.allow(now);
        if (wait > 0 && !refreshed) {
          // Out of tokens: read the window and RTT again (once per drain) before waiting.
          refreshed = true;
          const p = q.pathStats().find((x) => x.active);
          if (p) pacer.update(p.cwnd, p.rtt, now);
          wait = pacer.allow(now);
        }
        if (wait > 0) {
          this.#armPaceTimer(wait);
          break;
        }
      }
      // One crossing for what may leave now: up to SEND_BATCH packets (what the pacer allows), written one after
      // another into the sink's slab, lengths and path indexes in #sendMeta.
      const slot = this.#maxPacket ?? sink.slot;
      let max = Math.min(this.#sendBatch, pacer ? pacer.packets(now) : SEND_BATCH);
      if (max < 1) max = 1;
      const out = sink.reserve(slot * max);
      let n: number;
      try {
        n = q.sendPackets(out, max, this.#sendMeta);
      } catch {
        break;
      }
      if (n === 0) break;
      const meta = this.#sendMeta;
      const gen = meta[0]!;
      for (let i = 0; i < n; i++) {
        const len = meta[1 + 2 * i]!;
        const pi = meta[2 + 2 * i]!;
        if (pi !== this.#sendPath || gen !== this.#sendGen || this.#sendTo === null) {
          // A path's addresses cross once, when the path index changes (a migration, a new peer address).
          const a = q.pathAddresses(pi);
          this.#sendPath = pi;
          this.#sendGen = gen;
          this.#sendTo = this.#paths.guard === null ? a.to : this.#paths.guard.sendTo(a.from, a.to);
          if (
            socketFor &&
            (this.#lastFrom === null || this.#lastFrom.port !== a.from.port || this.#lastFrom.host !== a.from.host)
          ) {
            this.#lastFrom = a.from;
            const alias = this.#alias;
            this.#lastSocket = socketFor(alias !== null && a.from.port === alias.path.port ? alias.socket : a.from);
          }
        }
        sink.commit(len, this.#sendTo, this.#lastSocket);
        pacer?.sent(len);
      }
      if (n < max) break; // quiche had no more to send
    }
    sink.flush();
  }

  /** Datagrams of the active path leave from, and are taken on, the socket bound to `local` from now on (#alias). */
  #rebind(local: HostPort): void {
    const active = this.#q.pathStats().find((p) => p.active);
    const path =
      this.#alias?.path ?? (active ? { host: active.localHost.host, port: active.localHost.port } : this.local);
    const ports = this.#alias?.ports ?? new Set([path.port]);
    ports.add(local.port);
    this.#alias = { path, socket: local, ports };
    this.#lastFrom = null;
    this.#sendPath = -1;
    this.#recvPath = -1;
  }

  #armPaceTimer(waitMs: number): void {
    if (this.#closed) return;
    if (this.#paceTimer.arm(Math.max(1, Math.ceil(waitMs)))) this.pacedWaits++;
  }

  /** The deadline timer follows quiche's (quic/timers.ts: a later one keeps the armed timer, which re-arms). */
  #armTimer(): void {
    this.#deadline.set(this.#q.timeout());
  }

  /** The deadline timer from a passState (draining: quiche's own timer, which passState does not give). */
  #armFrom(state: number): void {
    if (state === PASS_DRAINING) this.#armTimer();
    else this.#deadline.set(state < 0 ? null : state);
  }

  #onTimer(): void {
    if (this.#closed) return;
    // Fired ahead of a deadline that moved out: re-arm for the new one.
    const left = this.#q.timeout();
    if (left === null) return;
    if (left > 0) {
      this.#armTimer();
      return;
    }
    this.#q.onTimeout();
    this.#paths.due = true;
    this.#paths.probeTimedOut();
    this.process();
  }

  #onConnectTimeout(): void {
    if (this.established || this.#closed) return;
    this.#overrideError ??= new OriginlinkError(
      ErrorCode.CONNECT_TIMEOUT,
      'network',
      `QUIC handshake with ${this.remote.host}:${this.remote.port} timed out`,
      {
        retrySafe: true,
      },
    );
    this.destroy(this.#overrideError);
  }

  #closeWith(app: boolean, code: number, reason: string): void {
    if (this.#closed) return;
    try {
      this.#q.close(app, code, Buffer.from(reason.slice(0, 200)));
    } catch {
      // Already closing.
    }
    this.#markDirty();
  }

  #finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#deadline.stop();
    this.#connectTimer.stop();
    this.#paceTimer.stop();
    const error =
      this.#overrideError ??
      closeError(
        this.#q,
        this.established,
        this.#lastRecvError,
        this.#init.appNoError,
        `${this.#init.remote.host}:${this.#init.remote.port}`,
        this.#init.clientCert ?? null,
      );
    this.#init.release(this);
    for (const w of this.#writeWaiters) w.resolve();
    for (const r of this.#packetWaiters) r();
    this.#writeWaiters = [];
    this.#packetWaiters = [];
    this.#reader.clear();
    this.#replyPending.clear();
    this.#handler.onClosed(error);
    this.#emit({ type: 'closed', error });
  }

  #emit(ev: QuicConnectionEvent): void {
    for (const l of this.#listeners) l(ev);
  }
}
