/**
 * What the HTTP/2 client (client/h2.ts) and server (server/h2.ts) drivers share
 * between the sans-IO H2Connection and a socket: one write per event-loop
 * turn of whatever the state machine produced (setImmediate, so every
 * response completed in this turn's I/O callbacks and their promise
 * continuations shares it; one concatenated buffer, not a writev of small
 * frames — both measured in bench/proxy.mjs with BENCH_FRONT=h2c), and receive credit that follows
 * the reader (RFC 9113 §5.2: WINDOW_UPDATE only for bytes the reader took,
 * so a slow reader holds the peer to one stream window).
 */
import type net from 'node:net';
import type { H2Connection } from '../h2/connection.js';

/** Per-stream reader state: bytes delivered while the reader was paused are owed back as credit. */
export interface H2Flow {
  owed: number;
  paused: boolean;
}

/** Bytes of ours the peer has not read past which we stop reading its frames (it makes us send more with each). */
const OUTPUT_PAUSE_BYTES = 4 * 1024 * 1024;

/**
 * Bytes the socket may hold unsent before writers of stream data wait for its 'drain' (`congested`). Credit alone
 * does not bound them: a peer that grants 2^31 − 1 of window and reads nothing had a whole origin body (or a
 * client's whole upload) queued in our memory.
 */
const SOCKET_HIGH_WATER = 1024 * 1024;

/** Output pieces this large are written as they are, not copied into the turn's buffer (see flushNow). */
const BY_REFERENCE = 4096;

export class H2Wire {
  #h2: H2Connection;
  #socket: net.Socket;
  #queued = false;
  /** Reads stopped until our output drains (checkOutput). */
  #readPaused = false;

  /** 'drain' events of the socket so far: a writer waiting on `congested` saw progress when this moved. */
  drains = 0;

  /** `onDrain`: the socket took its queue (writers waiting on `congested` may go on). */
  constructor(h2: H2Connection, socket: net.Socket, onDrain: () => void) {
    this.#h2 = h2;
    this.#socket = socket;
    socket.on('drain', () => {
      this.drains++;
      onDrain();
    });
  }

  /**
   * More than SOCKET_HIGH_WATER waits in the socket, or in this turn's output on its way there: stream data waits
   * for the socket's 'drain' (the peer reads slowly).
   */
  get congested(): boolean {
    return this.#socket.writableLength + this.#h2.outputData > SOCKET_HIGH_WATER;
  }

  /** Queue one write of the state machine's output for the end of this turn. */
  flush(): void {
    if (this.#queued) return;
    this.#queued = true;
    setImmediate(() => {
      this.#queued = false;
      this.flushNow();
    });
  }

  /**
   * Write what is pending now: before the socket is ended or destroyed (a GOAWAY, a stream's last frames).
   * Frames are gathered into one buffer, except pieces of BY_REFERENCE bytes or more (the DATA payloads
   * of a relayed body): those go by reference in the same writev, so a body is not copied once more
   * (the copy was 9 % of the h2c front's CPU on 100 KiB responses, its garbage more).
   */
  flushNow(): void {
    const out = this.#h2.takeOutput();
    const s = this.#socket;
    if (out.length === 0 || s.destroyed || s.writableEnded) return;
    if (out.length === 1) {
      s.write(out[0]!);
      return;
    }
    let large = false;
    for (let i = 0; i < out.length; i++)
      if (out[i]!.length >= BY_REFERENCE) {
        large = true;
        break;
      }
    if (!large) {
      s.write(Buffer.concat(out));
      return;
    }
    s.cork();
    let from = 0;
    for (let i = 0; i < out.length; i++) {
      const b = out[i]!;
      if (b.length < BY_REFERENCE) continue;
      if (i > from) s.write(i - from === 1 ? out[from]! : Buffer.concat(out.slice(from, i)));
      s.write(b);
      from = i + 1;
    }
    if (from < out.length) s.write(out.length - from === 1 ? out[from]! : Buffer.concat(out.slice(from)));
    s.uncork();
  }

  /**
   * After a read was handled: a peer that does not read what it makes us send (answers to its PINGs, SETTINGS
   * and resets; responses, requests) is not read either until that drains, so our memory per connection stays
   * bounded (RFC 9113 §10.5). Both roles: a client and an origin can each do it.
   */
  checkOutput(): void {
    const s = this.#socket;
    if (this.#readPaused || s.writableLength <= OUTPUT_PAUSE_BYTES) return;
    this.#readPaused = true;
    s.pause();
    s.once('drain', () => {
      this.#readPaused = false;
      if (!s.destroyed) s.resume();
    });
  }

  /** `n` bytes of DATA reached the reader: credit them now unless it is paused. */
  received(id: number, flow: H2Flow, n: number): void {
    if (flow.paused) flow.owed += n;
    else this.#h2.consumed(id, n);
  }

  /** The reader wants more: give back what it held. */
  resume(id: number, flow: H2Flow): void {
    flow.paused = false;
    if (flow.owed === 0) return;
    this.#h2.consumed(id, flow.owed);
    flow.owed = 0;
    this.flush();
  }
}
