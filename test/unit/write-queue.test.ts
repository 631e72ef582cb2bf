/**
 * The QUIC write queues against a fake quiche that accepts a set number of
 * bytes per call: order kept, FIN only with the last byte, fewest queued
 * bytes first, and a flush budget that cuts chunks without losing a byte.
 */
import { describe, expect, it } from 'vitest';
import { WriteQueues } from '../../src/quic/write-queue.js';
import type { QuicheConnection } from '../../src/quic/quiche.js';

class FakeQuiche {
  /** Bytes accepted per stream, in order, and whether a FIN came. */
  got = new Map<number, { bytes: number[]; fin: boolean }>();
  /** Credit left for all streams together. */
  credit = Infinity;
  calls = 0;
  streamSend(id: number, data: Uint8Array, fin: boolean): number | null {
    this.calls++;
    const s = this.got.get(id) ?? { bytes: [], fin: false };
    this.got.set(id, s);
    const n = Math.min(data.length, this.credit);
    if (n === 0 && data.length > 0) return null;
    s.bytes.push(...data.subarray(0, n));
    this.credit -= n;
    if (fin && n === data.length) s.fin = true;
    return n;
  }
}

const q = (f: FakeQuiche): QuicheConnection => f as unknown as QuicheConnection;
const seq = (from: number, n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (from + i) & 0xff);

describe('WriteQueues', () => {
  it('keeps order, resumes partial chunks and sends FIN only with the last byte', () => {
    const f = new FakeQuiche();
    const w = new WriteQueues();
    f.credit = 5;
    w.write(q(f), 0, seq(0, 4), false);
    w.write(q(f), 0, seq(4, 6), true);
    expect(f.got.get(0)!.fin).toBe(false);
    expect(w.queued(0)).toBe(5);
    f.credit = 3;
    w.flush(q(f));
    expect(f.got.get(0)!.fin).toBe(false);
    f.credit = Infinity;
    w.flush(q(f));
    expect(f.got.get(0)!.bytes).toEqual([...seq(0, 10)]);
    expect(f.got.get(0)!.fin).toBe(true);
    expect(w.has(0)).toBe(false);
  });

  it('a flush budget moves at most that many bytes, cutting a chunk, and the rest follows intact', () => {
    const f = new FakeQuiche();
    const w = new WriteQueues();
    f.credit = 0;
    w.write(q(f), 4, seq(0, 100), false);
    w.write(q(f), 4, seq(100, 100), true);
    f.credit = Infinity;
    w.flush(q(f), 30);
    expect(w.accepted).toBe(30);
    expect(f.got.get(4)!.bytes.length).toBe(30);
    expect(f.got.get(4)!.fin).toBe(false);
    for (let i = 0; i < 20 && w.has(4); i++) w.flush(q(f), 30);
    expect(f.got.get(4)!.bytes).toEqual([...seq(0, 200)]);
    expect(f.got.get(4)!.fin).toBe(true);
  });

  it('credit that returns goes to the stream with the fewest queued bytes first', () => {
    const f = new FakeQuiche();
    const w = new WriteQueues();
    f.credit = 0;
    w.write(q(f), 0, seq(0, 1000), false);
    w.write(q(f), 4, seq(0, 10), true);
    f.credit = 10;
    w.flush(q(f));
    expect(f.got.get(4)?.bytes.length ?? 0).toBe(10);
    expect(f.got.get(4)!.fin).toBe(true);
    expect(f.got.get(0)?.bytes.length ?? 0).toBe(0);
  });

  it('a more urgent stream (RFC 9218) gets returning credit first, even with more bytes queued; equals stay fewest-bytes-first', () => {
    const f = new FakeQuiche();
    const w = new WriteQueues();
    f.credit = 0;
    w.write(q(f), 0, seq(0, 10), true); // default urgency 3, few bytes
    w.write(q(f), 4, seq(0, 500), true); // urgent, many bytes
    w.write(q(f), 8, seq(0, 20), true); // default urgency 3
    w.setUrgency(4, 0);
    f.credit = 500;
    w.flush(q(f));
    expect(f.got.get(4)!.bytes.length).toBe(500);
    expect(f.got.get(0)?.bytes.length ?? 0).toBe(0);
    f.credit = 10;
    w.flush(q(f));
    expect(f.got.get(0)!.bytes.length).toBe(10);
    expect(f.got.get(8)?.bytes.length ?? 0).toBe(0);
  });
});
