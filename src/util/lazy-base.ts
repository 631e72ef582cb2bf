/**
 * A stand-in base class for a class of ours that extends one of `node:stream`'s, so that defining it does not load
 * `stream` (milliseconds of a fresh process, bench/RESULTS.md `startup`): the package's import defines every body class
 * and makes no request. `class PushBody extends LazyReadable` behaves as `extends Readable` from its first instance
 * on: that construction loads the real base, puts it in the stand-in's place in the class's prototype chains (a
 * derived constructor's `super()` and `super.method()` follow [[Prototype]] when they run: ECMA-262
 * GetSuperConstructor, MakeSuperPropertyReference) and builds the instance through it with the class as its
 * new.target; later constructions call the real base directly. No instance exists before the swap, so none sees the
 * stand-in.
 *
 * The bundle loads `stream` itself at the first read of `Readable` or `Duplex` (scripts/lazy-builtins.mjs); tsc's
 * modules import it as usual.
 */
import { Duplex, Readable } from 'node:stream';

type Constructor = abstract new (...args: any[]) => object;

function lazyBase<C extends Constructor>(real: () => C): C {
  // A function, not a class: what it returns from `new` is the instance (ECMA-262 [[Construct]] of an ordinary
  // function returns the object its body returns).
  function stand(...args: unknown[]): object {
    const base = real();
    let c: object | null = new.target;
    while (c !== null && Object.getPrototypeOf(c) !== stand) c = Object.getPrototypeOf(c);
    if (c === null) throw new TypeError('a lazy stream base is only extended, never called itself');
    Object.setPrototypeOf(c, base);
    Object.setPrototypeOf((c as { prototype: object }).prototype, base.prototype);
    return Reflect.construct(base as unknown as new (...a: unknown[]) => object, args, new.target);
  }
  return stand as unknown as C;
}

/** `extends LazyReadable`: a Readable whose `stream` module loads at its class's first instance. */
export const LazyReadable: typeof Readable = lazyBase(() => Readable);
/** `extends LazyDuplex`: a Duplex whose `stream` module loads at its class's first instance. */
export const LazyDuplex: typeof Duplex = lazyBase(() => Duplex);
