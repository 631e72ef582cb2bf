/**
 * A fixed set of short names (field names, methods) asked about with strings cut from a received head. `Set.has`
 * hashes such a string first — a string cut fresh from bytes has no hash yet, and V8 computes it over every character
 * — then probes a hash table; this looks at the names of the asked one's length only, and compares (a length that no
 * name has answers at once). A proxied request asks about ten of these (bench/RESULTS.md `proxy`, 2026-11-29).
 */
export class NameSet {
  /** The names by length: `#byLength[n]` those of n characters (undefined: none). */
  readonly #byLength: (string[] | undefined)[] = [];

  constructor(names: Iterable<string>) {
    for (const n of names) {
      const list = (this.#byLength[n.length] ??= []);
      if (!list.includes(n)) list.push(n);
    }
    // Lengths that no name has read as undefined: the array filled without holes up to the longest name.
    for (let i = 0; i < this.#byLength.length; i++) this.#byLength[i] ??= undefined;
  }

  has(name: string): boolean {
    const list = this.#byLength[name.length];
    if (list === undefined) return false;
    for (let i = 0; i < list.length; i++) if (list[i] === name) return true;
    return false;
  }
}
