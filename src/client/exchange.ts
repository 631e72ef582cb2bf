/**
 * One request exchange, shared by the h1, h2 and h3 client connections
 * (undici keeps the same in lib/core/request.js): settle-once, the headers
 * and body timers, abort, trailers, the response body with backpressure, the
 * content-length check, the request body pump, and the request's facts.
 * A transport adds only framing: it writes the request, reports what its
 * wire says (`started`, `head`, `data`, `end`, `fail`) and cancels a stream
 * when told (`ExchangeWire.cancel`).
 *
 * Invariants:
 * - The head promise settles once; after the head, a failure ends the body
 *   with the error (it stays readable as `body.errored`).
 * - `wire.settled` runs exactly once, after the exchange is done for good;
 *   `wire.cancel` runs at most once, before it, and only on failure.
 * - The headers timer runs from `sent()` (the whole request handed to the
 *   connection) to the head: a slow streamed upload is never a headers
 *   timeout. `bodyTimeoutMs` is an idle timer, while a streamed request body
 *   leaves (an origin that stops reading) and while the response body arrives.
 * - Facts are decided once: `reused` at construction, `requestSent` at
 *   `sent()`, `responseStarted` at the first response byte; every error that
 *   leaves carries them.
 */
import { Readable } from 'node:stream';
import { abortedBy, ErrorCode, OriginlinkError, toOriginlinkError, type ExchangeFacts } from '../errors.js';
import { bodyBytes, bodyStream } from '../http/body.js';
import { declaredLength } from '../http/field-section.js';
import type { CompleteBody, ConnRequest, ConnResponse, HeaderList } from '../http/types.js';
import { abortBody, relayBody, type BodySink } from '../util/body.js';
import type { ResponseBody } from '../wire/body.js';
import { coarseArm, coarseArmed, coarseDisarm, coarseSerial, COARSE_MIN_MS } from '../util/coarse-ticker.js';
import { turnNow } from '../util/clock.js';

export interface ExchangeTimeouts {
  /** From the request fully sent to the response head, ms (0 = none). */
  headersTimeoutMs: number;
  /** Longest silence while the response body arrives, ms (0 = none). */
  bodyTimeoutMs: number;
  /**
   * Response fields accepted (the pool's maxHeaderCount): one rule for h2 and h3, whose decoders bound the section's
   * bytes only; h1's parser counts them as it reads (the same limit). Unset: no count.
   */
  maxHeaderCount?: number;
}

/**
 * Bytes a response body holds before its stream exists, unless the request set `responseBufferBytes`: a Readable's own
 * default high-water mark.
 */
const LAZY_BODY_LIMIT = 16 * 1024;

/** What the exchange asks of its transport. */
export interface ExchangeWire {
  /** Stop this request on the wire (h1: the connection; h2/h3: reset the stream). */
  cancel(x: Exchange, err: OriginlinkError): void;
  /** The exchange is over (success or failure): free its slot. */
  settled(x: Exchange): void;
  /** The pool closes this connection (Agent.close(), an upstream retired): it finishes what it carries, then goes. */
  closing(): boolean;
}

/** Extra response facts a transport may add to the head (h3 0-RTT). */
export type HeadExtras = Pick<ConnResponse, 'earlyData' | 'earlyDataRefused' | 'reprioritize'>;

/**
 * The two timers of an exchange. An h1 connection reuses one pair for all its
 * (sequential) exchanges: each timer is created once and re-armed with
 * `refresh()` — the hot path pays no setTimeout per request. Long deadlines
 * go to the shared ticker instead (util/coarse-ticker.ts).
 */
export class ExchangeTimers {
  #x: Exchange | null = null;
  #kind: TimerKind | null = null;
  #headers: NodeJS.Timeout | null = null;
  #headersMs = 0;
  #body: NodeJS.Timeout | null = null;
  #bodyMs = 0;
  /** Armed on the shared ticker: its deadline (performance.now() ms) and length. */
  #coarseAt = 0;
  #coarseMs = 0;
  readonly #serial = coarseSerial();

  arm(x: Exchange, kind: TimerKind, ms: number): void {
    this.#x = x;
    this.#kind = ms > 0 ? kind : null;
    if (ms <= 0) {
      coarseDisarm(this.#serial);
      return;
    }
    if (ms >= COARSE_MIN_MS) {
      this.#coarseMs = ms;
      this.#coarseAt = turnNow() + ms;
      coarseArm(this.#serial, this);
      return;
    }
    coarseDisarm(this.#serial);
    if (kind === 'headers') {
      if (this.#headers && this.#headersMs === ms) this.#headers.refresh();
      else {
        if (this.#headers) clearTimeout(this.#headers);
        this.#headers = setTimeout(this.#fire, ms, true);
        this.#headers.unref();
        this.#headersMs = ms;
      }
    } else if (this.#body && this.#bodyMs === ms) this.#body.refresh();
    else {
      if (this.#body) clearTimeout(this.#body);
      this.#body = setTimeout(this.#fire, ms, false);
      this.#body.unref();
      this.#bodyMs = ms;
    }
  }

  /** Push the idle deadline back (a chunk arrived, or left). */
  touch(): void {
    if (this.#kind !== 'body' && this.#kind !== 'send') return;
    if (coarseArmed(this.#serial)) this.#coarseAt = turnNow() + this.#coarseMs;
    else this.#body?.refresh();
  }

  disarm(): void {
    this.#kind = null;
    this.#x = null;
    coarseDisarm(this.#serial);
  }

  /** Free the timers for good (the connection closed, or the exchange owned them alone). */
  clear(): void {
    this.disarm();
    if (this.#headers) clearTimeout(this.#headers);
    if (this.#body) clearTimeout(this.#body);
    this.#headers = this.#body = null;
  }

  /** The shared ticker: fire when the coarse deadline has passed. */
  check(now: number): void {
    if (now < this.#coarseAt) return;
    coarseDisarm(this.#serial);
    const x = this.#x;
    const kind = this.#kind;
    if (x && kind !== null) x.timedOut(kind, this.#coarseMs);
  }

  // A timer that fires while not armed for its kind (re-armed, disarmed, refreshed late) does nothing.
  // The body timer serves both idle kinds ('send' while the request body leaves, 'body' after the head).
  #fire = (headersTimer: boolean): void => {
    if (coarseArmed(this.#serial)) return; // armed on the shared ticker since: a late real timer says nothing
    const x = this.#x;
    const kind = this.#kind;
    if (!x || kind === null || (kind === 'headers') !== headersTimer) return;
    x.timedOut(kind, headersTimer ? this.#headersMs : this.#bodyMs);
  };
}

/**
 * headers: request sent → head; send: idle while the request body leaves; body: idle while the response body arrives.
 */
type TimerKind = 'headers' | 'send' | 'body';

const EMPTY = new Uint8Array(0);
const NO_TRAILERS: HeaderList = [];

export class Exchange {
  readonly req: ConnRequest;
  readonly promise: Promise<ConnResponse>;
  /** The response body, once the head arrived. */
  body: LazyBody | null = null;
  /** Trailers received before the end (h1, h2 report them apart from the end). */
  trailers: HeaderList = NO_TRAILERS;
  /**
   * The transport's id for this exchange on its connection (h2: its stream id; h3: its number among the connection's
   * requests; -1 while none).
   */
  wireId = -1;
  #facts: { reused: boolean; requestSent: boolean; responseStarted: boolean };
  #wire: ExchangeWire;
  #timeouts: ExchangeTimeouts;
  #timers: ExchangeTimers;
  #ownTimers: boolean;
  #resolve!: (r: ConnResponse) => void;
  #reject!: (e: OriginlinkError) => void;
  #resolveTrailers: ((t: HeaderList) => void) | null = null;
  #trailers: Promise<HeaderList> | null = null;
  /** The trailers once the exchange is over (NO_TRAILERS after a failure); null before. */
  #finalTrailers: HeaderList | null = null;
  #onAbort: (() => void) | null = null;
  #done = false;
  /** Over with a whole response (not a failure): a request body still leaving is sent to its end (see pump). */
  #completed = false;
  /** pump() waits for the request body's source (not for the origin to take bytes). */
  #awaitingSource = false;
  /** stopSending() was called. */
  #stopSend = false;
  #expected: number | null = null;
  #received = 0;
  /** The body timer found the reader behind once already while the pool was closing. */
  #closingStrike = false;

  constructor(
    req: ConnRequest,
    wire: ExchangeWire,
    timeouts: ExchangeTimeouts,
    reused: boolean,
    timers?: ExchangeTimers,
  ) {
    this.req = req;
    this.#wire = wire;
    this.#timeouts = timeouts;
    this.#facts = { reused, requestSent: false, responseStarted: false };
    this.#timers = timers ?? new ExchangeTimers();
    this.#ownTimers = timers === undefined;
    this.promise = new Promise<ConnResponse>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    const signal = req.signal;
    if (signal) {
      if (signal.aborted) queueMicrotask(() => this.fail(abortedBy(signal)));
      else {
        this.#onAbort = () => this.fail(abortedBy(signal));
        signal.addEventListener('abort', this.#onAbort, { once: true });
      }
    }
  }

  get done(): boolean {
    return this.#done;
  }

  /**
   * The response's trailers (empty when there are none, or after a failure), made on first use: most
   * responses are relayed whole and nobody asks, so a response costs no promise for them.
   */
  get trailersPromise(): Promise<HeaderList> {
    if (this.#trailers === null) {
      this.#trailers =
        this.#finalTrailers !== null
          ? Promise.resolve(this.#finalTrailers)
          : new Promise<HeaderList>((r) => {
              this.#resolveTrailers = r;
            });
    }
    return this.#trailers;
  }
  /** Over with a whole response, not a failure. */
  get completed(): boolean {
    return this.#completed;
  }
  get facts(): ExchangeFacts {
    return this.#facts;
  }

  /**
   * The transport ended the request on the wire (h2: its stream reset after a complete response): the pump stops, its
   * source is let go.
   */
  stopSending(): void {
    this.#stopSend = true;
  }

  /** The whole request is on the connection: the wait for the head starts now. */
  sent(): void {
    if (this.#facts.requestSent) return;
    this.#facts.requestSent = true;
    if (!this.#done && this.body === null) this.#timers.arm(this, 'headers', this.#timeouts.headersTimeoutMs);
  }

  /**
   * Send the request again on a new stream of the same connection (an h3
   * 0-RTT attempt the server refused, before any response head): it counts
   * as not sent until the transport calls `sent()` again.
   */
  restart(): void {
    if (this.#done || this.body !== null) return;
    this.#facts.requestSent = false;
    this.#timers.disarm();
  }

  /** A response byte arrived (part of a head): the request was seen. */
  started(): void {
    this.#facts.responseStarted = true;
  }

  /**
   * The final response head. `bodyless`: HEAD, 204, 304 (RFC 9110 §6.4.1) —
   * the content-length then describes no bytes on this wire. `makeBody`
   * makes the body's stream when one is needed (see LazyBody). `declared`: the
   * Content-Length its protocol layer already read from `headers` (null: none),
   * else it is read here.
   */
  /**
   * An interim (1xx) response before the head: to the request's listener (ConnRequest.onInformational); it starts
   * nothing. `reason`: its reason phrase when its protocol has one (HTTP/1.1), else ''.
   */
  interim(status: number, headers: HeaderList, reason = ''): void {
    if (this.#done || this.body !== null) return;
    const listener = this.req.onInformational;
    if (listener === undefined) return;
    try {
      listener(status, headers, reason);
    } catch {
      // A listener's failure is its own: the exchange goes on.
    }
  }

  head(
    status: number,
    headers: HeaderList,
    makeBody: () => ResponseBody,
    bodyless: boolean,
    extras?: HeadExtras,
    declared?: number | null,
    statusText = '',
  ): void {
    if (this.#done) return;
    const max = this.#timeouts.maxHeaderCount;
    if (max !== undefined && headers.length > max) {
      this.fail(
        new OriginlinkError(
          ErrorCode.HEADERS_TOO_LARGE,
          'remote',
          `response head of ${headers.length} fields (at most ${max})`,
          { details: { fields: headers.length, limit: max } },
        ),
      );
      return;
    }
    this.#facts.responseStarted = true;
    const body = new LazyBody(makeBody, this.req.responseBufferBytes ?? LAZY_BODY_LIMIT);
    this.body = body;
    if (!bodyless) this.#expected = declared !== undefined ? declared : declaredLength(headers);
    this.#timers.arm(this, 'body', this.#timeouts.bodyTimeoutMs);
    const res = new ExchangeResponse(status, statusText, headers, body, this);
    if (extras?.earlyData !== undefined) res.earlyData = extras.earlyData;
    if (extras?.earlyDataRefused !== undefined) res.earlyDataRefused = extras.earlyDataRefused;
    if (extras?.reprioritize !== undefined) res.reprioritize = extras.reprioritize;
    this.#resolve(res);
  }

  /** Response body bytes. */
  data(chunk: Uint8Array): void {
    const body = this.body;
    if (this.#done || !body) return;
    this.#received += chunk.length;
    if (this.#expected !== null && this.#received > this.#expected) {
      this.fail(mismatch(this.#received, this.#expected, 'more than'));
      return;
    }
    this.#timers.touch();
    this.#closingStrike = false;
    body.deliver(chunk, false);
  }

  /** The response is complete (with trailers, if any). */
  end(trailers: HeaderList = this.trailers): void {
    const body = this.body;
    if (this.#done || !body) return;
    // RFC 9110 §8.6: a body shorter than its content-length is incomplete.
    if (this.#expected !== null && this.#received !== this.#expected) {
      this.fail(mismatch(this.#received, this.#expected, 'fewer than'));
      return;
    }
    this.#completed = true;
    this.#settle();
    body.trailers = trailers;
    body.deliver(EMPTY, true);
    this.#finalTrailers = trailers;
    this.#resolveTrailers?.(trailers);
  }

  /**
   * The exchange failed. `cancel` false: the wire already knows (the peer
   * reset the stream, the connection is gone). The error leaves with this
   * request's facts; a response byte seen means it was processed.
   */
  fail(e: unknown, cancel = true): void {
    if (this.#done || this.#failing) return;
    // Telling the wire may end the connection (an h2 stream reset after GOAWAY was its last), whose close fails this
    // exchange again from inside: the first reason stands (a headers timeout stays one, not 'connection destroyed').
    this.#failing = true;
    const oe = toOriginlinkError(e);
    const err = oe.with({ facts: { ...this.#facts }, retrySafe: oe.retrySafe && !this.#facts.responseStarted });
    if (cancel) this.#wire.cancel(this, err);
    this.#settle();
    if (this.body) this.body.abort(err);
    else this.#reject(err);
    this.#finalTrailers = NO_TRAILERS;
    this.#resolveTrailers?.(NO_TRAILERS);
  }

  /**
   * The reader destroyed the response body before its end: the request is over for us. The wire is told
   * (`cancel`): h2 resets the stream (RFC 9113 §8.1 with CANCEL), h3 cancels it (RFC 9114 §4.1.1), h1,
   * which cannot cancel one request, closes the connection. The body's `cancel` hook in every transport.
   */
  readerGone(): void {
    if (!this.#done)
      this.fail(new OriginlinkError(ErrorCode.ABORTED, 'local', 'response body destroyed by its reader'));
  }

  /** Called by ExchangeTimers. */
  timedOut(kind: TimerKind, ms: number): void {
    if (kind === 'headers')
      this.fail(
        new OriginlinkError(
          ErrorCode.HEADERS_TIMEOUT,
          'remote',
          `no response head within ${ms} ms of the request's end`,
        ),
      );
    // While the request body leaves, whose stall it is: its source's (we had nothing to send) or the origin's.
    else if (kind === 'send' && this.#awaitingSource)
      this.fail(
        new OriginlinkError(
          ErrorCode.REQUEST_BODY_TIMEOUT,
          'local',
          `the request body's source sent nothing for ${ms} ms`,
        ),
      );
    else if (kind === 'send')
      this.fail(
        new OriginlinkError(ErrorCode.BODY_TIMEOUT, 'remote', `the origin took no request body bytes for ${ms} ms`),
      );
    // Our reader is behind and holds the origin paused (h1: the socket, h2/h3: stream credit), or was within this
    // period: the silence is ours, not the origin's, so wait another period. The reader's own deadline is its
    // business (the service's limits.clientSendTimeoutMs cuts a client that stops reading); a whole period after
    // it caught up, the origin's silence counts again (undici's bodyTimeout does not run while its parser is
    // paused either). The origin gets that whole period to answer the returned credit (h3: a round trip).
    // Once the connection's pool closes, a reader that takes nothing for a whole further period is given up: close()
    // waits for the requests in flight, not for a body nobody reads (the line after `await agent.close()` runs).
    else if (performance.now() - (this.body?.readerBehindAt ?? 0) < ms) {
      if (this.#wire.closing() && this.#closingStrike)
        this.fail(
          new OriginlinkError(
            ErrorCode.POOL_CLOSED,
            'local',
            `the pool closed, and this response's body was not read for ${ms} ms (bodyTimeoutMs)`,
          ),
        );
      else {
        this.#closingStrike = this.#wire.closing();
        this.#timers.arm(this, 'body', ms);
      }
    } else this.fail(new OriginlinkError(ErrorCode.BODY_TIMEOUT, 'remote', `no response body data within ${ms} ms`));
  }

  /**
   * Stream a request body into `sink` with backpressure, then `sent()`.
   * Stops quietly once the exchange failed, or when its transport calls
   * `stopSending()`; a failing body source fails the exchange (ABORTED,
   * local). A response that completed while the body was still leaving (an
   * early answer, or the origin's answer beating the source's last tick)
   * does not stop it by itself: h1 finishes the request on the wire
   * (keep-alive needs it whole; else a connection was left busy for ever,
   * waiting for a `sent()` that never came); h2 resets the stream instead.
   */
  async pump(sink: BodySink & { end(): void }): Promise<void> {
    // While the body leaves, `bodyTimeoutMs` bounds a stall (an origin that stops reading); not the head's wait.
    if (this.body === null) this.#timers.arm(this, 'send', this.#timeouts.bodyTimeoutMs);
    try {
      this.#awaitingSource = true;
      // By events, as the servers relay responses (relayBody).
      const how = await relayBody(
        bodyStream(this.req.body),
        {
          write: (chunk) => {
            const ok = sink.write(chunk);
            if (!this.#done) this.#timers.touch();
            this.#awaitingSource = ok; // not ok: the wait is the origin's
            return ok;
          },
          room: () =>
            sink.room().then((ok) => {
              if (!this.#done) this.#timers.touch();
              this.#awaitingSource = true;
              return ok;
            }),
        },
        () => this.#stopSend || (this.#done && !this.#completed),
      );
      if (how !== 'end') return;
      sink.end();
      this.sent();
    } catch (e) {
      // The caller's own abort stays one (its signal also destroys the body); anything else is the source failing.
      const aborted = e instanceof OriginlinkError && e.code === ErrorCode.ABORTED;
      const err = aborted
        ? e
        : new OriginlinkError(ErrorCode.REQUEST_BODY_FAILED, 'local', `request body failed: ${(e as Error).message}`, {
            cause: e,
          });
      // After a whole response the caller has its answer; the unfinished request still holds the wire (an h1
      // connection waiting for the rest, an h2/h3 stream never ended): cancel it there (h1 closes the connection).
      if (this.#completed) this.#wire.cancel(this, err);
      else this.fail(err);
    } finally {
      this.#awaitingSource = false;
    }
  }

  /** Inside fail(): a second failure during it is ignored. */
  #failing = false;

  #settle(): void {
    this.#done = true;
    if (this.#ownTimers) this.#timers.clear();
    else this.#timers.disarm();
    if (this.#onAbort) this.req.signal?.removeEventListener('abort', this.#onAbort);
    this.#onAbort = null;
    this.#wire.settled(this);
  }
}

function mismatch(got: number, want: number, how: string): OriginlinkError {
  return new OriginlinkError(
    ErrorCode.BODY_MISMATCH,
    'remote',
    `response body has ${how} its content-length (${got} vs ${want} bytes)`,
  );
}

/**
 * A response body whose stream is made only when someone asks for it. A
 * relayed small response has usually ended (head, data and end in one read)
 * before its consumer looks at it; the service then takes its bytes whole
 * (`take`), and no Readable, listener or end-of-stream tick is spent on it.
 * Until the stream exists the bytes wait here; past `limit` bytes it is made
 * at once and its own backpressure applies (it pauses the transport at its
 * high-water mark, as one made up front would). An abort before the stream
 * exists is kept and given to it when made (it is then destroyed with it).
 */
export class LazyBody {
  /** Set by the exchange when the response ended with trailers. */
  trailers: HeaderList = NO_TRAILERS;
  #make: () => ResponseBody;
  #limit: number;
  #stream: ResponseBody | null = null;
  #chunks: Uint8Array[] = [];
  #bytes = 0;
  #ended = false;
  #taken = false;
  #error: Error | null = null;
  /** A reader taking the body whole without a stream (collect): where the end or the failure goes. */
  #collecting: { resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;

  constructor(make: () => ResponseBody, limit: number) {
    this.#make = make;
    this.#limit = limit;
  }

  deliver(chunk: Uint8Array, end: boolean): void {
    const k = this.#collecting;
    if (k !== null) {
      if (chunk.length > 0) this.#chunks.push(chunk);
      if (end) {
        this.#collecting = null;
        this.#ended = true;
        k.resolve(this.#takeBytes());
        // A stream made meanwhile (`body` read while the body was being taken) ends empty with it.
        this.#stream?.deliver(EMPTY, true);
      }
      return;
    }
    const s = this.#stream;
    if (s !== null) {
      s.deliver(chunk, end);
      return;
    }
    if (this.#error) return;
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#bytes += chunk.length;
    }
    if (end) this.#ended = true;
    else if (this.#bytes >= this.#limit) this.#open();
  }

  /** See ResponseBody.readerBehindAt (before the stream exists nothing is paused: 0). */
  get readerBehindAt(): number {
    return this.#stream?.readerBehindAt ?? 0;
  }

  /** The body as a stream (made now if it was not). */
  get stream(): ResponseBody {
    return this.#stream ?? this.#open();
  }

  /** Make the stream and hand it what arrived so far (and the end, or the error). */
  #open(): ResponseBody {
    const s = this.#make();
    this.#stream = s;
    // Being taken whole (collect): the bytes are the collector's; the stream ends empty when it is done.
    if (this.#collecting !== null) return s;
    const chunks = this.#chunks;
    this.#chunks = [];
    for (const c of chunks) s.deliver(c, false);
    if (this.#ended) s.deliver(EMPTY, true);
    else if (this.#error) abortBody(s, this.#error);
    return s;
  }

  /** End the body with an error (a failed exchange): the stream is destroyed with it, now or when made. */
  abort(err: Error): void {
    const k = this.#collecting;
    if (k !== null) {
      this.#collecting = null;
      this.#chunks = [];
      k.reject(err);
    }
    if (this.#stream !== null) abortBody(this.#stream, err);
    else if (!this.#ended) this.#error = err;
  }

  /**
   * The whole body and its trailers when the response has ended and no
   * stream was made; its bytes are handed over, once (a stream made later
   * is empty). Else null: read the stream.
   */
  take(): CompleteBody | null {
    if (this.#stream !== null || !this.#ended || this.#taken) return null;
    this.#taken = true;
    return { bytes: this.#takeBytes(), trailers: this.trailers };
  }

  /**
   * The whole body, for a reader that wants all of it (the Agent's `bytes()`, `text()`): what arrived is kept with
   * what arrives until the end, without a stream, its events and ticks per chunk (an HTTP/2 origin that sends its
   * head and its DATA in two reads had every `text()` go through one) and without pausing the transport — as the
   * stream's reader would have read it all. Rejects with the exchange's failure. Null when a stream was made or the
   * body was taken: read the stream. Once called, a stream made later is empty.
   */
  collect(): Promise<Buffer> | null {
    if (this.#stream !== null || this.#taken) return null;
    this.#taken = true;
    if (this.#error) return Promise.reject(this.#error);
    if (this.#ended) return Promise.resolve(this.#takeBytes());
    return new Promise<Buffer>((resolve, reject) => {
      this.#collecting = { resolve, reject };
    });
  }

  #takeBytes(): Buffer {
    const chunks = this.#chunks;
    this.#chunks = [];
    return chunks.length === 1 ? bodyBytes(chunks[0]!) : Buffer.concat(chunks);
  }
}

/** What `Exchange.promise` resolves with: the body's stream made on first use of `body`. */
class ExchangeResponse implements ConnResponse {
  readonly status: number;
  readonly statusText: string;
  readonly headers: HeaderList;
  earlyData?: boolean;
  earlyDataRefused?: 'rejected' | 'too-early';
  reprioritize?: (priority: string) => void;
  #body: LazyBody;
  #x: Exchange;

  constructor(status: number, statusText: string, headers: HeaderList, body: LazyBody, x: Exchange) {
    this.status = status;
    this.statusText = statusText;
    this.headers = headers;
    this.#body = body;
    this.#x = x;
  }

  get trailers(): Promise<HeaderList> {
    return this.#x.trailersPromise;
  }

  get body(): Readable {
    return this.#body.stream;
  }

  takeComplete(): CompleteBody | null {
    return this.#body.take();
  }

  collect(): Promise<Buffer> | null {
    return this.#body.collect();
  }
}
