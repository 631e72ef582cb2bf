/**
 * What an endpoint does with one incoming datagram, decided sans-IO (no
 * socket, no clock, no quiche): route it to a connection by destination
 * connection id, answer with Version Negotiation or a Retry, accept a new
 * connection, or drop it. The endpoint executes the decision.
 *
 * Every connection id we issue is `cidLen` bytes, so a short-header packet
 * is routed without a parse (RFC 9000 §5.2: the DCID follows the first byte).
 */
import { readVarint } from '../codec/varint.js';

/** QUIC version 1 (RFC 9000). */
export const QUIC_V1 = 0x00000001;
/** RFC 9000 §14.1: a server MUST discard an Initial in a datagram under 1200 bytes. */
export const MIN_INITIAL = 1200;
/** RFC 9000 §17.2: long header packet type 0 is Initial (version 1). */
const TYPE_INITIAL = 0;

/** The invariant fields of a long header (RFC 8999 §5.1) and, for a v1 Initial, its token. */
export interface LongHeader {
  version: number;
  /** RFC 9000 §17.2 long packet type (bits 4-5 of the first byte). */
  type: number;
  dcid: Uint8Array;
  scid: Uint8Array;
  /** v1 Initial only: the token (empty when none). */
  token: Uint8Array | null;
}

export type DropReason =
  | 'short'
  | 'unknown-cid'
  | 'unparseable'
  | 'not-serving'
  | 'not-initial'
  | 'small-initial'
  | 'full'
  | 'small-unsupported'
  | 'version-negotiation';

export type Decision =
  | { kind: 'route'; key: string }
  | { kind: 'drop'; reason: DropReason }
  /** RFC 9000 §6.1: answer an unsupported version with Version Negotiation. */
  | { kind: 'version-negotiation'; header: LongHeader }
  /** RFC 9000 §8.1.2: address validation before committing state. */
  | { kind: 'retry'; header: LongHeader }
  /** A new connection; with Retry on, the token must still be checked (it says which DCID came first). */
  | { kind: 'accept'; header: LongHeader };

export interface AcceptContext {
  /** Length of every connection id we issue. */
  cidLen: number;
  /** Is there a connection for this DCID (latin1 key)? */
  known(key: string): boolean;
  /** This endpoint accepts connections (a server, not closing). */
  serving: boolean;
  /** Connections alive now, and the cap on them. */
  live: number;
  maxConnections: number;
  /** Stateless Retry before accepting. */
  retry: boolean;
  versionSupported(version: number): boolean;
}

/** A connection-id map key. */
export function cidKey(cid: Uint8Array): string {
  return Buffer.from(cid.buffer, cid.byteOffset, cid.byteLength).toString('latin1');
}

/** Parse a long header; null when the bytes are not one (too short, lengths past the end). */
export function parseLongHeader(msg: Uint8Array): LongHeader | null {
  if (msg.length < 7 || (msg[0]! & 0x80) === 0) return null;
  const version = ((msg[1]! << 24) | (msg[2]! << 16) | (msg[3]! << 8) | msg[4]!) >>> 0;
  let off = 5;
  const dl = msg[off++]!;
  // RFC 9000 §17.2: version 1 connection ids are at most 20 bytes (other versions: up to 255, RFC 8999).
  if (version === QUIC_V1 && dl > 20) return null;
  if (off + dl + 1 > msg.length) return null;
  const dcid = msg.subarray(off, off + dl);
  off += dl;
  const sl = msg[off++]!;
  if (version === QUIC_V1 && sl > 20) return null;
  if (off + sl > msg.length) return null;
  const scid = msg.subarray(off, off + sl);
  off += sl;
  const type = (msg[0]! & 0x30) >> 4;
  let token: Uint8Array | null = null;
  if (version === QUIC_V1 && type === TYPE_INITIAL) {
    let v;
    try {
      v = readVarint(msg, off);
    } catch {
      return null; // a token length past 2^53
    }
    if (v === null) return null;
    const len = v.value;
    off += v.length;
    if (off + len > msg.length) return null;
    token = msg.subarray(off, off + len);
  }
  return { version, type, dcid, scid, token };
}

/** Decide what to do with one datagram (RFC 9000 §5.2, §6, §8.1, §14.1). */
export function classifyDatagram(msg: Uint8Array, ctx: AcceptContext): Decision {
  if (msg.length < 1 + ctx.cidLen) return DROP_SHORT;
  if ((msg[0]! & 0x80) === 0) {
    const key = Buffer.from(msg.buffer, msg.byteOffset + 1, ctx.cidLen).toString('latin1');
    return ctx.known(key) ? { kind: 'route', key } : DROP_UNKNOWN;
  }
  const h = parseLongHeader(msg);
  if (!h) return { kind: 'drop', reason: 'unparseable' };
  const key = cidKey(h.dcid);
  if (ctx.known(key)) return { kind: 'route', key };
  if (!ctx.serving) return { kind: 'drop', reason: 'not-serving' };
  // RFC 9000 §6.1: a Version Negotiation packet (version 0) is never answered with one.
  if (h.version === 0) return { kind: 'drop', reason: 'version-negotiation' };
  if (!ctx.versionSupported(h.version)) {
    // Only a datagram large enough to be a client's first flight earns an answer (no amplification).
    return msg.length >= MIN_INITIAL
      ? { kind: 'version-negotiation', header: h }
      : { kind: 'drop', reason: 'small-unsupported' };
  }
  if (h.type !== TYPE_INITIAL) return { kind: 'drop', reason: 'not-initial' };
  if (msg.length < MIN_INITIAL) return { kind: 'drop', reason: 'small-initial' };
  if (ctx.live >= ctx.maxConnections) return { kind: 'drop', reason: 'full' };
  if (ctx.retry && (h.token === null || h.token.length === 0)) return { kind: 'retry', header: h };
  return { kind: 'accept', header: h };
}

const DROP_SHORT: Decision = { kind: 'drop', reason: 'short' };
const DROP_UNKNOWN: Decision = { kind: 'drop', reason: 'unknown-cid' };
