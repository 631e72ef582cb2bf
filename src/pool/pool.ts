/**
 * One pool per origin key. Connections of any protocol behind one interface:
 * exclusive reservation for h1 (capacity 1), shared up to the stream limit
 * for h2/h3, concurrent dials merged (a multiplexed or not-yet-known
 * protocol never has two dials in flight).
 *
 * Invariant: a request is handed to a connection synchronously in #pump, so
 * `conn.active` is always the true reservation count.
 */
import { abortedBy, closedBeforeSent, ErrorCode, NOT_SENT, OriginlinkError, toOriginlinkError } from '../errors.js';
import { idleAfterHint, type PoolOptions } from './options.js';
import { PoolCounters, type PoolStats } from './stats.js';
import type { ConnEvent, ConnRequest, ConnResponse, PooledConnection, Protocol } from '../http/types.js';
import { publishConnection } from './diagnostics.js';
import { pingOrClose } from '../client/ping.js';
import { sharedTicker, type Ticker, type TickMember } from './ticker.js';
import { LazyTimer } from '../util/lazy-timer.js';
import { turnNow } from '../util/clock.js';
import { hold, holdUntil, release } from '../util/hold.js';
import { type DialSignal, LegSignal } from '../util/leg-signal.js';

/**
 * Share of idleTimeoutMs after which a surplus idle h1 connection closes (see #armIdle), unless a regret raised it
 * (#regret).
 */
const SURPLUS_FRACTION = 1 / 8;

export type Dialer = (signal: DialSignal) => Promise<PooledConnection>;

export interface PoolResult {
  res: ConnResponse;
  conn: PooledConnection;
  /** The connection had served a request before this one. */
  reused: boolean;
  queueMs: number;
}

interface Waiter {
  req: ConnRequest;
  resolve: (r: PoolResult) => void;
  reject: (e: Error) => void;
  enqueuedAt: number;
  timer: NodeJS.Timeout | null;
  onAbort: (() => void) | null;
}

/**
 * A pooled connection as the pool sees it, beside the connection's own ready / draining / closed:
 *
 *   busy    requests on it (or it opened with some): it holds the process (util/hold.ts), no idle deadline runs
 *   idle    nothing on it: it holds nothing, its idle deadline runs (#armIdle), an h1 one is on the idle stack
 *   closed  gone from the pool
 *
 *   (added) → busy | idle;  busy ⇄ idle (a request handed to it; its last one over);  busy | idle → closed
 *
 * Every transition goes through Pool #enter, with what comes with it. A connection drains (takes no new request) by
 * its own state, whoever asked: the pool asks through #retire, the one place that marks the close as ours.
 */
type EntryState = 'busy' | 'idle' | 'closed';

interface Entry {
  conn: PooledConnection;
  state: EntryState;
  maxAgeAt: number;
  errors: number;
  /** The idle deadline and its stage (#armIdle): `surplus` first for h1, then `full`. */
  idle: LazyTimer;
  idleStage: 'surplus' | 'full';
  /** The surplus stage's share of the idle timeout when it last went idle (#armIdle). */
  surplusShare: number;
  idleTimeoutMs: number;
  /** `idleTimeoutMs` comes from the origin's Keep-Alive hint: the origin closes it then, warm or not. */
  hinted: boolean;
  /** The pool drained it (#retire): its close is ours, not the origin's refusal. */
  retiredByPool: boolean;
  /** A PING of it is out (client/ping.ts). */
  pinging: boolean;
  /** On the h1 idle stack (#idleH1): membership, so it is pushed once. */
  stacked: boolean;
  /** Its connection's `active` as last added to the pool's #active (#recount). */
  counted: number;
}

/** A connection closed within this of its dial without serving a request counts as a failed dial (backoff). */
const YOUNG_MS = 1000;

/**
 * The origin's idle timeout, observed (#observeIdleClose): an origin that closes idle connections without saying when
 * (no `Keep-Alive: timeout`, nginx's default) closes them at one idle period. Two closes of idle connections, at
 * least OBSERVE_APART_MS apart, whose idle periods agree within OBSERVE_SLACK (a share, or OBSERVE_SLACK_MS) and
 * exceed both OBSERVE_MIN_MS and the longest idle period a connection of the pool was handed out after, are that
 * period. A restart or a shed closes many at once, after unrelated idle periods: one close is never enough.
 */
const OBSERVE_MIN_MS = 500;
const OBSERVE_APART_MS = 1000;
const OBSERVE_SLACK = 0.1;
const OBSERVE_SLACK_MS = 1000;

export class Pool implements TickMember {
  readonly key: string;
  readonly origin: string;
  readonly opts: Readonly<PoolOptions>;
  #dial: Dialer;
  #entries = new Map<PooledConnection, Entry>();
  /**
   * h1 connections acknowledge each response at once (PoolOptions.quickAck: 'always', or 'auto' once this origin sent a
   * stray).
   */
  #quickAck: boolean;
  /**
   * h1 pools: connections as they became idle, the most recent on top, so a request takes one without
   * scanning every connection (#pick). Entries that were used or closed since are dropped as they are met;
   * a closed one is also taken out at its close, so the stack never outgrows the pool.
   */
  #idleH1: Entry[] = [];
  #pending: Waiter[] = [];
  /** Requests on this pool's connections: the sum of their entries' `counted` (#recount). */
  #active = 0;
  /**
   * The surplus stage of an h1 connection going idle now, a share of idleTimeoutMs: SURPLUS_FRACTION, the whole
   * timeout after a regret (a dial for a waiting request within an idle timeout of a surplus close), halved back for
   * each idle timeout without one (#surplusShare). When a connection last closed as surplus; when the share was last
   * raised or halved.
   */
  #surplus = SURPLUS_FRACTION;
  #surplusClosedAt = -Infinity;
  #surplusAt = -Infinity;
  #dialing = 0;
  #dials = new Set<Promise<void>>();
  #protocol: Protocol | null;
  /** `auto` pools may hold several protocols; #protocol then follows the newest connection. */
  #fixed: boolean;
  #failures = 0;
  #nextDialAt = 0;
  /** The last dial's failure while dials fail (null once one succeeds): what a request meets during the backoff. */
  #dialError: OriginlinkError | null = null;
  #retryTimer: NodeJS.Timeout | null = null;
  #ticker: Ticker;
  #lastHealthAt = 0;
  #lastActivityAt = performance.now();
  #closed = false;
  #dialAbort = new LegSignal(null);
  #drainWaiters: Array<() => void> = [];
  /** The longest idle period a connection of this pool was handed out after, ms (#enter). */
  #idleSurvived = 0;
  /** An origin's close of an idle connection not yet confirmed by a second (#observeIdleClose): its idle period, when. */
  #idleCandidate: { ms: number; at: number } | null = null;
  /** The origin's idle timeout as observed (#observeIdleClose), ms; null: none. */
  #idleObserved: number | null = null;
  /** Health checks' own connection while this pool is saturated (see check). */
  #checks: Pool | null = null;
  /** Predictive warmth: the remembered peak of concurrent requests (decayed) and when it was last updated. */
  #peak = 0;
  #peakAt = performance.now();
  /** Totals of this origin (carried over from a forgotten pool of the same key by the Agent). */
  readonly counters: PoolCounters;

  constructor(
    key: string,
    origin: string,
    opts: Readonly<PoolOptions>,
    dial: Dialer,
    protocol: Protocol | null = null,
    ticker: Ticker = sharedTicker,
    counters = new PoolCounters(),
  ) {
    this.key = key;
    this.counters = counters;
    this.origin = origin;
    this.opts = opts;
    this.#dial = dial;
    this.#protocol = protocol;
    this.#fixed = protocol !== null;
    this.#ticker = ticker;
    this.#quickAck = opts.quickAck === 'always';
    if (opts.minWarm > 0) this.#topUpWarm();
  }

  /**
   * Nothing in flight, queued or dialling. `lastActivityAt` (performance.now())
   * is when a request last ended or was queued here (one in flight keeps the
   * pool from being idle): the Agent forgets a pool idle long enough.
   */
  get idle(): boolean {
    if (this.#pending.length > 0 || this.#dialing > 0) return false;
    for (const e of this.#entries.values()) if (e.conn.active > 0) return false;
    return true;
  }
  get lastActivityAt(): number {
    return this.#lastActivityAt;
  }

  /**
   * Shared-ticker hook: predictive warmth every tick; health pings and maximum age at most every max(250,
   * pingIntervalMs / 2) ms.
   */
  tick(now: number): void {
    if (this.opts.preconnectRatio > 0) this.#topUpWarm();
    const every = Math.max(250, this.opts.pingIntervalMs / 2);
    if (now - this.#lastHealthAt < every) return;
    this.#lastHealthAt = now;
    this.#healthCheck(now);
  }

  /**
   * Requests queued here or running on its connections now (h1: one per connection; h2/h3: streams): what an origin
   * group balances on.
   */
  get load(): number {
    return this.#demand();
  }

  /**
   * A health check's request. It dials now even while this pool's connects back off (an origin group's checks are
   * how an endpoint that came back is found; the backoff would hide it for up to connectBackoffMaxMs), and it never
   * waits behind live requests: on a connection free now (where live requests go), on a new one while this pool
   * may open one and nobody waits, else on a connection of its own outside maxConnections (a pool of one, as Envoy
   * and HAProxy check over connections of their own) — a busy endpoint is not a dead one, and time in our own queue
   * is never its failure. One check at a time per endpoint: at most one dial per interval.
   */
  check(req: ConnRequest): Promise<PoolResult> {
    if (this.#closed) return this.request(req);
    if (this.#dialError !== null && !this.#canServe()) this.#nextDialAt = 0;
    if (this.#pending.length === 0) {
      const e = this.#pick();
      if (e) return this.#run(req, 0, e);
      if (this.#open() + this.#dialing < this.opts.maxConnections) return this.request(req);
    }
    this.#checks ??= new Pool(
      `${this.key}|checks`,
      this.origin,
      Object.freeze({ ...this.opts, maxConnections: 1, maxPending: 1, minWarm: 0, preconnectRatio: 0 }),
      this.#dial,
      this.#protocol,
      this.#ticker,
    );
    return this.#checks.request(req);
  }

  /**
   * A PING (RFC 9113 §6.7, RFC 9000 §19.2) on one of this pool's ready connections that has PING: its round trip in
   * ms, or a rejection (no answer within `timeoutMs`, the connection lost). null when the pool has no such
   * connection: the caller asks another way (a request dials). The connection stays whatever the answer: the caller
   * judges the peer, the pool's own health PINGs judge the connection.
   */
  ping(timeoutMs: number): Promise<number> | null {
    for (const e of this.#entries.values()) {
      const c = e.conn;
      if (c.ping !== undefined && c.state === 'ready' && c.isUsable()) return c.ping(timeoutMs);
    }
    return null;
  }

  /** Protocol of this pool's connections, once the first one is established. */
  get protocol(): Protocol | null {
    return this.#protocol;
  }

  /** Run a request on a connection of this pool. */
  request(req: ConnRequest): Promise<PoolResult> {
    if (this.#closed) return Promise.reject(closedBeforeSent(`pool for ${this.origin} is closed`));
    // An 'abort' listener added to a signal that already fired never runs: refuse now, not at pendingTimeoutMs.
    if (req.signal?.aborted) {
      this.counters.error(ErrorCode.ABORTED);
      return Promise.reject(
        abortedBy(req.signal, 'request aborted before it was queued', { retrySafe: true, facts: NOT_SENT }),
      );
    }
    // lastActivityAt moves when a request ends: while one is in flight the pool is not idle anyway.
    if (this.#pending.length === 0) {
      // A free connection now: the request runs at once, its promise the connection's own (no waiter, no wrapper).
      const e = this.#pick();
      if (e) {
        const p = this.#run(req, 0, e);
        if (this.opts.preconnectRatio > 0) this.#topUpWarm();
        return p;
      }
    }
    const down = this.#unreachable();
    if (down !== null) {
      this.counters.error(down.code);
      return Promise.reject(down);
    }
    return new Promise<PoolResult>((resolve, reject) => {
      const w: Waiter = {
        req,
        resolve,
        reject,
        enqueuedAt: (this.#lastActivityAt = performance.now()),
        timer: null,
        onAbort: null,
      };
      // Requests the dials under way will take are not pending (each dial takes one at least): a cold burst is
      // accepted as far as a warm one is (maxConnections in flight, maxPending waiting).
      if (this.#pending.length - this.#dialing >= this.opts.maxPending) {
        this.counters.error(ErrorCode.QUEUE_FULL);
        reject(
          new OriginlinkError(
            ErrorCode.QUEUE_FULL,
            'local',
            `pending queue for ${this.origin} is full (${this.opts.maxPending})`,
            { retrySafe: true, facts: NOT_SENT, details: { limit: this.opts.maxPending } },
          ),
        );
        return;
      }
      w.timer = setTimeout(() => {
        this.#dequeue(w);
        this.counters.error(ErrorCode.QUEUE_TIMEOUT);
        reject(
          new OriginlinkError(
            ErrorCode.QUEUE_TIMEOUT,
            'local',
            `no connection to ${this.origin} within ${this.opts.pendingTimeoutMs} ms`,
            { retrySafe: true, facts: NOT_SENT },
          ),
        );
      }, this.opts.pendingTimeoutMs);
      if (req.signal) {
        w.onAbort = () => {
          this.#dequeue(w);
          this.counters.error(ErrorCode.ABORTED);
          reject(abortedBy(req.signal, 'request aborted while queued', { retrySafe: true, facts: NOT_SENT }));
        };
        req.signal.addEventListener('abort', w.onAbort, { once: true });
      }
      this.#pending.push(w);
      this.#pump();
      if (this.opts.preconnectRatio > 0) this.#topUpWarm();
    });
  }

  /**
   * Dials to this origin fail and their backoff runs, with no connection that could take a request and no dial
   * under way: a request queued now would wait out the backoff only to meet the same failure (a refused port, an
   * untrusted certificate: 2 to 28 s per request, measured). It gets that failure at once, as nginx answers 502
   * for a peer it marked failed (max_fails, fail_timeout) and Envoy for an ejected host; the first request after
   * the backoff dials again, and a success ends it.
   */
  #unreachable(): OriginlinkError | null {
    const last = this.#dialError;
    if (last === null || this.#dialing > 0 || this.#canServe()) return null;
    const wait = Math.ceil(this.#nextDialAt - performance.now());
    if (wait <= 0) return null;
    return new OriginlinkError(
      last.code,
      last.side,
      `${last.message} (connects to ${this.origin} failing: the next in ${wait} ms)`,
      {
        cause: last,
        retrySafe: true,
        facts: NOT_SENT,
        details: { ...last.details, origin: this.origin, backoffMs: wait },
      },
    );
  }

  /** A connection that takes requests now or once its current ones end (not a draining or closed one). */
  #canServe(): boolean {
    for (const e of this.#entries.values()) if (e.conn.state === 'ready') return true;
    return false;
  }

  #dequeue(w: Waiter): void {
    const i = this.#pending.indexOf(w);
    if (i >= 0) this.#pending.splice(i, 1);
    this.#clearWaiter(w);
  }

  #clearWaiter(w: Waiter): void {
    if (w.timer) clearTimeout(w.timer);
    if (w.onAbort) w.req.signal?.removeEventListener('abort', w.onAbort);
    w.timer = null;
    w.onAbort = null;
  }

  /** A connection with a free slot, or null. h1: most recently used first; h2/h3: fill the oldest. */
  #pick(): Entry | null {
    if (this.#protocol === 'h1') {
      const stack = this.#idleH1;
      while (stack.length > 0) {
        const e = stack.pop() as Entry;
        e.stacked = false;
        const c = e.conn;
        if (c.state !== 'ready' || c.active >= c.capacity || !this.#fresh(e)) continue;
        return e;
      }
    }
    // Every connection: multiplexed pools, and an h1 pool whose stack had none (all busy, or one missed).
    let best: Entry | null = null;
    for (const e of this.#entries.values()) {
      const c = e.conn;
      if (c.state !== 'ready' || !this.#fresh(e)) continue;
      if (c.active >= c.capacity) continue;
      if (c.protocol === 'h1') {
        if (!best || c.lastActiveAt > best.conn.lastActiveAt) best = e;
      } else {
        return e;
      }
    }
    return best;
  }

  /**
   * False after retiring a ready connection that may not take requests: unusable (destroyed) or past its maximum age
   * (drained).
   */
  #fresh(e: Entry): boolean {
    const c = e.conn;
    if (!c.isUsable()) {
      if (c.settling?.() !== true) {
        e.retiredByPool = true;
        c.destroy();
      }
      return false;
    }
    if (e.maxAgeAt > 0 && turnNow() >= e.maxAgeAt) {
      this.#retire(e);
      return false;
    }
    return true;
  }

  /** An h1 connection became idle: on top of the stack #pick takes from. */
  #stackIdle(e: Entry): void {
    if (e.stacked || e.conn.protocol !== 'h1') return;
    e.stacked = true;
    this.#idleH1.push(e);
  }

  /** A queued request's turn came: it runs on `e`. */
  #start(w: Waiter, e: Entry): void {
    this.#clearWaiter(w);
    this.#run(w.req, performance.now() - w.enqueuedAt, e).then(w.resolve, w.reject);
  }

  /** Run `req` on `e`'s connection; `queueMs`: how long it waited for one. */
  #run(req: ConnRequest, queueMs: number, e: Entry): Promise<PoolResult> {
    const conn = e.conn;
    const reused = conn.served > 0;
    this.#enter(e, 'busy');
    this.counters.request(reused);
    const max = this.opts.maxRequestsPerConnection;
    const sent = conn.request(req);
    this.#recount(e);
    // Counted as requests go out (h2/h3 count a stream when it opens): a multiplexed connection took any number of
    // concurrent requests past the limit when the check waited for answers.
    if (max > 0 && conn.served >= max) this.#retire(e);
    return sent.then(
      (res) => {
        e.errors = 0;
        this.#failures = 0; // an answer: the origin works (a dial that succeeds alone proves less: see 'close')
        this.#lastActivityAt = turnNow();
        return { res, conn, reused, queueMs };
      },
      (err: unknown) => {
        this.#lastActivityAt = turnNow();
        // The connection's exchange decided the facts; an error that has none is taken as processed.
        const oe = toOriginlinkError(err).with({ details: { connectionId: conn.id } });
        this.counters.error(oe.code);
        // Only what the connection or the origin did counts against the connection: a request our side gave up
        // (its caller aborted: a client that went away, a bad argument) says nothing about it. Else a burst of
        // clients leaving would recycle every warm origin connection they had streams on.
        if (oe.side !== 'local') {
          if (++e.errors >= this.opts.maxConsecutiveErrors) this.#retire(e);
          // A timed-out stream on a shared connection may mean a dead peer: prove it alive before more requests land
          // there.
          else if (
            (oe.code === ErrorCode.HEADERS_TIMEOUT || oe.code === ErrorCode.BODY_TIMEOUT) &&
            conn.ping &&
            !e.pinging
          )
            this.#probe(e);
        }
        throw oe;
      },
    );
  }

  #pump(): void {
    while (this.#pending.length > 0) {
      const e = this.#pick();
      if (!e) break;
      this.#start(this.#pending.shift() as Waiter, e);
    }
    this.#maybeDial();
    this.#checkDrained();
  }

  /**
   * A new h2 connection whose stream limit is still on its way (PooledConnection.limitPending): it may take them all.
   */
  #limitPending(): boolean {
    for (const e of this.#entries.values()) if (e.conn.limitPending?.() === true) return true;
    return false;
  }

  #open(): number {
    let n = 0;
    for (const e of this.#entries.values()) if (e.conn.state !== 'closed') n++;
    return n;
  }

  #maybeDial(): void {
    if (this.#closed) return;
    const want = this.#pending.length;
    if (want === 0) return;
    const multiplexed = this.#protocol === null || this.#protocol !== 'h1';
    // Merge concurrent dials: one at a time unless the origin is known to be h1.
    // h1: at most maxConnecting dials in flight; a request freed meanwhile serves the queue,
    // so a cold burst opens about as many connections as its concurrency needs, not one each.
    let toDial = multiplexed
      ? this.#dialing > 0 || this.#limitPending()
        ? 0
        : 1
      : Math.min(want, this.opts.maxConnecting) - this.#dialing;
    toDial = Math.min(toDial, this.opts.maxConnections - this.#open() - this.#dialing);
    if (toDial <= 0) return;
    const wait = this.#nextDialAt - performance.now();
    if (wait > 0) {
      this.#armRetry(wait);
      return;
    }
    if (!multiplexed) this.#regret();
    for (let i = 0; i < toDial; i++) this.#dialOne();
  }

  /**
   * A request waits for a dial: if a connection closed as surplus within the idle timeout, that close was early
   * (the load came back to the depth it had), and h1 connections going idle from now on keep the whole idle timeout,
   * as nginx's and Envoy's upstream connections do, until an idle timeout passes without a regret. A pool sharing a
   * load with others (an origin group's endpoint, p2c drawing it at random) sees its own concurrency swing more than
   * the whole load's, and its peaks recur further apart than an eighth of the idle timeout: each surplus close was
   * dialled again within seconds, a TLS handshake each time, and V8's hot path compiled again after the dial's rarer
   * paths ran (bench/RESULTS.md `groups`).
   */
  #regret(): void {
    const now = turnNow();
    if (now - this.#surplusClosedAt >= this.opts.idleTimeoutMs) return;
    this.#surplus = 1;
    this.#surplusAt = now;
  }

  /**
   * The surplus stage's share now: halved back towards SURPLUS_FRACTION once for each idle timeout without a regret.
   */
  #surplusShare(): number {
    if (this.#surplus > SURPLUS_FRACTION) {
      const now = turnNow();
      if (now - this.#surplusAt >= this.opts.idleTimeoutMs) {
        this.#surplus = Math.max(SURPLUS_FRACTION, this.#surplus / 2);
        this.#surplusAt = now;
      }
    }
    return this.#surplus;
  }

  /** One more failed dial: the next waits connectBackoffBaseMs doubled per failure (capped), with jitter. */
  #backOff(): void {
    this.#failures++;
    const cap = Math.min(this.opts.connectBackoffMaxMs, this.opts.connectBackoffBaseMs * 2 ** (this.#failures - 1));
    this.#nextDialAt = performance.now() + cap * (0.5 + Math.random() * 0.5);
  }

  /** Unref'd: a queued request's own deadline keeps the process alive; warm top-ups alone never do. */
  #armRetry(wait: number): void {
    if (this.#retryTimer) return;
    this.#retryTimer = setTimeout(this.#afterBackoff, wait);
    this.#retryTimer.unref();
  }

  /** The backoff is over: one timer for both waits (queued requests, warm top-ups), so neither is left behind. */
  #afterBackoff = (): void => {
    this.#retryTimer = null;
    if (this.opts.minWarm > 0 || this.opts.preconnectRatio > 0) this.#topUpWarm();
    this.#pump();
  };

  /**
   * Dial up to the connections to keep warm (minWarm, or the predictive target); predictive dials at most maxConnecting
   * at a time.
   */
  #topUpWarm(): void {
    if (this.#closed) return;
    // Warm dials wait out the backoff too: an origin that accepts and closes at once was redialled in a tight loop.
    const wait = this.#nextDialAt - performance.now();
    if (wait > 0) {
      this.#armRetry(wait);
      return;
    }
    const missing = this.#keepWarm() - this.#open() - this.#dialing;
    const room =
      this.opts.preconnectRatio > 0 ? Math.max(this.opts.minWarm, this.opts.maxConnecting) - this.#dialing : missing;
    for (let i = 0; i < Math.min(missing, room); i++) this.#dialOne();
  }

  /** Requests in flight on this pool's connections plus queued ones. */
  #demand(): number {
    return this.#pending.length + this.#active;
  }

  /**
   * Bring `e`'s share of #active to what its connection holds now. Run where a connection's count moves: a request
   * handed to it (#run), each of its events (a request over is told by 'capacity', h1's a turn or two late: its
   * connection is not reusable before that either), its close. A pick of p2c reads the load of two pools: a sum
   * over every connection there cost each request more as the pool grew (~0.7 % of a proxied request at seven
   * connections, by callgrind's instruction counts; bench/RESULTS.md groups).
   */
  #recount(e: Entry): void {
    const n = e.conn.active;
    this.#active += n - e.counted;
    e.counted = n;
  }

  /**
   * Connections to keep open now: `minWarm`, or ⌈preconnectRatio × peak / streams per
   * connection⌉ when higher (within maxConnections). The peak is the demand seen, halved every
   * preconnectHalfLifeMs since (exponential decay), forgotten below half a request. Until the
   * first connection says which protocol the origin speaks (and, for h2/h3, how many streams a
   * connection takes), the predictive part waits.
   */
  #keepWarm(): number {
    let target = 0;
    if (this.opts.preconnectRatio > 0 && this.#protocol !== null) {
      const now = performance.now();
      const decayed = this.#peak * 2 ** (-(now - this.#peakAt) / this.opts.preconnectHalfLifeMs);
      this.#peak = Math.max(decayed, this.#demand());
      if (this.#peak < 0.5) this.#peak = 0;
      this.#peakAt = now;
      // h2/h3: streams per connection from a ready one; with none yet, the demand's own (merged) dial comes first.
      let perConn = this.#protocol === 'h1' ? 1 : 0;
      if (this.#protocol !== 'h1')
        for (const e of this.#entries.values())
          if (e.conn.state === 'ready') perConn = Math.max(perConn, e.conn.capacity);
      if (perConn > 0) target = Math.ceil((this.opts.preconnectRatio * this.#peak) / perConn);
    }
    return Math.min(this.opts.maxConnections, Math.max(this.opts.minWarm, target));
  }

  /** Connections this pool keeps open with nothing to do (minWarm or predictive warmth). */
  get warmTarget(): number {
    return this.#closed ? 0 : this.#keepWarm();
  }

  /**
   * An idle connection kept warm on purpose (re-checked after another idle period while warmth is predictive: the
   * target decays).
   */
  #keptWarm(e: Entry): boolean {
    if (this.#open() > this.#keepWarm()) return false;
    if (this.opts.preconnectRatio > 0) this.#armIdle(e);
    return true;
  }

  /** Open a connection now (pre-connect). Resolves when it is ready. */
  async warm(n = 1): Promise<void> {
    const have = this.#open() + this.#dialing;
    for (let i = have; i < Math.min(n, this.opts.maxConnections); i++) void this.#dialOne();
    await Promise.all([...this.#dials]);
  }

  #dialOne(): Promise<void> {
    this.#dialing++;
    this.counters.dialStarted();
    const p = this.#dial(this.#dialAbort)
      .then(
        (conn) => {
          this.#dialing--;
          this.#nextDialAt = 0;
          this.#dialError = null;
          if (this.#closed) {
            conn.destroy();
            this.#checkDrained();
            return;
          }
          this.#add(conn);
          this.#pump();
        },
        (err: unknown) => {
          this.#dialing--;
          // No request byte was sent: retry-safe for every waiter (each gets its own copy).
          const oe = toOriginlinkError(err, ErrorCode.CONNECT_FAILED).with({
            retrySafe: true,
            facts: NOT_SENT,
            details: { origin: this.origin },
          });
          this.counters.connectFailed(oe.code);
          this.#backOff();
          // Our own abort (close, destroy) says nothing about the origin.
          if (oe.code !== ErrorCode.ABORTED) this.#dialError = oe;
          this.#failWaiters(oe);
          this.#pump();
        },
      )
      .finally(() => this.#dials.delete(p));
    this.#dials.add(p);
    return p;
  }

  /**
   * Take over a connection dialled outside the pool (an h3 upgrade after
   * Alt-Svc, a QUIC attempt that finished after losing a race).
   */
  adopt(conn: PooledConnection): boolean {
    if (this.#closed || conn.state !== 'ready') {
      conn.destroy();
      return false;
    }
    this.#add(conn);
    this.#pump();
    return true;
  }

  /** Drain every connection not speaking `protocol` (after an upgrade). */
  drainOthers(protocol: Protocol): void {
    for (const e of this.#entries.values())
      if (e.conn.protocol !== protocol && e.conn.state === 'ready') this.#retire(e);
  }

  /** A ready connection of this pool that has a free slot, without dispatching. */
  hasReady(): boolean {
    for (const e of this.#entries.values()) if (e.conn.state === 'ready' && e.conn.isUsable()) return true;
    return false;
  }

  /**
   * Run a request of another origin on one of this pool's connections
   * (coalescing, RFC 9113 §9.1.1). Null when the connection cannot take it now.
   */
  requestOn(conn: PooledConnection, req: ConnRequest): Promise<PoolResult> | null {
    const e = this.#entries.get(conn);
    if (
      !e ||
      this.#closed ||
      conn.state !== 'ready' ||
      !conn.isUsable() ||
      conn.active >= conn.capacity ||
      this.#pending.length > 0
    )
      return null;
    return new Promise<PoolResult>((resolve, reject) => {
      this.#start({ req, resolve, reject, enqueuedAt: performance.now(), timer: null, onAbort: null }, e);
    });
  }

  #add(conn: PooledConnection): void {
    if (this.#fixed) this.#protocol ??= conn.protocol;
    else this.#protocol = conn.protocol;
    const jitter = 1 - this.opts.maxAgeJitter * Math.random();
    const e: Entry = {
      conn,
      state: 'idle',
      maxAgeAt: this.opts.maxAgeMs > 0 ? conn.createdAt + this.opts.maxAgeMs * jitter : 0,
      errors: 0,
      idle: new LazyTimer(() => this.#idleDue(e)),
      idleStage: 'full',
      surplusShare: SURPLUS_FRACTION,
      idleTimeoutMs: this.opts.idleTimeoutMs,
      hinted: false,
      retiredByPool: false,
      pinging: false,
      stacked: false,
      counted: 0,
    };
    this.#entries.set(conn, e);
    if (this.#idleObserved !== null) this.#applyObserved(e);
    this.#recount(e);
    // The hold (util/hold.ts) keeps the process for this connection while it is busy: the socket itself never again.
    conn.unref?.();
    if (this.#entries.size === 1) this.#ticker.add(this);
    if (this.#quickAck) conn.quickAck?.(true);
    this.counters.opened(conn.facts);
    publishConnection('open', this.origin, conn);
    conn.on((ev) => this.#onEvent(e, ev));
    this.#enter(e, conn.active > 0 ? 'busy' : 'idle');
  }

  /**
   * The one place an entry changes state, with what comes with each: busy holds the process and stops the idle
   * deadline; idle releases the process, arms the deadline (again on idle → idle: a connection that tells its
   * capacity again starts its idle period again) and stacks an h1 connection; closed stops all of it.
   */
  #enter(e: Entry, to: EntryState): void {
    const from = e.state;
    if (from === 'closed' || (from === to && to !== 'idle')) return;
    e.state = to;
    if (from === 'busy') release();
    switch (to) {
      case 'busy':
        if (from === 'idle') {
          const idleFor = turnNow() - e.conn.lastActiveAt;
          if (idleFor > this.#idleSurvived) this.#idleSurvived = idleFor;
        }
        e.idle.clear();
        hold();
        break;
      case 'idle':
        this.#armIdle(e);
        this.#stackIdle(e);
        break;
      case 'closed':
        e.idle.stop();
        if (e.stacked) {
          e.stacked = false;
          const i = this.#idleH1.indexOf(e);
          if (i >= 0) this.#idleH1.splice(i, 1);
        }
        break;
    }
  }

  #onEvent(e: Entry, ev: ConnEvent): void {
    const conn = e.conn;
    if (ev.type !== 'close') this.#recount(e);
    switch (ev.type) {
      case 'capacity':
        if (conn.active === 0) this.#enter(e, 'idle');
        this.#pump();
        break;
      case 'goaway':
        // A peer that sent GOAWAY may die before finishing what it accepted:
        // prove it alive once, or fail those streams now rather than at their timeouts.
        if (conn.active > 0 && conn.ping && !e.pinging) this.#probe(e);
        this.#pump();
        break;
      case 'handshake':
        this.counters.handshake(conn.facts);
        break;
      case 'keepalive-hint':
        e.idleTimeoutMs = idleAfterHint(this.opts, ev.timeoutMs);
        e.hinted = e.idleTimeoutMs < this.opts.idleTimeoutMs;
        break;
      case 'close':
        this.#onClose(e, ev.error as OriginlinkError | null);
        break;
    }
  }

  /** With nothing else coming (no connection that can serve, no dial), the waiters would only sit out their timeout. */
  #failWaiters(err: OriginlinkError): void {
    if (this.#canServe() || this.#dialing > 0) return;
    for (const w of this.#pending.splice(0)) {
      this.#clearWaiter(w);
      w.reject(err.with({}));
    }
  }

  /** A connection closed: out of the pool and counted; what its close says of the origin acted on. */
  #onClose(e: Entry, error: OriginlinkError | null): void {
    const conn = e.conn;
    if (e.state === 'idle' && error === null && !e.retiredByPool && !this.#closed)
      this.#observeIdleClose(performance.now() - conn.lastActiveAt);
    this.#enter(e, 'closed');
    this.#active -= e.counted;
    e.counted = 0;
    if (this.#entries.delete(conn)) {
      if (this.#entries.size === 0) this.#ticker.delete(this);
      this.counters.closed();
      // An h1 origin that sent what nobody asked for: counted (stats().errors), the connection already gone;
      // from now on every h1 connection of this pool acknowledges each response at once (quickAck 'auto').
      if (error?.code === ErrorCode.UNSOLICITED_RESPONSE) {
        this.counters.error(ErrorCode.UNSOLICITED_RESPONSE);
        if (this.opts.quickAck === 'auto' && !this.#quickAck) {
          this.#quickAck = true;
          for (const other of this.#entries.keys()) other.quickAck?.(true);
        }
      }
      // A TCP Fast Open connection handed out before its SYN was answered, then timed out (net/tcp.ts): a failed
      // connect.
      if (error?.code === ErrorCode.CONNECT_TIMEOUT) this.counters.connectFailures++;
      publishConnection('close', this.origin, conn, error);
      // Closed young without serving anything, not by us (an origin at its connection limit, a load balancer
      // shedding): a failed dial as far as the backoff goes, or minWarm redialled it at once, thousands a second.
      if (conn.served === 0 && !e.retiredByPool && !this.#closed && performance.now() - conn.createdAt < YOUNG_MS)
        this.#backOff();
      // A new connection the origin spoke on before any request (an h2c-only server's SETTINGS as it accepts): it
      // does not speak HTTP/1.1 here, and the next connection will not either. Its waiters fail now, not sent, where
      // each new connection was dropped the same way until their pendingTimeoutMs (OL_QUEUE_TIMEOUT after 30 s).
      if (conn.served === 0 && error?.code === ErrorCode.UNSOLICITED_RESPONSE && !this.#closed)
        this.#failWaiters(error.with({ retrySafe: false, facts: NOT_SENT, details: { origin: this.origin } }));
    }
    if (this.opts.minWarm > 0 || this.opts.preconnectRatio > 0) this.#topUpWarm();
    this.#pump();
  }

  /**
   * h1 connections first wait SURPLUS_FRACTION of the idle timeout: one still idle then while
   * another h1 connection is idle too is above the recent peak concurrency (LIFO picking
   * would have reached it otherwise) and closes; the last idle one waits the full timeout.
   */
  #armIdle(e: Entry): void {
    const full = e.idleTimeoutMs;
    e.idleStage = e.conn.protocol === 'h1' ? 'surplus' : 'full';
    e.surplusShare = this.#surplusShare();
    e.idle.set(e.idleStage === 'full' ? full : Math.max(1, full * e.surplusShare));
  }

  #idleDue(e: Entry): void {
    if (e.conn.active > 0) return;
    // The origin said when it closes an idle connection (Keep-Alive: timeout, less our margin): ours goes at that
    // deadline, warm or not (the top-up replaces it) — a warm one kept past it met the origin's close with a request
    // on the wire (5 of 39 POSTs failed with minWarm 1 in a review helper's run). A warm one is never surplus.
    const warm = this.#keptWarm(e);
    if (warm && !e.hinted) return;
    if (e.idleStage === 'surplus') {
      e.idleStage = 'full';
      const full = e.idleTimeoutMs;
      const early = Math.max(1, full * e.surplusShare);
      if (early < full && (warm || !this.#otherIdleH1(e))) {
        e.idle.set(full - early);
        return;
      }
      if (early < full) this.#surplusClosedAt = turnNow();
    }
    this.#retire(e);
  }

  /** Every drain the pool starts goes through here: its close is ours, not an origin refusing (see 'close'). */
  #retire(e: Entry): void {
    e.retiredByPool = true;
    e.conn.drain();
  }

  /**
   * The origin closed a connection that sat idle for `idleMs`: with an earlier close that agrees (OBSERVE_*), its
   * idle timeout is known, and every connection it did not hint one for goes idle for that less the margin
   * (pool/options.ts idleAfterHint), as a hinted one does — before the origin's close, not into it.
   */
  #observeIdleClose(idleMs: number): void {
    if (idleMs < OBSERVE_MIN_MS || idleMs <= this.#idleSurvived) return;
    const now = performance.now();
    const c = this.#idleCandidate;
    if (
      c !== null &&
      now - c.at >= OBSERVE_APART_MS &&
      Math.abs(idleMs - c.ms) <= Math.max(OBSERVE_SLACK_MS, OBSERVE_SLACK * c.ms)
    ) {
      const ms = Math.min(c.ms, idleMs);
      if (ms === this.#idleObserved) return;
      this.#idleObserved = ms;
      for (const e of this.#entries.values()) this.#applyObserved(e);
      return;
    }
    this.#idleCandidate = { ms: idleMs, at: now };
  }

  /** `e` goes idle for the observed idle timeout, unless its origin hinted one of its own ('keepalive-hint'). */
  #applyObserved(e: Entry): void {
    const facts = e.conn.facts;
    facts.keepAliveObservedMs = this.#idleObserved;
    if (facts.keepAliveHintMs !== null || this.#idleObserved === null) return;
    e.idleTimeoutMs = idleAfterHint(this.opts, this.#idleObserved);
    e.hinted = e.idleTimeoutMs < this.opts.idleTimeoutMs;
  }

  #otherIdleH1(self: Entry): boolean {
    for (const e of this.#entries.values()) {
      if (
        e !== self &&
        e.conn.protocol === 'h1' &&
        e.conn.state === 'ready' &&
        e.conn.active === 0 &&
        e.conn.isUsable()
      )
        return true;
    }
    return false;
  }

  /**
   * Drain connections past their maximum age; PING idle multiplexed ones (a silent one is dead before a request finds
   * out).
   */
  #healthCheck(now: number): void {
    for (const e of this.#entries.values()) {
      const c = e.conn;
      if (e.maxAgeAt > 0 && now >= e.maxAgeAt && c.state === 'ready') {
        this.#retire(e);
        continue;
      }
      if (
        !c.ping ||
        this.opts.pingIntervalMs <= 0 ||
        e.pinging ||
        c.state !== 'ready' ||
        now - c.lastActiveAt < this.opts.pingIntervalMs
      )
        continue;
      this.#probe(e);
    }
  }

  #probe(e: Entry): void {
    pingOrClose(e, e.conn, this.opts.pingTimeoutMs, (err) => {
      this.counters.error(ErrorCode.PING_TIMEOUT);
      return err;
    });
  }

  stats(): PoolStats {
    let idle = 0;
    let busy = 0;
    let active = 0;
    for (const e of this.#entries.values()) {
      if (e.conn.state === 'closed') continue;
      active += e.conn.active;
      if (e.conn.active === 0) idle++;
      else busy++;
    }
    return this.counters.snapshot(this.origin, this.#protocol, {
      idle,
      busy,
      activeRequests: active,
      dialing: this.#dialing,
      pending: this.#pending.length,
      idleObservedMs: this.#idleObserved,
    });
  }

  /** Connections currently held (for tests and the service's table). */
  connections(): PooledConnection[] {
    return [...this.#entries.keys()];
  }

  #checkDrained(): void {
    if (!this.#closed || this.#entries.size > 0 || this.#dialing > 0) return;
    for (const r of this.#drainWaiters.splice(0)) r();
  }

  /**
   * Stop taking requests, let in-flight ones finish, then close every connection. Requests still queued for a
   * connection fail with OL_POOL_CLOSED (retry-safe: nothing was sent) — undici's close() serves them first; the
   * service's reload retires an upstream only when its requests are done (Upstream.retire).
   */
  close(): Promise<void> {
    void this.#checks?.close();
    this.#shutdown(closedBeforeSent(`pool for ${this.origin} closed`));
    // No request waits for a connection any more (#shutdown failed them), and a connection a dial makes now would be
    // destroyed as it arrives: stop the dials, rather than wait out their connect timeout.
    this.#dialAbort.abort();
    for (const e of this.#entries.values()) e.conn.drain();
    // The connections' sockets are unref'd: what closes them (an h2 GOAWAY, then the peer's end) holds nothing.
    return holdUntil(
      new Promise((r) => {
        this.#drainWaiters.push(r);
        this.#checkDrained();
      }),
    );
  }

  /** Abort everything now. */
  destroy(error?: Error): void {
    const err = error ?? new OriginlinkError(ErrorCode.POOL_CLOSED, 'local', `pool for ${this.origin} destroyed`);
    this.#checks?.destroy(err);
    this.#shutdown(err);
    this.#dialAbort.abort();
    for (const e of [...this.#entries.values()]) e.conn.destroy(err);
    this.#checkDrained();
  }

  #shutdown(err: Error): void {
    this.#closed = true;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#ticker.delete(this);
    for (const w of this.#pending.splice(0)) {
      this.#clearWaiter(w);
      w.reject(err);
    }
  }
}
