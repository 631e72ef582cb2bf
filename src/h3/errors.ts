/**
 * The boundary where internal HTTP/3 and QPACK wire errors become public
 * `OriginlinkError`s (DESIGN: two tiers of errors). `details.wireCode`
 * keeps the RFC code.
 */
import { H3ErrorCode, QpackError, wireCodeName } from '../codec/errors.js';
import { ErrorCode, OriginlinkError, toOriginlinkError } from '../errors.js';

/** A connection error we detected (the peer violated the protocol, or we failed internally). */
export function connectionError(code: number, message: string, cause: unknown): OriginlinkError {
  const internal = code === H3ErrorCode.INTERNAL_ERROR;
  return new OriginlinkError(
    cause instanceof QpackError ? ErrorCode.QPACK_ERROR : ErrorCode.H3_ERROR,
    internal ? 'local' : 'remote',
    `${wireCodeName(code)}: ${message}`,
    { cause, details: { wireCode: code } },
  );
}

/** The user closed the connection; null for a clean H3_NO_ERROR close. */
export function localCloseError(code: number, reason: string): OriginlinkError | null {
  if (code === H3ErrorCode.NO_ERROR) return null;
  return new OriginlinkError(ErrorCode.H3_ERROR, 'local', `closed locally with ${wireCodeName(code)}: ${reason}`, {
    details: { wireCode: code },
  });
}

/** The QUIC driver reported the connection closed. */
export function driverCloseError(error: Error | null): OriginlinkError | null {
  if (!error) return null;
  return error instanceof OriginlinkError ? error : toOriginlinkError(error, ErrorCode.QUIC_FAILED);
}

export function argumentError(message: string): OriginlinkError {
  return new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', message);
}

export function closedError(): OriginlinkError {
  return new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'local', 'HTTP/3 connection is closed', { retrySafe: true });
}

export function goawayError(lastStreamId: number): OriginlinkError {
  return new OriginlinkError(ErrorCode.GOAWAY, 'remote', 'peer sent GOAWAY; no new requests on this connection', {
    retrySafe: true,
    details: { lastStreamId },
  });
}

/** RFC 9114 §4.2.2: a section above the peer's SETTINGS_MAX_FIELD_SECTION_SIZE. */
export function headersTooLarge(size: number, limit: number): OriginlinkError {
  return new OriginlinkError(
    ErrorCode.HEADERS_TOO_LARGE,
    'local',
    `field section of ${size} octets exceeds the peer's limit ${limit}`,
    {
      retrySafe: true,
      details: { size, limit },
    },
  );
}
