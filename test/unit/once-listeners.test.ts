import { describe, expect, it } from 'vitest';
import { OnceListeners } from '../../src/util/once-listeners.js';

class Event extends OnceListeners<number> {
  on(fn: (n: number) => void): void {
    this.listen(fn);
  }
  off(fn: (n: number) => void): void {
    this.unlisten(fn);
  }
  emit(n: number): void {
    this.fire(n);
  }
}

describe('OnceListeners', () => {
  it('runs every listener once, in order, with the argument; removed ones not at all', () => {
    const e = new Event();
    const seen: string[] = [];
    const a = (n: number): void => {
      seen.push(`a${n}`);
    };
    const b = (n: number): void => {
      seen.push(`b${n}`);
    };
    const c = (n: number): void => {
      seen.push(`c${n}`);
    };
    e.on(a);
    e.on(b);
    e.on(c);
    e.off(b);
    e.emit(1);
    e.emit(2);
    expect(seen).toEqual(['a1', 'c1']);
  });

  it('a slot freed by removing the first listener takes the next one', () => {
    const e = new Event();
    const seen: number[] = [];
    const a = (): void => {
      seen.push(1);
    };
    e.on(a);
    e.off(a);
    e.on(() => seen.push(2));
    e.emit(0);
    expect(seen).toEqual([2]);
  });
});
