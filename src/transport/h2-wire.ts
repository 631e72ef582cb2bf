/**
 * What the HTTP/2 client (h2.ts) and server (h2-server.ts) drivers share
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

export class H2Wire {
  #h2: H2Connection;
  #socket: net.Socket;
  #queued = false;

  constructor(h2: H2Connection, socket: net.Socket) {
    this.#h2 = h2;
    this.#socket = socket;
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

  /** Write what is pending now: before the socket is ended or destroyed (a GOAWAY, a stream's last frames). */
  flushNow(): void {
    const out = this.#h2.takeOutput();
    const s = this.#socket;
    if (out.length === 0 || s.destroyed || s.writableEnded) return;
    s.write(out.length === 1 ? out[0]! : Buffer.concat(out));
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
