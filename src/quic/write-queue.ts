/**
 * Per-stream write queues. quiche accepts as many bytes as flow control and
 * its send buffer allow (`streamSend` may write part of a chunk, or nothing:
 * null); the rest waits here, in order, until credit returns. A FIN is
 * attached to the last chunk and is only delivered with its final byte.
 */
import { parseQuicheError, type QuicheConnection } from './quiche.js';

interface Pending {
  chunks: Uint8Array[];
  /** Bytes of chunks[0] already accepted by quiche. */
  offset: number;
  fin: boolean;
}

export type WriteFailure = { streamId: number; kind: 'stopped'; code: number } | { streamId: number; kind: 'gone' };

const EMPTY = new Uint8Array(0);

export class WriteQueues {
  #pending = new Map<number, Pending>();
  #buffered = 0;

  get bufferedBytes(): number {
    return this.#buffered;
  }

  has(streamId: number): boolean {
    return this.#pending.has(streamId);
  }

  /** Bytes queued for one stream (not yet accepted by quiche). */
  queued(streamId: number): number {
    const p = this.#pending.get(streamId);
    if (!p) return 0;
    let n = -p.offset;
    for (const c of p.chunks) n += c.length;
    return n;
  }

  /**
   * Queue and try to write at once. Order is preserved: nothing is written
   * directly while older bytes of the same stream wait.
   */
  write(conn: QuicheConnection, streamId: number, data: Uint8Array, fin: boolean): WriteFailure | null {
    const p = this.#pending.get(streamId);
    if (p) {
      if (data.length) p.chunks.push(data);
      this.#buffered += data.length;
      p.fin ||= fin;
      return null;
    }
    const entry: Pending = { chunks: data.length ? [data] : [], offset: 0, fin };
    this.#buffered += data.length;
    this.#pending.set(streamId, entry);
    return this.#drainOne(conn, streamId, entry);
  }

  drop(streamId: number): void {
    const p = this.#pending.get(streamId);
    if (!p) return;
    this.#buffered -= this.queued(streamId);
    this.#pending.delete(streamId);
  }

  /** Push every queue as far as credit allows; returns the streams that failed for good. */
  flush(conn: QuicheConnection): WriteFailure[] {
    let failures: WriteFailure[] | null = null;
    for (const [id, p] of this.#pending) {
      const f = this.#drainOne(conn, id, p);
      if (f) (failures ??= []).push(f);
    }
    return failures ?? [];
  }

  #drainOne(conn: QuicheConnection, id: number, p: Pending): WriteFailure | null {
    try {
      while (p.chunks.length) {
        const head = p.chunks[0]!;
        const last = p.chunks.length === 1;
        const view = p.offset ? head.subarray(p.offset) : head;
        const n = conn.streamSend(id, view, p.fin && last);
        if (n === null) return null;
        this.#buffered -= n;
        if (n < view.length) {
          p.offset += n;
          return null;
        }
        p.chunks.shift();
        p.offset = 0;
        if (last && p.fin) {
          this.#pending.delete(id);
          return null;
        }
      }
      if (p.fin) {
        if (conn.streamSend(id, EMPTY, true) === null) return null;
      }
      this.#pending.delete(id);
      return null;
    } catch (e) {
      this.drop(id);
      const info = parseQuicheError(e);
      if (info.name === 'StreamStopped') return { streamId: id, kind: 'stopped', code: info.code ?? 0 };
      return { streamId: id, kind: 'gone' };
    }
  }
}
