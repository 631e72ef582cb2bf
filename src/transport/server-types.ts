/**
 * The request/response shapes of our servers (HTTP/2 and HTTP/3): a handler
 * gets a request with a streaming body and an abort signal and returns the
 * response to send.
 */
import type { Duplex, Readable } from 'node:stream';
import type { HeaderList, RequestBody } from '../http/types.js';

/**
 * What both servers send when a handler fails before its response started:
 * a 500 the client can act on. After the head went out the stream can only
 * be cut (CANCEL / H3_REQUEST_CANCELLED), so the client sees it incomplete.
 */
export const HANDLER_FAILED_HEAD: HeaderList = Object.freeze([[':status', '500'], ['content-length', '0']]) as HeaderList;

export interface ServerRequest {
  method: string;
  path: string;
  authority: string;
  scheme: string;
  /** Regular fields (no pseudo-headers), lower-case names, wire order. */
  headers: HeaderList;
  body: Readable;
  streamId: number;
  remoteAddress: string;
  remotePort: number;
  /** Aborted when the client resets the stream or the connection closes (an AbortController made on first use). */
  readonly signal: AbortSignal;
  /** The same event without an AbortSignal per request: `fn` runs once when the request is abandoned (at once if it was). */
  onAbort(fn: (reason: Error) => void): void;
  /** The HTTP version the client spoke: `1.0`, `1.1`, `2` or `3`. */
  version: string;
  /** The client connection it came on: one object per connection, the same for all its requests (per-client accounting). On HTTP/3 its `quicStats()` gives the QUIC connection's counters, RTT and congestion window. */
  connection: object;
  /** Request body bytes to come: 0 for none, the declared length, or null when streamed without one. */
  bodyLength: number | null;
  /**
   * The protocol a tunnel is asked for: HTTP/1.1 `Upgrade` with `Connection:
   * upgrade` (RFC 9110 §7.8), or extended CONNECT's `:protocol` (RFC 8441,
   * RFC 9220). Null for an ordinary request.
   */
  protocol: string | null;
  /**
   * HTTP/3 only: the priority the request started with (RFC 9218: a
   * PRIORITY_UPDATE the client sent before it, else its `priority` header,
   * else u=3 non-incremental). Later updates reorder the response without
   * changing this.
   */
  priority?: { urgency: number; incremental: boolean };
}

export interface ServerResponse {
  status: number;
  headers?: HeaderList;
  body?: RequestBody | Readable;
  trailers?: HeaderList;
  /** Trailers known only once a streamed body ended (a relayed response); sent after the body when it resolves to fields. */
  trailersLater?: Promise<HeaderList | null>;
  /**
   * Accept the tunnel the request asked for (`protocol`): after the head
   * (101 on HTTP/1.1, 2xx on an extended CONNECT stream) the server hands
   * the bytes both ways to `open` as one Duplex — the connection itself on
   * HTTP/1.1, the stream on HTTP/2 and HTTP/3. `body` is ignored.
   */
  tunnel?: (client: Duplex) => void;
  /** HTTP/1.1: close the connection after this response (`Connection: close`). Ignored by multiplexed servers. */
  close?: boolean;
}

export type RequestHandler = (req: ServerRequest) => ServerResponse | Promise<ServerResponse>;

/**
 * RFC 9110 §10.1.1: a client that sent `expect: 100-continue` may wait before
 * sending the body (curl: 1 s). Our servers always read bodies, so both answer
 * 100 with the head of any request that has a body to come (as nginx does).
 */
export function wantsContinue(fields: HeaderList): boolean {
  return fields.some(([n, v]) => n === 'expect' && v.toLowerCase() === '100-continue');
}

export const CONTINUE_HEAD: HeaderList = Object.freeze([[':status', '100']]) as HeaderList;

/** Declared body length of a request head (content-length), for `ServerRequest.bodyLength`: null when absent or not one number. */
export function declaredLength(fields: HeaderList): number | null {
  for (const [n, v] of fields) if (n === 'content-length') return /^[0-9]{1,15}$/.test(v) ? Number(v) : null;
  return null;
}

/**
 * Why a request was abandoned, told to whoever asks: `signal` (an
 * AbortController, made only when a handler reads it) and `onAbort`
 * listeners (cheap: the forwarder's). One per request in every server.
 */
export class RequestAbort {
  reason: Error | null = null;
  #ctl: AbortController | null = null;
  #fns: Array<(e: Error) => void> | null = null;

  get signal(): AbortSignal {
    if (!this.#ctl) {
      this.#ctl = new AbortController();
      if (this.reason) this.#ctl.abort(this.reason);
    }
    return this.#ctl.signal;
  }

  onAbort(fn: (e: Error) => void): void {
    if (this.reason) fn(this.reason);
    else (this.#fns ??= []).push(fn);
  }

  abort(e: Error): void {
    if (this.reason) return;
    this.reason = e;
    this.#ctl?.abort(e);
    const fns = this.#fns;
    this.#fns = null;
    if (fns) for (const f of fns) f(e);
  }
}
