/**
 * The batch calls the driver uses on either QUIC engine (src/quic/quiche.ts: native on ours, written over
 * send()/recv() for the fallback): sendPackets fills a slab with packets and names each one's path by index,
 * pathAddresses turns an index back into addresses, and the path table is bounded: past 64 pairs it starts
 * again with a new generation, and a datagram given with an index of an older one is refused as StalePath
 * (the driver registers its pair again) instead of landing on whatever pair now has that index.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { clientConfig } from '../../src/quic/config.js';
import { PASS_CLOSED, PASS_DRAINING, parseQuicheError, quiche } from '../../src/quic/quiche.js';

const local = { host: '127.0.0.1', port: 40001 };
const remote = { host: '127.0.0.1', port: 40002 };

function client() {
  return quiche().Connection.connect('localhost', randomBytes(16), local, remote, clientConfig({}));
}

describe('QUIC batch calls', () => {
  it('sendPackets writes the first flight into the slab and names its path', () => {
    const c = client();
    const slot = c.maxSendUdpPayloadSize();
    const out = new Uint8Array(slot * 4);
    const meta = new Int32Array(1 + 2 * 4);
    const n = c.sendPackets(out, 4, meta);
    expect(n).toBeGreaterThanOrEqual(1);
    // RFC 9000 §14.1: a client's Initial datagram is padded to at least 1200 bytes.
    expect(meta[1]).toBeGreaterThanOrEqual(1200);
    expect(meta[0]).toBe(c.pathGeneration);
    expect(c.pathAddresses(meta[2]!)).toEqual({ from: local, to: remote });
    // Nothing more until the peer answers.
    expect(c.sendPackets(out, 4, meta)).toBe(0);
  });

  it('a full path table starts again: old indexes are StalePath, registering again works', () => {
    const c = client();
    const gen0 = c.pathGeneration;
    const first = c.registerPath(local, remote);
    expect(c.registerPath(local, remote)).toBe(first);
    for (let p = 0; p < 64; p++) c.registerPath(local, { host: '127.0.0.1', port: 50000 + p });
    expect(c.pathGeneration).not.toBe(gen0);
    let err: unknown = null;
    try {
      c.recvPacket(new Uint8Array(1200), first, gen0);
    } catch (e) {
      err = e;
    }
    expect(parseQuicheError(err).name).toBe('StalePath');
    const again = c.registerPath(local, remote);
    expect(c.pathAddresses(again)).toEqual({ from: local, to: remote });
    // A datagram that is not QUIC reaches quiche now (and is refused by it, not by the table).
    let err2: unknown = null;
    try {
      c.recvPacket(new Uint8Array(1200), again, c.pathGeneration);
    } catch (e) {
      err2 = e;
    }
    expect(parseQuicheError(err2).name).not.toBe('StalePath');
  });

  it('passState says in one call what isClosed, isDraining and timeout say, through the close', () => {
    const c = client();
    const expected = (): number => (c.isClosed() ? PASS_CLOSED : c.isDraining() ? PASS_DRAINING : (c.timeout() ?? -1));
    const out = new Uint8Array(c.maxSendUdpPayloadSize() * 4);
    const meta = new Int32Array(1 + 2 * 4);
    const seen: number[] = [];
    const look = (): void => {
      expect(c.passState()).toBe(expected());
      seen.push(c.passState());
    };
    look();
    c.sendPackets(out, 4, meta);
    look();
    c.close(true, 0, new Uint8Array(0));
    c.sendPackets(out, 4, meta);
    look();
    // Before any timer, the handshake's (quiche's loss timer), and closed: a client that never heard its peer has
    // nothing to drain (RFC 9000 §10.2), on both engines.
    expect(seen[0]).toBe(-1);
    expect(seen[1]).toBeGreaterThanOrEqual(0);
    expect(seen[2]).toBe(PASS_CLOSED);
  });
});
