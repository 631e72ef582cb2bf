/**
 * The Agent as an undici Dispatcher: `dispatch(options, handler)` for
 * `fetch(url, { dispatcher })` (Node's global fetch and undici 7's), undici's
 * `request`/`stream`, and every library that takes a dispatcher. Both
 * handler styles are served: undici 6's (onConnect, onHeaders, onData,
 * onComplete, onError) and undici 7's controller style (onRequestStart,
 * onResponseStart, onResponseData, onResponseEnd, onResponseError).
 * Redirects, decompression and cookies stay with the caller (fetch).
 */
import { stringify as stringifyQuery } from 'node:querystring';
import { Readable } from 'node:stream';
import { abortedBy, ErrorCode, OriginlinkError, toOriginlinkError } from '../errors.js';
import type { CompleteBody, HeaderList, RequestBody } from '../http/types.js';
import { LegSignal, type SignalLike } from '../util/leg-signal.js';
import type { OriginResponse } from './response.js';

/** The fields of undici's DispatchOptions this Agent reads. */
export interface DispatchOptions {
  origin?: string | URL;
  path: string;
  method: string;
  headers?: Record<string, string | string[] | undefined> | string[] | Iterable<[string, string]> | null;
  body?: string | Uint8Array | Readable | AsyncIterable<Uint8Array> | Iterable<Uint8Array> | null;
  signal?:
    | AbortSignal
    | {
        aborted: boolean;
        addEventListener(t: 'abort', f: () => void): void;
        removeEventListener(t: 'abort', f: () => void): void;
      }
    | null;
  upgrade?: string | null;
  query?: Record<string, unknown>;
  [key: string]: unknown;
}

/** undici 7's controller handed to the new-style handler. */
export interface DispatchController {
  readonly aborted: boolean;
  readonly paused: boolean;
  readonly reason: Error | null;
  abort(reason: Error): void;
  pause(): void;
  resume(): void;
}

/** Either handler style (the optional members of both). */
export interface DispatchHandler {
  onRequestStart?(controller: DispatchController, context: unknown): void;
  onResponseStart?(
    controller: DispatchController,
    statusCode: number,
    headers: Record<string, string | string[]>,
    statusMessage?: string,
  ): void;
  onResponseData?(controller: DispatchController, chunk: Buffer): void;
  onResponseEnd?(controller: DispatchController, trailers: Record<string, string | string[]>): void;
  onResponseError?(controller: DispatchController, err: Error): void;
  onConnect?(abort: (reason?: Error) => void, context?: unknown): void;
  onHeaders?(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean;
  onData?(chunk: Buffer): boolean;
  onComplete?(trailers: Buffer[]): void;
  onError?(err: Error): void;
  onResponseStarted?(): void;
}

/** What `dispatch` needs of the Agent (it is the Agent). */
export interface RequestRunner {
  request(o: {
    origin: string;
    path: string;
    method: string;
    headers: HeaderList;
    body: RequestBody;
    signal: SignalLike;
  }): Promise<OriginResponse>;
}

/** undici's error codes and names for ours, where undici has one (its errors.js). */
const UNDICI: Partial<Record<string, [code: string, name: string]>> = {
  [ErrorCode.CONNECT_TIMEOUT]: ['UND_ERR_CONNECT_TIMEOUT', 'ConnectTimeoutError'],
  [ErrorCode.HEADERS_TIMEOUT]: ['UND_ERR_HEADERS_TIMEOUT', 'HeadersTimeoutError'],
  [ErrorCode.BODY_TIMEOUT]: ['UND_ERR_BODY_TIMEOUT', 'BodyTimeoutError'],
  [ErrorCode.HEADERS_TOO_LARGE]: ['UND_ERR_HEADERS_OVERFLOW', 'HeadersOverflowError'],
  [ErrorCode.BODY_MISMATCH]: ['UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'ResponseContentLengthMismatchError'],
  [ErrorCode.SOCKET_CLOSED]: ['UND_ERR_SOCKET', 'SocketError'],
  [ErrorCode.SOCKET_RESET]: ['UND_ERR_SOCKET', 'SocketError'],
  [ErrorCode.ABORTED]: ['UND_ERR_ABORTED', 'AbortError'],
  [ErrorCode.POOL_CLOSED]: ['UND_ERR_DESTROYED', 'ClientDestroyedError'],
  [ErrorCode.INVALID_ARGUMENT]: ['UND_ERR_INVALID_ARG', 'InvalidArgumentError'],
  [ErrorCode.UNSUPPORTED_PROTOCOL]: ['UND_ERR_NOT_SUPPORTED', 'NotSupportedError'],
};

/**
 * The error a dispatcher's caller sees: undici's code and name where one
 * exists (so code written for undici keeps working), our OriginlinkError as
 * `cause` (stable `OL_*` code, side, facts) and as `originlink`.
 */
export function toUndiciError(e: unknown): Error {
  const oe = toOriginlinkError(e);
  const m = UNDICI[oe.code];
  if (!m) return oe;
  const err = new Error(oe.message, { cause: oe }) as Error & { code: string; originlink: OriginlinkError };
  err.name = m[1];
  err.code = m[0];
  err.originlink = oe;
  return err;
}

/** Header fields of any shape undici accepts, lower-cased. */
export function dispatchHeaders(h: DispatchOptions['headers']): HeaderList {
  const out: HeaderList = [];
  if (h == null) return out;
  if (Array.isArray(h) && typeof h[0] === 'string') {
    // Flat [name, value, name, value, …]
    for (let i = 0; i + 1 < h.length; i += 2) out.push([String(h[i]).toLowerCase(), String(h[i + 1])]);
    return out;
  }
  if (Symbol.iterator in h) {
    // [name, value] pairs: an array of them, a Headers object, a Map.
    for (const pair of h as Iterable<[string, string]>) out.push([String(pair[0]).toLowerCase(), String(pair[1])]);
    return out;
  }
  for (const [k, v] of Object.entries(h as Record<string, string | string[] | undefined>)) {
    if (v === undefined) continue;
    const name = k.toLowerCase();
    if (Array.isArray(v)) for (const x of v) out.push([name, String(x)]);
    else out.push([name, String(v)]);
  }
  return out;
}

function headerObject(list: HeaderList): Record<string, string | string[]> {
  const o: Record<string, string | string[]> = {};
  for (const [k, v] of list) {
    const prev = o[k];
    if (prev === undefined) o[k] = v;
    else if (Array.isArray(prev)) prev.push(v);
    else o[k] = [prev, v];
  }
  return o;
}

function rawHeaders(list: HeaderList): Buffer[] {
  const out: Buffer[] = [];
  for (const [k, v] of list) out.push(Buffer.from(k, 'latin1'), Buffer.from(v, 'latin1'));
  return out;
}

class Controller implements DispatchController {
  aborted = false;
  paused = false;
  reason: Error | null = null;
  body: Readable | null = null;
  /**
   * What the Agent's request listens to: a signal without an EventTarget (util/leg-signal.ts), where an
   * AbortController made Node's EventTarget and transferable object for every dispatch.
   */
  readonly signal = new LegSignal(null);
  /** A body delivered whole (deliverWhole) whose end waits for resume(), or runs its failure on abort(). */
  held: { end: () => void; failed: () => void } | null = null;
  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason ?? new OriginlinkError(ErrorCode.ABORTED, 'local', 'request aborted');
    this.signal.abort(this.reason);
    this.body?.destroy();
    const held = this.held;
    this.held = null;
    held?.failed();
  }
  pause(): void {
    this.paused = true;
    this.body?.pause();
  }
  resume(): void {
    this.paused = false;
    this.body?.resume();
    const held = this.held;
    this.held = null;
    held?.end();
  }
}

/** One dispatch's response side: its controller, its handler (and which style), and how it ends. */
interface Delivery {
  ctl: Controller;
  handler: DispatchHandler;
  modern: boolean;
  /** The request failed: the handler told (once). */
  fail(e: unknown): void;
  /** The response is over: no failure may be told any more. */
  done(): void;
}

/**
 * Run one dispatch on `agent`. Returns true: the Agent queues internally
 * (per-origin `maxPending`), so the caller never needs to wait for 'drain'.
 */
export function dispatchOn(agent: RequestRunner, opts: DispatchOptions, handler: DispatchHandler): boolean {
  const modern = typeof handler.onRequestStart === 'function';
  const ctl = new Controller();
  let settled = false;
  // The caller's signal (undici's `signal` option) may outlive many requests: its listener goes when this one ends.
  let unlisten = (): void => {};
  const fail = (e: unknown): void => {
    if (settled) return;
    settled = true;
    unlisten();
    const err = ctl.reason ?? toUndiciError(e);
    try {
      if (modern) handler.onResponseError?.(ctl, err);
      else if (handler.onError) handler.onError(err);
    } catch {
      // The caller's error handler threw: nothing is left to tell (undici drops it too).
    }
  };
  try {
    if (opts.upgrade)
      throw new OriginlinkError(
        ErrorCode.UNSUPPORTED_PROTOCOL,
        'local',
        `upgrade (${opts.upgrade}) is not supported by the originlink dispatcher`,
      );
    // undici.connect() asks for a tunnel by method alone: never a request on a pooled connection.
    if (opts.method?.toUpperCase() === 'CONNECT')
      throw new OriginlinkError(
        ErrorCode.UNSUPPORTED_PROTOCOL,
        'local',
        'CONNECT is not supported by the originlink dispatcher',
      );
    if (opts.origin === undefined)
      throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', 'dispatch needs an origin');
    const origin = typeof opts.origin === 'string' ? opts.origin.replace(/\/+$/, '') : opts.origin.origin;
    // A caller's signal (undici request's `signal` option) aborts like the handler's abort.
    const sig = opts.signal;
    if (sig) {
      if (sig.aborted) ctl.abort(abortedBy(sig));
      else {
        const onAbort = (): void => ctl.abort(abortedBy(sig));
        sig.addEventListener('abort', onAbort);
        unlisten = () => sig.removeEventListener('abort', onAbort);
      }
    }
    if (modern) handler.onRequestStart?.(ctl, {});
    else
      handler.onConnect?.(
        (reason?: Error) => ctl.abort(reason ?? new OriginlinkError(ErrorCode.ABORTED, 'local', 'request aborted')),
        {},
      );
    if (ctl.aborted) {
      queueMicrotask(() => fail(ctl.reason));
      return true;
    }
    const body = opts.body instanceof Readable ? (opts.body as AsyncIterable<Uint8Array>) : (opts.body ?? null);
    agent
      .request({
        origin,
        path: withQuery(opts.path, opts.query),
        method: opts.method,
        headers: dispatchHeaders(opts.headers),
        body: body as RequestBody,
        signal: ctl.signal,
      })
      .then((res) => {
        const done = (): void => {
          settled = true;
          unlisten();
        };
        deliver(res, { ctl, handler, modern, fail, done });
      }, fail);
  } catch (e) {
    queueMicrotask(() => fail(e));
  }
  return true;
}

/** `path` with undici's `query` option appended (undici's core adds it; a dispatcher of our own must). */
function withQuery(path: string, query: Record<string, unknown> | undefined): string {
  if (!query) return path;
  // node:querystring, as undici: a space is %20 (URLSearchParams would write +), a null value `k=`.
  const text = stringifyQuery(query as Parameters<typeof stringifyQuery>[0]);
  return text === '' ? path : `${path}${path.includes('?') ? '&' : '?'}${text}`;
}

function deliver(res: OriginResponse, d: Delivery): void {
  const { ctl, handler, modern, fail } = d;
  // A body that ended with its head (a small response, the common case) is handed over whole, without the stream a
  // body otherwise becomes (OriginResponse.takeComplete): a Readable, its listeners and their events cost a dispatch
  // more than the Agent's request did.
  const whole = ctl.aborted ? null : res.takeComplete();
  const body = whole ? null : res.body;
  ctl.body = body;
  // A handler that throws (undici.stream's factory, a connect handler) fails the request like an abort: the body
  // goes, the connection with it, and onError says so — it was an unhandled rejection that ended the process, the
  // body left unread holding its connection.
  const thrown = (e: unknown): void => {
    if (!ctl.aborted) ctl.abort(e instanceof Error ? e : new Error(String(e)));
    body?.destroy();
    fail(e);
  };
  if (ctl.aborted) {
    body?.destroy();
    fail(ctl.reason);
    return;
  }
  try {
    handler.onResponseStarted?.();
    if (modern) {
      handler.onResponseStart?.(ctl, res.status, headerObject(res.headers), res.statusText);
    } else {
      const go = handler.onHeaders?.(res.status, rawHeaders(res.headers), () => ctl.resume(), res.statusText);
      if (go === false) ctl.pause();
    }
  } catch (e) {
    thrown(e);
    return;
  }
  if (ctl.aborted) {
    body?.destroy();
    fail(ctl.reason);
    return;
  }
  if (whole) {
    deliverWhole(whole, d, thrown);
    return;
  }
  const stream = body as Readable;
  stream.on('data', (chunk: Buffer) => {
    if (ctl.aborted) return;
    try {
      if (modern) handler.onResponseData?.(ctl, chunk);
      else if (handler.onData?.(chunk) === false) ctl.pause();
    } catch (e) {
      thrown(e);
    }
  });
  stream.once('error', fail);
  stream.once('end', () => {
    void res.trailers.then((t) => complete(t, d));
  });
  if (ctl.paused) stream.pause();
}

/**
 * A body that had ended with its head: its bytes in one data callback, then its end — once the handler has resumed,
 * if it paused (a handler that asks for no more data is told of no end either until it resumes, as undici's parser
 * holds the rest of a buffer it paused in). An abort while it waits fails the request.
 */
function deliverWhole(whole: CompleteBody, d: Delivery, thrown: (e: unknown) => void): void {
  const { ctl, handler, modern, fail } = d;
  const b = whole.bytes;
  if (b.length > 0) {
    try {
      if (modern) handler.onResponseData?.(ctl, b);
      else if (handler.onData?.(b) === false) ctl.pause();
    } catch (e) {
      thrown(e);
      return;
    }
  }
  if (ctl.aborted) {
    fail(ctl.reason);
    return;
  }
  const end = (): void => complete(whole.trailers, d);
  if (ctl.paused) ctl.held = { end, failed: () => fail(ctl.reason) };
  else end();
}

/** The response is over: the handler told, with its trailers. */
function complete(trailers: HeaderList, d: Delivery): void {
  const { ctl, handler, modern } = d;
  if (ctl.aborted) return;
  d.done();
  try {
    if (modern) handler.onResponseEnd?.(ctl, headerObject(trailers));
    else handler.onComplete?.(rawHeaders(trailers));
  } catch {
    // The request is over; a throw from its last callback has nowhere to go.
  }
}
