/**
 * Server side: three workarounds for quiche (0.18 and 0.30) when the peer's
 * address changes (NAT rebinding, a client's port migration). (1) Keeps
 * quiche from closing a connection whose peer goes on sending from an
 * address whose path validation failed (below). (2) Probes the path the
 * connection left, at the peer's new address, so packets lost there get
 * resent (#leftBehind, sendTo). (3) Challenges again a path the peer moved
 * to that stays unvalidated (#unanswered).
 *
 * quiche treats a non-probing packet from such an address as the peer
 * migrating and makes the failed path active, but a failed path never
 * counts as active (`Path::active()` needs a working state): the connection
 * is left without an active path and closes itself with PROTOCOL_VIOLATION
 * (recv() fails with InvalidState). It follows NAT rebinding under CPU load:
 * any loss-detection timer of the new path that fires late (Node runs
 * timers before it reads sockets) counts the PATH_CHALLENGE in flight as
 * lost before the PATH_RESPONSE waiting in the socket is read, and quiche
 * fails the path at the first lost challenge while the path's
 * anti-amplification allowance is under 1200 bytes, which it is for a
 * client that only sends ACKs.
 *
 * So before a datagram from such a peer reaches quiche, validation of the
 * path is requested again and the PATH_CHALLENGE written (RFC 9000 §9.3.2:
 * the peer still sends from there); once it left, the path is validating,
 * not failed, and the datagram is safe. When no challenge can leave for
 * lack of allowance, the datagram is fed once with its authentication tag
 * broken (quiche counts every datagram from the address towards the
 * allowance before authenticating it, as RFC 9000 §8.1 counts all bytes
 * attributed to the connection, and drops it) and the original is dropped:
 * the peer's loss recovery resends what it carried, and its next datagram
 * carries the challenge out. After MAX_DROPS in a row, or when the path
 * cannot be probed at all, quiche gets the datagrams as before.
 */
import type { HostPort, QuicheConnection, QuichePathStats, RecvInfo } from './quiche.js';

/** Failed peer paths remembered (each is a NAT rebinding in progress). */
const MAX_FAILED_PATHS = 8;
/** Datagrams dropped in a row while a failed path cannot get its PATH_CHALLENGE out. */
const MAX_DROPS = 8;
/** PATH_CHALLENGEs sent again to a path the peer moved to that stays unvalidated (#unanswered). */
const MAX_RECHALLENGES = 8;
/**
 * The least time between two of them, in ms; otherwise three round trips of the active path. About what quiche's
 * own retry of a lost challenge waits on a new path (a probe timeout from its initial RTT of 333 ms), and no more
 * often than RFC 9000 §8.2.1 would have a path probed: a path that validates normally, even slowly on a loaded
 * machine, never sees one; the path this is for stays unvalidated for good.
 */
const MIN_RECHALLENGE_MS = 1000;

/** A path the peer moved to that is not validated yet (#unanswered): when and how often it was challenged again. */
interface PendingPath {
  key: string;
  local: HostPort;
  peer: HostPort;
  at: number;
  every: number;
  tries: number;
}

export interface GuardPathEvent {
  type: string;
  local?: HostPort;
  peer?: HostPort;
  /** PeerMigrated (binding naming): `old` is the local address, `new` the peer's. */
  old?: unknown;
  new?: unknown;
}

/** The same path: the peer's address, and our local port (a socket's host may be written as bound). */
function samePath(a: { local: HostPort; peer: HostPort }, b: { local: HostPort; peer: HostPort }): boolean {
  return a.peer.port === b.peer.port && a.peer.host === b.peer.host && a.local.port === b.local.port;
}

function isHostPort(v: unknown): v is HostPort {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as HostPort).host === 'string' &&
    typeof (v as HostPort).port === 'number'
  );
}

export class PathGuard {
  #q: QuicheConnection & { probePath(local: HostPort, peer: HostPort): number };
  #flush: () => void;
  #failed = new Map<string, { local: HostPort; drops: number }>();
  /** The path the connection sends on (local, peer), as of the latest PeerMigrated. */
  #active: { local: HostPort; peer: HostPort };
  /** Validations requested again for a failed path, for the path left behind, or for an unanswered challenge. */
  reprobes = 0;
  /** Peer addresses (host:port) validated on this connection: the handshake's, and each Validated event's. */
  #validated = new Set<string>();
  /** The path the peer moved to while it is not validated (#unanswered). */
  #pending: PendingPath | null = null;
  /** The path the connection left at the peer's latest migration while quiche keeps it (#leftBehind, sendTo). */
  #left: { local: HostPort; peer: HostPort } | null = null;

  /** `flush` writes quiche's pending packets to the network now. */
  constructor(q: QuicheConnection, flush: () => void, local: HostPort, peer: HostPort) {
    this.#q = q as QuicheConnection & { probePath(local: HostPort, peer: HostPort): number };
    this.#flush = flush;
    this.#active = { local, peer };
    this.#validated.add(`${peer.host}:${peer.port}`);
  }

  /**
   * Where a packet of the path (from, to) goes: the peer's current address for the path the connection left
   * (#leftBehind), `to` otherwise. Asked once each time the path a packet leaves on changes.
   */
  sendTo(from: HostPort, to: HostPort): HostPort {
    const left = this.#left;
    if (left === null || !samePath(left, { local: from, peer: to })) return to;
    // The peer came back there and quiche made it active before its PeerMigrated was read: its own address.
    if (this.#pathStat(from, to)?.active === true) return to;
    return this.#active.peer;
  }

  /** Nothing to check (the common case; one size test per datagram). */
  get idle(): boolean {
    return this.#failed.size === 0 && this.#pending === null;
  }

  onPathEvent(ev: GuardPathEvent): void {
    if (ev.type === 'PeerMigrated' && isHostPort(ev.old) && isHostPort(ev.new)) {
      this.#leftBehind(this.#active, { local: ev.old, peer: ev.new });
      return;
    }
    if (!ev.peer) return;
    const key = `${ev.peer.host}:${ev.peer.port}`;
    if (ev.type === 'FailedValidation' && ev.local) {
      if (this.#failed.size < MAX_FAILED_PATHS) this.#failed.set(key, { local: ev.local, drops: 0 });
    } else if (ev.type === 'Validated' || ev.type === 'Closed' || ev.type === 'New') {
      this.#failed.delete(key);
      if (
        ev.type === 'Closed' &&
        ev.local &&
        this.#left !== null &&
        samePath(this.#left, { local: ev.local, peer: ev.peer })
      )
        this.#left = null;
      if (ev.type === 'Validated') this.#validated.add(key);
      if (this.#pending?.key === key) this.#pending = null;
      if (ev.type === 'New' && ev.local && !this.#validated.has(key)) {
        const every = Math.max(
          MIN_RECHALLENGE_MS,
          3 * (this.#pathStat(this.#active.local, this.#active.peer)?.rtt ?? 0),
        );
        this.#pending = { key, local: ev.local, peer: ev.peer, at: performance.now(), every, tries: 0 };
      }
    }
  }

  /** Before `recv(msg, info)`: false when the datagram must be dropped instead. */
  admit(msg: Uint8Array, info: RecvInfo): boolean {
    const key = `${info.from.host}:${info.from.port}`;
    if (this.#pending) this.#unanswered(this.#pending, key);
    const f = this.#failed.get(key);
    if (!f) return true;
    if (this.#challengeSent(f.local, info.from) !== false) {
      this.#failed.delete(key);
      return true;
    }
    const junk = Uint8Array.from(msg);
    junk[junk.length - 1]! ^= 0xff;
    try {
      this.#q.recv(junk, info);
    } catch {
      // Dropped by quiche either way.
    }
    const sent = this.#challengeSent(f.local, info.from);
    if (sent === null) {
      this.#failed.delete(key);
      return true;
    }
    if (sent || ++f.drops >= MAX_DROPS) this.#failed.delete(key);
    return false;
  }

  /**
   * After the connection moved to `next`, probe the path it left: recovery
   * is per path in quiche 0.18, and a path runs loss detection only when an
   * ACK newly acknowledges one of its own packets. Packets lost on the old
   * path (NAT rebinding with loss) were then never declared lost and their
   * STREAM data never resent, stalling the stream at its flow-control limit.
   * A PATH_CHALLENGE on the old path that the peer acknowledges declares the
   * older packets lost (quiche 0.30 applies an ACK to every path, but a path
   * looks for losses only when one of its own packets is newly acknowledged).
   * The old address is often dead: Chromium's port migration closes the
   * socket it left, so what was in flight there when it moved (~200 KB in
   * the CI's 8 MiB stall, sent while its probe of the new port was being
   * answered) is lost, and the challenge sent there with it. quiche's probe
   * timeout on that path then resends only its two oldest packets, the same
   * two each time, with the timeout doubling: the stream stalled at the
   * peer's flow-control limit with the hole never filled. So packets of the
   * path left behind go to the peer's current address (sendTo): the
   * challenge reaches the peer (which takes a packet by its connection id,
   * whatever address it reaches) and is answered and acknowledged on the
   * path the peer uses (RFC 9000 §8.2.3: a PATH_RESPONSE on any path
   * validates the path its challenge left on), and the ACK declares the
   * stranded packets lost.
   */
  #leftBehind(prev: { local: HostPort; peer: HostPort }, next: { local: HostPort; peer: HostPort }): void {
    this.#active = next;
    if (this.#left !== null && samePath(this.#left, next)) this.#left = null; // the peer came back
    if (samePath(prev, next)) return;
    if (this.#pathStat(prev.local, prev.peer) === null) return;
    this.#left = prev;
    try {
      this.#q.probePath(prev.local, prev.peer);
      this.reprobes++;
    } catch {
      // The old path has no connection id left: nothing to probe with.
    }
  }

  /**
   * A peer that probes a new address gets a PATH_CHALLENGE from quiche with the PATH_RESPONSE (RFC 9000 §8.2),
   * and when it then moves there (§9.3) quiche makes the path active but unvalidated, with PeerMigrated held back
   * until it is validated. Chromium drops that challenge: it arrives, coalesced with the response to its own probe,
   * on the new port before Chromium has switched to it, and is only acknowledged. quiche sends a challenge again only
   * when one is declared lost at a probe timeout, which the peer's ACKs keep from expiring, so the path stayed
   * unvalidated: the server may send three times what it receives there (§8.1), ~130 bytes per ACK, for the rest of
   * the connection (an 8 MiB response ran at ~90 kB/s until Chromium gave up on it). While datagrams come from the
   * new address, validation is requested again every three round trips of the active path (at least 1 s), at
   * most MAX_RECHALLENGES times (§8.2.1 allows several challenges; each is sent with what leaves next). A peer that
   * does not send from there is left alone, and the watch ends after those rounds in any case.
   */
  #unanswered(p: PendingPath, from: string): void {
    const now = performance.now();
    if (now - p.at < p.every) return;
    if (p.key !== from) {
      if (now - p.at > p.every * MAX_RECHALLENGES) this.#pending = null; // the peer did not move there
      return;
    }
    p.at = now;
    if (++p.tries > MAX_RECHALLENGES) {
      this.#pending = null;
      return;
    }
    try {
      this.#q.probePath(p.local, p.peer);
      this.reprobes++;
    } catch {
      this.#pending = null; // quiche dropped the path, or it has no connection id to send with
    }
  }

  /**
   * Request validation of a path and write packets now: true when a packet
   * left on that path, false when none could, null when the path cannot be
   * probed (quiche dropped it, or it has no connection id to send with).
   */
  #challengeSent(local: HostPort, peer: HostPort): boolean | null {
    const before = this.#pathStat(local, peer)?.sent ?? null;
    if (before === null) return null;
    try {
      this.#q.probePath(local, peer);
    } catch {
      return null;
    }
    this.reprobes++;
    this.#flush();
    const after = this.#pathStat(local, peer)?.sent ?? null;
    return after === null ? null : after > before;
  }

  /** quiche's stats of the path (local, peer): packets sent, smoothed RTT; null when quiche no longer has it. */
  #pathStat(local: HostPort, peer: HostPort): QuichePathStats | null {
    for (const p of this.#q.pathStats())
      if (samePath({ local: p.localHost, peer: p.peerHost }, { local, peer })) return p;
    return null;
  }
}
