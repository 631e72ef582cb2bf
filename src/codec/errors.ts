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

/**
 * An RFC 7541 primitive (prefixed integer, string literal, Huffman code) could
 * not be decoded. Neutral: HPACK maps it to COMPRESSION_ERROR (RFC 7541 §4.1 / RFC 9113 §4.3),
 * QPACK to its decompression or stream errors (RFC 9204 §6).
 */
export class FieldCodingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FieldCodingError';
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

/** RFC 9113 §7 HTTP/2 error codes. */
export const H2ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;
export type H2ErrorCodeValue = (typeof H2ErrorCode)[keyof typeof H2ErrorCode];

/**
 * An HPACK failure. RFC 9113 §4.3: any header block that cannot be decoded is
 * a connection error of type COMPRESSION_ERROR — except a block that decodes
 * but is too large, which the connection may answer per stream (`tooLarge`).
 */
export class HpackError extends WireError {
  readonly tooLarge: boolean;
  constructor(message: string, o: { tooLarge?: boolean; cause?: unknown } = {}) {
    super(H2ErrorCode.COMPRESSION_ERROR, message, o.cause === undefined ? undefined : { cause: o.cause });
    this.name = 'HpackError';
    this.tooLarge = o.tooLarge ?? false;
  }
}
