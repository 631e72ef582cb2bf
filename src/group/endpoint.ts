/**
 * One endpoint of a group: its URL and weight, and its state — health, ejection, Peak-EWMA of head latency,
 * counters — in an object of its own, which a reload hands to the next group for an endpoint that stays.
 */

/** What the group reads of an endpoint's pool: requests queued or in flight there now (h2/h3: streams). */
export interface LoadSource {
  readonly load: number;
}

/** Everything about an endpoint that outlives one config (Group.adopt). */
export class EndpointState {
  /** Active checks: healthy until `fall` failures in a row, then until `rise` passes in a row. */
  healthy = true;
  passes = 0;
  fails = 0;
  /** Passive: failures in a row of live requests; ejected until `ejectedUntil` (performance.now()), 0 when not. */
  consecutiveFailures = 0;
  ejectedUntil = 0;
  /** Ejections counted into the next one's length; lowered by time spent admitted (outlier.ts). */
  multiplier = 0;
  admittedAt = 0;
  /** Peak-EWMA of response-head latency, ms (-1: no sample yet), and when it was last fed. */
  ewmaMs = -1;
  ewmaAt = 0;
  /** Counters (only ever grow). */
  requests = 0;
  failures = 0;
  ejections = 0;
  checks = 0;
  checkFailures = 0;
  hedgesSent = 0;
  hedgesWon = 0;
  retriesRefused = 0;
  collapsed = 0;
}

export type EndpointHealth = 'healthy' | 'unhealthy' | 'ejected';

export class Endpoint {
  /** The URL requests are sent to (parsed once: the Agent's registry remembers its pool on it). */
  readonly url: URL;
  /** `url.origin`: the name logs, stats and responses give it. */
  readonly origin: string;
  readonly weight: number;
  /** Position in the group's list. */
  readonly index: number;
  state = new EndpointState();
  /** The endpoint's pool as last used (its load), or null before its first request. */
  pool: LoadSource | null = null;
  /** Smooth weighted round robin's running weight (balance.ts). */
  current = 0;

  constructor(url: string, weight: number, index: number) {
    this.url = new URL(url);
    this.origin = this.url.origin;
    this.weight = weight;
    this.index = index;
  }

  get load(): number {
    return this.pool === null ? 0 : this.pool.load;
  }

  /** Takes requests now: healthy and not ejected (`now`: performance.now()). */
  usable(now: number): boolean {
    const s = this.state;
    return s.healthy && s.ejectedUntil <= now;
  }

  health(now: number): EndpointHealth {
    if (this.state.ejectedUntil > now) return 'ejected';
    return this.state.healthy ? 'healthy' : 'unhealthy';
  }
}
