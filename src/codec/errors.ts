/**
 * Internal protocol errors. Each carries the wire code that ends up in a
 * CONNECTION_CLOSE or RESET_STREAM; the H3 connection maps them onto the
 * public `OriginlinkError` tree at its boundary.
 */
export class WireError extends Error {
  /** Application error code on the wire (RFC 9114 §8.1, RFC 9204 §6). */
  readonly wireCode: number;
  constructor(wireCode: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WireError';
    this.wireCode = wireCode;
  }
}

/** RFC 9204 §6 error codes. */
export const QpackErrorCode = {
  DECOMPRESSION_FAILED: 0x200,
  ENCODER_STREAM_ERROR: 0x201,
  DECODER_STREAM_ERROR: 0x202,
} as const;
export type QpackErrorCodeValue = (typeof QpackErrorCode)[keyof typeof QpackErrorCode];

/** A QPACK failure; always a connection error. */
export class QpackError extends WireError {
  constructor(code: QpackErrorCodeValue, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'QpackError';
  }
}

/** A prefixed integer or string could not be decoded (caller picks the QPACK code). */
export class QpackFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QpackFormatError';
  }
}

/** RFC 9114 §8.1 HTTP/3 error codes. */
export const H3ErrorCode = {
  NO_ERROR: 0x100,
  GENERAL_PROTOCOL_ERROR: 0x101,
  INTERNAL_ERROR: 0x102,
  STREAM_CREATION_ERROR: 0x103,
  CLOSED_CRITICAL_STREAM: 0x104,
  FRAME_UNEXPECTED: 0x105,
  FRAME_ERROR: 0x106,
  EXCESSIVE_LOAD: 0x107,
  ID_ERROR: 0x108,
  SETTINGS_ERROR: 0x109,
  MISSING_SETTINGS: 0x10a,
  REQUEST_REJECTED: 0x10b,
  REQUEST_CANCELLED: 0x10c,
  REQUEST_INCOMPLETE: 0x10d,
  MESSAGE_ERROR: 0x10e,
  CONNECT_ERROR: 0x10f,
  VERSION_FALLBACK: 0x110,
} as const;
export type H3ErrorCodeValue = (typeof H3ErrorCode)[keyof typeof H3ErrorCode];

/** An HTTP/3 protocol violation; `connection` false means it only affects one stream. */
export class H3Error extends WireError {
  readonly connection: boolean;
  constructor(code: H3ErrorCodeValue, message: string, connection = true) {
    super(code, message);
    this.name = 'H3Error';
    this.connection = connection;
  }
}

/** Human name for an H3 or QPACK wire code, for messages and logs. */
export function wireCodeName(code: number): string {
  for (const [k, v] of Object.entries(H3ErrorCode)) if (v === code) return `H3_${k}`;
  for (const [k, v] of Object.entries(QpackErrorCode)) if (v === code) return `QPACK_${k}`;
  return `0x${code.toString(16)}`;
}
