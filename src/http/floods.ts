/**
 * Flood limits of one multiplexed client connection: counts of cheap-to-send, costly-to-handle frames per
 * one-second window (RFC 9113 §10.5; the rapid reset attack, CVE-2023-44487). The HTTP/2 state machine
 * enforces all of them (h2/floods.ts); our HTTP/3 server the stream resets (server/h3.ts).
 */
export interface FloodLimits {
  /**
   * Streams reset by the peer (RST_STREAM, or opened and cancelled) per second before GOAWAY ENHANCE_YOUR_CALM
   * (CVE-2023-44487). Default 100.
   */
  resets: number;
  /** SETTINGS frames per second. Default 50. */
  settings: number;
  /** PING frames (not ACKs) per second. Default 100. */
  pings: number;
  /** DATA frames with no payload and no END_STREAM per second. Default 100. */
  emptyData: number;
  /** CONTINUATION frames in one header block. Default 128. */
  continuations: number;
}

export const DEFAULT_FLOOD_LIMITS: Readonly<FloodLimits> = Object.freeze({
  resets: 100,
  settings: 50,
  pings: 100,
  emptyData: 100,
  continuations: 128,
});
