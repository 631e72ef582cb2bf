/**
 * A hedged request (an origin group's `hedge`): the first attempt, and after the group's hedge delay with no
 * head yet, a second to another endpoint. The first head wins; the other attempt is aborted through its own
 * signal, which each transport turns into its cancel (h2 RST_STREAM CANCEL, h3 STOP_SENDING and RESET_STREAM,
 * h1 the connection closed or read out: client/exchange.ts). Only for a request `policy.ts replaySafe` allows
 * (the Agent checks), and only within the group's budget. A failure waits for the other attempt; when both
 * failed (or one failed before the hedge went) the last failure goes to the retry policy as any other.
 */
import { ErrorCode, OriginlinkError, toOriginlinkError } from '../errors.js';
import type { Endpoint } from '../group/endpoint.js';
import type { Group, Hedgeable } from '../group/group.js';
import type { Pool, PoolResult } from '../pool/pool.js';
import { turnNow } from '../util/clock.js';
import { LegSignal, type SignalLike } from '../util/leg-signal.js';
import type { PoolInfo } from './registry.js';
import type { OriginResponse } from './response.js';

/** What a hedged request carries across its attempts (the Agent's AgentRequest). */
export interface HedgedRequest {
  readonly group: Group | null;
  signal: SignalLike | undefined;
  attempt: number;
  /** The current endpoint's index in its group (what the response is named by). */
  at: number;
  ep: Endpoint | null;
  triedEps: Endpoint[] | null;
  tried: number;
  hedged: boolean;
}

/** One attempt started: its pool's info, its answer to come, and when it began (the turn's clock, util/clock.ts). */
export interface Launched {
  info: PoolInfo;
  p: Promise<PoolResult>;
  at: number;
}

/** The Agent's side: start an attempt (throws when nothing could be sent), and the ends of a request. */
export interface HedgeHost<S extends HedgedRequest> {
  launch(st: S, ep: Endpoint, signal: SignalLike): Launched;
  answered(st: S, info: PoolInfo, r: PoolResult): OriginResponse;
  failed(st: S, pool: Pool, e: unknown): Promise<OriginResponse>;
}

interface Leg {
  ep: Endpoint;
  signal: LegSignal;
  info: PoolInfo;
  at: number;
  running: boolean;
}

/** Why the slower attempt was cancelled (side local: it counts nothing against its endpoint). */
const LOST = new OriginlinkError(ErrorCode.ABORTED, 'local', 'hedged request answered by the other attempt');

export class HedgeRace<S extends HedgedRequest> implements Hedgeable {
  readonly hedgeAt: number;
  readonly promise: Promise<OriginResponse>;
  #host: HedgeHost<S>;
  #st: S;
  #a: Leg;
  #b: Leg | null = null;
  /** A head won or the last failure was handed on: nothing else happens. */
  #over = false;
  #resolve!: (r: OriginResponse) => void;
  #reject!: (e: unknown) => void;

  /** Starts the first attempt on `ep` (throws when it could not be sent, as an attempt does) and arms the hedge. */
  constructor(host: HedgeHost<S>, st: S, ep: Endpoint, delayMs: number) {
    this.#host = host;
    this.#st = st;
    this.promise = new Promise<OriginResponse>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#a = this.#start(ep);
    this.hedgeAt = performance.now() + delayMs;
    (st.group as Group).hedgeTimer?.add(this);
  }

  #start(ep: Endpoint): Leg {
    const signal = new LegSignal(this.#st.signal);
    let l: Launched;
    try {
      l = this.#host.launch(this.#st, ep, signal);
    } catch (e) {
      signal.detach();
      throw e;
    }
    const leg: Leg = { ep, signal, info: l.info, at: l.at, running: true };
    l.p.then(
      (r) => this.#answered(leg, r),
      (e: unknown) => this.#failed(leg, e),
    );
    return leg;
  }

  /** The delay passed: a second attempt to another endpoint, if the first still waits and the budget allows. */
  hedgeDue(): void {
    const a = this.#a;
    if (this.#over || !a.running || this.#b !== null) return;
    const st = this.#st;
    const g = st.group as Group;
    const now = performance.now();
    const ep = g.pickAgain([a.ep], now);
    if (ep === a.ep) return;
    if (!(g.hedgeBudget as NonNullable<Group['hedgeBudget']>).take(now)) {
      a.ep.state.retriesRefused++;
      return;
    }
    st.attempt++;
    try {
      this.#b = this.#start(ep);
    } catch {
      st.attempt--; // nothing was sent (the agent closing): the first attempt carries on alone
      return;
    }
    st.hedged = true;
    st.tried++;
    ep.state.hedgesSent++;
  }

  #answered(leg: Leg, r: PoolResult): void {
    leg.running = false;
    const now = turnNow();
    const st = this.#st;
    (st.group as Group).answered(leg.ep, r.res.status, now - leg.at, now);
    if (this.#over) {
      leg.signal.abort(LOST); // answered second: its body is not read (the transport cancels it)
      return;
    }
    this.#over = true;
    leg.signal.detach();
    const other = leg === this.#a ? this.#b : this.#a;
    if (other?.running) other.signal.abort(LOST);
    if (leg === this.#b) leg.ep.state.hedgesWon++;
    st.ep = leg.ep;
    st.at = leg.ep.index;
    try {
      this.#resolve(this.#host.answered(st, leg.info, r));
    } catch (e) {
      this.#reject(e);
    }
  }

  #failed(leg: Leg, e: unknown): void {
    leg.running = false;
    leg.signal.detach();
    const now = turnNow();
    const st = this.#st;
    (st.group as Group).failed(leg.ep, toOriginlinkError(e), now - leg.at, now);
    if (this.#over) return;
    const other = leg === this.#a ? this.#b : this.#a;
    if (other?.running) return; // the other attempt may still answer
    this.#over = true;
    st.ep = leg.ep;
    st.at = leg.ep.index;
    st.triedEps = this.#b ? [this.#a.ep, this.#b.ep] : [this.#a.ep];
    this.#host.failed(st, leg.info.pool, e).then(this.#resolve, this.#reject);
  }
}
