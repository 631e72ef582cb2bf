/**
 * Flood limits of one HTTP/2 connection: counts of cheap-to-send,
 * costly-to-handle frames per one-second window. Past a limit the
 * connection ends with GOAWAY ENHANCE_YOUR_CALM (RFC 9113 §10.5; the rapid
 * reset attack, CVE-2023-44487, is RST_STREAM after HEADERS at line rate).
 * `now` comes from the caller (sans-IO).
 */
import { H2ErrorCode } from '../codec/errors.js';
import { H2Error } from '../codec/h2frame.js';
import type { FloodLimits } from './types.js';

export const DEFAULT_FLOOD_LIMITS: Readonly<FloodLimits> = Object.freeze({ resets: 100, settings: 50, pings: 100, emptyData: 100, continuations: 128 });

type Counted = 'resets' | 'settings' | 'pings' | 'emptyData';
const WINDOW_MS = 1000;

export class FloodGuard {
  readonly limits: Readonly<FloodLimits>;
  #windowStart = -Infinity;
  #counts: Record<Counted, number> = { resets: 0, settings: 0, pings: 0, emptyData: 0 };

  constructor(limits: Partial<FloodLimits> = {}) {
    this.limits = { ...DEFAULT_FLOOD_LIMITS, ...limits };
  }

  /** Count one frame of `kind`; throws ENHANCE_YOUR_CALM past the limit within the window. */
  count(kind: Counted, now: number): void {
    if (now - this.#windowStart >= WINDOW_MS) {
      this.#windowStart = now;
      this.#counts = { resets: 0, settings: 0, pings: 0, emptyData: 0 };
    }
    if (++this.#counts[kind] > this.limits[kind]) {
      throw new H2Error(H2ErrorCode.ENHANCE_YOUR_CALM, `${kind} flood: more than ${this.limits[kind]} per second`);
    }
  }
}
