/** Public shapes of the sans-IO HTTP/3 connection. */
import type { OriginlinkError } from '../errors.js';
import type { Settings } from '../codec/h3frame.js';
import type { SharedHeaderList } from '../http/types.js';
import type { Priority } from './priority.js';

export interface H3ConnectionOptions {
  role: 'client' | 'server';
  /** SETTINGS_MAX_FIELD_SECTION_SIZE we advertise and enforce on received sections (octets, RFC 9114 §4.2.2). */
  maxFieldSectionSize: number;
  /** SETTINGS_QPACK_MAX_TABLE_CAPACITY we advertise: the peer encoder's dynamic table limit (RFC 9204 §5). */
  qpackMaxTableCapacity: number;
  /** SETTINGS_QPACK_BLOCKED_STREAMS we advertise (RFC 9204 §5). */
  qpackBlockedStreams: number;
  /** Largest payload of a non-DATA frame we buffer; above it is H3_EXCESSIVE_LOAD. */
  maxFrameSize: number;
  /**
   * Most of the peer's QPACK dynamic table our encoder uses, in octets
   * (bounded by the peer's SETTINGS_QPACK_MAX_TABLE_CAPACITY); 0 = static
   * table and literals only. Our encoder never makes the peer block.
   * Default 4096.
   */
  qpackEncoderTableCapacity?: number;
  /** Our encoder refers to the dynamic table only where that saves this many bytes (QpackEncoderOptions). */
  qpackMinReferenceSaving?: number;
  /**
   * Hold our QPACK decoder's instructions (Section Acknowledgment, Insert Count Increment, Stream
   * Cancellation) this long and send them together, on the scheduler given (the transport's timers:
   * this layer has none). RFC 9204 §4.4 sets no deadline; the peer's encoder only learns later that it
   * may rely on new entries, and it never blocks on us. Absent: sent at once.
   */
  decoderAckDelay?: { ms: number; schedule: (fn: () => void, ms: number) => () => void };
}

export type H3Event =
  /**
   * The first field section on a request stream: the request (server role)
   * or a response (client role). 1xx interim responses arrive here too,
   * with `end` false; the final response follows.
   */
  | {
      type: 'headers';
      streamId: number;
      headers: SharedHeaderList;
      end: boolean;
      /**
       * Server role: the request's priority (RFC 9218: a PRIORITY_UPDATE that came first, else its `priority` header).
       */
      priority?: Priority;
    }
  /**
   * Server role: the client reprioritised a request with PRIORITY_UPDATE
   * (RFC 9218 §7.2) after its head was reported — possibly after the whole
   * response was written, while part of it may still wait to be sent.
   */
  | {
      type: 'priority';
      streamId: number;
      priority: Priority;
      /** The response's end was already handed to QUIC: only what the driver still holds can be reordered. */
      written: boolean;
    }
  /** Trailers; the message ends with them. */
  | { type: 'trailers'; streamId: number; headers: SharedHeaderList }
  /** Body bytes (a copy, owned by the listener); `end` marks the end of the message (possibly with empty `data`). */
  | { type: 'data'; streamId: number; data: Uint8Array; end: boolean }
  /**
   * The stream failed: the peer reset it or asked us to stop sending, or we
   * reset it for a malformed message (H3_MESSAGE_ERROR...), or a GOAWAY
   * showed it was never processed (H3_REQUEST_REJECTED).
   */
  /** `message`: our own stream error (a malformed message we refused), with why; absent for the peer's reset. */
  | { type: 'reset'; streamId: number; code: number; message?: string }
  /** The peer sent GOAWAY: stream id (from a server) or push id (from a client). */
  | { type: 'goaway'; id: number }
  /** The peer's SETTINGS arrived. */
  | { type: 'settings'; settings: Settings }
  /** Stream credit grew after `openRequest` returned null. */
  | { type: 'streams-available' }
  /** The QUIC handshake completed (`early` true when 0-RTT keys came first; may then repeat with false). */
  | { type: 'connected'; early: boolean }
  /** The connection is closed; no further events, and every open stream is gone with it. */
  | { type: 'closed'; error: OriginlinkError | null };

export type H3Listener = (ev: H3Event) => void;

export interface H3Stats {
  /** Request streams with either direction still open. */
  activeStreams: number;
  /** Client: requests opened on this connection. */
  requestsOpened: number;
  /** Server: requests accepted (not refused by GOAWAY). */
  requestsAccepted: number;
  goawaySent: number | null;
  goawayReceived: number | null;
  /** Server: PRIORITY_UPDATE frames received (RFC 9218 §7.2), and those waiting for a request not seen yet. */
  priorityUpdates: number;
  pendingPriorityUpdates: number;
  qpack: {
    /** Dynamic table capacity our encoder uses in the peer's decoder (0 = static only). */
    encoderTableCapacity: number;
    encoderInsertCount: number;
    /** Inserts the peer has acknowledged. */
    encoderKnownReceived: number;
    /** Octets in the table the peer's encoder built in our decoder. */
    decoderTableSize: number;
    decoderInsertCount: number;
    /** Field sections waiting for encoder stream data. */
    blockedStreams: number;
  };
}
