/**
 * The h3 response body (StreamBody) against a fake QUIC connection: chunks
 * reach a `for await` consumer whole (a byte-mode Readable read without a
 * size concatenates everything it buffers), nothing is lost or reordered,
 * the QUIC stream is paused past the high-water mark and resumed once the
 * backlog drains, and a consumer that stops between chunks (awaiting
 * something else) is woken again when data arrives.
 */
import { describe, expect, it } from 'vitest';
import { StreamBody } from '../../src/wire/h3-body.js';
import type { QuicConnection } from '../../src/quic/connection.js';

class FakeQuic {
  paused = false;
  pauses = 0;
  resumes = 0;
  pauseStream(): void {
    this.paused = true;
    this.pauses++;
  }
  resumeStream(): void {
    if (this.paused) this.resumes++;
    this.paused = false;
  }
}

function chunk(i: number, n: number): Uint8Array {
  return new Uint8Array(n).fill(i & 0xff);
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('StreamBody', () => {
  it('hands a for-await consumer every delivered chunk whole, in order', async () => {
    const q = new FakeQuic();
    const body = new StreamBody(q as unknown as QuicConnection, 0, () => {});
    const sizes = [1000, 70_000, 65_536, 300_000, 5, 200_000];
    // All delivered in one go, as one reader pass does, before the consumer runs.
    sizes.forEach((n, i) => body.deliver(chunk(i, n), i === sizes.length - 1));
    const got: Buffer[] = [];
    for await (const c of body) got.push(c as Buffer);
    expect(got.map((c) => c.length)).toEqual(sizes);
    got.forEach((c, i) => expect(c.every((b) => b === (i & 0xff))).toBe(true));
    expect(q.pauses).toBeGreaterThan(0);
    expect(q.paused).toBe(false);
  });

  it('wakes a consumer that paused between chunks while more arrived (no hang)', async () => {
    const q = new FakeQuic();
    const body = new StreamBody(q as unknown as QuicConnection, 0, () => {});
    let sent = 0;
    const total = 40;
    // Deliveries keep coming on later turns, a few per turn, like reader passes.
    const feed = (async () => {
      for (let t = 0; t < 20 && sent < total; t++) {
        await tick();
        for (let k = 0; k < 3 && sent < total; k++, sent++)
          body.deliver(chunk(sent, 20_000 + sent), sent === total - 1);
      }
    })();
    const parts: Buffer[] = [];
    const done = (async () => {
      for await (const c of body) {
        parts.push(c as Buffer);
        // The consumer awaits something else now and then (a migration, a write downstream).
        if (parts.length % 4 === 1) for (let k = 0; k < 3; k++) await tick();
      }
    })();
    const timeout = new Promise((_, rej) => setTimeout(() => rej(new Error('consumer never woke up')), 5_000));
    await Promise.race([Promise.all([feed, done]), timeout]);
    // While the consumer was away the Readable filled its buffer up to the
    // high-water mark, so chunks may come joined; every byte, in order.
    const want = Buffer.concat(Array.from({ length: total }, (_, i) => chunk(i, 20_000 + i)));
    expect(Buffer.concat(parts).equals(want)).toBe(true);
    expect(q.paused).toBe(false);
  });

  it('keeps a flowing consumer (data events) in order and ends once', async () => {
    const q = new FakeQuic();
    const body = new StreamBody(q as unknown as QuicConnection, 0, () => {});
    const seen: number[] = [];
    let ends = 0;
    body.on('data', (c: Buffer) => seen.push(c[0]!));
    body.on('end', () => ends++);
    for (let i = 0; i < 10; i++) body.deliver(chunk(i, 100_000), i === 9);
    await new Promise((r) => body.once('end', r));
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(ends).toBe(1);
  });
});
