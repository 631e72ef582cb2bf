/**
 * Per-stream write queues. quiche accepts as many bytes as flow control and
 * its send buffer allow (`streamSend` may write part of a chunk, or nothing:
 * null); the rest waits here, in order, until credit returns. A FIN is
 * attached to the last chunk and is only delivered with its final byte.
 *
 * Scheduling invariant: credit that frees up (an ACK shrinking bytes in
 * flight raises quiche's send capacity) goes to the most urgent stream first
 * (RFC 9218 urgency, default 3), then among equals to the one with the
 * fewest queued bytes, and a fresh write never overtakes streams already
 * waiting. Otherwise a bulk body, whose writer refills its queue the moment
 * it drains, takes every byte of capacity and small responses on other
 * streams wait for it (RFC 9000 §2.2: streams are independent; the
 * head-of-line blocking HTTP/3 exists to avoid).
 *
 * Lone FINs (an end with no bytes of its own, issue 17): quiche 0.18 can
 * forget a zero-length FIN. `SendBuf::write` (quiche/src/stream.rs 0.18.0,
 * lines 1319-1331) records `fin_off` and queues nothing, `SendBuf::is_complete`
 * (lines 1618-1626) only compares the acked ranges with `fin_off`, and the
 * ACK path (quiche/src/lib.rs 0.18.0, lines 2816-2854) collects a stream
 * that is complete; the flushable entry `stream_send` added for the empty
 * FIN (lib.rs 4614, 4627-4635) then finds no stream in `send()` (lib.rs
 * 4012-4023; the loss path, 3291-3295, skips it the same way) and no STREAM frame with FIN ever leaves. So when the ACK
 * of
 * a stream's last bytes is processed (`recv`) after the lone FIN was handed
 * over and before the next `send()`, the peer never learns the stream
 * ended (cloudflare/quiche#2525). Two defences, both here:
 * - with a carrier (`setFinCarrier`: bytes the application protocol lets
 *   us add, for HTTP/3 an empty reserved frame), a lone FIN on a bidi
 *   stream rides on those bytes: new bytes with FIN set `fin_off` past
 *   everything acked, and every frame that carries the final byte carries
 *   the FIN (`SendBuf::emit`, line 1407), so neither ACK timing, a full
 *   congestion window nor loss can separate them;
 * - otherwise the lone FIN stays here (`#loneFins`) and is handed to quiche
 *   only by `handLoneFins`, which the driver calls right before draining
 *   `send()`, so no `recv()` can come between them. (Left open: a FIN that
 *   `send()` cannot emit at once because the congestion window is full, or
 *   a lost FIN-only packet after its data was acked.)
 */
import { parseQuicheError, type QuicheConnection } from './quiche.js';
import { IdMap } from '../util/id-map.js';

interface Pending {
  chunks: Uint8Array[];
  /** Bytes of chunks[0] already accepted by quiche. */
  offset: number;
  /** Bytes not yet accepted by quiche. */
  left: number;
  fin: boolean;
}

export type WriteFailure = { streamId: number; kind: 'stopped'; code: number } | { streamId: number; kind: 'gone' };

const EMPTY = new Uint8Array(0);

export class WriteQueues {
  /** Streams with bytes waiting, by id (IdMap, not Map: see util/id-map.ts). */
  #pending = new IdMap<Pending>();
  #buffered = 0;
  /** Streams with an urgency other than the default 3 (RFC 9218 §4.1: 0 most urgent, 7 least). */
  #urgency = new Map<number, number>();
  /** Streams whose end waits for `handLoneFins` (no bytes of their own to ride on). */
  #loneFins = new Set<number>();
  /** Bytes a lone FIN on a bidi stream may ride on; null = none. */
  #carrier: Uint8Array | null = null;

  /** Bytes the application protocol lets a lone FIN ride on (bidi streams only). */
  setFinCarrier(bytes: Uint8Array | null): void {
    this.#carrier = bytes && bytes.length ? bytes : null;
  }

  /** Streams with bytes waiting for credit. */
  get waiting(): number {
    return this.#pending.size;
  }

  get bufferedBytes(): number {
    return this.#buffered;
  }

  has(streamId: number): boolean {
    return this.#pending.has(streamId) || this.#loneFins.has(streamId);
  }

  /** Bytes queued for one stream (not yet accepted by quiche). */
  queued(streamId: number): number {
    return this.#pending.get(streamId)?.left ?? 0;
  }

  /**
   * Queue and try to write at once. Order is preserved: nothing is written
   * directly while older bytes of the same stream wait.
   */
  write(conn: QuicheConnection, streamId: number, data: Uint8Array, fin: boolean): WriteFailure | null {
    const p = this.#pending.get(streamId);
    if (fin && data.length === 0 && (!p || p.chunks.length === 0)) {
      const carrier = this.#carrierFor(streamId);
      if (carrier) data = carrier;
      else {
        this.#pending.delete(streamId);
        this.#loneFins.add(streamId);
        return null;
      }
    }
    if (p) {
      if (data.length) p.chunks.push(data);
      p.left += data.length;
      this.#buffered += data.length;
      p.fin ||= fin;
      return null;
    }
    const entry: Pending = { chunks: data.length ? [data] : [], offset: 0, left: data.length, fin };
    this.#buffered += data.length;
    this.#pending.set(streamId, entry);
    // Streams already waiting for credit are served first, by the next flush.
    if (this.#pending.size > 1) return null;
    return this.#drainOne(conn, streamId, entry);
  }

  /** A stream's urgency for the rest of its life (until its FIN is written or it is dropped). */
  setUrgency(streamId: number, urgency: number): void {
    if (urgency === 3) this.#urgency.delete(streamId);
    else this.#urgency.set(streamId, urgency);
  }

  drop(streamId: number): void {
    this.#urgency.delete(streamId);
    this.#loneFins.delete(streamId);
    const p = this.#pending.get(streamId);
    if (!p) return;
    this.#buffered -= p.left;
    this.#pending.delete(streamId);
  }

  /**
   * Push every queue as far as credit allows, most urgent first, then
   * fewest queued bytes first, until `budget` bytes were accepted; returns the streams that failed for
   * good. `accepted` tells how many bytes this call moved.
   */
  flush(conn: QuicheConnection, budget = Infinity): WriteFailure[] {
    this.accepted = 0;
    if (this.#pending.size === 0) return [];
    let failures: WriteFailure[] | null = null;
    const order = [...this.#pending];
    if (order.length > 1) {
      const u = this.#urgency;
      order.sort((a, b) => (u.get(a[0]) ?? 3) - (u.get(b[0]) ?? 3) || a[1].left - b[1].left);
    }
    for (const [id, p] of order) {
      if (this.accepted >= budget) break;
      if (this.#pending.get(id) !== p) continue;
      const f = this.#drainOne(conn, id, p, budget);
      if (f) (failures ??= []).push(f);
    }
    return failures ?? [];
  }

  /**
   * Push one stream's queue into quiche now, as far as credit allows (before a shutdown: quiche can only
   * reset or stop a stream it knows, and a stream it never saw would still use up one of the peer's
   * stream ids for good). Returns the failure, if the stream failed for good.
   */
  flushStream(conn: QuicheConnection, streamId: number): WriteFailure | null {
    const p = this.#pending.get(streamId);
    return p ? this.#drainOne(conn, streamId, p) : null;
  }

  /** Bytes the last flush() moved into quiche. */
  accepted = 0;

  /** Lone FINs waiting to be handed to quiche. */
  get loneFins(): number {
    return this.#loneFins.size;
  }

  /**
   * Hand the lone FINs to quiche. Call only right before draining `send()`,
   * with no `recv()` in between (see the file comment).
   */
  handLoneFins(conn: QuicheConnection): WriteFailure[] {
    if (this.#loneFins.size === 0) return [];
    let failures: WriteFailure[] | null = null;
    for (const id of this.#loneFins) {
      this.#urgency.delete(id);
      try {
        conn.streamSend(id, EMPTY, true);
      } catch (e) {
        const info = parseQuicheError(e);
        (failures ??= []).push(
          info.name === 'StreamStopped'
            ? { streamId: id, kind: 'stopped', code: info.code ?? 0 }
            : { streamId: id, kind: 'gone' },
        );
      }
    }
    this.#loneFins.clear();
    return failures ?? [];
  }

  #carrierFor(streamId: number): Uint8Array | null {
    // Bit 0x2 of a stream id: unidirectional (RFC 9000 §2.1).
    return this.#carrier !== null && (streamId & 0x2) === 0 ? this.#carrier : null;
  }

  #drainOne(conn: QuicheConnection, id: number, p: Pending, budget = Infinity): WriteFailure | null {
    try {
      while (p.chunks.length) {
        if (this.accepted >= budget) return null;
        const head = p.chunks[0]!;
        const last = p.chunks.length === 1;
        const full = p.offset ? head.subarray(p.offset) : head;
        const room = budget - this.accepted;
        // A partial chunk never carries the FIN: it goes with the chunk's last byte.
        const view = full.length > room ? full.subarray(0, room) : full;
        const n = conn.streamSend(id, view, p.fin && last && view === full);
        if (n === null) return null;
        this.#buffered -= n;
        this.accepted += n;
        p.left -= n;
        if (n < full.length) {
          p.offset += n;
          if (n < view.length) return null;
          continue;
        }
        p.chunks.shift();
        p.offset = 0;
        if (last && p.fin) {
          this.#pending.delete(id);
          this.#urgency.delete(id);
          return null;
        }
      }
      this.#pending.delete(id);
      // Only an entry that never held bytes gets here with its FIN: it waits like any lone FIN.
      if (p.fin) this.#loneFins.add(id);
      return null;
    } catch (e) {
      this.drop(id);
      const info = parseQuicheError(e);
      if (info.name === 'StreamStopped') return { streamId: id, kind: 'stopped', code: info.code ?? 0 };
      return { streamId: id, kind: 'gone' };
    }
  }
}
