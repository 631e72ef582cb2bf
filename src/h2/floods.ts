/**
 * Flood limits of one HTTP/2 connection: counts of cheap-to-send,
 * costly-to-handle frames per one-second window. Past a limit the
 * connection ends with GOAWAY ENHANCE_YOUR_CALM (RFC 9113 §10.5; the rapid
 * reset attack, CVE-2023-44487, is RST_STREAM after HEADERS at line rate).
 * `now` comes from the caller (sans-IO).
 */
import { H2ErrorCode } from '../codec/errors.js';
import { H2Error } from '../codec/h2frame.js';
import { DEFAULT_FLOOD_LIMITS, type FloodLimits } from '../http/floods.js';
import { WindowCounter } from '../util/window-counter.js';

type Counted = 'resets' | 'settings' | 'pings' | 'emptyData';

export class FloodGuard {
  readonly limits: Readonly<FloodLimits>;
  #counters: Record<Counted, WindowCounter>;

  constructor(limits: Partial<FloodLimits> = {}) {
    this.limits = { ...DEFAULT_FLOOD_LIMITS, ...limits };
    const l = this.limits;
    this.#counters = {
      resets: new WindowCounter(l.resets),
      settings: new WindowCounter(l.settings),
      pings: new WindowCounter(l.pings),
      emptyData: new WindowCounter(l.emptyData),
    };
  }

  /** Count one frame of `kind`; throws ENHANCE_YOUR_CALM past the limit within the window. */
  count(kind: Counted, now: number): void {
    if (this.#counters[kind].hit(now)) {
      throw new H2Error(H2ErrorCode.ENHANCE_YOUR_CALM, `${kind} flood: more than ${this.limits[kind]} per second`);
    }
  }
}
