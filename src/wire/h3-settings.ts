/**
 * Our HTTP/3 SETTINGS and limits, one shape for our client and our server
 * (RFC 9114 §7.2.4, RFC 9204 §5).
 */
import type { H3ConnectionOptions } from '../h3/connection.js';
import { ErrorCode, OriginlinkError } from '../errors.js';

/**
 * The QPACK decoder limits we announce (RFC 9204 §5): how large a dynamic table the peer's encoder may
 * build towards us (SETTINGS_QPACK_MAX_TABLE_CAPACITY) and how many of our streams it may leave blocked
 * on inserts (SETTINGS_QPACK_BLOCKED_STREAMS). One option shape for our client and our server.
 */
export interface QpackOptions {
  /** Bytes, 0 – 1 MiB (0: no dynamic table towards us). Default 4096. */
  maxTableCapacity?: number;
  /** 0 – 1000. Default 16. */
  blockedStreams?: number;
  /** How long our decoder's acknowledgments wait to leave together, ms (0 – 1000; 0 = at once). Default 25. */
  ackDelayMs?: number;
  /**
   * Our encoder's side: a field section refers to the dynamic table the peer allows us only when that saves at least
   * this many bytes over literals (0 – 65536; 0 = whenever it can). Every section that refers to an entry costs the
   * peer a Section Acknowledgment (RFC 9204 §4.4.1) that both ends handle. Default the encoder's MIN_REFERENCE_SAVING
   * (32; not imported here: this module is part of the package's import, the QPACK encoder only of an h3 connection's).
   */
  minReferenceSaving?: number;
}

export const QPACK_MAX_TABLE_CAPACITY = 1 << 20;
export const QPACK_MAX_BLOCKED_STREAMS = 1000;
/** The longest QpackOptions.ackDelayMs taken. */
export const QPACK_MAX_ACK_DELAY_MS = 1000;
/** The largest QpackOptions.minReferenceSaving taken, bytes. */
export const QPACK_MAX_REFERENCE_SAVING = 65536;
/** Our decoder's table by default (both roles): Chromium's and nghttp3's default size. */
export const DEFAULT_QPACK_TABLE_CAPACITY = 4096;
/** How long our QPACK decoder holds its instructions by default (RFC 9000 §18.2's default max_ack_delay, 25 ms). */
export const DECODER_ACK_DELAY_MS = 25;

/**
 * Our HTTP/3 SETTINGS and limits (both roles).
 *
 * The QPACK dynamic table is offered by default (4096 bytes). What that
 * costs with quiche 0.18, which puts one STREAM frame in a packet: every
 * decoder acknowledgment and every encoder insert is a datagram of its own.
 * Two rules keep them off the warm path — our decoder's acknowledgments
 * leave together after `ackDelayMs` (RFC 9204 §4.4 sets no deadline), and
 * our encoder inserts a field only the second time it sends it — and then a
 * warm request costs 1.06 datagrams each way instead of 1.01, and 57 % fewer
 * request bytes (bench/RESULTS.md `qpack`). A third keeps the peer's
 * acknowledgments off small heads: our encoder refers to the table only where
 * a section saves `minReferenceSaving` bytes. Out-of-range limits are
 * OL_INVALID_CONFIG.
 */
export function h3Settings(
  role: 'client' | 'server',
  qpack: QpackOptions = {},
  maxFieldSectionSize = 64 * 1024,
): H3ConnectionOptions {
  const cap = qpack.maxTableCapacity ?? DEFAULT_QPACK_TABLE_CAPACITY;
  const blocked = qpack.blockedStreams ?? 16;
  const delay = qpack.ackDelayMs ?? DECODER_ACK_DELAY_MS;
  const saving = qpack.minReferenceSaving;
  if (!Number.isSafeInteger(cap) || cap < 0 || cap > QPACK_MAX_TABLE_CAPACITY)
    throw new OriginlinkError(
      ErrorCode.INVALID_CONFIG,
      'local',
      `qpack.maxTableCapacity must be an integer 0–${QPACK_MAX_TABLE_CAPACITY}, got ${cap}`,
    );
  if (!Number.isSafeInteger(blocked) || blocked < 0 || blocked > QPACK_MAX_BLOCKED_STREAMS)
    throw new OriginlinkError(
      ErrorCode.INVALID_CONFIG,
      'local',
      `qpack.blockedStreams must be an integer 0–${QPACK_MAX_BLOCKED_STREAMS}, got ${blocked}`,
    );
  if (!Number.isSafeInteger(delay) || delay < 0 || delay > QPACK_MAX_ACK_DELAY_MS)
    throw new OriginlinkError(
      ErrorCode.INVALID_CONFIG,
      'local',
      `qpack.ackDelayMs must be an integer 0–${QPACK_MAX_ACK_DELAY_MS}, got ${delay}`,
    );
  if (saving !== undefined && (!Number.isSafeInteger(saving) || saving < 0 || saving > QPACK_MAX_REFERENCE_SAVING))
    throw new OriginlinkError(
      ErrorCode.INVALID_CONFIG,
      'local',
      `qpack.minReferenceSaving must be an integer 0–${QPACK_MAX_REFERENCE_SAVING}, got ${saving}`,
    );
  const out: H3ConnectionOptions = {
    role,
    maxFieldSectionSize,
    qpackMaxTableCapacity: cap,
    qpackBlockedStreams: blocked,
    maxFrameSize: Math.max(maxFieldSectionSize, 16 * 1024),
  };
  if (saving !== undefined) out.qpackMinReferenceSaving = saving;
  if (cap > 0 && delay > 0) out.decoderAckDelay = { ms: delay, schedule: unrefTimer };
  return out;
}

function unrefTimer(fn: () => void, ms: number): () => void {
  const t = setTimeout(fn, ms);
  t.unref();
  return () => clearTimeout(t);
}
