/** One body, several readers (src/util/fan-out.ts): the slowest paces the others unless a lag policy takes it over. */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { FanOut, type Feed } from '../../src/util/fan-out.js';

const CHUNK = Buffer.alloc(16 * 1024, 1);
const N = 128; // 2 MiB

/** A source of N chunks that counts how many were read from it. */
function source(): { s: Readable; read: () => number } {
  let i = 0;
  const s = new Readable({
    read() {
      this.push(i < N ? (i++, CHUNK) : null);
    },
  });
  return { s, read: () => i };
}

async function drain(r: Readable): Promise<number> {
  let n = 0;
  for await (const c of r) n += (c as Buffer).length;
  return n;
}

const tick = (ms = 20): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('FanOut', () => {
  it('without a lag policy a reader that stops reading holds the source for everyone (within a buffer and a chunk)', async () => {
    const src = source();
    const fan = new FanOut(src.s, 2);
    const fast = fan.outputs[0] as Readable;
    let got = 0;
    fast.on('data', (c: Buffer) => {
      got += c.length;
    });
    await tick(50);
    expect(got).toBeLessThanOrEqual(128 * 1024);
    expect(src.read()).toBeLessThan(N);
    fan.outputs[1]?.destroy();
    await tick(50);
    expect(got).toBe(N * CHUNK.length);
  });

  it('with a lag policy the stalled reader is handed over with what it has, the others read on to the end', async () => {
    const src = source();
    let feed: Feed | null = null;
    const fan = new FanOut(src.s, 2, {
      lagBytes: 256 * 1024,
      onLag: (i, f) => {
        expect(i).toBe(1);
        feed = f;
        return true;
      },
    });
    const fastDone = drain(fan.outputs[0] as Readable);
    expect(await fastDone).toBe(N * CHUNK.length);
    const f = feed as Feed | null;
    expect(f).not.toBeNull();
    // It had what filled its own buffer: the rest starts there.
    expect(f!.delivered).toBeGreaterThan(0);
    expect(f!.delivered).toBeLessThan(N * CHUNK.length);
    const slowDone = drain(fan.outputs[1] as Readable);
    let left = N * CHUNK.length - f!.delivered;
    const pump = (): void => {
      while (left > 0) {
        const c = CHUNK.subarray(0, Math.min(CHUNK.length, left));
        left -= c.length;
        if (!f!.push(c)) return;
      }
      f!.end();
    };
    f!.onDrain = pump;
    pump();
    expect(await slowDone).toBe(N * CHUNK.length);
  });

  it('a lone reader is never handed over: it is the pace', async () => {
    const src = source();
    let asked = 0;
    const fan = new FanOut(src.s, 1, {
      lagBytes: 16 * 1024,
      onLag: () => {
        asked++;
        return true;
      },
    });
    await tick(30);
    expect(await drain(fan.outputs[0] as Readable)).toBe(N * CHUNK.length);
    expect(asked).toBe(0);
  });
});
