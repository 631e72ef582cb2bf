/**
 * A typed cursor over parsed YAML: each getter checks the type and range of
 * one field and throws through `fail` with the full field path. Unknown keys
 * are rejected by `keys()`.
 */
export type Path = Array<string | number>;
export type Fail = (path: Path, reason: string) => Error;

export class Reader {
  readonly #v: unknown;
  readonly #path: Path;
  readonly #fail: Fail;

  constructor(value: unknown, path: Path, fail: Fail) {
    this.#v = value;
    this.#path = path;
    this.#fail = fail;
    if (path.length === 0 && !isObj(value)) throw fail([], 'the document must be a mapping');
  }

  #obj(): Record<string, unknown> {
    if (!isObj(this.#v)) throw this.#fail(this.#path, `must be a mapping, got ${kind(this.#v)}`);
    return this.#v;
  }

  fail(field: string | number, reason: string): Error {
    return this.#fail([...this.#path, field], reason);
  }

  at(path: Path): Reader {
    let v: unknown = this.#v;
    for (const p of path) v = (v as Record<string | number, unknown>)?.[p];
    return new Reader(v, [...this.#path, ...path], this.#fail);
  }

  /** Reject any key not in `allowed`. */
  keys(allowed: readonly string[]): void {
    for (const k of Object.keys(this.#obj())) {
      if (!allowed.includes(k)) throw this.fail(k, `unknown field (allowed: ${allowed.join(', ')})`);
    }
  }

  keysPresent(): string[] {
    return Object.keys(this.#obj());
  }
  has(k: string): boolean {
    return this.#obj()[k] !== undefined;
  }
  raw(k: string): unknown {
    return this.#obj()[k];
  }

  self(): string {
    if (typeof this.#v !== 'string' || this.#v === '')
      throw this.#fail(this.#path, `must be a non-empty string, got ${kind(this.#v)}`);
    return this.#v;
  }

  obj(k: string): Reader {
    const v = this.#obj()[k];
    if (!isObj(v)) throw this.fail(k, v === undefined ? 'required' : `must be a mapping, got ${kind(v)}`);
    return new Reader(v, [...this.#path, k], this.#fail);
  }

  list(k: string, min = 0): Reader[] {
    const v = this.#obj()[k];
    if (v === undefined && min > 0) throw this.fail(k, 'required');
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw this.fail(k, `must be a list, got ${kind(v)}`);
    if (v.length < min) throw this.fail(k, `needs at least ${min} entr${min === 1 ? 'y' : 'ies'}`);
    return v.map((x, i) => new Reader(x, [...this.#path, k, i], this.#fail));
  }

  str(k: string): string {
    const v = this.#obj()[k];
    if (v === undefined) throw this.fail(k, 'required');
    if (typeof v !== 'string' || v === '') throw this.fail(k, `must be a non-empty string, got ${kind(v)}`);
    return v;
  }

  optStr(k: string): string | undefined {
    return this.has(k) ? this.str(k) : undefined;
  }

  int(k: string, min: number, max: number): number {
    const v = this.#obj()[k];
    if (v === undefined) throw this.fail(k, 'required');
    if (typeof v !== 'number' || !Number.isInteger(v)) throw this.fail(k, `must be an integer, got ${kind(v)}`);
    if (v < min || v > max) throw this.fail(k, `must be between ${min} and ${max}, got ${v}`);
    return v;
  }

  optInt(k: string, min: number, max: number): number | undefined {
    return this.has(k) ? this.int(k, min, max) : undefined;
  }

  /** A number (not only an integer) in [min, max], or undefined when absent. */
  optNumber(k: string, min: number, max: number): number | undefined {
    const v = this.#obj()[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.fail(k, `must be a number, got ${kind(v)}`);
    if (v < min || v > max) throw this.fail(k, `must be between ${min} and ${max}, got ${v}`);
    return v;
  }

  optBool(k: string): boolean | undefined {
    const v = this.#obj()[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') throw this.fail(k, `must be true or false, got ${kind(v)}`);
    return v;
  }

  oneOf<T extends string>(k: string, values: readonly T[]): T {
    const v = this.#obj()[k];
    if (v === undefined) throw this.fail(k, `required (one of ${values.join(', ')})`);
    if (typeof v !== 'string' || !values.includes(v as T))
      throw this.fail(k, `must be one of ${values.join(', ')}, got ${JSON.stringify(v)}`);
    return v as T;
  }
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v);
  return `${typeof v} ${String(v)}`;
}
