/**
 * LazyBody (client/exchange.ts): a response body whose stream is made
 * only when asked for. An ended body is taken whole with no stream; bytes
 * that arrived before the stream was made reach it in order; past its
 * limit the stream is made at once and pauses the transport like one made
 * up front; an abort before the stream exists destroys it when made. A
 * reader that wants all of it collects it without a stream (collect): past
 * the limit too, with a stream made meanwhile left empty.
 */
import { describe, expect, it } from 'vitest';
import { LazyBody } from '../../src/client/exchange.js';
import { PushBody } from '../../src/wire/body.js';

function lazy(limit = 16 * 1024): { body: LazyBody; made: () => number; pauses: () => number } {
  let made = 0;
  let pauses = 0;
  const body = new LazyBody(() => {
    made++;
    return new PushBody(
      () => {},
      () => {
        pauses++;
      },
      null,
      limit,
    );
  }, limit);
  return { body, made: () => made, pauses: () => pauses };
}

async function readAll(r: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

describe('LazyBody', () => {
  it('an ended body is taken whole, with its trailers, and no stream is made', () => {
    const { body, made } = lazy();
    body.deliver(Buffer.from('hello, '), false);
    body.deliver(Buffer.from('world'), false);
    body.trailers = [['x-sum', '1']];
    body.deliver(new Uint8Array(0), true);
    const whole = body.take();
    expect(whole?.bytes.toString()).toBe('hello, world');
    expect(whole?.trailers).toEqual([['x-sum', '1']]);
    expect(made()).toBe(0);
  });

  it('after a take the stream is empty and ended (the bytes were handed over once)', async () => {
    const { body } = lazy();
    body.deliver(Buffer.from('once'), true);
    expect(body.take()?.bytes.toString()).toBe('once');
    expect(body.take()).toBeNull(); // the stream exists now: the body is read from it
    expect((await readAll(body.stream)).length).toBe(0);
  });

  it('a body not yet ended is not taken; the stream made later gets every byte in order', async () => {
    const { body, made } = lazy();
    body.deliver(Buffer.from('a'), false);
    body.deliver(Buffer.from('b'), false);
    expect(body.take()).toBeNull();
    expect(made()).toBe(0);
    const s = body.stream;
    expect(body.stream).toBe(s); // made once
    body.deliver(Buffer.from('c'), true);
    expect((await readAll(s)).toString()).toBe('abc');
    expect(made()).toBe(1);
  });

  it('past its limit the stream is made at once and pauses the transport at its high-water mark', () => {
    const { body, made, pauses } = lazy(1024);
    body.deliver(Buffer.alloc(600), false);
    expect(made()).toBe(0);
    body.deliver(Buffer.alloc(600), false);
    expect(made()).toBe(1);
    expect(pauses()).toBeGreaterThan(0);
    expect(body.take()).toBeNull();
  });

  it('an abort before the stream exists errors the stream when it is made', async () => {
    const { body } = lazy();
    body.deliver(Buffer.from('partial'), false);
    const err = new Error('origin reset');
    body.abort(err);
    body.deliver(Buffer.from('late'), true); // ignored: the body failed
    expect(body.take()).toBeNull();
    const s = body.stream;
    expect(s.errored).toBe(err);
    await expect(readAll(s)).rejects.toBe(err);
  });

  it('an abort after the end changes nothing: the body is still whole', () => {
    const { body } = lazy();
    body.deliver(Buffer.from('done'), true);
    body.abort(new Error('too late'));
    expect(body.take()?.bytes.toString()).toBe('done');
  });

  it('collect: what arrived and what arrives until the end, whole, with no stream and no pause past the limit', async () => {
    const { body, made, pauses } = lazy(1024);
    body.deliver(Buffer.from('x'.repeat(600)), false);
    const whole = body.collect();
    expect(whole).not.toBeNull();
    body.deliver(Buffer.from('y'.repeat(600)), false); // past the limit: still no stream
    body.deliver(Buffer.from('z'), true);
    const bytes = (await whole) as Buffer;
    expect(bytes.length).toBe(1201);
    expect(bytes.subarray(1199).toString()).toBe('yz');
    expect(made()).toBe(0);
    expect(pauses()).toBe(0);
    expect(body.take()).toBeNull(); // handed over once
    expect(body.collect()).toBeNull();
  });

  it('collect of an ended body resolves at once; after a stream was made it is null', async () => {
    const { body } = lazy();
    body.deliver(Buffer.from('done'), true);
    expect((await body.collect())?.toString()).toBe('done');
    const other = lazy().body;
    other.deliver(Buffer.from('a'), false);
    void other.stream;
    expect(other.collect()).toBeNull(); // read the stream instead
  });

  it('collect rejects with the failure, whether it came before or during the collection', async () => {
    const before = lazy().body;
    before.deliver(Buffer.from('partial'), false);
    const e1 = new Error('origin reset');
    before.abort(e1);
    await expect(before.collect()).rejects.toBe(e1);

    const during = lazy().body;
    const whole = during.collect() as Promise<Buffer>;
    during.deliver(Buffer.from('partial'), false);
    const e2 = new Error('connection lost');
    during.abort(e2);
    await expect(whole).rejects.toBe(e2);
    const s = during.stream; // made after the failure: errored with it
    expect(s.errored).toBe(e2);
  });

  it('a stream made while the body is collected stays empty and ends with the collection', async () => {
    const { body, made } = lazy();
    const whole = body.collect() as Promise<Buffer>;
    body.deliver(Buffer.from('first'), false);
    const s = body.stream;
    expect(made()).toBe(1);
    const read = readAll(s);
    body.deliver(Buffer.from(' second'), true);
    expect((await whole).toString()).toBe('first second');
    expect((await read).length).toBe(0);
  });
});
