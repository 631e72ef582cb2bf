/**
 * Our own pacer (sans-IO: the clock and the congestion facts are passed in).
 * quiche computes a pacing instant for every packet, but this binding hands
 * it to JS as an opaque value (native-notes/quiche.md), so without this the
 * driver writes a whole congestion window at once and the burst lands in a
 * bottleneck's queue — what kept BBR from being our default (quic/cc.ts).
 *
 * A token bucket filled at `PACING_GAIN × cwnd / srtt` (RFC 9002 §7.7: pace
 * at a rate of the window over the RTT times a gain, N = 1.25, so the window
 * is not held back by the pacer itself). The bucket holds at least
 * `MIN_BURST_PACKETS` packets and at least `TIMER_SLACK_MS` of sending, since
 * the driver's wake-up timer has millisecond granularity: a smaller bucket
 * would cap the rate below what the controller allows.
 *
 * Invariant: `allow` only says "wait" while no packet can leave before the
 * returned deadline; with an RTT under 1 ms (loopback: quiche reports whole
 * milliseconds) nothing is paced.
 */

/** RFC 9002 §7.7's example gain. */
export const PACING_GAIN = 1.25;
/** The first flight's size (RFC 9002 §7.2: 10 packets), always allowed as a burst. */
export const MIN_BURST_PACKETS = 10;
/** What the bucket holds beyond that: the wake-up timer's lateness. */
export const TIMER_SLACK_MS = 2;

export class Pacer {
  #tokens: number;
  #last: number;
  #rate = Infinity; // bytes per ms
  #burst: number;
  readonly #packet: number;

  constructor(maxPacket: number, now: number) {
    this.#packet = maxPacket;
    this.#burst = MIN_BURST_PACKETS * maxPacket;
    this.#tokens = this.#burst;
    this.#last = now;
  }

  /** Bytes per ms currently allowed (Infinity: unpaced). */
  get rate(): number {
    return this.#rate;
  }

  /** New congestion facts (cwnd in bytes, smoothed RTT in whole ms). */
  update(cwnd: number, rttMs: number, now: number): void {
    this.#refill(now);
    this.#rate = rttMs >= 1 && cwnd > 0 ? (PACING_GAIN * cwnd) / rttMs : Infinity;
    this.#burst = Math.max(MIN_BURST_PACKETS * this.#packet, this.#rate * TIMER_SLACK_MS);
    if (this.#tokens > this.#burst) this.#tokens = this.#burst;
  }

  /** 0 when a full-size packet may leave now, else how many ms until one may. */
  allow(now: number): number {
    if (this.#rate === Infinity) return 0;
    this.#refill(now);
    if (this.#tokens >= this.#packet) return 0;
    return (this.#packet - this.#tokens) / this.#rate;
  }

  /** How many full-size packets may leave now (Infinity unpaced; 0: wait, see `allow`). */
  packets(now: number): number {
    if (this.#rate === Infinity) return Infinity;
    this.#refill(now);
    return Math.floor(this.#tokens / this.#packet);
  }

  /** A packet of `bytes` left. */
  sent(bytes: number): void {
    if (this.#rate !== Infinity) this.#tokens -= bytes;
  }

  #refill(now: number): void {
    const dt = now - this.#last;
    this.#last = now;
    if (dt > 0 && this.#rate !== Infinity) this.#tokens = Math.min(this.#burst, this.#tokens + dt * this.#rate);
    else if (this.#rate === Infinity) this.#tokens = this.#burst;
  }
}
