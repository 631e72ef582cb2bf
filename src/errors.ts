/**
 * Public error tree. Every error a user of originlink can see is an
 * `OriginlinkError` with a stable `code`, who is at fault (`side`), and
 * whether replaying the request is safe (`retrySafe`). Internal protocol
 * errors (QPACK, HTTP/3 frame errors with wire codes) are mapped onto these
 * at the connection boundary.
 */
export type ErrorSide = 'local' | 'remote' | 'network';

export interface ErrorInit {
  cause?: unknown;
  /** True when nothing of the request can have been processed by the origin. */
  retrySafe?: boolean;
  /** Extra machine-readable facts (origin, limit values, wire codes...). */
  details?: Record<string, unknown>;
}

export class OriginlinkError extends Error {
  readonly code: string;
  readonly side: ErrorSide;
  retrySafe: boolean;
  readonly details: Record<string, unknown>;
  constructor(code: string, side: ErrorSide, message: string, init: ErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'OriginlinkError';
    this.code = code;
    this.side = side;
    this.retrySafe = init.retrySafe ?? false;
    this.details = init.details ?? {};
  }
}

/** Stable codes. Adding is fine; renaming breaks users. */
export const ErrorCode = {
  CONNECT_FAILED: 'OL_CONNECT_FAILED',
  CONNECT_TIMEOUT: 'OL_CONNECT_TIMEOUT',
  TLS_FAILED: 'OL_TLS_FAILED',
  CERT_INVALID: 'OL_CERT_INVALID',
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
  QUEUE_FULL: 'OL_QUEUE_FULL',
  QUEUE_TIMEOUT: 'OL_QUEUE_TIMEOUT',
  POOL_CLOSED: 'OL_POOL_CLOSED',
  ABORTED: 'OL_ABORTED',
  INVALID_ARGUMENT: 'OL_INVALID_ARGUMENT',
  INVALID_CONFIG: 'OL_INVALID_CONFIG',
  EARLY_DATA_REJECTED: 'OL_EARLY_DATA_REJECTED',
  QUIC_FAILED: 'OL_QUIC_FAILED',
  H3_ERROR: 'OL_H3_ERROR',
  QPACK_ERROR: 'OL_QPACK_ERROR',
  UNSUPPORTED_PROTOCOL: 'OL_UNSUPPORTED_PROTOCOL',
} as const;
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

export function isOriginlinkError(e: unknown): e is OriginlinkError {
  return e instanceof OriginlinkError;
}

/** Wrap any thrown value into an OriginlinkError, keeping it as `cause`. */
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
      return new OriginlinkError(ErrorCode.CONNECT_FAILED, 'network', msg, { cause: e, retrySafe: true });
    case 'ECONNRESET':
      return new OriginlinkError(ErrorCode.SOCKET_RESET, 'network', msg, { cause: e });
    case 'EPIPE':
      return new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'network', msg, { cause: e });
    case 'ETIMEDOUT':
      return new OriginlinkError(ErrorCode.CONNECT_TIMEOUT, 'network', msg, { cause: e, retrySafe: true });
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'CERT_HAS_EXPIRED':
      return new OriginlinkError(ErrorCode.CERT_INVALID, 'remote', msg, { cause: e });
    default:
      return new OriginlinkError(fallback, 'network', msg, { cause: e });
  }
}
