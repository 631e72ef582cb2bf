/** util/body.ts readWhole over a PushBody (taken whole, not streamed) and over any other Readable (by events). */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { PushBody } from '../../src/wire/body.js';
import { readWhole, ReadWholeError } from '../../src/util/body.js';

const noop = (): void => {};

describe('readWhole', () => {
  it('a PushBody nobody read: its chunks kept without a data event, the end resolves with them; the stream is then ended and empty', async () => {
    const b = new PushBody(noop, noop);
    let events = 0;
    b.on('readable', () => {
      events++;
    });
    b.removeAllListeners('readable'); // a listener that left: still unread
    const p = readWhole(b, 1000);
    b.deliver(Buffer.from('ab'), false);
    b.deliver(Buffer.from('cd'), false);
    b.deliver(new Uint8Array(0), true);
    expect((await p).toString()).toBe('abcd');
    expect(events).toBe(0);
    const rest: Buffer[] = [];
    for await (const c of b) rest.push(c as Buffer);
    expect(rest).toEqual([]);
  });

  it('a PushBody already read from, or any Readable: read by events', async () => {
    const b = new PushBody(noop, noop);
    b.deliver(Buffer.from('x'), false); // buffered in the stream already
    const p = readWhole(b, 0);
    b.deliver(Buffer.from('yz'), true);
    expect((await p).toString()).toBe('xyz');
    expect((await readWhole(Readable.from([Buffer.from('1'), Buffer.from('23')]), 0)).toString()).toBe('123');
  });

  it('destroyed before its end (the client left): ReadWholeError gone', async () => {
    const b = new PushBody(noop, noop);
    const p = readWhole(b, 0);
    b.deliver(Buffer.from('half'), false);
    b.destroy(new Error('client closed mid-request'));
    const e = await p.catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ReadWholeError);
    expect((e as ReadWholeError).why).toBe('gone');
  });

  it('silent for idleMs: ReadWholeError idle, never sooner than idleMs after the last chunk; each chunk moves the deadline', async () => {
    const b = new PushBody(noop, noop);
    const p = readWhole(b, 300);
    let lastChunk = performance.now();
    let over = false;
    void p.catch(() => {
      over = true;
    });
    for (let i = 0; i < 3 && !over; i++) {
      await new Promise((r) => setTimeout(r, 100));
      if (over) break; // a loaded machine slept past the deadline
      b.deliver(Buffer.from('.'), false);
      lastChunk = performance.now();
    }
    const e = await p.catch((x: unknown) => x);
    expect((e as ReadWholeError).why).toBe('idle');
    expect(performance.now() - lastChunk).toBeGreaterThanOrEqual(299);
  });
});
