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
    this.fire();
  }

  addEventListener(_type: 'abort', fn: () => void): void {
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
