/**
 * Public error tree. Every error a user of originlink can see is an
 * `OriginlinkError` with a stable `code`, who is at fault (`side`), and
 * whether replaying the request is safe (`retrySafe`). Internal protocol
 * errors (QPACK, HTTP/3 frame errors with wire codes) are mapped onto these
 * at the connection boundary.
 */
export type ErrorSide = 'local' | 'remote' | 'network';

/**
 * What had happened to one request when it failed, decided once by the
 * request exchange (src/client/exchange.ts) or the pool, never changed
 * afterwards. The retry policy (src/agent/policy.ts) reads these.
 */
export interface ExchangeFacts {
  /** The connection had carried a request before this one (the stale keep-alive race is possible). */
  readonly reused: boolean;
  /** Every byte of the request was handed to the connection. */
  readonly requestSent: boolean;
  /** Some byte of the response had arrived. */
  readonly responseStarted: boolean;
}

/** Facts of a request that never reached a connection (queue, dial, pool closed). */
export const NOT_SENT: ExchangeFacts = Object.freeze({ reused: false, requestSent: false, responseStarted: false });

export interface ErrorInit {
  cause?: unknown;
  /** True when nothing of the request can have been processed by the origin. */
  retrySafe?: boolean;
  /** Extra machine-readable facts (origin, limit values, wire codes...). */
  details?: Record<string, unknown>;
  /** What had happened to the request (null: not about one request). */
  facts?: ExchangeFacts | null;
}

/**
 * Errors are values: nothing changes them after they are made, so one
 * instance handed to several waiters stays true for each. `with()` makes
 * a copy that adds facts or details.
 */
export class OriginlinkError extends Error {
  readonly code: string;
  readonly side: ErrorSide;
  readonly retrySafe: boolean;
  readonly details: Readonly<Record<string, unknown>>;
  readonly facts: ExchangeFacts | null;
  constructor(code: string, side: ErrorSide, message: string, init: ErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'OriginlinkError';
    this.code = code;
    this.side = side;
    this.retrySafe = init.retrySafe ?? false;
    this.details = Object.freeze({ ...init.details });
    this.facts = init.facts ?? null;
  }

  /** A copy with `init`'s fields replacing or (details) extending this error's; the stack is kept. */
  with(init: Omit<ErrorInit, 'cause'>): OriginlinkError {
    const e = new OriginlinkError(this.code, this.side, this.message, {
      cause: this.cause,
      retrySafe: init.retrySafe ?? this.retrySafe,
      details: init.details ? { ...this.details, ...init.details } : this.details,
      facts: init.facts === undefined ? this.facts : init.facts,
    });
    if (this.stack !== undefined) e.stack = this.stack;
    return e;
  }
}

/** Stable codes. Adding is fine; renaming breaks users. */
export const ErrorCode = {
  CONNECT_FAILED: 'OL_CONNECT_FAILED',
  CONNECT_TIMEOUT: 'OL_CONNECT_TIMEOUT',
  TLS_FAILED: 'OL_TLS_FAILED',
  CERT_INVALID: 'OL_CERT_INVALID',
  /**
   * The origin (or an https proxy node) refused our side of mutual TLS: it asked for a client certificate and got
   * none (alert certificate_required), or did not accept the one shown (bad_certificate, unknown_ca, expired…; RFC
   * 8446 §6.2). The same certificate is refused again: never retried on this URL.
   */
  CLIENT_CERT_REFUSED: 'OL_CLIENT_CERT_REFUSED',
  SOCKET_CLOSED: 'OL_SOCKET_CLOSED',
  SOCKET_RESET: 'OL_SOCKET_RESET',
  STREAM_RESET: 'OL_STREAM_RESET',
  GOAWAY: 'OL_GOAWAY',
  PROTOCOL_ERROR: 'OL_PROTOCOL_ERROR',
  MALFORMED_RESPONSE: 'OL_MALFORMED_RESPONSE',
  HEADERS_TOO_LARGE: 'OL_HEADERS_TOO_LARGE',
  BODY_MISMATCH: 'OL_BODY_LENGTH_MISMATCH',
  HEADERS_TIMEOUT: 'OL_HEADERS_TIMEOUT',
  PING_TIMEOUT: 'OL_PING_TIMEOUT',
  BODY_TIMEOUT: 'OL_BODY_TIMEOUT',
  /**
   * The request body's own source sent nothing for `bodyTimeoutMs` while the origin could take more: the
   * sender stalled, not the origin (side `local`; the service answers 408, RFC 9110 §15.5.9).
   */
  REQUEST_BODY_TIMEOUT: 'OL_REQUEST_BODY_TIMEOUT',
  /**
   * The request body's own source failed (its stream errored): ours, not the caller's abort nor the origin's doing;
   * never retried.
   */
  REQUEST_BODY_FAILED: 'OL_REQUEST_BODY_FAILED',
  /**
   * An HTTP/1.1 origin sent bytes with no request of ours outstanding (RFC 9112 §9.3: an unsolicited response, or
   * an answer to nothing): the connection is closed at once and never reused, so no later request reads them.
   */
  UNSOLICITED_RESPONSE: 'OL_UNSOLICITED_RESPONSE',
  QUEUE_FULL: 'OL_QUEUE_FULL',
  QUEUE_TIMEOUT: 'OL_QUEUE_TIMEOUT',
  POOL_CLOSED: 'OL_POOL_CLOSED',
  ABORTED: 'OL_ABORTED',
  INVALID_ARGUMENT: 'OL_INVALID_ARGUMENT',
  INVALID_CONFIG: 'OL_INVALID_CONFIG',
  EARLY_DATA_REJECTED: 'OL_EARLY_DATA_REJECTED',
  /**
   * A request sent as 0-RTT early data on a connection given up before its
   * handshake completed (the QUIC path lost to TCP, or failed): the origin
   * may have processed it. Sent again only when idempotent (agent/policy.ts).
   */
  EARLY_DATA_ABANDONED: 'OL_EARLY_DATA_ABANDONED',
  QUIC_FAILED: 'OL_QUIC_FAILED',
  H3_ERROR: 'OL_H3_ERROR',
  QPACK_ERROR: 'OL_QPACK_ERROR',
  UNSUPPORTED_PROTOCOL: 'OL_UNSUPPORTED_PROTOCOL',
  /** A shared store (Redis) is unreachable; the process carries on with its local tier. */
  STORE_UNAVAILABLE: 'OL_STORE_UNAVAILABLE',
  /** A shared store entry failed authenticated decryption (wrong key or tampered): ignored. */
  STORE_DECRYPT_FAILED: 'OL_STORE_DECRYPT_FAILED',
  /** No address for the origin's name (and no stale answer to serve). */
  DNS_FAILED: 'OL_DNS_FAILED',
  /**
   * The egress proxy refused the credentials (HTTP 407, SOCKS5 RFC 1929 status ≠ 0): never retried through another
   * node.
   */
  PROXY_AUTH_FAILED: 'OL_PROXY_AUTH_FAILED',
  /** The egress proxy could not be reached or refused the tunnel. */
  PROXY_FAILED: 'OL_PROXY_FAILED',
} as const;
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

export function isOriginlinkError(e: unknown): e is OriginlinkError {
  return e instanceof OriginlinkError;
}

/** Node's codes for a certificate that failed verification (OpenSSL's X509_V_ERR_* names, and Node's name check). */
const CERT_CODES: ReadonlySet<string> = new Set([
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_REVOKED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_CHAIN_TOO_LONG',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
  'HOSTNAME_MISMATCH',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
]);

/**
 * Node's codes for a TLS alert the server sent about our certificate (RFC 8446 §6.2: bad_certificate 42,
 * unsupported_certificate 43, certificate_revoked 44, certificate_expired 45, certificate_unknown 46, unknown_ca 48,
 * access_denied 49, certificate_required 116), by the alert's name.
 */
const CLIENT_CERT_ALERTS: ReadonlyMap<string, string> = new Map([
  ['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'bad_certificate'],
  ['ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE', 'unsupported_certificate'],
  ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED', 'certificate_revoked'],
  ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED', 'certificate_expired'],
  ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN', 'certificate_unknown'],
  ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'unknown_ca'],
  ['ERR_SSL_TLSV1_ALERT_ACCESS_DENIED', 'access_denied'],
  ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'certificate_required'],
]);

/** The alert's name when `e` is a TLS alert from the server refusing our client certificate, else null. */
export function clientCertAlert(e: unknown): string | null {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? (CLIENT_CERT_ALERTS.get(code) ?? null) : null;
}

/**
 * OL_CLIENT_CERT_REFUSED for alert `alert` from `who` (host:port, or a name and its address); `shown`: whether we
 * showed a certificate (null: unknown). Servers differ in the alert for none (OpenSSL certificate_required, Go's
 * crypto/tls before 1.21 bad_certificate), so what we showed decides the words.
 */
export function clientCertRefused(
  alert: string,
  who: string,
  cause?: unknown,
  shown: boolean | null = null,
): OriginlinkError {
  const none = shown === false || (shown === null && alert === 'certificate_required');
  const what = none
    ? 'requires a client certificate and we showed none: set tls.cert and tls.key'
    : 'did not accept our client certificate: show one it trusts (tls.cert, tls.key)';
  return new OriginlinkError(ErrorCode.CLIENT_CERT_REFUSED, 'remote', `${who} ${what} (TLS alert ${alert})`, {
    cause,
    details: { alert, peer: who },
  });
}

/**
 * Wrap any thrown value into an OriginlinkError, keeping it as `cause`. Never retry-safe by itself: the same errno
 * (ETIMEDOUT, EHOSTUNREACH) comes from a connect and from a connection that carried a request, and only the caller
 * knows which (tcp.ts and the pool mark a failed connect retry-safe; `socketFailure` is the other side).
 */
export function toOriginlinkError(e: unknown, fallback: ErrorCodeValue = ErrorCode.SOCKET_CLOSED): OriginlinkError {
  if (e instanceof OriginlinkError) return e;
  const err = e as NodeJS.ErrnoException | undefined;
  const msg = err?.message ?? String(e);
  switch (err?.code) {
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new OriginlinkError(ErrorCode.CONNECT_FAILED, 'network', msg, { cause: e });
    case 'ECONNRESET':
      return new OriginlinkError(ErrorCode.SOCKET_RESET, 'network', msg, { cause: e });
    case 'EPIPE':
      return new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'network', msg, { cause: e });
    case 'ETIMEDOUT':
      return new OriginlinkError(ErrorCode.CONNECT_TIMEOUT, 'network', msg, { cause: e });
    default:
      if (typeof err?.code === 'string' && CLIENT_CERT_ALERTS.has(err.code))
        return clientCertRefused(
          CLIENT_CERT_ALERTS.get(err.code) as string,
          (err as { peer?: string }).peer ?? 'the server',
          e,
          (err as { shown?: boolean }).shown ?? null,
        );
      if (typeof err?.code === 'string' && CERT_CODES.has(err.code))
        return new OriginlinkError(ErrorCode.CERT_INVALID, 'remote', msg, { cause: e });
      return new OriginlinkError(fallback, 'network', msg, { cause: e });
  }
}

/**
 * The caller's signal fired: OL_ABORTED, with the signal's reason (what the caller passed to `abort(reason)`, or
 * the platform's AbortError) as `cause`, so a caller that aborts for reasons of its own can tell them apart.
 */
export function abortedBy(
  signal: object | null | undefined,
  message = 'request aborted',
  init: Omit<ErrorInit, 'cause'> = {},
): OriginlinkError {
  const reason = (signal as { reason?: unknown } | null | undefined)?.reason;
  return new OriginlinkError(
    ErrorCode.ABORTED,
    'local',
    message,
    reason === undefined ? init : { ...init, cause: reason },
  );
}

/**
 * A pool or Agent closed before the request left: OL_POOL_CLOSED, retry-safe with NOT_SENT facts (nothing reached the
 * origin), so a caller with somewhere else to send it may; the Agent's own policy never retries it (policy.ts).
 */
export function closedBeforeSent(message: string): OriginlinkError {
  return new OriginlinkError(ErrorCode.POOL_CLOSED, 'local', message, { retrySafe: true, facts: NOT_SENT });
}

/**
 * An error on a pooled connection's socket: the connection is lost, whatever the errno says —
 * a keepalive or retransmission timeout (ETIMEDOUT), an ICMP unreachable (EHOSTUNREACH) or a reset. Requests on it
 * may have been processed: never retry-safe, never a reason to try the next URL (policy.ts).
 */
export function socketFailure(e: unknown, handshakeUnconfirmed = false): OriginlinkError {
  if (e instanceof OriginlinkError) return e;
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  // A socket whose handshake we never saw complete (a TCP Fast Open socket that received nothing, tcp.ts) refused
  // or reported unreachable: a failed connect, retry-safe. On an established socket the same errnos come only
  // after its retransmissions time out (Linux keeps ICMP errors soft until then): a lost connection. Not ETIMEDOUT
  // even there: a SYN carrying a request in its data may have reached the application while every SYN-ACK was
  // lost (RFC 7413 §6.3.1).
  if (handshakeUnconfirmed && (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH')) {
    return toOriginlinkError(e, ErrorCode.CONNECT_FAILED).with({ retrySafe: true });
  }
  const msg = (e as Error | undefined)?.message ?? String(e);
  if (code === 'EPIPE') return new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'network', msg, { cause: e });
  if (
    code === 'ECONNRESET' ||
    code === 'ETIMEDOUT' ||
    code === 'EHOSTUNREACH' ||
    code === 'ENETUNREACH' ||
    code === 'ECONNREFUSED'
  ) {
    return new OriginlinkError(ErrorCode.SOCKET_RESET, 'network', `connection lost: ${msg}`, { cause: e });
  }
  return toOriginlinkError(e);
}
