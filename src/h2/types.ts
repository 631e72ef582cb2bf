/** Options and events of the sans-IO HTTP/2 connection (src/h2/connection.ts). */
import type { SharedHeaderList } from '../http/types.js';
import type { FloodLimits } from '../http/floods.js';

export interface H2ConnectionOptions {
  role: 'client' | 'server';
  /** Our per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE). Default 4 MiB (the pool's windowSize). */
  windowSize?: number;
  /** Our connection receive window. Default 4 × windowSize. */
  connectionWindowSize?: number;
  /**
   * Streams the peer may open at once (SETTINGS_MAX_CONCURRENT_STREAMS; a client allows none, it disables push).
   * Default 100.
   */
  maxConcurrentStreams?: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE, also our HPACK decoding cap. Default 64 KiB. */
  maxHeaderListSize?: number;
  /** SETTINGS_HEADER_TABLE_SIZE for the peer's encoder. Default 4096. */
  headerTableSize?: number;
  /** Our SETTINGS_MAX_FRAME_SIZE. Default 16384. */
  maxFrameSize?: number;
  /** Server: SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441). Default false. */
  enableConnectProtocol?: boolean;
  /** Flood limits per second (see floods.ts). */
  limits?: Partial<FloodLimits>;
}

export type H2Event =
  /** The peer's SETTINGS arrived (and were acknowledged); `maxConcurrentStreams` is what we may open. */
  | { type: 'settings'; maxConcurrentStreams: number | null }
  /**
   * A complete, valid field section: a request or response head (`trailers` false) or trailers.
   * `contentLength`: the head's Content-Length, already checked (null: none, trailers, or a bodyless response).
   */
  | {
      type: 'headers';
      streamId: number;
      /** Shared: the same list comes again for the same block (SharedHeaderList). */
      headers: SharedHeaderList;
      endStream: boolean;
      trailers: boolean;
      neverIndexed: readonly number[];
      contentLength: number | null;
    }
  /** Client: an interim (1xx, not 101) response head before the final one, checked (RFC 9113 §8.1). */
  | { type: 'interim'; streamId: number; headers: SharedHeaderList }
  | { type: 'data'; streamId: number; data: Uint8Array; endStream: boolean }
  /** The stream ended for us without its end: reset by the peer, or by us for a stream error. */
  /**
   * `connection`: the stream ends with its connection (a connection error, or GOAWAY with an error code): the code is
   * the connection's, not a verdict on this stream.
   */
  | { type: 'reset'; streamId: number; code: number; byPeer: boolean; message?: string; connection?: true }
  | { type: 'goaway'; lastStreamId: number; code: number; debug: string }
  | { type: 'ping-ack'; data: Uint8Array }
  /** Send credit arrived: queued DATA may go (the driver flushes). */
  | { type: 'writable' }
  /** A stream slot or stream credit is free again: more requests may open. */
  | { type: 'streams-available' }
  /** The connection is over (a connection error of ours or the peer's GOAWAY with an error is in `error`). */
  | { type: 'closed'; error: { code: number; message: string; byPeer: boolean } | null };

export type H2Listener = (ev: H2Event) => void;
