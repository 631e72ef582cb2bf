/**
 * src/util/lazy-base.ts: a class that extends LazyReadable or LazyDuplex is, from its first instance on, the same
 * as one that extends Readable or Duplex — its options reach the real base, `super` methods resolve, a subclass of it
 * swaps the right link, and the stand-in itself cannot be constructed.
 */
import { Duplex, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { LazyDuplex, LazyReadable } from '../../src/util/lazy-base.js';

describe('lazy stream bases', () => {
  it('a class over LazyReadable is a Readable from its first instance: options, super calls, reading', async () => {
    class Body extends LazyReadable {
      constructor(readonly n: number) {
        super({ highWaterMark: n });
      }
      override _read(): void {
        this.push(`n=${this.n}`);
        this.push(null);
      }
      override push(chunk: unknown): boolean {
        return super.push(chunk);
      }
    }
    const b = new Body(3);
    expect(b).toBeInstanceOf(Readable);
    expect(Object.getPrototypeOf(Body)).toBe(Readable);
    expect(Object.getPrototypeOf(Body.prototype)).toBe(Readable.prototype);
    expect(b.readableHighWaterMark).toBe(3);
    expect(b.n).toBe(3);
    const second = new Body(5);
    expect(second.readableHighWaterMark).toBe(5);
    let text = '';
    for await (const c of b) text += String(c);
    expect(text).toBe('n=3');
  });

  it('a subclass constructed first swaps its parent, and the stand-in is never an instance itself', () => {
    class Tunnel extends LazyDuplex {}
    class Named extends Tunnel {
      name = 'x';
    }
    const d = new Named({ allowHalfOpen: false });
    expect(d).toBeInstanceOf(Duplex);
    expect(d).toBeInstanceOf(Tunnel);
    expect(d.allowHalfOpen).toBe(false);
    expect(d.name).toBe('x');
    expect(Object.getPrototypeOf(Tunnel)).toBe(Duplex);
    expect(new Tunnel()).toBeInstanceOf(Duplex);
    expect(() => Reflect.construct(LazyDuplex, [])).toThrow(/only extended/);
  });
});
