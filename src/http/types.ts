/**
 * The one connection interface every transport (h1, h2, h3) implements, and
 * the request/response shapes that cross it. The pool only ever talks to a
 * `PooledConnection`; it never looks at sockets, sessions or QUIC state.
 */
import type { X509Certificate } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { SignalLike } from '../util/leg-signal.js';

export type Protocol = 'h1' | 'h2' | 'h3';

/**
 * Header fields in wire order; names are lower-case. A field is never changed in place (a new pair replaces it): lists
 * share fields (SharedHeaderList).
 */
export type HeaderList = Array<readonly [name: string, value: string]>;
/**
 * Header fields that may be shared and must not be changed: the HTTP/2 and HTTP/3 decoders hand the same list out
 * again for the same header block (codec/repeats.ts). A list made from it shares its fields.
 */
export type SharedHeaderList = ReadonlyArray<readonly [name: string, value: string]>;

/**
 * A request body. `Uint8Array`, `string` and `null` are replayable, so a
 * request carrying one may be retried; an (async) iterable is consumed once.
 */
export type RequestBody = Uint8Array | string | AsyncIterable<Uint8Array> | Iterable<Uint8Array> | null;

export interface ConnRequest {
  method: string;
  /** Path and query, starting with `/` (or `*` for OPTIONS). */
  path: string;
  /** `host[:port]` as sent in Host / :authority. */
  authority: string;
  scheme: 'http' | 'https';
  /** End-to-end headers only: no pseudo-headers, no hop-by-hop fields, no Host. */
  headers: HeaderList;
  body: RequestBody;
  /** Aborts the request: an AbortSignal, or anything with its abort subset (util/leg-signal.ts SignalLike). */
  signal?: SignalLike | undefined;
  /** Permit sending this request as 0-RTT early data (h3 only). */
  allowEarlyData?: boolean;
  /**
   * Response bytes read ahead of the body's reader before the transport stops
   * reading (h1: the socket, h2/h3: flow-control credit). Default: the
   * transport's own (16 KiB on h1/h2, 256 KiB on h3).
   */
  responseBufferBytes?: number | undefined;
  /**
   * Interim (1xx) responses before the final one (RFC 9110 §15.2), e.g. 103 Early Hints (RFC 8297): status and
   * fields as the origin sent them (h1: hop-by-hop fields included), and the reason phrase of an HTTP/1.1 origin's
   * status line ('' over h2/h3, which have none). Never 101. Called on the transport's turn: a listener must not
   * throw or block.
   */
  onInformational?: ((status: number, headers: HeaderList, reason: string) => void) | undefined;
}

export interface ConnResponse {
  status: number;
  /** HTTP/1.1's reason phrase ("Not Found"; RFC 9112 §4); '' where there is none (HTTP/2 and HTTP/3 have none). */
  statusText?: string;
  headers: HeaderList;
  /** The body bytes; ends with the message, errors with an OriginlinkError. */
  body: Readable;
  /** Resolves after the body ends; empty when the response had none. */
  trailers: Promise<HeaderList>;
  /** True when this request was carried in 0-RTT early data and accepted. */
  earlyData?: boolean;
  /** Set when a 0-RTT attempt of this request was refused and it was resent after the handshake. */
  earlyDataRefused?: 'rejected' | 'too-early';
  /**
   * HTTP/3 only: change the priority of the rest of this response (RFC 9218
   * §7.2: a PRIORITY_UPDATE frame; `priority` in the `priority` header's
   * syntax, e.g. `u=0` or `u=5, i`). Does nothing once the response has ended.
   */
  reprioritize?: (priority: string) => void;
  /**
   * The whole body and its trailers when the response has already ended and
   * nobody touched `body`: the bytes are handed over (`body` is then an
   * empty, ended stream). Else null, and the body is read as a stream. Lets
   * a relay send a small response without a stream per response.
   */
  takeComplete?(): CompleteBody | null;
  /**
   * The whole body as it arrives, for a reader that wants all of it, without a stream: resolves at its end, rejects
   * with the response's failure; `body` is then an empty stream that ends with it. Null when `body` was read or the
   * body taken: read `body`.
   */
  collect?(): Promise<Buffer> | null;
}

/** A response that had ended, taken whole: its body's bytes and its trailers (empty when none). */
export interface CompleteBody {
  bytes: Buffer;
  trailers: HeaderList;
}

/** What is known about one connection once it is established. */
export interface ConnectionFacts {
  protocol: Protocol;
  alpn: string | null;
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
  /**
   * ms from start to transport established: TCP connect; for h3 from the dial's start to the QUIC handshake's end
   * (resolving, the UDP endpoint, and for a process's first h3 dial loading the QUIC module); through a proxy: TCP to
   * the proxy + the tunnel's CONNECT or SOCKS exchange.
   */
  connectMs: number;
  /** ms spent in the TLS handshake after TCP connected (0 for QUIC: it is in connectMs). */
  tlsMs: number;
  tlsVersion: string | null;
  /** The TLS/QUIC session was resumed from a cached ticket. */
  resumed: boolean;
  /** 0-RTT early data was sent and accepted on this connection. */
  earlyData: boolean;
  /** The SYN carried data (TCP Fast Open) and the server accepted it. */
  tfo: boolean;
  /** The server's `Keep-Alive: timeout=` hint in ms, once seen (h1). */
  keepAliveHintMs: number | null;
  /**
   * How long the origin lets a connection sit idle as its pool observed it (pool.ts #observeIdleClose), ms; null or
   * absent: not observed (or not pooled).
   */
  keepAliveObservedMs?: number | null;
  /** Server-advertised concurrent stream limit (h2 SETTINGS / h3 MAX_STREAMS). */
  peerMaxConcurrentStreams: number | null;
  /** Latest RTT estimate in ms, when the transport knows it. */
  rttMs: number | null;
  /** Address family of `remoteAddress` (null: unknown, or the far end of a proxy tunnel). */
  family?: 4 | 6 | null;
  /** Connection attempts made to open this connection (Happy Eyeballs, RFC 8305: one per address tried). */
  attempts?: number;
  /** The egress proxy node this connection is tunnelled through (no credentials), or null/absent: direct. */
  proxy?: ProxyFacts | null;
  /** h3: the QUIC congestion controller of what this end sends (quiche's `reno`, `cubic` or `bbr`). */
  congestionControl?: string;
}

export interface ProxyFacts {
  /** `kind://host:port` of the node. */
  node: string;
  kind: 'http' | 'https' | 'socks5';
  /** The tunnel is an HTTP/2 CONNECT stream on a connection shared with other tunnels to the node (RFC 9113 §8.5). */
  http2: boolean;
  /** Every node kind here carries TCP only: HTTP/3 is never attempted through it. */
  h3: 'not attempted: TCP-only proxy';
}

export type ConnState = 'ready' | 'draining' | 'closed';

export type ConnEvent =
  /** A request slot freed up (a request finished) — the pool may dispatch. */
  | { type: 'capacity' }
  /** The peer asked us to stop opening streams (h2/h3 GOAWAY, h1 `Connection: close`). */
  | { type: 'goaway'; lastStreamId: number | null }
  /** The connection is gone; `error` is set when it did not close cleanly. */
  | { type: 'close'; error: Error | null }
  /** The server hinted an idle timeout (h1 Keep-Alive: timeout=). */
  | { type: 'keepalive-hint'; timeoutMs: number }
  /**
   * The handshake completed after the connection was handed out (h3 with
   * 0-RTT is usable before): `facts.resumed` and `facts.earlyData` are final now.
   */
  | { type: 'handshake' };

export interface PooledConnection {
  readonly id: number;
  readonly protocol: Protocol;
  readonly facts: ConnectionFacts;
  /** performance.now() when the connection was established. */
  readonly createdAt: number;
  /**
   * performance.now() of the last request end (h2/h3: also of the last start); the connection was made at createdAt.
   */
  readonly lastActiveAt: number;
  /** How many requests may run at once now (1 for h1; the peer's stream limit for h2/h3). */
  readonly capacity: number;
  /** Requests running now. */
  readonly active: number;
  /** Requests started on this connection so far. */
  readonly served: number;
  readonly state: ConnState;
  /**
   * Run one request. Resolves when the response head arrives. A failure
   * rejects with an OriginlinkError carrying the request's `facts` (reused,
   * requestSent, responseStarted), whose `retrySafe` is true only when the
   * origin certainly did not process the request (refused stream, GOAWAY
   * above the last processed id, early data rejected, never sent).
   */
  request(req: ConnRequest): Promise<ConnResponse>;
  /**
   * The leaf certificate the server presented, verified at connect time
   * (null for cleartext, unverified or unknown): coalescing checks it covers
   * another name (RFC 9113 §9.1.1, RFC 9114 §3.3).
   */
  peerCertificate(): X509Certificate | null;
  /** Cheap check before reuse: false when the peer has closed or sent unexpected bytes. */
  isUsable(): boolean;
  /**
   * h1: not usable this turn but not broken (a fresh TLS connection whose handshake's tail is still unread): the
   * pool leaves it open; it offers itself again ('capacity') once read, or closes.
   */
  settling?(): boolean;
  /**
   * h2: the peer's stream limit is not known yet (its SETTINGS have not arrived) and `capacity` says 1 until then
   * (RFC 9113 §5.1.2). Requests waiting for it get the limit when it comes ('capacity'): the pool dials no other
   * connection for them meanwhile.
   */
  limitPending?(): boolean;
  /** h1: acknowledge each response at once from now on (PoolOptions.quickAck says when the pool asks). */
  quickAck?(on: boolean): void;
  /**
   * This connection's socket (h3: its QUIC endpoint) no longer keeps the process alive (Node's unref). A pool calls
   * it once, when the connection joins it, and keeps the process alive itself while requests are out (pool.ts
   * `holdProcess`), so a script that forgets `close()` exits, as with undici.
   */
  unref?(): void;
  /** Active liveness probe (h2/h3 PING); resolves with the RTT in ms. */
  ping?(timeoutMs: number): Promise<number>;
  /**
   * A connection handed out at 0-RTT readiness (h3 resuming a ticket):
   * resolves when its handshake completes (rejects if it fails); null once
   * it has completed.
   */
  handshakePending?(): Promise<void> | null;
  /**
   * Another connection now serves the origin while this one's handshake is
   * pending (TCP won the race): take no new request until the handshake
   * completes (capacity 0), and give back what the other one may carry —
   * requests not yet sent (retry-safe), and requests sent as early data that
   * are idempotent and unanswered (EARLY_DATA_ABANDONED). Others stay.
   */
  yieldToFallback?(): void;
  /** Stop taking requests; close once in-flight ones finish. */
  drain(): void;
  /** Close now; in-flight requests fail with `error` (or SOCKET_CLOSED). */
  destroy(error?: Error): void;
  /** Subscribe to connection events. */
  on(listener: (ev: ConnEvent) => void): void;
}
