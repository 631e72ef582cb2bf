/**
 * A stream's end must reach a peer that ACKs at once (issue 17).
 *
 * quiche 0.18 forgets a zero-length FIN when the ACK of the stream's last
 * data is processed between `stream_send(id, b"", true)` and the next
 * `send()` (quiche/src/stream.rs `SendBuf::write` records `fin_off` but
 * queues nothing, `SendBuf::is_complete` only compares acked ranges with
 * `fin_off`, and quiche/src/lib.rs collects the stream in the ACK path, so
 * the flushable entry finds no stream). See native-notes/quiche.md.
 *
 * The peer here is a bare quiche client driven by the test over a real UDP
 * socket: it ACKs every packet as soon as it has read it, and its ACK is
 * sent in the same macrotask in which our server's application ends the
 * stream — the ACK reaches our endpoint in the poll phase, before the
 * driver's pass (setImmediate) runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { makeCerts, type TestCerts } from '../helpers/certs.js';
import { QuicEndpoint } from '../../src/quic/endpoint.js';
import { buildConfig } from '../../src/quic/config.js';
import { quiche, type QuicheConnection } from '../../src/quic/quiche.js';
import type { QuicConnection } from '../../src/quic/connection.js';
import { Pacer } from '../../src/quic/pacer.js';

const EMPTY = new Uint8Array(0);
let certs: TestCerts;
let server: QuicEndpoint;
/** Server: a request stream whose FIN arrived gets 100 bytes at once; the end waits for `ends`. */
const answered = new Map<number, () => void>();
let serverConn: QuicConnection | null = null;

beforeAll(async () => {
  certs = makeCerts();
  const config = buildConfig('server', {
    alpn: ['originlink-test'],
    cert: certs.certPath,
    key: certs.keyPath,
    maxStreamsBidi: 128,
  });
  server = await QuicEndpoint.bind({
    host: '127.0.0.1',
    server: {
      config,
      onConnection(conn) {
        serverConn = conn;
        conn.setHandler({
          onStreamData(id, _data, fin) {
            if (!fin) return;
            conn.send(id, randomBytes(100), false);
            answered.get(id)?.();
          },
          onStreamReset() {},
          onStopSending() {},
          onStreamsAvailable() {},
          onConnected() {},
          onClosed() {},
        });
      },
    },
  });
});

afterAll(async () => {
  await server?.close();
});

/** A bare quiche client on its own socket; every step is explicit. */
class Peer {
  readonly q: QuicheConnection;
  readonly sock: dgram.Socket;
  readonly local: { host: string; port: number };
  #inbox: Buffer[] = [];
  #wake: (() => void) | null = null;
  #buf = new Uint8Array(65536);

  private constructor(q: QuicheConnection, sock: dgram.Socket, local: { host: string; port: number }) {
    this.q = q;
    this.sock = sock;
    this.local = local;
    sock.on('message', (m) => {
      this.#inbox.push(m);
      this.#wake?.();
    });
  }

  static async open(): Promise<Peer> {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    const local = { host: '127.0.0.1', port: sock.address().port };
    const config = buildConfig('client', { alpn: ['originlink-test'], caFile: certs.caPath });
    const q = quiche().Connection.connect(
      'localhost',
      randomBytes(16),
      local,
      { host: '127.0.0.1', port: server.address.port },
      config,
    );
    return new Peer(q, sock, local);
  }

  /** Feed every datagram received so far to quiche. */
  absorb(): number {
    const n = this.#inbox.length;
    for (const m of this.#inbox.splice(0)) {
      try {
        this.q.recv(m, { from: { host: '127.0.0.1', port: server.address.port }, to: this.local });
      } catch {
        // Undecryptable leftovers are dropped, as quiche would.
      }
    }
    return n;
  }

  /** Everything quiche wants to send now (ACKs included), not yet sent. */
  packets(): Buffer[] {
    const out: Buffer[] = [];
    for (let i = 0; i < 1000; i++) {
      const r = this.q.send(this.#buf);
      if (r === null) break;
      out.push(Buffer.from(this.#buf.subarray(0, r[0])));
    }
    return out;
  }

  transmit(packets: Buffer[]): void {
    for (const p of packets) this.sock.send(p, server.address.port, '127.0.0.1');
  }

  /** Wait (bounded) for datagrams; quiche's timer runs if it is due. */
  async pump(ms: number): Promise<void> {
    if (this.#inbox.length === 0) {
      await new Promise<void>((r) => {
        const t = setTimeout(() => {
          this.#wake = null;
          r();
        }, ms);
        this.#wake = () => {
          clearTimeout(t);
          this.#wake = null;
          r();
        };
      });
    }
    this.absorb();
    const t = this.q.timeout();
    if (t !== null && t <= 0) this.q.onTimeout();
  }

  read(id: number): { bytes: number; fin: boolean } {
    let bytes = 0;
    let fin = false;
    for (let i = 0; i < 100; i++) {
      let r;
      try {
        r = this.q.streamRecv(id, this.#buf);
      } catch {
        break;
      }
      if (r === null) break;
      bytes += r[0];
      if (r[1]) fin = true;
    }
    return { bytes, fin };
  }

  /** Lose every datagram received so far. */
  discard(): number {
    return this.#inbox.splice(0).length;
  }

  close(): void {
    this.sock.close();
  }
}

async function handshake(p: Peer): Promise<void> {
  p.transmit(p.packets());
  for (let i = 0; i < 200 && !p.q.isEstablished(); i++) {
    await p.pump(50);
    p.transmit(p.packets());
  }
  expect(p.q.isEstablished()).toBe(true);
}

/** Ask on stream `id`, read the 100 bytes answered (bounded), return the peer's ACK of them unsent. */
async function askAndRead(p: Peer, id: number): Promise<Buffer[]> {
  const got = new Promise<void>((r) => answered.set(id, r));
  p.q.streamSend(id, Buffer.from('go'), true);
  p.transmit(p.packets());
  await got;
  let bytes = 0;
  for (let i = 0; i < 100 && bytes < 100; i++) {
    await p.pump(20);
    bytes += p.read(id).bytes;
  }
  expect(bytes).toBe(100);
  return p.packets();
}

/** Read stream `id` until its FIN or `ms` pass, ACKing as we go; the bytes read and whether the FIN came. */
async function awaitFin(p: Peer, id: number, ms: number): Promise<{ bytes: number; fin: boolean }> {
  let bytes = 0;
  let fin = false;
  const until = performance.now() + ms;
  while (!fin && performance.now() < until) {
    await p.pump(20);
    const r = p.read(id);
    bytes += r.bytes;
    fin = r.fin;
    p.transmit(p.packets());
  }
  return { bytes, fin };
}

/**
 * `runs` requests on a fresh connection; each stream's end is arranged by `end` (given the peer, the
 * stream and the peer's unsent ACK of its 100 bytes). Returns how many ends never arrived within 1 s.
 */
async function hungEnds(runs: number, end: (p: Peer, id: number, ack: Buffer[]) => Promise<void>): Promise<number> {
  const p = await Peer.open();
  try {
    await handshake(p);
    let hung = 0;
    for (let run = 0; run < runs; run++) {
      const id = run * 4;
      await end(p, id, await askAndRead(p, id));
      if (!(await awaitFin(p, id, 1000)).fin) hung++;
    }
    return hung;
  } finally {
    p.close();
  }
}

describe('a lone FIN against a peer that ACKs at once', () => {
  it('every stream end arrives when the ACK of its data lands between the end and the next send', async () => {
    // One macrotask: the application ends the stream (a zero-length FIN to the driver) and the peer's ACK of all 100 bytes leaves.
    const hung = await hungEnds(
      20,
      (p, id, ack) =>
        new Promise<void>((r) =>
          setTimeout(() => {
            serverConn!.send(id, EMPTY, true);
            p.transmit(ack);
            r();
          }, 1),
        ),
    );
    expect(hung).toBe(0);
  }, 60_000);

  it('the same while our pacer holds packets back at that moment (the FIN must not wait for the pacer)', async () => {
    // On loopback the RTT is under 1 ms and nothing is paced; here the pacer says "wait 5 ms" from the
    // moment the stream ends, as it does on a real path when its tokens run out. The lone FIN is handed to
    // quiche at the start of a drain (write-queue.ts): if that drain then stops for the pacer, the peer's
    // ACK is read before the FIN leaves, and quiche forgets the FIN. Seen once in a full `npm test` run.
    const allow = Pacer.prototype.allow;
    let holdUntil = 0;
    Pacer.prototype.allow = function (this: Pacer, now: number): number {
      return now < holdUntil ? holdUntil - now : allow.call(this, now);
    };
    try {
      // The end, then (after the driver's pass, inside the pacer's 5 ms) the ACK of the data.
      const hung = await hungEnds(
        10,
        (p, id, ack) =>
          new Promise<void>((r) =>
            setTimeout(() => {
              holdUntil = performance.now() + 5;
              serverConn!.send(id, EMPTY, true);
              setTimeout(() => {
                p.transmit(ack);
                r();
              }, 2);
            }, 1),
          ),
      );
      expect(hung).toBe(0);
    } finally {
      Pacer.prototype.allow = allow;
    }
  }, 60_000);

  it('with a carrier, the end survives the loss of its packet once the data was acked', async () => {
    // The FIN-only packet is lost and the ACK of the data arrives after it was sent: quiche
    // collects the stream on that ACK, and its loss path finds no stream to resend the FIN on.
    // Riding on carrier bytes, the FIN is resent with them.
    const carrier = Uint8Array.of(0x21, 0x00);
    const p = await Peer.open();
    try {
      await handshake(p);
      serverConn!.setFinCarrier(carrier);
      let hung = 0;
      for (let run = 0; run < 5; run++) {
        const id = run * 4;
        const ack = await askAndRead(p, id);
        serverConn!.send(id, EMPTY, true);
        // The packet with the end: wait for it (bounded) and lose it.
        let lost = 0;
        for (let i = 0; i < 50 && lost === 0; i++) {
          await new Promise((r) => setTimeout(r, 5));
          lost = p.discard();
        }
        expect(lost).toBeGreaterThan(0);
        p.transmit(ack);
        const r = await awaitFin(p, id, 3000);
        if (!r.fin) hung++;
        else expect(r.bytes).toBe(carrier.length);
      }
      expect(hung).toBe(0);
    } finally {
      p.close();
    }
  }, 60_000);
});
