// ReplayBody (src/agent/replay-body.ts): a streamed request body kept, up to a bound, for another attempt.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ReplayBody } from '../../src/agent/replay-body.js';

const chunk = (i: number, n = 1000): Buffer => Buffer.alloc(n, 0x41 + (i % 26));

/** A source of `count` chunks of `n` bytes, each filled with its own letter. */
function source(count: number, n = 1000): Readable {
  let i = 0;
  return new Readable({
    read() {
      this.push(i < count ? chunk(i++, n) : null);
    },
  });
}

/** Read `r` until `bytes` arrived (or its end), then destroy it as a transport does with a failed attempt. */
async function readSome(r: Readable, bytes: number): Promise<Buffer> {
  const got: Buffer[] = [];
  let n = 0;
  for await (const c of r) {
    got.push(c as Buffer);
    n += (c as Buffer).length;
    if (n >= bytes) break; // for-await's return() destroys the stream
  }
  return Buffer.concat(got);
}

async function readAll(r: Readable): Promise<Buffer> {
  const got: Buffer[] = [];
  for await (const c of r) got.push(c as Buffer);
  return Buffer.concat(got);
}

const whole = (count: number, n = 1000): Buffer => Buffer.concat(Array.from({ length: count }, (_, i) => chunk(i, n)));

describe('ReplayBody', () => {
  it('gives the first attempt the source as it is, and keeps what was read', async () => {
    const rb = new ReplayBody(source(10), 64 * 1024);
    expect((await readAll(rb.attempt())).equals(whole(10))).toBe(true);
    expect(rb.keptBytes).toBe(10_000);
    expect(rb.replayable).toBe(true);
  });

  it('a second attempt sends the bytes the first one read, then the rest of the source, in order', async () => {
    const src = source(20);
    const rb = new ReplayBody(src, 64 * 1024);
    const first = await readSome(rb.attempt(), 5000);
    expect(first.length).toBeGreaterThanOrEqual(5000);
    expect(src.destroyed).toBe(false); // a failed attempt does not end its source
    expect(rb.replayable).toBe(true);
    const second = await readAll(rb.attempt());
    expect(second.equals(whole(20))).toBe(true);
  });

  it('three attempts, each cut at a different point, and the last one whole', async () => {
    const rb = new ReplayBody(source(30, 512), 64 * 1024);
    await readSome(rb.attempt(), 3000);
    await readSome(rb.attempt(), 1000); // less than was kept: nothing new is read from the source
    await readSome(rb.attempt(), 9000);
    expect((await readAll(rb.attempt())).equals(whole(30, 512))).toBe(true);
  });

  it('past its bound it is no longer replayable, and a further attempt is refused', async () => {
    const rb = new ReplayBody(source(20), 8 * 1024);
    await readSome(rb.attempt(), 9000);
    expect(rb.replayable).toBe(false);
    expect(rb.keptBytes).toBe(0); // what was kept is let go
    expect(() => rb.attempt()).toThrow(/cannot be sent again/);
  });

  it('past its bound the attempt reading it still gets every byte', async () => {
    const rb = new ReplayBody(source(50), 4 * 1024);
    expect((await readAll(rb.attempt())).equals(whole(50))).toBe(true);
    expect(rb.replayable).toBe(false);
  });

  it('settle: nothing more is kept, the attempt reads on, and its end ends the source', async () => {
    const src = source(20);
    const rb = new ReplayBody(src, 64 * 1024);
    const it = rb.attempt()[Symbol.asyncIterator]();
    const got = [(await it.next()).value as Buffer];
    rb.settle();
    expect(rb.replayable).toBe(false);
    expect(rb.keptBytes).toBe(0);
    for (let r = await it.next(); !r.done; r = await it.next()) got.push(r.value as Buffer);
    expect(Buffer.concat(got).equals(whole(20))).toBe(true);
    expect(src.readableEnded).toBe(true);
  });

  it('settle, then the attempt is destroyed (the origin stopped reading): the source is destroyed', async () => {
    const src = source(20);
    const rb = new ReplayBody(src, 64 * 1024);
    const a = rb.attempt();
    await new Promise((resolve) => a.once('data', resolve));
    rb.settle();
    a.destroy();
    expect(src.destroyed).toBe(true);
  });

  it('abandon destroys the source', async () => {
    const src = source(20);
    const rb = new ReplayBody(src, 64 * 1024);
    await readSome(rb.attempt(), 2000);
    rb.abandon();
    expect(src.destroyed).toBe(true);
    expect(rb.replayable).toBe(false);
  });

  it('a source that fails fails the attempt reading it, and the body is not replayable', async () => {
    let i = 0;
    const src = new Readable({
      read() {
        if (i++ < 3) this.push(chunk(i));
        else this.destroy(new Error('client went away'));
      },
    });
    const rb = new ReplayBody(src, 64 * 1024);
    await expect(readAll(rb.attempt())).rejects.toThrow(/client went away/);
    expect(rb.replayable).toBe(false);
  });

  it('a source that ended before a retry is replayed from what was kept alone', async () => {
    const rb = new ReplayBody(source(5), 64 * 1024);
    await readAll(rb.attempt());
    expect((await readAll(rb.attempt())).equals(whole(5))).toBe(true);
  });

  it('an iterable source, through bodyStream', async () => {
    const { bodyStream } = await import('../../src/http/body.js');
    async function* gen(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 8; i++) yield chunk(i);
    }
    const rb = new ReplayBody(bodyStream(gen()), 64 * 1024);
    await readSome(rb.attempt(), 3000);
    expect((await readAll(rb.attempt())).equals(whole(8))).toBe(true);
  });
});
