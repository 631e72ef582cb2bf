/**
 * Paths of one QUIC connection (RFC 9000 §9): the connection ids we issue
 * and retire, path events from quiche, active migration to a new local
 * address and its settling, and the count of probe timeouts with nothing
 * heard that triggers automatic migration. quinn keeps the same concerns
 * in `connection/paths.rs` and `cid_state.rs` beside the connection.
 */
import { ErrorCode, OriginlinkError } from '../errors.js';
import { PathGuard } from './path-guard.js';
import { quicRandom, type HostPort, type PathEvent, type QuicheConnection } from './quiche.js';

/**
 * Connection ids of ours a connection holds at once, beyond those the peer retired (each is a routing-table entry;
 * the peer's active_connection_id_limit caps it further).
 */
const MAX_LIVE_CIDS = 16;
/**
 * Connection ids issued over a connection's life: a new one follows each the peer retires (RFC 9000 §5.1.2), so a
 * client that changes paths often (Chromium moves to a new port whenever the path looks degraded, and retires the id
 * of a probe that failed) keeps getting them, but a peer retiring ids as fast as it can only gets this many.
 */
const MAX_ISSUED_CIDS = 1024;

/** What the paths need of their connection and its endpoint. */
export interface PathHost {
  readonly isClient: boolean;
  readonly closed: boolean;
  readonly established: boolean;
  /** Route / stop routing datagrams for a connection id we issued. */
  addCid?: ((cid: Uint8Array) => void) | undefined;
  removeCid?: ((cid: Uint8Array) => void) | undefined;
  /** A new connection ID of ours and its stateless reset token (QuicConnectionInit.newCid). */
  newCid?: (() => { cid: Uint8Array; token: bigint }) | undefined;
  /** A path event for the connection's listeners. */
  pathEvent(ev: PathEvent): void;
  /** Write what quiche has to send now (the path guard's re-probes). */
  drainSend(): void;
  /** Something to send or check: schedule a pass. */
  markDirty(): void;
  /** Client: keep quiche's active path, send and receive it on the socket bound to `local` (a port-only move). */
  rebind?(local: HostPort): void;
  /** Datagrams received on a local port since `countPorts(true)`. */
  receivedOn?(port: number): number;
  countPorts?(on: boolean): void;
}

export class Paths {
  migrations = 0;
  readonly events: Record<string, number> = {};
  /**
   * Path work may wait: a datagram that brought some (recvPacket's RECV_PATH_WORK), a timer expiry, a migration, or
   * a check that stopped at a bound. True until the first check after the handshake issues our ids.
   */
  due = true;
  #q: QuicheConnection;
  #host: PathHost;
  #issuedCids = 0;
  /** Ids we issued that the peer has not retired (the handshake's own id is not counted). */
  #liveCids = 0;
  /**
   * Server: re-validates paths quiche failed or left unvalidated while the peer still sends from them (path-guard.ts).
   */
  readonly guard: PathGuard | null;
  /** Timer firings with no datagram received in between (probe timeouts on the current path). */
  #silentTimeouts = 0;
  /** When our latest PING left (null: none since the last datagram from the peer). */
  #lastPingAt: number | null = null;
  #stall: { after: number; fn: () => void } | null = null;
  /** Client after a rebind (migrateTo): the port of the socket under the active path; null: quiche's own. */
  #socketPort: number | null = null;
  /** Where the search for the active path's connection id starts (#rotateDcid). */
  #activeDcidSeq = 0;

  constructor(q: QuicheConnection, host: PathHost, local: HostPort, remote: HostPort) {
    this.#q = q;
    this.#host = host;
    this.guard = host.isClient ? null : new PathGuard(q, () => host.drainSend(), local, remote);
  }

  /** Connection ids the peer gave us that are still unused (a migration needs one, RFC 9000 §9.5). */
  spareDcids(): number {
    try {
      return this.#q.availableDcids();
    } catch {
      return 0;
    }
  }

  /** A datagram arrived: the path is alive. (Whether it brought path work, recvPacket says: RECV_PATH_WORK.) */
  heard(): void {
    this.#silentTimeouts = 0;
    this.#lastPingAt = null;
  }

  /**
   * A PING is leaving. One sent while the previous one is still unanswered
   * (nothing received since) counts as a probe timeout: every ack-eliciting
   * packet restarts quiche's PTO (RFC 9002 §6.2.1), so on a dead path kept
   * busy with PINGs the PTO itself would never expire N times.
   */
  pinging(now: number, lastPacketAt: number): void {
    if (this.#lastPingAt !== null && lastPacketAt <= this.#lastPingAt) this.probeTimedOut();
    this.#lastPingAt = now;
  }

  /**
   * Call `fn` once `after` consecutive probe timeouts pass without any
   * datagram from the peer. The count restarts after each call, after a
   * migration and after each received datagram. 0 turns it off.
   */
  onStalled(after: number, fn: () => void): void {
    this.#stall = after > 0 ? { after, fn } : null;
  }

  /** One more probe timeout with nothing heard on the current path. */
  probeTimedOut(): void {
    const h = this.#host;
    if (this.#stall && h.established && !h.closed && ++this.#silentTimeouts >= this.#stall.after) {
      this.#silentTimeouts = 0;
      this.#lastPingAt = null;
      this.#stall.fn();
    }
  }

  /**
   * Client: move to another local address (a socket the endpoint bound).
   * quiche makes the new path active at once and validates it; it needs a
   * spare connection id from the peer (RFC 9000 §9.5), else QUIC_FAILED.
   *
   * Resolves once the peer has moved as well and the old path has gone
   * quiet (bounded; see #settle). RFC 9000 §9.3: a server moves to our new
   * address on a non-probing packet from it; the PING queued here makes the
   * first packet there one even when nothing else is due. What the server
   * sent on the old path until then is still arriving there, and quiche
   * 0.18 never declares such packets lost once that path stops delivering
   * (native-notes/quiche.md): the old socket has to stay readable until
   * they are in, so callers tear the old path down only after this resolves.
   */
  migrateTo(local: HostPort): Promise<void> {
    const h = this.#host;
    if (h.closed) throw new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'local', 'QUIC connection is closed');
    if (!h.isClient) throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', 'only a client migrates actively');
    const prev = this.#q.pathStats().find((p) => p.active);
    const prevPort = this.#socketPort ?? prev?.localHost.port ?? null;
    // A new port on the same address: the socket under quiche's path changes, the path does not (#rebind).
    const rebind = h.rebind !== undefined && prev !== undefined && prev.localHost.host === local.host;
    try {
      if (rebind) this.#rebind(local);
      else this.#q.migrateSource(local);
    } catch (e) {
      if (e instanceof OriginlinkError) throw e;
      throw new OriginlinkError(ErrorCode.QUIC_FAILED, 'local', `QUIC migration failed: ${(e as Error).message}`, {
        cause: e,
        details: { spareDcids: this.spareDcids() },
      });
    }
    try {
      this.#q.sendAckEliciting();
    } catch {
      // The PATH_CHALLENGE and any ACK still leave on the new path.
    }
    this.migrations++;
    this.#silentTimeouts = 0;
    this.#lastPingAt = null;
    this.due = true;
    h.markDirty();
    if (!prev || prevPort === null) return Promise.resolve();
    if (!rebind) {
      const q = this.#q;
      return this.#settle(
        (port) => q.pathStats().find((p) => p.localHost.port === port)?.recv ?? 0,
        prevPort,
        local.port,
        prev.rtt,
      );
    }
    h.countPorts?.(true);
    return this.#settle((port) => h.receivedOn?.(port) ?? 0, prevPort, local.port, prev.rtt).finally(() =>
      h.countPorts?.(false),
    );
  }

  /**
   * A port-only move (RFC 9000 §9.2, §9.4 lets such a move keep the congestion state): the connection's packets
   * leave from the new socket, quiche's active path stays as it is. quiche 0.30 keeps the packets in flight on a
   * path it left, and never declares lost the control frames among them (cloudflare/quiche#2452): a
   * MAX_STREAM_DATA in flight on a path that died stayed lost, and the server sat at our flow-control limit for
   * good (the ngtcp2 dead-path case in test/peer/migration.test.ts stalled in 2 of 6 runs). On one path, loss
   * detection recovers them as any other. The peer sees a new address with a new connection id (RFC 9000 §9.5:
   * the one the old address used is retired) and validates it (§9.3), as for any migration.
   */
  #rebind(local: HostPort): void {
    this.#rotateDcid();
    this.#host.rebind!(local);
    this.#socketPort = local.port;
  }

  /**
   * Retire the connection id the active path uses: quiche moves the path to the lowest spare one. quiche does not
   * say which sequence number is active: it is the first one whose retirement changes the destination id, starting
   * from the one after the last we retired (0, the handshake's, at first). A zero-length id has nothing to change.
   */
  #rotateDcid(): void {
    const q = this.#q;
    const before = Buffer.from(q.destinationId()).toString('hex');
    if (before.length === 0) return;
    if (this.spareDcids() === 0) {
      throw new OriginlinkError(
        ErrorCode.QUIC_FAILED,
        'local',
        'QUIC migration failed: no spare connection id from the peer (RFC 9000 §9.5)',
        { details: { spareDcids: 0 } },
      );
    }
    for (let seq = this.#activeDcidSeq; seq < this.#activeDcidSeq + 16; seq++) {
      try {
        q.retireDestinationCid(seq);
      } catch {
        continue; // retired already, or not issued yet
      }
      if (Buffer.from(q.destinationId()).toString('hex') !== before) {
        this.#activeDcidSeq = seq + 1;
        return;
      }
    }
    throw new OriginlinkError(
      ErrorCode.QUIC_FAILED,
      'local',
      'QUIC migration failed: the active connection id could not be retired',
      { details: { spareDcids: this.spareDcids() } },
    );
  }

  /**
   * After a migration: wait until the new local port has received a
   * datagram (the peer moved) and the old one has received none for a
   * quiet spell of RTT/4 (at least 5 ms), for at most max(1 s, 8 RTT).
   * Ports identify the sockets: those of one endpoint share a host.
   */
  async #settle(recvOn: (port: number) => number, prevPort: number, nextPort: number, rttMs: number): Promise<void> {
    const quiet = Math.max(5, rttMs / 4);
    const end = performance.now() + Math.max(1000, 8 * rttMs);
    let seen = recvOn(prevPort);
    let quietFrom = performance.now();
    while (!this.#host.closed && performance.now() < end) {
      await new Promise((r) => setTimeout(r, quiet / 2));
      if (this.#host.closed) return;
      const n = recvOn(prevPort);
      if (n !== seen) {
        seen = n;
        quietFrom = performance.now();
      } else if (performance.now() - quietFrom >= quiet && recvOn(nextPort) > 0) {
        return;
      }
    }
  }

  /**
   * Issue connection ids up to the peer's limit (NEW_CONNECTION_ID) and stop routing the ones it retired. Also called
   * between two datagrams of one batch when quiche is down to one id of ours (recvPacket's RECV_LAST_ID).
   */
  issueCids(): void {
    const q = this.#q;
    const add = this.#host.addCid;
    if (!add) return;
    try {
      for (let i = 0; ; i++) {
        if (i === 64) {
          this.due = true; // more may wait: the next pass goes on
          break;
        }
        const old = q.retiredScidNext();
        if (!old) break;
        this.#host.removeCid?.(old);
        this.#liveCids = Math.max(0, this.#liveCids - 1);
      }
      for (
        let i = 0;
        this.#issuedCids < MAX_ISSUED_CIDS && this.#liveCids < MAX_LIVE_CIDS && q.sourceCidsLeft() > 0;
        i++
      ) {
        if (i === 8) {
          this.due = true;
          break;
        }
        // The endpoint's rule (its worker's index first, a token it can remake); else random and unguessable.
        const { cid, token } = this.#host.newCid?.() ?? {
          cid: quicRandom(16),
          token: BigInt(`0x${quicRandom(16).toString('hex')}`),
        };
        q.newSourceCid(cid, token, false);
        this.#issuedCids++;
        this.#liveCids++;
        add(cid);
      }
    } catch {
      // IdLimit / state errors: try again on a later pass.
      this.due = true;
    }
  }

  /**
   * Keep spare connection ids with the peer (NEW_CONNECTION_ID, up to its
   * active_connection_id_limit) so either side can change paths, route the
   * ones we issue, drop retired ones, and record path events.
   */
  check(): void {
    this.due = false;
    this.issueCids();
    const q = this.#q;
    for (let i = 0; ; i++) {
      if (i === 64) {
        this.due = true;
        break;
      }
      let ev: PathEvent | null;
      try {
        ev = q.pathEventNext();
      } catch {
        break;
      }
      if (!ev) break;
      this.events[ev.type] = (this.events[ev.type] ?? 0) + 1;
      if (ev.type === 'PeerMigrated') this.migrations++;
      this.guard?.onPathEvent(ev);
      this.#host.pathEvent(ev);
    }
  }
}
