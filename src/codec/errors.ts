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
