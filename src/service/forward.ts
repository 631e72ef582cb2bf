/**
 * Forward one front request through an Upstream: checks, routing, header
 * rewriting, streamed bodies both ways, error mapping, one log line.
 * Works on Node's h1 objects (`IncomingMessage`/`ServerResponse`) and,
 * in the shapes mux-front.ts gives requests of our HTTP/2 and HTTP/3 fronts alike.
 *
 * Invariant: once the response head is sent, a failure destroys the client
 * stream (h1: the socket, h2: RST_STREAM) so a truncated body never looks complete.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { reasonPhrase } from '../http/status.js';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { ErrorCode, toOriginlinkError } from '../errors.js';
import type { ServiceConfig } from './config.js';
import { downstreamHeaders, inspectRequest, isReject, trailerObject, upstreamHeaders } from './headers.js';
import type { Metrics } from './metrics.js';
import { hostOnly, rewritePath, type Router } from './router.js';
import type { Upstream } from './upstream.js';
import type { RequestCommon } from '../agent/agent.js';
import { propagation, ROOT_CONTEXT, type Context } from '@opentelemetry/api';

/** A request of a multiplexed front (mux-front.ts): Node's request fields on the body stream. */
export type MuxFrontRequest = IncomingMessage & { stream: { endAfterHeaders: boolean } };
export type FrontRequest = IncomingMessage | MuxFrontRequest;
export type FrontResponse = ServerResponse;

/** What one config generation offers the forwarder. */
export interface Generation {
  config: ServiceConfig;
  router: Router;
  upstreams: Map<string, Upstream>;
}

export interface FrontInfo { listener: string; secure: boolean }

export interface ForwardHooks {
  log: Logger;
  metrics: Metrics;
  /** True once shutdown began: h1 responses carry `Connection: close`. */
  draining: () => boolean;
}

class BodyTooLarge extends Error {}

const VERSION: Record<string, string> = { h1: '1.1', h2: '2', h3: '3' };

/** RFC 9110 §15.6: 502 for a bad or absent answer, 503 for our own overload, 504 for a timeout. */
export function statusForError(code: string): 502 | 503 | 504 {
  switch (code) {
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

const NO_EXTRA: Record<string, unknown> = {};

export async function forward(gen: Generation, front: FrontInfo, hooks: ForwardHooks, req: FrontRequest, res: FrontResponse): Promise<void> {
  const t0 = performance.now();
  // h2 and h3 share the rules of multiplexed HTTP (pseudo-headers, no Transfer-Encoding, no Connection).
  const h2 = req.httpVersionMajor >= 2;
  const clientVersion = h2 ? String(req.httpVersionMajor) : req.httpVersion;
  const cfg = gen.config;
  const remote = req.socket?.remoteAddress ?? '';
  const method = req.method ?? 'GET';
  let target = req.url ?? '/';
  // Fields of the request log line, gathered only when that line is written.
  const log: Record<string, unknown> | null = cfg.logging.requests ? { method, path: target, client: clientVersion, listener: front.listener, remote } : null;
  const done = (status: number, extra: Record<string, unknown> = NO_EXTRA): void => {
    hooks.metrics.frontRequest(front.listener, clientVersion, status);
    if (log) hooks.log.info({ ...log, status, totalMs: ms(performance.now() - t0), ...extra }, 'request');
  };
  const refuse = (status: number, reason: string, code: string, headers: Record<string, string> = {}): void => {
    if (!res.headersSent && !res.destroyed) {
      const body = `${status} ${reasonPhrase(status)}: ${reason}\n`;
      const h: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(body)), 'x-originlink-error': code, ...headers };
      if (!h2 && (hooks.draining() || status === 400 || status === 413 || status === 431)) h['connection'] = 'close';
      (res as ServerResponse).writeHead(status, h);
      if (method === 'HEAD') (res as ServerResponse).end();
      else (res as ServerResponse).end(body);
    }
    done(status, { error: code, reason });
  };

  const facts = inspectRequest(req.rawHeaders, h2, cfg.limits);
  if (isReject(facts)) {
    hooks.metrics.front.rejected.inc({ listener: front.listener, reason: facts.status === 431 ? 'headers' : facts.status === 413 ? 'body_size' : 'framing' });
    refuse(facts.status, facts.reason, facts.status === 431 ? 'headers_too_large' : facts.status === 413 ? 'body_too_large' : 'bad_request');
    return;
  }
  let authority = facts.authority ?? '';
  // RFC 9112 §3.2.2: an absolute-form target's authority replaces Host.
  if (target.charCodeAt(0) !== 0x2f && /^https?:\/\//i.test(target)) {
    try {
      const u = new URL(target);
      authority = u.host;
      target = `${u.pathname}${u.search}`;
    } catch {
      refuse(400, 'invalid request target', 'bad_request');
      return;
    }
  }
  if (!target.startsWith('/')) {
    refuse(400, 'unsupported request target', 'bad_request');
    return;
  }
  const match = gen.router.match(hostOnly(authority), target);
  if (!match) {
    hooks.metrics.front.rejected.inc({ listener: front.listener, reason: 'no_route' });
    refuse(404, `no route for ${hostOnly(authority)}${target.split('?')[0]}`, 'no_route');
    return;
  }
  const route = match.route;
  const upstream = gen.upstreams.get(route.origin) as Upstream;
  if (log) {
    log['route'] = match.index;
    log['origin'] = upstream.name;
  }

  const headers = upstreamHeaders(req.rawHeaders, {
    clientIp: remote.startsWith('::ffff:') ? remote.slice(7) : remote,
    proto: front.secure ? 'https' : 'http',
    authority,
    clientVersion,
    via: cfg.proxy.via,
    xff: cfg.proxy.xForwardedFor,
    teTrailers: facts.teTrailers,
  });
  const stream = (req as MuxFrontRequest).stream;
  const hasBody = h2 ? !stream?.endAfterHeaders && facts.contentLength !== 0 : (facts.contentLength ?? 0) > 0 || facts.chunked;
  let tooLarge = false;
  const max = cfg.limits.maxBodyBytes;
  const body = hasBody
    ? (async function* bounded(): AsyncGenerator<Uint8Array> {
        let n = 0;
        for await (const c of req as AsyncIterable<Buffer>) {
          n += c.length;
          if (max > 0 && n > max) { tooLarge = true; throw new BodyTooLarge(`request body exceeds ${max} bytes`); }
          yield c;
        }
      })()
    : null;

  const signal = new RequestSignal();
  const onClose = (): void => { if (!res.writableFinished) signal.abort(); };
  res.once('close', onClose);
  hooks.metrics.inflight++;
  upstream.inflight++;
  const hostHeader = route.hostHeader === 'origin' ? null : route.hostHeader === 'preserve' ? authority : route.hostHeader;
  try {
    let r;
    try {
      const opts: RequestCommon = { method, headers, body, signal: signal as unknown as AbortSignal };
      // W3C Trace Context: the upstream span continues the client's trace (a no-op without an OpenTelemetry SDK).
      const tc = traceContextOf(headers);
      if (tc) opts.traceContext = tc;
      r = await upstream.request(rewritePath(route, target), opts, hostHeader);
    } catch (e) {
      const err = toOriginlinkError(e);
      if (tooLarge) {
        hooks.metrics.front.rejected.inc({ listener: front.listener, reason: 'body_size' });
        refuse(413, `body larger than ${max} bytes`, 'body_too_large');
      } else if (signal.aborted || res.destroyed) {
        done(499, { error: ErrorCode.ABORTED, reason: 'client went away' });
      } else {
        const status = statusForError(err.code);
        refuse(status, `origin ${upstream.name}: ${shortReason(err.message)}`, err.code, status === 503 ? { 'retry-after': '1' } : {});
      }
      return;
    }
    const up = r.res;
    if (log) Object.assign(log, { upstream: r.url, protocol: up.protocol, reused: up.reused, attempts: up.attempts, queueMs: ms(up.timings.queueMs), ttfbMs: ms(up.timings.ttfbMs) });
    const out = downstreamHeaders(up.headers, VERSION[up.protocol] ?? '1.1', cfg.proxy.via);
    if (!h2 && hooks.draining()) out['connection'] = 'close';
    if (res.destroyed) { up.body.destroy(); done(499, { error: ErrorCode.ABORTED }); return; }
    const pipe = new BodyPipe(up.body, res);
    try {
      (res as ServerResponse).writeHead(up.status, out);
      await pipe.run();
      const tr = trailerObject(await up.trailers);
      if (tr && (h2 || (res as ServerResponse).chunkedEncoding)) res.addTrailers(tr);
      res.end();
      done(up.status, log ? { bytes: pipe.bytes } : NO_EXTRA);
    } catch (e) {
      up.body.destroy();
      const gone = signal.aborted || res.destroyed;
      res.destroy();
      done(gone ? 499 : 502, { bytes: pipe.bytes, error: gone ? ErrorCode.ABORTED : toOriginlinkError(e).code, reason: gone ? 'client went away' : 'origin failed mid-response', upstreamStatus: up.status });
    }
  } finally {
    (res as ServerResponse).off('close', onClose);
    upstream.done();
    hooks.metrics.inflight--;
  }
}

/**
 * Streams an origin body into the front response with backpressure, on
 * events (an async iterator costs several promises per chunk). `run()`
 * settles once: at the body's end, or at the first failure of either side.
 */
class BodyPipe {
  bytes = 0;
  #body: Readable;
  #res: ServerResponse;
  #resolve: (() => void) | null = null;
  #reject: ((e: Error) => void) | null = null;

  constructor(body: Readable, res: FrontResponse) {
    this.#body = body;
    this.#res = res as ServerResponse;
  }

  run(): Promise<void> {
    const body = this.#body;
    if (body.readableEnded) return Promise.resolve();
    if (body.errored) return Promise.reject(body.errored);
    if (body.destroyed) return Promise.reject(new Error('origin body closed before its end'));
    return new Promise<void>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
      body.on('end', this.#onEnd);
      body.on('error', this.#onError);
      body.on('close', this.#onBodyClose);
      this.#res.on('drain', this.#onDrain);
      this.#res.on('close', this.#onResClose);
      body.on('data', this.#onData);
    });
  }

  #onData = (c: Buffer): void => {
    this.bytes += c.length;
    if (!this.#res.write(c)) this.#body.pause();
  };
  #onDrain = (): void => { this.#body.resume(); };
  #onEnd = (): void => {
    const r = this.#resolve;
    this.#cleanup();
    r?.();
  };
  #onError = (e: Error): void => this.#fail(e);
  #onBodyClose = (): void => { if (!this.#body.readableEnded) this.#fail(this.#body.errored ?? new Error('origin body closed before its end')); };
  #onResClose = (): void => this.#fail(new Error('client went away'));

  #fail(e: Error): void {
    const r = this.#reject;
    this.#cleanup();
    r?.(e);
  }

  #cleanup(): void {
    this.#resolve = null;
    this.#reject = null;
    const body = this.#body;
    body.off('data', this.#onData);
    body.off('end', this.#onEnd);
    body.off('error', this.#onError);
    body.off('close', this.#onBodyClose);
    this.#res.off('drain', this.#onDrain);
    this.#res.off('close', this.#onResClose);
  }
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
