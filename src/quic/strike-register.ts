/**
 * A record of the 0-RTT ClientHellos a server accepted lately (RFC 8446 §8.2, "ClientHello recording"), so that
 * each one is accepted with early data at most once: RFC 8446 §8 makes that a MUST for a server that takes 0-RTT,
 * and neither quiche nor BoringSSL keeps one (they leave it to the application). A capture of a client's first
 * flight sent again (from other ports, after the first connection is gone) then gets its connection without early
 * data, and its requests are never forwarded: only the real client, which holds the keys, completes a handshake.
 *
 * The window: BoringSSL refuses 0-RTT by itself once the ticket age the ClientHello claims is more than 60 s off the
 * server's view (RFC 8446 §8.3, freshness), so a copy older than that is refused anyway; entries are kept twice as
 * long. Bounded: past `max` entries the register holds none more and says "seen" for every new ClientHello — early
 * data is refused (a full handshake, no replay) until room comes back, never accepted unrecorded.
 *
 * Per process; where other processes hold the same ticket keys, the fleet's record in the stores' Redis is asked too
 * (ServerRole.fleetStrikes, service/early-data-record.ts).
 */
export const STRIKE_WINDOW_MS = 120_000;
export const STRIKE_MAX = 65_536;

export class StrikeRegister {
  readonly #windowMs: number;
  readonly #max: number;
  /** Key → when first seen, oldest first (insertion order). */
  readonly #seen = new Map<string, number>();

  constructor(windowMs = STRIKE_WINDOW_MS, max = STRIKE_MAX) {
    this.#windowMs = windowMs;
    this.#max = max;
  }

  /** True the first time `key` is offered within the window (early data may be accepted), false after. */
  first(key: string, now: number): boolean {
    for (const [k, at] of this.#seen) {
      if (now - at < this.#windowMs) break;
      this.#seen.delete(k);
    }
    if (this.#seen.has(key)) return false;
    if (this.#seen.size >= this.#max) return false;
    this.#seen.set(key, now);
    return true;
  }

  get size(): number {
    return this.#seen.size;
  }
}
