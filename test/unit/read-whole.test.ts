/** util/body.ts readWhole over a PushBody (taken whole, not streamed) and over any other Readable (by events). */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { PushBody } from '../../src/transport/exchange.js';
import { readWhole, ReadWholeError } from '../../src/util/body.js';

const noop = (): void => {};

describe('readWhole', () => {
  it('a PushBody nobody read: its chunks kept without a data event, the end resolves with them; the stream is then ended and empty', async () => {
    const b = new PushBody(noop, noop);
    let events = 0;
    b.on('readable', () => { events++; });
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

  it('silent for idleMs: ReadWholeError idle; each chunk moves the deadline', async () => {
    const b = new PushBody(noop, noop);
    const t0 = Date.now();
    const p = readWhole(b, 150);
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 100));
      b.deliver(Buffer.from('.'), false);
    }
    const e = await p.catch((x: unknown) => x);
    expect((e as ReadWholeError).why).toBe('idle');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
  });
});
