/**
 * Collapsed forwarding (an origin group's `collapse`): identical GET and HEAD requests in flight to one group
 * share one origin request. The first starts a flight with a signal of its own; the next ones with the same key
 * wait on it (at most `maxWaiters`) until its head comes. A waiter that leaves is dropped (the flight is
 * cancelled only when every waiter has left). A shareable head goes to every waiter with a body stream of its
 * own (util/fan-out.ts: each chunk to each as it arrives, paced by the slowest; a response already whole is
 * handed to each as bytes); a head that is not shareable (RFC 9111 §5.2.2.5 `no-store`, §5.2.2.7 `private`,
 * `Set-Cookie`, §4.1 `Vary: *` or different values of a field it names) goes to the first request only, and
 * each other waiter sends its own. A failure of the flight is every waiter's answer (the retry policy had its
 * say on the one request).
 */
import { Readable } from 'node:stream';
import { abortedBy, ErrorCode, OriginlinkError } from '../errors.js';
import type { Group } from '../group/group.js';
import type { ResolvedCollapse } from '../group/options.js';
import type { CompleteBody, HeaderList } from '../http/types.js';
import { FanOut, type Feed, type LagPolicy } from '../util/fan-out.js';
import { LegSignal, type SignalLike } from '../util/leg-signal.js';
import type { BodySource, OriginResponse } from './response.js';

/** What a collapsed request carries (the Agent's AgentRequest). */
export interface CollapsibleRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: HeaderList;
  readonly body: unknown;
  /** The caller's own signal. */
  readonly callerSignal: SignalLike | undefined;
  readonly authority: string | undefined;
  /** The signal its attempts go out with (a flight's leader: the flight's). */
  signal: SignalLike | undefined;
}

/** The Agent's side: a request's attempts, and the end of one served by another's request (its span). */
export interface CollapseHost<S extends CollapsibleRequest> {
  attempt(st: S): Promise<OriginResponse>;
  served(st: S, res: OriginResponse | null, err: unknown): void;
  /**
   * The rest of `st`'s representation from byte `from`, as a request of its own (Range, If-Range: RFC 9110 §14.2,
   * §13.1.5).
   */
  ranged(st: S, from: number, ifRange: string): Promise<OriginResponse>;
}

/**
 * Bytes a sharer may fall behind the others (beyond its own buffer) before it leaves the shared body and gets the
 * rest by a request of its own: a slow reader then paces nobody (one reader at 20 KB/s made another's 5 MB take
 * 9.5 s instead of 0.04 s with no temporary files to spool to).
 */
export const LAG_BYTES = 1024 * 1024;

/**
 * Fields that change what an origin answers to the same target, always part of the key: the range and conditional
 * fields (RFC 9110 §13.1, §14.2), and what a front tells the origin about the client's own request — its scheme and
 * authority (X-Forwarded-Proto, X-Forwarded-Host, RFC 7239 Forwarded), on which an origin builds redirects and
 * absolute links. Not X-Forwarded-For: the client's address would stop all collapsing; the origin sees the first
 * client's, as behind a cache.
 */
const KEYED: readonly string[] = [
  'range',
  'if-range',
  'if-none-match',
  'if-modified-since',
  'if-match',
  'if-unmodified-since',
  'x-forwarded-proto',
  'x-forwarded-host',
  'forwarded',
];

interface Waiter<S> {
  st: S;
  resolve: (r: OriginResponse) => void;
  reject: (e: unknown) => void;
  /** Left before the head (its own signal fired). */
  gone: boolean;
  onAbort: (() => void) | null;
}

export class Collapser<S extends CollapsibleRequest> {
  readonly #cfg: ResolvedCollapse;
  readonly #group: Group;
  readonly #host: CollapseHost<S>;
  #flights = new Map<string, Flight<S>>();

  constructor(cfg: ResolvedCollapse, group: Group, host: CollapseHost<S>) {
    this.#cfg = cfg;
    this.#group = group;
    this.#host = host;
  }

  /** The key a request is collapsed by, or null when it may not be (not GET/HEAD, a body, a credential field). */
  key(st: S): string | null {
    if ((st.method !== 'GET' && st.method !== 'HEAD') || st.body !== null) return null;
    const priv = this.#cfg.private;
    let fields = '';
    for (const [n, v] of st.headers) {
      if (priv.has(n)) return null;
      if (KEYED.includes(n) || this.#cfg.key.includes(n)) fields += `\n${n}:${v}`;
    }
    return `${st.method} ${st.authority ?? ''} ${st.path}${fields}`;
  }

  /** The request's answer: from a flight with its key in progress, or from a flight it starts. */
  join(st: S, key: string): Promise<OriginResponse> {
    const f = this.#flights.get(key);
    if (f !== undefined && f.waiting < this.#cfg.maxWaiters) return f.add(st);
    if (f !== undefined) return this.#host.attempt(st); // past maxWaiters: on its own
    const flight = new Flight<S>(key, st, this.#host, this.#group, () => {
      if (this.#flights.get(key) === flight) this.#flights.delete(key);
    });
    this.#flights.set(key, flight);
    return flight.start();
  }
}

class Flight<S extends CollapsibleRequest> {
  readonly key: string;
  readonly #leader: S;
  readonly #host: CollapseHost<S>;
  readonly #group: Group;
  readonly #close: () => void;
  readonly #signal = new LegSignal(null);
  #waiters: Array<Waiter<S>> = [];
  waiting = 0;

  constructor(key: string, leader: S, host: CollapseHost<S>, group: Group, close: () => void) {
    this.key = key;
    this.#leader = leader;
    this.#host = host;
    this.#group = group;
    this.#close = close;
  }

  start(): Promise<OriginResponse> {
    const p = this.add(this.#leader);
    this.#leader.signal = this.#signal;
    this.#host.attempt(this.#leader).then(
      (up) => this.#head(up),
      (e: unknown) => this.#failed(e),
    );
    return p;
  }

  add(st: S): Promise<OriginResponse> {
    return new Promise<OriginResponse>((resolve, reject) => {
      const w: Waiter<S> = { st, resolve, reject, gone: false, onAbort: null };
      const own = st.callerSignal;
      if (own?.aborted) return reject(abortedBy(own, 'request aborted before it was sent'));
      if (own) {
        w.onAbort = () => this.#leave(w);
        own.addEventListener('abort', w.onAbort, { once: true });
      }
      this.#waiters.push(w);
      this.waiting++;
    });
  }

  #leave(w: Waiter<S>): void {
    w.gone = true;
    w.onAbort = null;
    this.waiting--;
    const err = abortedBy(w.st.callerSignal, 'request aborted while waiting for a collapsed request');
    if (w.st !== this.#leader) this.#host.served(w.st, null, err); // the leader's request ends through its own attempts
    w.reject(err);
    if (this.waiting === 0) {
      this.#close();
      this.#signal.abort(err); // nobody wants the answer any more: the origin request is cancelled
    }
  }

  #settled(): Array<Waiter<S>> {
    this.#close();
    const live = this.#waiters.filter((w) => !w.gone);
    for (const w of live) if (w.onAbort) w.st.callerSignal?.removeEventListener('abort', w.onAbort);
    return live;
  }

  #failed(e: unknown): void {
    for (const w of this.#settled()) {
      if (w.st !== this.#leader) this.#host.served(w.st, null, e);
      w.reject(e);
    }
  }

  #head(up: OriginResponse): void {
    const live = this.#settled();
    if (live.length === 0) {
      up.body.destroy();
      return;
    }
    const share = shareable(up.headers);
    const leaderHeaders = this.#leader.headers;
    const sharers: Array<Waiter<S>> = [];
    for (const w of live) {
      if (w.st === this.#leader || (share !== null && sameVaried(share, leaderHeaders, w.st.headers))) sharers.push(w);
      else this.#host.attempt(this.#own(w.st)).then(w.resolve, w.reject); // not shareable: its own request
    }
    if (sharers.length === 0) {
      up.body.destroy();
      return;
    }
    const ep = this.#group.endpoints.find((e) => e.origin === up.origin);
    const whole = sharers.length > 1 ? up.takeComplete() : null;
    const fan =
      sharers.length > 1 && whole === null ? new FanOut(up.body, sharers.length, this.#lagPolicy(up, sharers)) : null;
    sharers.forEach((w, i) => {
      const collapsed = w.st !== this.#leader;
      let res: OriginResponse;
      if (whole !== null) res = up.share(wholeSource(whole), collapsed);
      else if (fan !== null) {
        const body = fan.outputs[i] as Readable;
        res = up.share({ body, trailers: up.trailers, takeComplete: () => null }, collapsed);
        this.#follow(w.st, body);
      } else res = collapsed ? up.share(up, true) : up;
      if (collapsed) {
        if (ep) ep.state.collapsed++;
        this.#host.served(w.st, res, null);
      }
      w.resolve(res);
    });
  }

  /**
   * How a sharer that falls behind leaves the shared body: for a GET whose response names a validator If-Range may
   * carry (a strong ETag, else Last-Modified: RFC 9110 §13.1.5), a request of its own for the rest (Range from the
   * bytes it has), whose answer is spliced on only when it is the same representation — a 206 starting there, or a
   * 200 with the same validator (its first bytes skipped). Without a validator nothing can be spliced safely: the
   * slowest reader sets the pace, as before.
   */
  #lagPolicy(up: OriginResponse, sharers: ReadonlyArray<Waiter<S>>): LagPolicy | undefined {
    const validator = ifRangeValidator(up.headers);
    if (validator === null) return undefined;
    return {
      lagBytes: LAG_BYTES,
      onLag: (i, feed) => {
        const w = sharers[i];
        // A request that asked for a range itself is not continued by another (its Range would be two).
        if (w === undefined || w.st.method !== 'GET' || w.st.headers.some((f) => f[0] === 'range')) return false;
        this.#rest(w.st, feed, validator);
        return true;
      },
    };
  }

  #rest(st: S, feed: Feed, validator: { field: string; value: string }): void {
    const from = feed.delivered;
    let body: Readable | null = null;
    feed.onGone = () => body?.destroy();
    this.#host.ranged(st, from, validator.value).then(
      (res) => {
        const range = res.status === 206 ? contentRangeStart(res.headers) : null;
        const same = res.status === 200 && values(res.headers, validator.field) === `${validator.value},`;
        if (range !== from && !same) {
          res.body.destroy();
          feed.fail(
            new OriginlinkError(
              ErrorCode.MALFORMED_RESPONSE,
              'remote',
              `the rest of a collapsed response (from byte ${from}) came back as another representation (${res.status})`,
            ),
          );
          return;
        }
        const b = (body = res.body);
        let skip = range === from ? 0 : from;
        feed.onDrain = () => b.resume();
        b.on('data', (c: Buffer) => {
          if (skip > 0) {
            if (c.length <= skip) {
              skip -= c.length;
              return;
            }
            c = c.subarray(skip);
            skip = 0;
          }
          if (!feed.push(c)) b.pause();
        });
        b.once('end', () => feed.end());
        b.once('error', (e: Error) => feed.fail(e));
      },
      (e: unknown) => feed.fail(e instanceof Error ? e : new Error(String(e))),
    );
  }

  /** A waiter that sends its own request after all: its attempts go out with its own signal. */
  #own(st: S): S {
    st.signal = st.callerSignal;
    return st;
  }

  /** A sharer's own signal still ends its body (as a request's signal does: client/exchange.ts). */
  #follow(st: S, body: Readable): void {
    const own = st.callerSignal;
    if (!own || own.aborted) return;
    const onAbort = (): void => {
      body.destroy(abortedBy(own));
    };
    own.addEventListener('abort', onAbort, { once: true });
    body.once('close', () => own.removeEventListener('abort', onAbort));
  }
}

/** A response taken whole, for one reader: its bytes once, by takeComplete() or as a stream. */
function wholeSource(whole: CompleteBody): BodySource {
  let taken = false;
  let stream: Readable | null = null;
  return {
    get body() {
      stream ??= Readable.from(taken ? [] : [whole.bytes], { objectMode: false });
      taken = true;
      return stream;
    },
    trailers: Promise.resolve(whole.trailers),
    takeComplete: () => {
      if (taken) return null;
      taken = true;
      return whole;
    },
  };
}

/**
 * The fields a shareable head's `Vary` names (an empty list when none), or null when the head may not be
 * shared: RFC 9111 §5.2.2.5 no-store, §5.2.2.7 private, a Set-Cookie (one client's cookie), §4.1 `Vary: *`.
 */
function shareable(headers: HeaderList): string[] | null {
  const vary: string[] = [];
  for (const [n, v] of headers) {
    if (n === 'set-cookie') return null;
    if (n === 'cache-control' && /(?:^|,)\s*(?:private|no-store)\s*(?:[,=]|$)/i.test(v)) return null;
    if (n === 'vary') {
      for (const f of v.split(',')) {
        const name = f.trim().toLowerCase();
        if (name === '*') return null;
        if (name) vary.push(name);
      }
    }
  }
  return vary;
}

/**
 * What If-Range may carry for a response: its strong ETag, else its Last-Modified (RFC 9110 §13.1.5); null if neither.
 */
function ifRangeValidator(h: HeaderList): { field: string; value: string } | null {
  let lastModified: string | null = null;
  for (const [n, v] of h) {
    if (n === 'etag' && !v.startsWith('W/')) return { field: 'etag', value: v };
    if (n === 'last-modified') lastModified = v;
  }
  return lastModified === null ? null : { field: 'last-modified', value: lastModified };
}

/** The first byte a 206's Content-Range says it carries (RFC 9110 §14.4), or null. */
function contentRangeStart(h: HeaderList): number | null {
  for (const [n, v] of h) {
    if (n !== 'content-range') continue;
    const m = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(v.trim());
    return m ? Number(m[1]) : null;
  }
  return null;
}

/** The waiter asked with the same values of every field the response varies on as the request that got it. */
function sameVaried(vary: readonly string[], a: HeaderList, b: HeaderList): boolean {
  for (const f of vary) if (values(a, f) !== values(b, f)) return false;
  return true;
}

function values(h: HeaderList, name: string): string {
  let out = '';
  for (const [n, v] of h) if (n === name) out += `${v},`;
  return out;
}
