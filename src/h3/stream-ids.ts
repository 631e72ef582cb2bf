/** QUIC stream id facts (RFC 9000 §2.1): bit 0 = server-initiated, bit 1 = unidirectional. */
export const isUni = (id: number): boolean => (id & 0x2) !== 0;
export const isServerInitiated = (id: number): boolean => (id & 0x1) !== 0;

/**
 * Which peer-initiated request stream ids have been seen. Streams may
 * first appear out of order; every id below `#floor` has been seen and
 * `#above` holds the others, so memory is bounded by the reordering window.
 */
export class SeenStreamIds {
  #floor: number;
  readonly #above = new Set<number>();

  constructor(firstId: number) {
    this.#floor = firstId;
  }

  has(id: number): boolean {
    return id < this.#floor || this.#above.has(id);
  }

  /** Record `id`; false when it had been seen before. */
  add(id: number): boolean {
    if (id < this.#floor || this.#above.has(id)) return false;
    this.#above.add(id);
    while (this.#above.delete(this.#floor)) this.#floor += 4;
    return true;
  }
}
