/**
 * Outgoing packet batching. quiche writes each packet into a slot reserved
 * from a slab; committed packets are handed to the socket at `flush()`.
 * A slab is never rewritten once a packet in it went to the socket (the
 * send may complete asynchronously), so slabs are replaced, not recycled:
 * one allocation per ~32 packets instead of one per packet.
 */
import type { Socket } from 'node:dgram';
import type { HostPort } from './quiche.js';

const SLAB_PACKETS = 32;

export class PacketSink {
  #socket: Socket;
  #slot: number;
  #slab: Buffer;
  #used = 0;
  /** Start offset of packets committed but not yet flushed. */
  #batch: Array<{ off: number; len: number; to: HostPort }> = [];
  packetsOut = 0;
  bytesOut = 0;
  sendErrors = 0;

  constructor(socket: Socket, maxPacket: number) {
    this.#socket = socket;
    this.#slot = maxPacket;
    this.#slab = Buffer.allocUnsafe(maxPacket * SLAB_PACKETS);
  }

  /** A writable view of at least one max-size packet. */
  reserve(): Buffer {
    if (this.#used + this.#slot > this.#slab.length) {
      this.flush();
      this.#slab = Buffer.allocUnsafe(this.#slot * SLAB_PACKETS);
      this.#used = 0;
    }
    return this.#slab.subarray(this.#used, this.#used + this.#slot);
  }

  commit(len: number, to: HostPort): void {
    this.#batch.push({ off: this.#used, len, to });
    this.#used += len;
  }

  flush(): void {
    const b = this.#batch;
    if (b.length === 0) return;
    const slab = this.#slab;
    for (const p of b) {
      this.packetsOut++;
      this.bytesOut += p.len;
      this.#socket.send(slab, p.off, p.len, p.to.port, p.to.host, this.#onSent);
    }
    b.length = 0;
  }

  #onSent = (err: Error | null): void => {
    if (err) this.sendErrors++;
  };
}
