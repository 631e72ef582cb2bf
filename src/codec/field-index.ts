/**
 * Newest table index per exact field (name and value), for the HPACK and
 * QPACK encoders (RFC 7541 §2.3, RFC 9204 §3.2): a map of maps, so a
 * lookup builds no key string per field (an encoder asks for every field of
 * every section).
 */
export class FieldIndex {
  #byName = new Map<string, Map<string, number>>();
  #size = 0;

  /** Entries held (some may point at evicted slots until pruned). */
  get size(): number {
    return this.#size;
  }

  get(name: string, value: string): number | undefined {
    return this.#byName.get(name)?.get(value);
  }

  set(name: string, value: string, abs: number): void {
    let values = this.#byName.get(name);
    if (!values) this.#byName.set(name, (values = new Map()));
    if (!values.has(value)) this.#size++;
    values.set(value, abs);
  }

  /** Forget the field if it still points at `abs` (that entry was evicted). */
  deleteIf(name: string, value: string, abs: number): void {
    const values = this.#byName.get(name);
    if (values?.get(value) !== abs) return;
    values.delete(value);
    this.#size--;
    if (values.size === 0) this.#byName.delete(name);
  }

  /** Drop every entry whose index is no longer live. */
  prune(live: (abs: number) => boolean): void {
    for (const [name, values] of this.#byName) {
      for (const [value, abs] of values) {
        if (live(abs)) continue;
        values.delete(value);
        this.#size--;
      }
      if (values.size === 0) this.#byName.delete(name);
    }
  }

  clear(): void {
    this.#byName.clear();
    this.#size = 0;
  }
}
