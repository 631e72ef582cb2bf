/**
 * Forward one front request through an Upstream: checks, routing, header
 * rewriting, bodies streamed both ways, error mapping, one log line. Every
 * front is one of our servers (HTTP/1.1, HTTP/2, HTTP/3), so this is a
 * RequestHandler (transport/server-types.ts): a request in, the response to
 * send out. The servers relay the origin's body with backpressure and its
 * trailers after it; the head is parsed once, by the server.
 *
 * Invariant: once the response head is sent, a failure cuts the client's
 * stream (h1: the connection, h2/h3: the stream) so a truncated body never
 * looks complete — the servers do this when the body errors.
 */
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { ErrorCode, toOriginlinkError } from '../errors.js';
import { reasonPhrase } from '../http/status.js';
import type { HeaderList } from '../http/types.js';
import type { ServerRequest, ServerResponse } from '../transport/server-types.js';
import type { ServiceConfig } from './config.js';
import { downstreamHeaders, inspectRequest, isReject, trailerList, upstreamHeaders } from './headers.js';
import { clientSlots } from './client-slots.js';
import { readWhole, ReadWholeError } from '../util/body.js';
import type { Metrics } from './metrics.js';
import { hostOnly, rewritePath, type Router } from './router.js';
import { openTunnel } from './upgrade.js';
import { RequestRecord, type RequestLog } from './request-log.js';
import type { Upstream } from './upstream.js';
import type { RequestCommon } from '../agent/agent.js';
import { propagation, ROOT_CONTEXT, type Context } from '@opentelemetry/api';

/** What one config generation offers the forwarder. */
export interface Generation {
  config: ServiceConfig;
  router: Router;
  upstreams: Map<string, Upstream>;
}

export interface FrontInfo { listener: string; secure: boolean }

export interface ForwardHooks {
  log: Logger;
  /** The request log line (request-log.ts), when `logging.requests` is on. */
  requestLog: RequestLog;
  metrics: Metrics;
  /** True once shutdown began: HTTP/1.1 responses close their connection. */
  draining: () => boolean;
  /** The Alt-Svc value naming our h3 listeners that are up (RFC 7838), or null. */
  altSvc: () => string | null;
}

class BodyTooLarge extends Error {}

const VERSION: Record<string, string> = { h1: '1.1', h2: '2', h3: '3' };

/**
 * RFC 9110 §15.6: 502 for a bad or absent answer, 503 for our own overload, 504 for a timeout; and 408
 * (§15.5.9) when it was the client's request body that stalled on its way to the origin.
 */
export function statusForError(code: string): 408 | 502 | 503 | 504 {
  switch (code) {
    case ErrorCode.REQUEST_BODY_TIMEOUT:
      return 408;
    case ErrorCode.QUEUE_FULL:
    case ErrorCode.QUEUE_TIMEOUT:
    case ErrorCode.POOL_CLOSED:
      return 503;
    case ErrorCode.CONNECT_TIMEOUT:
    case ErrorCode.HEADERS_TIMEOUT:
      return 504;
    default:
      return 502;
  }
}

/**
 * The subset of AbortSignal the Agent and the transports use (`aborted`,
 * `add/removeEventListener('abort')`), without an EventTarget and an
 * AbortController per request. Invariant: each listener runs at most once.
 */
class RequestSignal {
  aborted = false;
  #fns: Array<() => void> = [];
  addEventListener(_type: 'abort', fn: () => void): void { if (!this.aborted) this.#fns.push(fn); }
  removeEventListener(_type: 'abort', fn: () => void): void {
    const i = this.#fns.indexOf(fn);
    if (i >= 0) this.#fns.splice(i, 1);
  }
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const fns = this.#fns;
    this.#fns = [];
    for (const fn of fns) fn();
  }
}

/** What a request's end adds to its log line. */
type LineEnd = Partial<Pick<RequestRecord, 'tunnel' | 'bytes' | 'error' | 'reason' | 'upstreamStatus'>>;
const NO_EXTRA: LineEnd = {};

export async function forward(gen: Generation, front: FrontInfo, hooks: ForwardHooks, req: ServerRequest): Promise<ServerResponse> {
  try {
    const clientVersion = req.version;
    // h2 and h3 share the rules of multiplexed HTTP (pseudo-headers, no Transfer-Encoding, no Connection).
    const mux = clientVersion === '2' || clientVersion === '3';
    const cfg = gen.config;
    const remote = req.remoteAddress;
    const method = req.method;
    const target = req.path;
    // Fields of the request log line, gathered only when that line is written.
    const log = cfg.logging.requests ? new RequestRecord(method, target, clientVersion, front.listener, remote) : null;
    const t0 = log ? performance.now() : 0;
    const done = (status: number, end: LineEnd = NO_EXTRA): void => {
      hooks.metrics.frontRequest(front.listener, clientVersion, status);
      if (log) {
        log.status = status;
        log.totalMs = ms(performance.now() - t0);
        if (end !== NO_EXTRA) {
          log.tunnel = end.tunnel;
          log.bytes = end.bytes;
          log.error = end.error;
          log.reason = end.reason;
          log.upstreamStatus = end.upstreamStatus;
        }
        hooks.requestLog.write(log, cfg.logging.flushMs);
      }
    };
    const refuse = (status: number, reason: string, code: string, extra: HeaderList = []): ServerResponse => {
      done(status, { error: code, reason });
      const body = `${status} ${reasonPhrase(status)}: ${reason}\n`;
      // h1: after these the rest of the request cannot be trusted or was not read (§15.5.9: 408 SHOULD close).
      const close = !mux && (hooks.draining() || status === 400 || status === 408 || status === 413 || status === 431);
      const res: ServerResponse = { status, headers: [['content-type', 'text/plain; charset=utf-8'], ['x-originlink-error', code], ...extra], body };
      if (close) res.close = true;
      return res;
    };

    const facts = inspectRequest(req.headers, req.authority || null, mux, cfg.limits);
    if (isReject(facts)) {
      hooks.metrics.front.rejected.inc({ listener: front.listener, reason: facts.status === 431 ? 'headers' : facts.status === 413 ? 'body_size' : 'framing' });
      return refuse(facts.status, facts.reason, facts.status === 431 ? 'headers_too_large' : facts.status === 413 ? 'body_too_large' : 'bad_request');
    }
    const authority = facts.authority ?? '';
    if (target.charCodeAt(0) !== 0x2f) return refuse(400, 'unsupported request target', 'bad_request');
    const match = gen.router.match(hostOnly(authority), target);
    if (!match) {
      hooks.metrics.front.rejected.inc({ listener: front.listener, reason: 'no_route' });
      return refuse(404, `no route for ${hostOnly(authority)}${target.split('?')[0]}`, 'no_route');
    }
    const route = match.route;
    const upstream = gen.upstreams.get(route.origin) as Upstream;
    if (log) {
      log.route = match.index;
      log.origin = upstream.name;
    }

    const headers = upstreamHeaders(req.headers, {
      clientIp: remote.startsWith('::ffff:') ? remote.slice(7) : remote,
      proto: front.secure ? 'https' : 'http',
      authority,
      clientVersion,
      via: cfg.proxy.via,
      xff: cfg.proxy.xForwardedFor,
      teTrailers: facts.teTrailers,
    });
    const hostHeader = route.hostHeader === 'origin' ? null : route.hostHeader === 'preserve' ? authority : route.hostHeader;
    if (req.protocol !== null) {
      // An HTTP/1.1 Upgrade or an extended CONNECT (RFC 8441): a tunnel on an origin connection of its own (upgrade.ts).
      try {
        const res = await openTunnel(req, {
          upstream,
          path: rewritePath(route, target),
          authority: hostHeader ?? new URL(upstream.config.urls[0] as string).host,
          headers,
          connectTimeoutMs: upstream.config.pool.connectTimeoutMs ?? 10_000,
        });
        done(res.status, { tunnel: req.protocol });
        return res;
      } catch (e) {
        const err = toOriginlinkError(e);
        return refuse(statusForError(err.code), `origin ${upstream.name}: ${shortReason(err.message)}`, err.code);
      }
    }
    // proxy.requestBufferBytes: a body of a declared length up to it is read whole before an origin is asked
    // (nginx's proxy_request_buffering, in memory): a slow client holds no origin connection or stream, the body
    // leaves behind its head in one write, and a retry can send it again.
    let buffered: Buffer | null = null;
    if (req.bodyLength !== null && req.bodyLength > 0 && req.bodyLength <= cfg.proxy.requestBufferBytes) {
      const idleMs = upstream.config.pool.bodyTimeoutMs;
      try {
        buffered = await readWhole(req.body as Readable, idleMs);
      } catch (e) {
        if (e instanceof ReadWholeError && e.why === 'idle') {
          hooks.metrics.front.rejected.inc({ listener: front.listener, reason: 'body_timeout' });
          return refuse(408, `request body sent nothing for ${idleMs} ms`, ErrorCode.REQUEST_BODY_TIMEOUT);
        }
        done(499, { error: ErrorCode.ABORTED, reason: 'client went away before its body was in' });
        return { status: 499 };
      }
    }
    let tooLarge = false;
    const max = cfg.limits.maxBodyBytes;
    // The request body stream is only touched when there is a body (a server makes none for a GET). It goes to the
    // origin as it is (the transport relays a stream by its events) unless a limit must count an undeclared length:
    // a declared one over the limit was refused with the head, and the servers hold a body to its declared length.
    const body = buffered ?? (req.bodyLength === 0 ? null
      : max === 0 || req.bodyLength !== null ? req.body as Readable
      : (async function* bounded(): AsyncGenerator<Uint8Array> {
          let n = 0;
          for await (const c of req.body as AsyncIterable<Buffer>) {
            n += c.length;
            if (max > 0 && n > max) { tooLarge = true; throw new BodyTooLarge(`request body exceeds ${max} bytes`); }
            yield c;
          }
        })());

    const signal = new RequestSignal();
    req.onAbort(() => signal.abort());
    // limits.maxUpstreamPerClient: over it, this request waits for one of the same client's to finish (client-slots.ts).
    const perClient = cfg.limits.maxUpstreamPerClient;
    const slots = perClient > 0 ? clientSlots(req.connection) : null;
    const queued = slots?.take(perClient) ?? null;
    if (queued) {
      const w0 = performance.now();
      const got = await new Promise<boolean>((resolve) => {
        let over = false;
        const onAbort = (): void => {
          if (over) return;
          over = true;
          if (!queued.leave()) slots!.release(); // the turn came just now: give it on
          resolve(false);
        };
        signal.addEventListener('abort', onAbort);
        void queued.wait.then(() => {
          if (over) return;
          over = true;
          signal.removeEventListener('abort', onAbort);
          resolve(true);
        });
      });
      if (!got) {
        done(499, { error: ErrorCode.ABORTED, reason: 'client went away while waiting for its turn (limits.maxUpstreamPerClient)' });
        return { status: 499 };
      }
      if (log) log.clientWaitMs = ms(performance.now() - w0);
    }
    hooks.metrics.inflight++;
    upstream.inflight++;
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      upstream.done();
      hooks.metrics.inflight--;
      slots?.release();
    };
    let up;
    try {
      const opts: RequestCommon = { method, headers, body, signal: signal as unknown as AbortSignal, responseBufferBytes: cfg.proxy.responseBufferBytes };
      // W3C Trace Context: the upstream span continues the client's trace (a no-op without an OpenTelemetry SDK).
      const tc = traceContextOf(headers);
      if (tc) opts.traceContext = tc;
      up = await upstream.request(rewritePath(route, target), opts, hostHeader);
    } catch (e) {
      finish();
      const err = toOriginlinkError(e);
      if (tooLarge) {
        hooks.metrics.front.rejected.inc({ listener: front.listener, reason: 'body_size' });
        return refuse(413, `body larger than ${max} bytes`, 'body_too_large');
      }
      if (signal.aborted) {
        done(499, { error: ErrorCode.ABORTED, reason: 'client went away' });
        return { status: 499 };
      }
      const status = statusForError(err.code);
      return refuse(status, `origin ${upstream.name}: ${shortReason(err.message)}`, err.code, status === 503 ? [['retry-after', '1']] : []);
    }
    if (log) {
      log.upstream = up.origin;
      log.protocol = up.protocol;
      log.reused = up.reused;
      log.attempts = up.attempts;
      log.queueMs = ms(up.timings.queueMs);
      log.ttfbMs = ms(up.timings.ttfbMs);
    }
    const out = withAltSvc(downstreamHeaders(up.headers, VERSION[up.protocol] ?? '1.1', cfg.proxy.via), front.secure && clientVersion !== '3' ? hooks.altSvc() : null);
    // A response that already ended (a small one usually has: head, data and end in one read) leaves as bytes:
    // no stream, listeners or relay for it. Its trailers, if any, go with it.
    const whole = up.takeComplete();
    let res: ServerResponse;
    if (whole) {
      finish();
      done(up.status, log ? { bytes: whole.bytes.length } : NO_EXTRA);
      res = { status: up.status, headers: out, body: whole.bytes, checked: true };
      const trailers = whole.trailers.length ? trailerList(whole.trailers) : null;
      if (trailers) res.trailers = trailers;
    } else {
      watchBody(up.body, log !== null, (bytes, failed) => {
        finish();
        const gone = signal.aborted;
        if (!failed) done(up.status, log ? { bytes } : NO_EXTRA);
        else done(gone ? 499 : 502, { bytes, error: gone ? ErrorCode.ABORTED : 'OL_UPSTREAM_BODY', reason: gone ? 'client went away' : 'origin failed mid-response', upstreamStatus: up.status });
      });
      res = { status: up.status, headers: out, body: up.body, trailersLater: up.trailers.then(trailerList, () => null), checked: true };
    }
    if (!mux && hooks.draining()) res.close = true;
    return res;
  } catch (e) {
    // A throw here is a bug of ours: it becomes the server's 500 (or a cut stream once the head went out); log it.
    hooks.log.error({ err: e }, 'forwarding failed');
    throw e;
  }
}

/**
 * The origin's Alt-Svc speaks of the origin's host, not of ours (RFC 7838 §2: an alternative is for
 * the origin the client asked): it is dropped, and ours — the h3 listeners of this service — is
 * added on TLS fronts other than h3 itself.
 */
function withAltSvc(fields: HeaderList, ours: string | null): HeaderList {
  let out = fields;
  if (fields.some(([n]) => n === 'alt-svc')) out = fields.filter(([n]) => n !== 'alt-svc');
  if (ours) out.push(['alt-svc', ours]);
  return out;
}

/**
 * Calls `end` once when the origin body is over: read to its end, or cut
 * (an origin failure, or the client leaving, which destroys it). Counts
 * bytes only when asked (the request log); otherwise no listener per chunk.
 */
function watchBody(body: Readable, count: boolean, end: (bytes: number, failed: boolean) => void): void {
  let bytes = 0;
  let over = false;
  const once = (failed: boolean): void => { if (!over) { over = true; end(bytes, failed); } };
  if (count) body.on('data', (c: Buffer) => { bytes += c.length; });
  body.once('end', () => once(false));
  body.once('close', () => once(!body.readableEnded));
  body.once('error', () => { /* reported through 'close' */ });
}

function shortReason(msg: string): string {
  const line = msg.split('\n')[0] ?? '';
  return line.length > 160 ? `${line.slice(0, 157)}...` : line;
}

function ms(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** The trace context a request carries in traceparent/tracestate (W3C Trace Context), or null without one. */
function traceContextOf(headers: ReadonlyArray<readonly [string, string]>): Context | null {
  let carrier: Record<string, string> | null = null;
  for (const [n, v] of headers) if (n === 'traceparent' || n === 'tracestate') (carrier ??= {})[n] = v;
  return carrier ? propagation.extract(ROOT_CONTEXT, carrier) : null;
}
