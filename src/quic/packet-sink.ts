/**
 * Outgoing packet batching. quiche writes each packet into a slot reserved
 * from a slab; committed packets are handed to the socket at `flush()`.
 * A slab is rewritten only while every packet that ever left from it went
 * through the native sender (a synchronous sendmsg: the kernel has copied
 * the bytes); once one dgram.send (which reads the bytes later) used it,
 * the slab is replaced when full, never rewritten.
 *
 * A sink holds a slab only between its first reserve() and its flush():
 * a slab every packet of which was copied by the kernel then goes back to
 * one spare the process keeps, for whichever sink reserves next (a slab per
 * sink was 256 KiB of external memory for every client connection: each has
 * an endpoint of its own).
 *
 * Committed packets are contiguous in the slab. With the native sender
 * (udp-gso.ts) each run of packets to one destination whose sizes are equal
 * except a shorter last one leaves in one sendmsg(UDP_SEGMENT), a lone packet
 * in a plain sendmsg; without it, or when that call fails, packet by packet
 * through dgram.
 */
import type { UdpSocket } from './native-socket.js';
import type { HostPort } from './quiche.js';
import { GSO_MAX_BYTES, GSO_MAX_SEGMENTS, gsoSender, type GsoSender } from './udp-gso.js';

/** Slab size: ~48 packets of 1350 bytes, or a few loopback-size packets. */
const SLAB_BYTES = 256 * 1024;

/** The slab no sink holds now (see above); null until a first flush gives one back, or while one is lent out. */
let spare: Buffer | null = null;

export class PacketSink {
  #socket: UdpSocket;
  #slot: number;
  /** Null between a flush and the next reserve. */
  #slab: Buffer | null = null;
  #used = 0;
  /** A dgram.send may still read from the current slab: never rewrite it. */
  #slabLent = false;
  /**
   * The committed packets: the first #n entries of each array. The arrays keep their length between flushes: a
   * truncation (`length = 0`) is a call into V8's runtime per array, and four a flush showed in an h3 request's
   * profile (bench/RESULTS.md `h3`, 2026-11-28).
   */
  #n = 0;
  #offs: number[] = [];
  #lens: number[] = [];
  #tos: HostPort[] = [];
  #vias: UdpSocket[] = [];
  #gsoOff: boolean;
  #gsoBySocket = new WeakMap<UdpSocket, GsoSender | null>();
  /**
   * Sockets connected to their one peer (UDP connect(2)): sent to without an address (the kernel keeps route and
   * destination).
   */
  #connected = new WeakSet<UdpSocket>();
  packetsOut = 0;
  bytesOut = 0;
  sendErrors = 0;
  /** sendmsg calls that carried more than one packet. */
  gsoSends = 0;
  /** GSO calls that failed and were resent packet by packet. */
  gsoFallbacks = 0;

  constructor(socket: UdpSocket, maxPacket: number, opts: { gso?: boolean } = {}) {
    this.#socket = socket;
    this.#slot = maxPacket;
    this.#gsoOff = opts.gso === false;
  }

  /** Whether batched sends are in use on the default socket (resolved on its first flush). */
  /** The datagram size reserve() gives by default. */
  get slot(): number {
    return this.#slot;
  }

  get gso(): boolean {
    return !!this.#gsoBySocket.get(this.#socket);
  }

  #gsoFor(socket: UdpSocket): GsoSender | null {
    if (this.#gsoOff) return null;
    let g = this.#gsoBySocket.get(socket);
    if (g === undefined) {
      g = gsoSender(socket);
      this.#gsoBySocket.set(socket, g);
    }
    return g;
  }

  /** `socket` is connected to the only destination its packets have (QuicEndpoint with a `peer`). */
  connected(socket: UdpSocket): void {
    this.#connected.add(socket);
  }

  /** A writable view for one packet of up to `size` bytes (default: the endpoint's max packet). */
  reserve(size = this.#slot): Buffer {
    if (this.#slab !== null && this.#used + size > this.#slab.length) this.flush();
    if (this.#slab === null || this.#used + size > this.#slab.length) {
      if (spare !== null && spare.length >= size) {
        this.#slab = spare;
        spare = null;
      } else this.#slab = Buffer.allocUnsafe(Math.max(SLAB_BYTES, size));
      this.#used = 0;
      this.#slabLent = false;
    }
    return this.#slab.subarray(this.#used, this.#used + size);
  }

  /** The packet just written into the reserved view; `via` = another local socket (migration). */
  commit(len: number, to: HostPort, via: UdpSocket = this.#socket): void {
    const k = this.#n++;
    this.#offs[k] = this.#used;
    this.#lens[k] = len;
    this.#tos[k] = to;
    this.#vias[k] = via;
    this.#used += len;
  }

  flush(): void {
    const n = this.#n;
    if (n === 0) {
      this.#giveBack();
      return;
    }
    const slab = this.#slab!;
    const offs = this.#offs;
    const lens = this.#lens;
    const tos = this.#tos;
    const vias = this.#vias;
    let i = 0;
    while (i < n) {
      const to = tos[i]!;
      const via = vias[i]!;
      const gso = this.#gsoFor(via);
      const seg = lens[i]!;
      let j = i + 1;
      let bytes = seg;
      if (gso) {
        // Extend the run: same socket and destination, same size; a shorter packet ends it.
        while (
          j < n &&
          j - i < GSO_MAX_SEGMENTS &&
          bytes + lens[j]! <= GSO_MAX_BYTES &&
          lens[j]! <= seg &&
          vias[j] === via &&
          tos[j]!.port === to.port &&
          tos[j]!.host === to.host
        ) {
          bytes += lens[j]!;
          j++;
          if (lens[j - 1]! < seg) break;
        }
      }
      // Single packets go through the addon too: one sendmsg, without dgram's per-send request object and callback.
      const connected = this.#connected.has(via);
      if (gso) {
        const r = gso.send(slab, offs[i]!, bytes, seg, connected ? '' : to.host, to.port);
        if (r === bytes) {
          if (j - i > 1) this.gsoSends++;
          this.packetsOut += j - i;
          this.bytesOut += bytes;
          i = j;
          continue;
        }
        this.gsoFallbacks++;
      }
      this.#slabLent = true;
      for (; i < j; i++) {
        this.packetsOut++;
        this.bytesOut += lens[i]!;
        if (connected) vias[i]!.send(slab, offs[i]!, lens[i]!, this.#onSent);
        else vias[i]!.send(slab, offs[i]!, lens[i]!, tos[i]!.port, tos[i]!.host, this.#onSent);
      }
    }
    this.#n = 0;
    this.#giveBack();
  }

  /**
   * Every byte that left from the slab was copied by sendmsg: it is free again, for any sink. One a dgram.send may
   * still read is dropped.
   */
  #giveBack(): void {
    if (this.#slab === null) return;
    if (!this.#slabLent && spare === null) spare = this.#slab;
    this.#slab = null;
    this.#used = 0;
    this.#slabLent = false;
  }

  #onSent = (err: Error | null): void => {
    if (err) this.sendErrors++;
  };
}
