/**
 * Listeners that run once, together, when their event comes (a request's abort): the first in a slot — most
 * requests have exactly one, so no array is made for it — any others in a list. A base class, so that the
 * object that owns the event holds them without one more object per request.
 */
export class OnceListeners<A> {
  #first: ((arg: A) => void) | null = null;
  #more: Array<(arg: A) => void> | null = null;

  protected listen(fn: (arg: A) => void): void {
    if (this.#first === null) this.#first = fn;
    else (this.#more ??= []).push(fn);
  }

  protected unlisten(fn: (arg: A) => void): void {
    if (this.#first === fn) {
      this.#first = null;
      return;
    }
    const more = this.#more;
    const i = more ? more.indexOf(fn) : -1;
    if (i >= 0) more!.splice(i, 1);
  }

  /** Run every listener once with `arg`, and forget them. */
  protected fire(arg: A): void {
    const first = this.#first;
    const more = this.#more;
    this.#first = null;
    this.#more = null;
    if (first) first(arg);
    if (more) for (const f of more) f(arg);
  }
}
