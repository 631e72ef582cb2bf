/**
 * The request/response shapes of our servers (HTTP/1.1, HTTP/2 and HTTP/3):
 * a handler gets a request with a streaming body and an abort signal and
 * returns the response to send.
 */
import type { Duplex, Readable } from 'node:stream';
import { ErrorCode, OriginlinkError } from '../errors.js';
import { BAD_FIELD_VALUE_RE, isFieldName, isHopByHop } from '../http/fields.js';
import type { HeaderList, RequestBody, SharedHeaderList } from '../http/types.js';
import type { ClientCertificate } from './client-certificate.js';
import { OnceListeners } from '../util/once-listeners.js';

/** A multiplexed request's control data (its pseudo-header fields) and its regular fields. */
export interface RequestFields {
  method: string;
  /** Empty for a plain CONNECT, which has none (RFC 9113 §8.5, RFC 9114 §4.4). */
  path: string;
  authority: string;
  scheme: string;
  /** RFC 8441 / RFC 9220 extended CONNECT's `:protocol`, else null. */
  protocol: string | null;
  fields: HeaderList;
}

/**
 * One reading of a request's pseudo-header fields for the HTTP/2 and HTTP/3
 * servers. The section was checked by the protocol's state machine
 * (http/field-section.ts: each one once, none missing that the method needs,
 * `:authority` and Host the same host when both are there). RFC 9113 §8.3.1
 * and RFC 9114 §4.3.1 alike let a request carry Host instead of `:authority`
 * (a client that translates HTTP/1.1 sends only Host): the authority is then
 * Host's. `scheme`: the connection's, used when the request names none (CONNECT).
 */
export function readRequestFields(headers: SharedHeaderList, scheme: string): RequestFields {
  let method = '';
  let path = '';
  let authority = '';
  let protocol: string | null = null;
  let host = '';
  const fields: HeaderList = [];
  for (const f of headers) {
    const name = f[0];
    if (name.charCodeAt(0) !== 0x3a) {
      if (name === 'host') host = f[1];
      fields.push([name, f[1]]); // a new pair: the decoder's list is shared (SharedHeaderList), this one is the handler's
      continue;
    }
    switch (name) {
      case ':method':
        method = f[1];
        break;
      case ':path':
        path = f[1];
        break;
      case ':authority':
        authority = f[1];
        break;
      case ':scheme':
        scheme = f[1];
        break;
      case ':protocol':
        protocol = f[1];
        break;
      default:
        break;
    }
  }
  return { method, path, authority: authority || host, scheme, protocol, fields };
}

/**
 * What both servers send when a handler fails before its response started:
 * a 500 the client can act on. After the head went out the stream can only
 * be cut (CANCEL / H3_REQUEST_CANCELLED), so the client sees it incomplete.
 */
export const HANDLER_FAILED_HEAD: SharedHeaderList = Object.freeze([
  [':status', '500'],
  ['content-length', '0'],
] as const);

export interface ServerRequest {
  method: string;
  path: string;
  authority: string;
  scheme: string;
  /**
   * Regular fields (no pseudo-headers), lower-case names, wire order; no value holds a character
   * http/fields.ts BAD_FIELD_VALUE_RE finds — each server refuses such a request before its handler
   * (HTTP/1.1: 400 from the parser; HTTP/2 and HTTP/3: a malformed stream, http/field-section.ts).
   */
  headers: HeaderList;
  body: Readable;
  streamId: number;
  remoteAddress: string;
  remotePort: number;
  /** Aborted when the client resets the stream or the connection closes (an AbortController made on first use). */
  readonly signal: AbortSignal;
  /**
   * The same event without an AbortSignal per request: `fn` runs once when the request is abandoned (at once if it
   * was).
   */
  onAbort(fn: (reason: Error) => void): void;
  /** The HTTP version the client spoke: `1.0`, `1.1`, `2` or `3`. */
  version: string;
  /**
   * The client connection it came on: one object per connection, the same for all its requests (per-client accounting).
   * On HTTP/3 its `quicStats()` gives the QUIC connection's counters, RTT and congestion window.
   */
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
  priority?: { urgency: number; incremental: boolean } | undefined;
  /**
   * Send an interim response (RFC 9110 §15.2; 103 Early Hints, RFC 8297) before the final one. Sent only while
   * nothing of the final response left — on HTTP/1.1 only while this request is the one being answered (not
   * queued behind pipelined ones), and never to an HTTP/1.0 client (§15.2) — else dropped; false then.
   * Throws TypeError for a status that is not 1xx (or is 101) or a field that is not valid. `reason`: the phrase an
   * HTTP/1.1 front writes in its status line (RFC 9112 §4; a relayed origin's own), else the usual one for the status.
   */
  informational(status: number, headers: HeaderList, reason?: string): boolean;
  /**
   * It arrived before the client's handshake completed (HTTP/3 0-RTT early data: a capture of it may be replayed,
   * RFC 8470 §1); false on the TCP fronts (Node's TLS takes no early data).
   */
  earlyData: boolean;
  /**
   * Resolves once the client's handshake has completed (at once when `earlyData` is false); rejects if its connection
   * closes first.
   */
  handshakeDone(): Promise<void>;
  /** The client certificate its connection's handshake verified (mutual TLS), or null: none asked, shown or verified. */
  clientCertificate(): ClientCertificate | null;
}

/** A server connection that can tell the client certificate its handshake verified (ServedRequest.clientCertificate). */
export interface ClientCertificateHolder {
  clientCertificate(): ClientCertificate | null;
}

/** A server connection whose handshake may still be under way (HTTP/3 with 0-RTT): ServedRequest.handshakeDone. */
export interface HandshakeWaiter {
  handshakeDone(): Promise<void>;
}

/**
 * A server connection that can send an interim response on one of its requests' streams (ServedRequest.informational).
 */
export interface InterimSender {
  /**
   * `headers`: lower-case, valid names and values; `reason`: a valid reason phrase or '' (checked by the caller; h2/h3
   * have none).
   */
  interim(streamId: number, status: number, headers: HeaderList, reason: string): boolean;
}

/** RFC 9112 §4: reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ), here possibly empty. */
const REASON_RE = /^[\t \x21-\x7e\x80-\xff]*$/;

/**
 * The request every server hands its handler (HTTP/1.1, HTTP/2, HTTP/3): one
 * class, so every request has the same hidden class with fast properties. It
 * was an object literal with `get` accessors, which V8 built as a
 * dictionary-mode object with a map of its own each time (%HasFastProperties
 * and %HaveSameMap in test/peer/server-request-shape.test.ts), and with it
 * every request's objects survived the young generation and were promoted:
 * our h1 server answering a constant promoted ~1 KB per request with
 * scavenges of ~9 ms; with this class almost nothing is promoted and
 * scavenges take ~0.4 ms (bench/RESULTS.md `proxy`, "One hidden class per
 * request"). Which V8 link kept them alive was not pinned down.
 */
export class ServedRequest implements ServerRequest {
  method: string;
  path: string;
  authority: string;
  scheme: string;
  headers: HeaderList;
  streamId: number;
  remoteAddress: string;
  remotePort: number;
  version: string;
  connection: object;
  bodyLength: number | null;
  protocol: string | null;
  priority: { urgency: number; incremental: boolean } | undefined;
  earlyData = false;
  #abort: RequestAbort;
  #body: Readable | null;
  #makeBody: (() => Readable) | null;

  /** `body`: the body stream, or a function making it on first use (HTTP/1.1 makes none for a GET nobody reads). */
  constructor(
    method: string,
    path: string,
    authority: string,
    scheme: string,
    headers: HeaderList,
    body: Readable | (() => Readable),
    streamId: number,
    remoteAddress: string,
    remotePort: number,
    version: string,
    connection: object,
    bodyLength: number | null,
    protocol: string | null,
    abort: RequestAbort,
    priority?: { urgency: number; incremental: boolean },
  ) {
    this.method = method;
    this.path = path;
    this.authority = authority;
    this.scheme = scheme;
    this.headers = headers;
    this.streamId = streamId;
    this.remoteAddress = remoteAddress;
    this.remotePort = remotePort;
    this.version = version;
    this.connection = connection;
    this.bodyLength = bodyLength;
    this.protocol = protocol;
    this.priority = priority;
    this.#abort = abort;
    if (typeof body === 'function') {
      this.#body = null;
      this.#makeBody = body;
    } else {
      this.#body = body;
      this.#makeBody = null;
    }
  }

  get body(): Readable {
    if (this.#body === null) {
      this.#body = (this.#makeBody as () => Readable)();
      this.#makeBody = null;
    }
    return this.#body;
  }

  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  onAbort(fn: (reason: Error) => void): void {
    this.#abort.onAbort(fn);
  }

  handshakeDone(): Promise<void> {
    return this.earlyData ? (this.connection as HandshakeWaiter).handshakeDone() : Promise.resolve();
  }

  clientCertificate(): ClientCertificate | null {
    return (this.connection as Partial<ClientCertificateHolder>).clientCertificate?.() ?? null;
  }

  informational(status: number, headers: HeaderList, reason = ''): boolean {
    if (!Number.isInteger(status) || status < 100 || status > 199 || status === 101)
      throw new TypeError(`informational: ${status} is not an interim status`);
    if (!REASON_RE.test(reason)) throw new TypeError('informational: invalid reason phrase');
    const list: HeaderList = [];
    for (const [n, v] of headers) {
      const name = n.toLowerCase();
      if (!isFieldName(name) || BAD_FIELD_VALUE_RE.test(v))
        throw new TypeError(`informational: invalid field ${JSON.stringify(n)}`);
      // Connection-specific fields belong to no interim response of ours (RFC 9110 §7.6.1; RFC 9113 §8.2.2).
      if (!isHopByHop(name) && name !== 'content-length') list.push([name, v]);
    }
    const c = this.connection as Partial<InterimSender>;
    return typeof c.interim === 'function' ? c.interim(this.streamId, status, list, reason) : false;
  }
}

export interface ServerResponse {
  status: number;
  headers?: HeaderList;
  body?: RequestBody | Readable;
  trailers?: HeaderList;
  /**
   * Trailers known only once a streamed body ended (a relayed response); sent after the body when it resolves to
   * fields.
   */
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
  /**
   * `headers` are lower-case token names and values free of forbidden bytes, as our own parsers hand them
   * on (an origin's response relayed by the forwarder, after http/fields.ts's rules): the HTTP/1.1 server
   * does not check them again. A handler's own fields leave this unset and are checked.
   */
  checked?: boolean;
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

/** A response that carries no content (RFC 9110 §6.4.1): to a HEAD, and every 1xx, 204 and 304. */
export function bodilessResponse(method: string, status: number): boolean {
  return method === 'HEAD' || status < 200 || status === 204 || status === 304;
}

/**
 * A response's field section for HTTP/2 and HTTP/3: `:status` first, names lower-cased (RFC 9113 §8.2.1, RFC 9114
 * §4.2), and no Content-Length on a 1xx or 204 (RFC 9110 §8.6: MUST NOT; an origin's reached an h2 client with
 * END_STREAM, which nghttp2 and curl reset as malformed). The h1 server's own rule is bodilessLength there.
 */
export function muxResponseHead(status: number, headers: HeaderList | undefined): HeaderList {
  const head: HeaderList = [[':status', String(status)]];
  const noLength = status < 200 || status === 204;
  for (const [n, v] of headers ?? []) {
    const name = n.toLowerCase();
    if (noLength && name === 'content-length') continue;
    head.push([name, v]);
  }
  return head;
}

export const CONTINUE_HEAD: SharedHeaderList = Object.freeze([[':status', '100']] as const);

/**
 * Why a request was abandoned, told to whoever asks: `signal` (an
 * AbortController, made only when a handler reads it) and `onAbort`
 * listeners (cheap: the forwarder's). One per request in every server.
 */
export class RequestAbort extends OnceListeners<Error> {
  reason: Error | null = null;
  #ctl: AbortController | null = null;

  get signal(): AbortSignal {
    if (!this.#ctl) {
      this.#ctl = new AbortController();
      if (this.reason) this.#ctl.abort(this.reason);
    }
    return this.#ctl.signal;
  }

  onAbort(fn: (e: Error) => void): void {
    if (this.reason) fn(this.reason);
    else this.listen(fn);
  }

  abort(e: Error): void {
    if (this.reason) return;
    this.reason = e;
    this.#ctl?.abort(e);
    this.fire(e);
  }
}

/**
 * What a request still open is aborted with when its client's connection closes (made only then: an error's stack costs
 * ~15 µs).
 */
export function clientClosed(): OriginlinkError {
  return new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'remote', 'client connection closed');
}

/**
 * A request answered before its body was in (an origin's early 401, 405, 413): up to this many bytes of the rest
 * are still read after the answer — to a reader still at it (a forwarded request whose HTTP/1.1 origin needs the
 * whole body to keep its connection), else dropped — so that the client's connection, and the origin's, serve again
 * (RFC 9110 §10.1.1 allows that or closing; nginx discards). A longer rest ends it as before: h1 closes the
 * connection after the answer, h2 resets the stream with NO_ERROR (RFC 9113 §8.1).
 */
export const DISCARD_MAX_BYTES = 1024 * 1024;

/**
 * h2: how long the rest of an answered request's body may take to reach a reader still at it (h1: its headers timeout).
 */
export const AFTER_ANSWER_MS = 10_000;
