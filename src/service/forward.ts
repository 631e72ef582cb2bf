/**
 * Forward one front request through an Upstream, in named phases:
 *
 *   1. request checks     forward-target.ts checkRequest: limits, framing, scheme, method, request target
 *   2. choose the target  forward-target.ts chooseTarget: route, upstream, the request it is asked
 *   3. upstream request   here: the request body (read whole, spooled or streamed), the client's turns
 *                         (client-slots.ts Turns), the Agent's request, a 425 sent again after the handshake;
 *                         an Upgrade or extended CONNECT goes to upgrade.ts instead
 *   4. response           forward-response.ts: its head and status for an error; here: whole, or streamed
 *                         (through a spool when the client falls behind)
 *   5. log                `#done`: the front's metric and the request log line, once, when the request is over
 *
 * Every front is one of our servers (HTTP/1.1, HTTP/2, HTTP/3), so this is a RequestHandler (server/request.ts): a
 * request in, the response to send out. The servers relay the origin's body with backpressure and its trailers after
 * it; the head is parsed once, by the server.
 *
 * Invariant: once the response head is sent, a failure cuts the client's stream (h1: the connection, h2/h3: the
 * stream) so a truncated body never looks complete — the servers do this when the body errors.
 */
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { OriginResponse } from '../agent/response.js';
import { ErrorCode, OriginlinkError, toOriginlinkError } from '../errors.js';
import { reasonPhrase } from '../http/status.js';
import type { HeaderList } from '../http/types.js';
import type { ServerRequest, ServerResponse } from '../server/request.js';
import { readWhole, ReadWholeError, spoolWhole, withSpool } from '../util/body.js';
import type { SignalLike } from '../util/leg-signal.js';
import { OnceListeners } from '../util/once-listeners.js';
import { spoolReadable, type Spool } from '../util/spool.js';
import { Turns } from './client-slots.js';
import type { ServiceConfig } from './config.js';
import {
  clientHeaders,
  descriptorsOut,
  logAnswer,
  logFailure,
  ms,
  shortReason,
  statusForError,
  traceContextOf,
  watchBody,
} from './forward-response.js';
import { checkRequest, chooseTarget, Refusal, type FrontInfo, type Generation } from './forward-target.js';
import { trailerList } from './headers.js';
import type { Metrics } from './metrics.js';
import { RequestRecord, type RequestLog } from './request-log.js';
import { openTunnel } from './upgrade.js';
import type { Upstream, UpstreamRequest } from './upstream.js';

export type { FrontInfo, Generation } from './forward-target.js';
export { statusForError } from './forward-response.js';

export interface ForwardHooks {
  log: Logger;
  /** The request log line (request-log.ts), when `logging.requests` is on. */
  requestLog: RequestLog;
  metrics: Metrics;
  /** True once shutdown began: HTTP/1.1 responses close their connection. */
  draining: () => boolean;
  /** The Alt-Svc value naming our h3 listeners that are up (RFC 7838), or null. */
  altSvc: () => string | null;
  /**
   * A spool for one body: `memoryBytes` in memory, then up to `fileBytes` in a temporary file (the service's budget and
   * directory).
   */
  spool: (memoryBytes: number, fileBytes: number) => Spool;
  /**
   * Told of an origin request that failed for want of file descriptors (EMFILE, ENFILE): the fronts pause
   * (fd-guard.ts).
   */
  exhausted: (err: NodeJS.ErrnoException, where: string) => void;
}

class BodyTooLarge extends Error {}

/** What a request's end adds to its log line. */
type LineEnd = Partial<Pick<RequestRecord, 'tunnel' | 'bytes' | 'error' | 'reason' | 'upstreamStatus'>>;
const NO_EXTRA: LineEnd = {};

/**
 * Forward one request: a response right away for one refused by its head, else the promise of the origin's
 * answer. One Forwarding object carries the request through (no async frame or closures per step).
 */
export function forward(
  gen: Generation,
  front: FrontInfo,
  hooks: ForwardHooks,
  req: ServerRequest,
): ServerResponse | Promise<ServerResponse> {
  try {
    return new Forwarding(gen, front, hooks, req).start();
  } catch (e) {
    return bug(hooks, e);
  }
}

/**
 * A throw in the forwarder is a bug of ours: it becomes the server's 500 (or a cut stream once the head went out);
 * logged once, where it is first caught (the step that threw, or the path's promise that carried it).
 */
function bug(hooks: ForwardHooks, e: unknown): never {
  if (!(typeof e === 'object' && e !== null && LOGGED in e)) {
    hooks.log.error({ err: e }, 'forwarding failed');
    try {
      if (typeof e === 'object' && e !== null) Object.defineProperty(e, LOGGED, { value: true });
    } catch {
      /* a frozen object: logged again if met again */
    }
  }
  throw e;
}
const LOGGED = Symbol('originlink.forwardBugLogged');

/**
 * One forwarded request. It is also the request's abort signal towards the Agent and the transports, typed as what
 * they take (SignalLike: `aborted`, `reason`, `add/removeEventListener('abort')`), without an EventTarget and an
 * AbortController per request (a real one per request cost measurable CPU: src/group/health.ts says how much).
 * Invariant: each listener runs at most once.
 */
class Forwarding extends OnceListeners<void> implements SignalLike {
  aborted = false;
  readonly #gen: Generation;
  readonly #front: FrontInfo;
  readonly #hooks: ForwardHooks;
  readonly #req: ServerRequest;
  readonly #cfg: ServiceConfig;
  /** h2 and h3 share the rules of multiplexed HTTP (pseudo-headers, no Transfer-Encoding, no Connection). */
  readonly #mux: boolean;
  /** Fields of the request log line, gathered only when that line is written. */
  readonly #log: RequestRecord | null;
  readonly #t0: number;
  #upstream: Upstream | null = null;
  /** Its turns among its client's requests (limits.maxUpstreamPerClient, maxUpstreamPerAddress), when limited. */
  #turns: Turns | null = null;
  #settled = false;
  #tooLarge = false;
  #up: OriginResponse | null = null;
  /** The spool a request body was read whole into (proxy.maxRequestTempFileBytes), once read. */
  #requestSpool: Spool | null = null;
  /** The spool of a streamed response whose client fell behind (proxy.maxTempFileBytes). */
  #spool: Spool | null = null;
  /** The relay through the spool is over. */
  #relayed = false;
  /**
   * The origin's body ended whole while its spool still relayed: its bytes, for the line the relay's end writes; else
   * -1.
   */
  #bytesIn = -1;

  constructor(gen: Generation, front: FrontInfo, hooks: ForwardHooks, req: ServerRequest) {
    super();
    this.#gen = gen;
    this.#front = front;
    this.#hooks = hooks;
    this.#req = req;
    const cfg = (this.#cfg = gen.config);
    const v = req.version;
    this.#mux = v === '2' || v === '3';
    this.#log = cfg.logging.requests
      ? new RequestRecord(req.method, req.path, v, front.listener, req.remoteAddress)
      : null;
    if (this.#log && front.clientCertHeader !== undefined) {
      // A listener that checks client certificates logs the one each request's connection verified.
      const c = req.clientCertificate();
      if (c) {
        this.#log.clientCert = c.subject;
        this.#log.clientCertSha256 = c.fingerprint;
      }
    }
    this.#t0 = this.#log ? performance.now() : 0;
  }

  addEventListener(_type: 'abort', fn: () => void): void {
    if (!this.aborted) this.listen(fn);
  }
  removeEventListener(_type: 'abort', fn: () => void): void {
    this.unlisten(fn);
  }
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.fire();
  }

  /** The metric and, with a request log, its line. */
  #done(status: number, end: LineEnd = NO_EXTRA): void {
    this.#hooks.metrics.frontRequest(this.#front.listener, this.#req.version, status);
    const log = this.#log;
    if (log) {
      log.status = status;
      log.totalMs = ms(performance.now() - this.#t0);
      if (end !== NO_EXTRA) {
        log.tunnel = end.tunnel;
        log.bytes = end.bytes;
        log.error = end.error;
        log.reason = end.reason;
        log.upstreamStatus = end.upstreamStatus;
      }
      this.#hooks.requestLog.write(log, this.#cfg.logging.flushMs);
    }
  }

  /** `logged`: the reason for the log line when the client is told less (`reason`). */
  #refuse(status: number, reason: string, code: string, extra: HeaderList = [], logged = reason): ServerResponse {
    this.#done(status, { error: code, reason: logged });
    const body = `${status} ${reasonPhrase(status)}: ${reason}\n`;
    // h1: after these the rest of the request cannot be trusted or was not read (§15.5.9: 408 SHOULD close).
    const close =
      !this.#mux && (this.#hooks.draining() || status === 400 || status === 408 || status === 413 || status === 431);
    const res: ServerResponse = {
      status,
      headers: [['content-type', 'text/plain; charset=utf-8'], ['x-originlink-error', code], ...extra],
      body,
    };
    if (close) res.close = true;
    return res;
  }

  #gone(reason: string): ServerResponse {
    // A body read whole into a temporary file that never reached the Agent (the client left while waiting for its
    // turn) is nobody's to close else; one the Agent had is destroyed by it (ReplayBody.abandon), close is once.
    this.#requestSpool?.close();
    const refused = this.#refusedBody;
    if (refused !== null) {
      // The front's refusal is the answer (server/h1.ts); the line says so, as for a head the parser refused.
      const status = refused.details['status'] as number;
      this.#done(status, { error: 'bad_request', reason: refused.message });
      return { status };
    }
    this.#done(499, { error: ErrorCode.ABORTED, reason });
    return { status: 499 };
  }

  /** The front refused this request's body (server/h1.ts: broken framing), or null. */
  #refusedBody: OriginlinkError | null = null;

  #rejected(reason: string): void {
    this.#hooks.metrics.front.rejected.inc({ listener: this.#front.listener, reason });
  }

  #refusal(r: Refusal): ServerResponse {
    if (r.rejected !== null) this.#rejected(r.rejected);
    return this.#refuse(r.status, r.reason, r.code);
  }

  /** The checks of the head, then the origin's answer (or the refusal). */
  start(): ServerResponse | Promise<ServerResponse> {
    const req = this.#req;
    const cfg = this.#cfg;
    const facts = checkRequest(req, cfg, this.#mux);
    if (facts instanceof Refusal) return this.#refusal(facts);
    const t = chooseTarget(req, facts, this.#gen, this.#front, this);
    if (t instanceof Refusal) return this.#refusal(t);
    const upstream = (this.#upstream = t.upstream);
    if (this.#log) {
      this.#log.route = t.routeIndex;
      this.#log.origin = upstream.name;
    }
    const route = t.route;
    const o = t.request;
    // An HTTP/1.1 Upgrade or an extended CONNECT (RFC 8441): a tunnel on an origin connection of its own (upgrade.ts).
    if (req.protocol !== null) return this.#tunnel(o).catch((e) => bug(this.#hooks, e));
    // A body of a declared length is read whole before an origin is asked (nginx's proxy_request_buffering): up to
    // proxy.requestBufferBytes in memory — it then leaves behind its head in one write, and a retry can send it
    // again — and up to proxy.maxRequestTempFileBytes through a temporary file. A slow client holds no origin
    // connection or stream meanwhile; one that leaves or stalls never reaches the origin. A route can turn it off.
    const length = req.bodyLength;
    if (length !== null && length > 0 && route.requestBuffering) {
      if (length <= cfg.proxy.requestBufferBytes) return this.#buffered(o).catch((e) => bug(this.#hooks, e));
      if (length <= cfg.proxy.maxRequestTempFileBytes) {
        const spool = this.#hooks.spool(cfg.proxy.requestBufferBytes, length);
        // The budget of temporary files is spent: the body streams, as an unbuffered one.
        if (spool.reserve(length - cfg.proxy.requestBufferBytes))
          return this.#spooled(o, spool).catch((e) => bug(this.#hooks, e));
        spool.close();
      }
    }
    // The request body stream is only touched when there is a body (a server makes none for a GET). It goes to the
    // origin as it is (the transport relays a stream by its events) unless a limit must count an undeclared length:
    // a declared one over the limit was refused with the head, and the servers hold a body to its declared length.
    const max = cfg.limits.maxBodyBytes;
    if (req.bodyLength !== 0)
      o.body = max === 0 || req.bodyLength !== null ? (req.body as Readable) : this.#bounded(max);
    return this.#send(o);
  }

  async #tunnel(o: UpstreamRequest): Promise<ServerResponse> {
    const req = this.#req;
    const upstream = this.#upstream as Upstream;
    try {
      const res = await openTunnel(req, {
        upstream,
        path: o.path,
        authority: o.authority ?? new URL(upstream.config.urls[0] as string).host,
        headers: o.headers as HeaderList,
        connectTimeoutMs: upstream.config.pool.connectTimeoutMs ?? 10_000,
        headersTimeoutMs: upstream.config.pool.headersTimeoutMs ?? 30_000,
        bodyTimeoutMs: upstream.config.pool.bodyTimeoutMs ?? 30_000,
      });
      this.#done(res.status, { tunnel: req.protocol as string });
      return res;
    } catch (e) {
      const err = toOriginlinkError(e);
      return this.#upstreamFailed(statusForError(err.code), err.message, err.code);
    }
  }

  /**
   * An origin's failure as the client's answer: the status and the error's code; what failed (the origin's name,
   * addresses, an egress proxy's host:port) only with `proxy.errorDetails` — the log line has it always.
   */
  #upstreamFailed(status: number, message: string, code: string): ServerResponse {
    const detail = `origin ${(this.#upstream as Upstream).name}: ${shortReason(message)}`;
    const extra: HeaderList = status === 503 ? [['retry-after', '1']] : [];
    return this.#refuse(status, this.#cfg.proxy.errorDetails ? detail : code, code, extra, detail);
  }

  async #buffered(o: UpstreamRequest): Promise<ServerResponse> {
    const idleMs = (this.#upstream as Upstream).config.pool.bodyTimeoutMs;
    try {
      o.body = await readWhole(this.#req.body as Readable, idleMs, this.#cfg.limits.clientBodyTimeoutMs);
    } catch (e) {
      return this.#bodyNotIn(e);
    }
    return this.#send(o);
  }

  /** A body too large for memory read whole through `spool` (its temporary file) first, then sent from it. */
  async #spooled(o: UpstreamRequest, spool: Spool): Promise<ServerResponse> {
    const idleMs = (this.#upstream as Upstream).config.pool.bodyTimeoutMs;
    try {
      await spoolWhole(this.#req.body as Readable, spool, idleMs, this.#cfg.limits.clientBodyTimeoutMs);
    } catch (e) {
      spool.close();
      return this.#bodyNotIn(e);
    }
    this.#requestSpool = spool;
    o.body = spoolReadable(spool);
    return this.#send(o);
  }

  /**
   * A body read whole that did not come: RFC 9110 §15.5.9 408 for a client too slow (silent for the origin's body
   * timeout, or not done within limits.clientBodyTimeoutMs: one byte every two seconds is never silent for long),
   * 499 for one that left.
   */
  #bodyNotIn(e: unknown): ServerResponse {
    if (e instanceof ReadWholeError && e.why !== 'gone') {
      this.#rejected('body_timeout');
      return this.#refuse(
        408,
        e.why === 'idle' ? e.message : `request body not in within ${this.#cfg.limits.clientBodyTimeoutMs} ms`,
        ErrorCode.REQUEST_BODY_TIMEOUT,
      );
    }
    return this.#gone('client went away before its body was in');
  }

  /** A body of unknown length counted against limits.maxBodyBytes as it goes. */
  async *#bounded(max: number): AsyncGenerator<Uint8Array> {
    let n = 0;
    for await (const c of this.#req.body as AsyncIterable<Buffer>) {
      n += c.length;
      if (n > max) {
        this.#tooLarge = true;
        throw new BodyTooLarge(`request body exceeds ${max} bytes`);
      }
      yield c;
    }
  }

  /** The request to the origin, after its turns (its connection's, then its address's: client-slots.ts). */
  #send(o: UpstreamRequest): Promise<ServerResponse> {
    const req = this.#req;
    req.onAbort((why) => {
      // The front refused the request's body (broken framing): the client got its 400, it did not go away.
      if (why instanceof OriginlinkError && why.details['malformedBody'] === true) this.#refusedBody = why;
      this.abort();
    });
    const { maxUpstreamPerClient: perClient, maxUpstreamPerAddress: perAddress } = this.#cfg.limits;
    if (perClient <= 0 && perAddress <= 0) return this.#ask(o);
    const turns = (this.#turns = new Turns());
    const got = turns.take(req.connection, req.remoteAddress, perClient, perAddress, this, this.#log);
    if (got === true) return this.#ask(o);
    return got
      .then((left) =>
        left === null ? this.#ask(o) : this.#gone(`client went away while waiting for its turn (${left})`),
      )
      .catch((e) => bug(this.#hooks, e));
  }

  #ask(o: UpstreamRequest): Promise<ServerResponse> {
    this.#hooks.metrics.inflight++;
    const upstream = this.#upstream as Upstream;
    upstream.inflight++;
    // W3C Trace Context: the upstream span continues the client's trace (a no-op without an OpenTelemetry SDK).
    const tc = traceContextOf(o.headers as HeaderList);
    if (tc) o.traceContext = tc;
    return upstream.request(o).then(
      (up) => this.#answered(o, up),
      (e) => this.#failed(e),
    );
  }

  /** The origin's answer: relayed, or (a 425 to a request from early data) sent again after the client's handshake. */
  #answered(o: UpstreamRequest, up: OriginResponse): ServerResponse | Promise<ServerResponse> {
    try {
      if (up.status === 425 && this.#replayAfterHandshake(o)) return this.#afterHandshake(o, up);
    } catch (x) {
      return bug(this.#hooks, x);
    }
    return this.#respond(up);
  }

  /**
   * RFC 8470 §5.2: the origin answered 425 (Too Early) to a request we forwarded from early data. A client that
   * marked it `Early-Data: 1` itself gets the 425 (an intermediary MUST forward it then); else the request is sent
   * again once the client's handshake has completed (without the mark). Only a request without a body: the body
   * was streamed to the first attempt.
   */
  #replayAfterHandshake(o: UpstreamRequest): boolean {
    const req = this.#req;
    return req.earlyData && o.body === undefined && !req.headers.some((f) => f[0] === 'early-data');
  }

  #afterHandshake(o: UpstreamRequest, tooEarly: OriginResponse): Promise<ServerResponse> {
    tooEarly.body.resume();
    const again: UpstreamRequest = { ...o, headers: (o.headers as HeaderList).filter((f) => f[0] !== 'early-data') };
    return this.#req.handshakeDone().then(
      () =>
        (this.#upstream as Upstream).request(again).then(
          (up) => this.#respond(up),
          (e) => this.#failed(e),
        ),
      (e) => this.#failed(e),
    );
  }

  /** The origin's request is over (its response relayed, or it failed). */
  #finish(): void {
    if (this.#settled) return;
    this.#settled = true;
    (this.#upstream as Upstream).done();
    this.#hooks.metrics.inflight--;
    this.#turns?.release();
  }

  #failed(e: unknown): ServerResponse {
    try {
      this.#finish();
      const err = toOriginlinkError(e);
      if (this.#tooLarge) {
        this.#rejected('body_size');
        return this.#refuse(413, `body larger than ${this.#cfg.limits.maxBodyBytes} bytes`, 'body_too_large');
      }
      if (this.aborted) return this.#gone('client went away');
      // A group's failure names the endpoint that gave it.
      const endpoint = err.details['endpoint'];
      if (this.#log && typeof endpoint === 'string') this.#log.upstream = endpoint;
      if (this.#log) logFailure(this.#log, err);
      const errno = descriptorsOut(err);
      if (errno) this.#hooks.exhausted(errno, `origin ${(this.#upstream as Upstream).name}`);
      return this.#upstreamFailed(statusForError(err.code), err.message, err.code);
    } catch (x) {
      return bug(this.#hooks, x);
    }
  }

  #respond(up: OriginResponse): ServerResponse {
    try {
      this.#hooks.metrics.upstreamTtfb((this.#upstream as Upstream).name, up.origin, up.protocol, up.timings.ttfbMs);
      const log = this.#log;
      if (log) logAnswer(log, up);
      // Ours Alt-Svc on TLS fronts other than h3 itself.
      const out = clientHeaders(
        up,
        this.#cfg.proxy.via,
        this.#front.secure && this.#req.version !== '3' ? this.#hooks.altSvc() : null,
      );
      // A response that already ended (a small one usually has: head, data and end in one read) leaves as bytes:
      // no stream, listeners or relay for it. Its trailers, if any, go with it.
      const whole = up.takeComplete();
      let res: ServerResponse;
      if (whole) {
        this.#finish();
        this.#done(up.status, log ? { bytes: whole.bytes.length } : NO_EXTRA);
        res = { status: up.status, headers: out, body: whole.bytes, checked: true };
        const trailers = whole.trailers.length ? trailerList(whole.trailers) : null;
        if (trailers) res.trailers = trailers;
      } else {
        this.#up = up;
        const body = up.body;
        watchBody(body, log !== null, this);
        // Past what the relay's memory holds, a client that reads slower than the origin sends gets the rest from a
        // temporary file (proxy.maxTempFileBytes, nginx's proxy_buffering): the origin is done when it is done.
        if (this.#cfg.proxy.maxTempFileBytes > 0) withSpool(body, () => this.#spoolFor());
        res = {
          status: up.status,
          headers: out,
          body,
          trailersLater: up.trailers.then(trailerList, () => null),
          checked: true,
        };
      }
      if (!this.#mux && this.#hooks.draining()) res.close = true;
      return res;
    } catch (e) {
      return bug(this.#hooks, e);
    }
  }

  /** The spool the relay makes once its client falls behind: its close tells whether the client got the rest. */
  #spoolFor(): Spool {
    const cfg = this.#cfg;
    const s = (this.#spool = this.#hooks.spool(cfg.proxy.responseBufferBytes, cfg.proxy.maxTempFileBytes));
    s.onClose = (delivered) => this.#relayOver(delivered);
    return s;
  }

  /**
   * The origin's body is over (watchBody): read to its end, or cut. Its origin request is done (the connection or
   * stream credit is free); the log line waits while a spool still holds what the client has yet to take.
   */
  bodyOver(bytes: number, failed: boolean): void {
    this.#finish();
    const status = (this.#up as OriginResponse).status;
    const gone = this.aborted;
    if (failed)
      this.#done(gone ? 499 : 502, {
        bytes,
        error: gone ? ErrorCode.ABORTED : 'OL_UPSTREAM_BODY',
        reason: gone ? 'client went away' : 'origin failed mid-response',
        upstreamStatus: status,
      });
    else if (this.#spool !== null && !this.#relayed) this.#bytesIn = bytes;
    else this.#done(status, this.#log ? { bytes } : NO_EXTRA);
  }

  /** The relay through the spool is over: the line of an origin body read whole, if it waited for this. */
  #relayOver(delivered: boolean): void {
    this.#relayed = true;
    const bytes = this.#bytesIn;
    if (bytes < 0) return; // the origin's body is not over: watchBody tells how it ends
    this.#bytesIn = -1;
    const status = (this.#up as OriginResponse).status;
    if (delivered) this.#done(status, this.#log ? { bytes } : NO_EXTRA);
    else
      this.#done(499, {
        // What went on towards the client, not what the origin sent: the rest stayed in the spool.
        bytes: bytes - (this.#spool?.untaken ?? 0),
        error: ErrorCode.ABORTED,
        reason: 'client went away or stopped reading before the rest of the response',
        upstreamStatus: status,
      });
  }
}
