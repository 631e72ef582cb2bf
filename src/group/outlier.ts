/**
 * Passive ejection from live traffic (Envoy's outlier detection): which outcomes count against an endpoint,
 * and how long an ejection lasts. The group applies it (group.ts): it owns the endpoints and their events.
 */
import { ErrorCode, type OriginlinkError } from '../errors.js';
import type { EndpointState } from './endpoint.js';
import type { ResolvedOutlier } from './options.js';

/**
 * A failure of the endpoint, not of ours: connect errors, resets, timeouts, malformed answers (side `remote` or
 * `network`). A request our side gave up (aborted, our own queue full or waited out, a closed pool) says
 * nothing about the endpoint.
 */
export function endpointFailed(err: OriginlinkError): boolean {
  return err.side !== 'local' && err.code !== ErrorCode.ABORTED;
}

/** RFC 9110 §15.6.3–15.6.5: the answers of a gateway or server that could not serve (Envoy's gateway failures). */
export function failureStatus(status: number): boolean {
  return status === 502 || status === 503 || status === 504;
}

/**
 * The length of an ejection starting now: `baseEjectionMs` × the ejections it follows (capped), where time
 * spent admitted since the last one lowers the count by one per `baseEjectionMs` (Envoy lowers its multiplier
 * at each interval a host stays healthy). Updates `s.multiplier`.
 */
export function ejectionMs(s: EndpointState, o: ResolvedOutlier, now: number): number {
  if (s.multiplier > 0 && s.admittedAt > 0)
    s.multiplier = Math.max(0, s.multiplier - Math.floor((now - s.admittedAt) / o.baseEjectionMs));
  s.multiplier++;
  return Math.min(o.maxEjectionMs, o.baseEjectionMs * s.multiplier);
}

/**
 * How many of `n` endpoints may be ejected at once: `maxEjectionPercent` of them, and at least one unless it is 0
 * (Envoy).
 */
export function maxEjected(n: number, o: ResolvedOutlier): number {
  if (o.maxEjectionPercent <= 0) return 0;
  return Math.max(1, Math.floor((n * o.maxEjectionPercent) / 100));
}
