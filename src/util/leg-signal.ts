/**
 * An abort signal of our own for one leg of a request — a hedged attempt, a collapsed flight — that also fires
 * when its parent (the caller's signal) does: the subset of AbortSignal the pool and the transports use
 * (`aborted`, `reason`, add/removeEventListener('abort')), without an EventTarget. `detach()` lets go of the
 * parent once the leg is over, so a long-lived caller signal does not collect listeners.
 */
import { OnceListeners } from './once-listeners.js';

/** What a leg listens to: an AbortSignal, or anything with its abort subset (the service's request). */
export interface SignalLike {
  readonly aborted: boolean;
  readonly reason?: unknown;
  addEventListener(type: 'abort', fn: () => void, opts?: { once?: boolean }): void;
  removeEventListener(type: 'abort', fn: () => void): void;
}

export class LegSignal extends OnceListeners<void> implements SignalLike {
  aborted = false;
  reason: unknown = undefined;
  #parent: SignalLike | null;
  /** Node's own signal for this leg, made at the first toAbortSignal() and aborted with it. */
  #native: AbortController | null = null;

  constructor(parent: SignalLike | null | undefined) {
    super();
    this.#parent = parent ?? null;
    if (parent) {
      if (parent.aborted) this.abort(parent.reason);
      else parent.addEventListener('abort', this.#onParent, { once: true });
    }
  }

  #onParent = (): void => {
    this.abort(this.#parent?.reason);
  };

  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.detach();
    this.#native?.abort(reason);
    this.fire();
  }

  /**
   * This leg as Node's AbortSignal, for what needs one (AbortSignal.any, a Node API's `signal` option): one made on
   * first need and kept, so that a leg used only by our own code never creates an EventTarget.
   */
  toAbortSignal(): AbortSignal {
    if (this.#native === null) {
      this.#native = new AbortController();
      if (this.aborted) this.#native.abort(this.reason);
    }
    return this.#native.signal;
  }

  /** Every listener runs once (`once` is how a leg listens anyway). */
  addEventListener(_type: 'abort', fn: () => void, _opts?: { once?: boolean }): void {
    if (!this.aborted) this.listen(fn);
  }

  removeEventListener(_type: 'abort', fn: () => void): void {
    this.unlisten(fn);
  }

  detach(): void {
    this.#parent?.removeEventListener('abort', this.#onParent);
    this.#parent = null;
  }
}

/** What a dial listens to: Node's signal (a caller's), or a leg of ours (a pool's, a race's) that makes one on need. */
export type DialSignal = AbortSignal | LegSignal;

/** `s` as Node's AbortSignal: itself, or the leg's own (LegSignal.toAbortSignal). */
export function abortSignalOf(s: DialSignal): AbortSignal {
  return s instanceof LegSignal ? s.toAbortSignal() : s;
}
