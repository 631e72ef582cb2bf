/** One HTTP/2 stream's state (RFC 9113 §5.1) and send queue, owned by the connection. */
import type { HeaderList } from '../http/types.js';

export class H2Stream {
  readonly id: number;
  sendWindow: number;
  recvWindow: number;
  /** Consumed bytes whose credit is not returned yet. */
  recvUnacked = 0;
  /** DATA bytes delivered to the application and not yet consumed. */
  unconsumed = 0;
  /** We sent END_STREAM (half-closed local). */
  localClosed = false;
  /** The peer sent END_STREAM (half-closed remote). */
  remoteClosed = false;
  /**
   * Server: the rest of the request is not wanted — once our END_STREAM leaves, RST_STREAM(NO_ERROR) (RFC 9113 §8.1).
   */
  stopAfterEnd = false;
  /** A final head arrived (a second header block is trailers). */
  headSeen = false;
  /** Interim (1xx) heads received before it (MAX_INTERIM_RESPONSES). */
  interims = 0;
  /** Opened by the peer (counts against our SETTINGS_MAX_CONCURRENT_STREAMS). */
  peerOpened = false;
  requestMethod: string | null = null;
  /** content-length of the message being received (§8.1.1), and DATA bytes so far. */
  expectedLength: number | null = null;
  /** A response that has no content (to HEAD, 204, 304: RFC 9110 §6.4.1): DATA on it is malformed. */
  bodyless = false;
  received = 0;
  pendingTrailers: HeaderList | null = null;
  pendingEnd = false;
  #chunks: Uint8Array[] = [];
  #bytes = 0;

  constructor(id: number, sendWindow: number, recvWindow: number) {
    this.id = id;
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }

  get pendingBytes(): number {
    return this.#bytes;
  }

  queue(data: Uint8Array, end: boolean): void {
    if (data.length) {
      this.#chunks.push(data);
      this.#bytes += data.length;
    }
    if (end) this.pendingEnd = true;
  }

  /**
   * The next DATA payload within the stream's window and `max` (the connection
   * window and the peer's frame size), or null when nothing may go. A bare
   * END_STREAM goes with an empty payload even without credit (it uses none).
   */
  take(max: number): { data: Uint8Array; end: boolean } | null {
    if (this.#bytes === 0) {
      if (!this.pendingEnd || this.pendingTrailers) return null;
      this.pendingEnd = false;
      return { data: EMPTY, end: true };
    }
    const n = Math.min(this.#bytes, this.sendWindow, max);
    if (n <= 0) return null;
    let data: Uint8Array;
    const head = this.#chunks[0]!;
    if (head.length <= n) {
      // Whole chunks, joined only when more than one fits.
      if (head.length === n || this.#chunks.length === 1) {
        data = head;
        this.#chunks.shift();
      } else {
        const parts: Uint8Array[] = [];
        let got = 0;
        while (got < n) {
          const c = this.#chunks[0]!;
          const take = Math.min(c.length, n - got);
          parts.push(take === c.length ? c : c.subarray(0, take));
          if (take === c.length) this.#chunks.shift();
          else this.#chunks[0] = c.subarray(take);
          got += take;
        }
        data = new Uint8Array(got);
        let off = 0;
        for (const p of parts) {
          data.set(p, off);
          off += p.length;
        }
      }
    } else {
      data = head.subarray(0, n);
      this.#chunks[0] = head.subarray(n);
    }
    this.#bytes -= data.length;
    this.sendWindow -= data.length;
    const end = this.#bytes === 0 && this.pendingEnd && !this.pendingTrailers;
    if (end) this.pendingEnd = false;
    return { data, end };
  }
}

const EMPTY = new Uint8Array(0);
