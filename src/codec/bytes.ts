/** Largest buffer a writer keeps across reset(), bytes. */
const RESET_KEEP_MAX = 4096;

/** A growable byte buffer for encoders. Invariant: bytes [0, length) are written (but the room reset() left). */
export class ByteWriter {
  #buf: Uint8Array;
  #len = 0;

  constructor(initialCapacity = 64) {
    this.#buf = new Uint8Array(Math.max(8, initialCapacity));
  }

  get length(): number {
    return this.#len;
  }

  /** Make room for `n` more bytes. */
  reserve(n: number): void {
    const need = this.#len + n;
    if (need <= this.#buf.length) return;
    let cap = this.#buf.length * 2;
    while (cap < need) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  byte(b: number): void {
    this.reserve(1);
    this.#buf[this.#len++] = b & 0xff;
  }

  bytes(data: Uint8Array): void {
    this.reserve(data.length);
    this.#buf.set(data, this.#len);
    this.#len += data.length;
  }

  /** Write a latin1 string, one byte per UTF-16 unit (caller checked range). */
  latin1(s: string): void {
    this.reserve(s.length);
    for (let i = 0; i < s.length; i++) this.#buf[this.#len++] = s.charCodeAt(i) & 0xff;
  }

  /** Direct access for in-place writers; call `advance` afterwards. */
  raw(): { buf: Uint8Array; offset: number } {
    return { buf: this.#buf, offset: this.#len };
  }

  advance(n: number): void {
    this.#len += n;
  }

  /** A copy of the written bytes. */
  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }

  /**
   * Start over, keeping the buffer (an encoder that writes one block at a
   * time reuses one writer) unless one large block grew it past
   * RESET_KEEP_MAX: a connection does not keep its largest block's size.
   * `room`: bytes left at the start for the caller to fill in the finished
   * copy (a frame header), not written here.
   */
  reset(room = 0): void {
    this.#len = 0;
    if (this.#buf.length > RESET_KEEP_MAX) this.#buf = new Uint8Array(256);
    if (room > 0) {
      this.reserve(room);
      this.#len = room;
    }
  }
}

/** Concatenate byte arrays. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Decode bytes as latin1 (one char per byte) — lossless for any octets. */
export function latin1Decode(buf: Uint8Array, start = 0, end = buf.length): string {
  let s = '';
  const CHUNK = 4096;
  for (let i = start; i < end; i += CHUNK) {
    s += String.fromCharCode.apply(null, buf.subarray(i, Math.min(end, i + CHUNK)) as unknown as number[]);
  }
  return s;
}

/** Encode a string as latin1 bytes; code units above 0xff are rejected. */
export function latin1Encode(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) throw new RangeError(`character U+${c.toString(16)} is not a single octet`);
    out[i] = c;
  }
  return out;
}
