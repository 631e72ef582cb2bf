/** What `Agent.request()` resolves with: the response head, a streaming body, and the facts behind it. */
import type { Readable } from 'node:stream';
import type { CompleteBody, ConnectionFacts, ConnResponse, HeaderList, Protocol } from '../http/types.js';
import type { PoolResult } from '../pool/pool.js';

export interface ResponseTimings {
  /** Time waiting for a connection slot (includes dialing), ms. */
  queueMs: number;
  /**
   * From `request()` (the real clock) to the response head (its event-loop turn's reading: never later), ms, across all
   * attempts.
   */
  ttfbMs: number;
}

/** Where a response's body comes from: the connection's response, or a share of one (collapse). */
export type BodySource = Pick<ConnResponse, 'body' | 'takeComplete' | 'collect' | 'trailers'>;

export class OriginResponse {
  /** The origin that answered, as the request named it (with a failover list, the one that was reached). */
  readonly origin: string;
  readonly status: number;
  /** HTTP/1.1's reason phrase as the origin sent it ("Not Found"); '' over HTTP/2 and HTTP/3, which have none. */
  readonly statusText: string;
  readonly headers: HeaderList;
  readonly protocol: Protocol;
  /** The connection had served earlier requests. */
  readonly reused: boolean;
  /** How many times the request was sent (1 = no retry). */
  readonly attempts: number;
  /** Carried as 0-RTT early data. */
  readonly earlyData: boolean;
  /** Sent early but refused by the server (TLS rejected it, or 425 Too Early) and resent after the handshake. */
  readonly earlyDataRefused: 'rejected' | 'too-early' | null;
  readonly connectionId: number;
  readonly connection: Readonly<ConnectionFacts>;
  readonly timings: ResponseTimings;
  /**
   * An origin group sent a second attempt of this request to another endpoint (`hedge`); `origin` is the one that
   * answered.
   */
  readonly hedged: boolean;
  /** This request shared another one's origin request (`collapse`): the same head, its own body stream. */
  readonly collapsed: boolean;
  /** The connection's response: its body stream is made on first use of `body` (client/exchange.ts LazyBody). */
  #source: BodySource;
  #result: PoolResult;

  /** `r`: the pool's answer to the attempt that got this response (its connection and how long it queued). */
  constructor(origin: string, r: PoolResult, attempts: number, ttfbMs: number, hedged = false, collapsed = false) {
    const res = r.res;
    this.#result = r;
    this.hedged = hedged;
    this.collapsed = collapsed;
    this.origin = origin;
    this.status = res.status;
    this.statusText = res.statusText ?? '';
    this.headers = res.headers;
    this.#source = res;
    this.protocol = r.conn.protocol;
    this.reused = r.reused;
    this.attempts = attempts;
    this.earlyData = res.earlyData ?? false;
    this.earlyDataRefused = res.earlyDataRefused ?? null;
    this.connectionId = r.conn.id;
    this.connection = r.conn.facts;
    this.timings = { queueMs: r.queueMs, ttfbMs };
  }

  /**
   * The same response (head, facts, timings) with the body of `source`: what a collapsed request's waiters get each.
   */
  share(source: BodySource, collapsed: boolean): OriginResponse {
    const r = this.#result;
    const head = r.res;
    const res: ConnResponse = {
      status: head.status,
      statusText: head.statusText ?? '',
      headers: head.headers,
      get body() {
        return source.body;
      },
      trailers: source.trailers,
      takeComplete: () => source.takeComplete?.() ?? null,
      collect: () => source.collect?.() ?? null,
    };
    if (head.earlyData !== undefined) res.earlyData = head.earlyData;
    if (head.earlyDataRefused !== undefined) res.earlyDataRefused = head.earlyDataRefused;
    return new OriginResponse(
      this.origin,
      { conn: r.conn, reused: r.reused, queueMs: r.queueMs, res },
      this.attempts,
      this.timings.ttfbMs,
      this.hedged,
      collapsed,
    );
  }

  /** First value of a header (names are case-insensitive). */
  header(name: string): string | undefined {
    const n = name.toLowerCase();
    for (const [k, v] of this.headers) if (k === n) return v;
    return undefined;
  }

  /** The trailer fields, once the body ended (empty when there are none, or when the response failed). */
  get trailers(): Promise<HeaderList> {
    return this.#source.trailers;
  }

  /** The body's bytes; ends with the message, errors with an OriginlinkError. */
  get body(): Readable {
    return this.#source.body;
  }

  /**
   * The whole body and its trailers when the response has already ended and
   * `body` was never touched (the bytes are handed over; `body` is then
   * empty); else null, and the body is read from `body`. A relay sends a
   * small response this way without a stream per response.
   */
  takeComplete(): CompleteBody | null {
    return this.#source.takeComplete?.() ?? null;
  }

  /**
   * The whole body: taken whole if it has ended, collected without a stream if `body` was not read (ConnResponse
   * `collect`), else read from `body` — event-driven rather than async iteration: this sits on every request's hot path.
   */
  bytes(): Promise<Buffer> {
    const whole = this.takeComplete();
    if (whole) return Promise.resolve(whole.bytes);
    const collected = this.#source.collect?.() ?? null;
    if (collected) return collected;
    const parts: Buffer[] = [];
    return this.#consume((c) => parts.push(c)).then(() =>
      parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts),
    );
  }

  #consume(onChunk: (c: Buffer) => void): Promise<void> {
    const body = this.body;
    return new Promise<void>((resolve, reject) => {
      if (body.readableEnded) return resolve();
      if (body.errored) return reject(body.errored);
      body.on('data', onChunk);
      body.once('end', resolve);
      body.once('error', reject);
      body.once('close', () => {
        if (!body.readableEnded) reject(body.errored ?? new Error('body closed before its end'));
      });
    });
  }

  async text(): Promise<string> {
    return (await this.bytes()).toString('utf8');
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text());
  }

  /** Read and discard the body (frees the connection for reuse). */
  dump(): Promise<number> {
    const whole = this.takeComplete();
    if (whole) return Promise.resolve(whole.bytes.length);
    // Read as a stream, not collected: a body of any size is dropped as it comes, never held whole.
    let n = 0;
    return this.#consume((c) => {
      n += c.length;
    }).then(() => n);
  }
}
