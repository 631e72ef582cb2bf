/**
 * The endpoint's datagram decision (src/quic/accept.ts), sans-IO, with
 * hand-built byte vectors: RFC 9000 §17.2 long headers, §5.2 routing by
 * destination connection id, §6.1 Version Negotiation, §8.1.2 Retry,
 * §14.1 the 1200-byte minimum for a client's Initial, the connection cap.
 */
import { describe, expect, it } from 'vitest';
import { classifyDatagram, parseLongHeader, type AcceptContext } from '../../src/quic/accept.js';

const CID = 16;
const dcid = Uint8Array.from({ length: CID }, (_, i) => 0xa0 + i);
const scid = Uint8Array.from({ length: 8 }, (_, i) => 0x10 + i);

/** A long-header packet: first byte (form 1, fixed bit, type), version, DCID, SCID, then (Initial) token, then padding to `size`. */
function longPacket(o: {
  type?: number;
  version?: number;
  dcid?: Uint8Array;
  token?: Uint8Array;
  size: number;
}): Uint8Array {
  const d = o.dcid ?? dcid;
  const type = o.type ?? 0;
  const parts = [
    0xc0 | (type << 4),
    ...[24, 16, 8, 0].map((s) => ((o.version ?? 1) >>> s) & 0xff),
    d.length,
    ...d,
    scid.length,
    ...scid,
  ];
  if (type === 0 && (o.version ?? 1) === 1) {
    const t = o.token ?? new Uint8Array(0);
    parts.push(0x40 | (t.length >> 8), t.length & 0xff, ...t); // 2-byte varint length
  }
  const out = new Uint8Array(Math.max(o.size, parts.length));
  out.set(parts);
  return out;
}

function ctx(over: Partial<AcceptContext> = {}): AcceptContext {
  return {
    cidLen: CID,
    known: () => false,
    serving: true,
    live: 0,
    maxConnections: 10,
    retry: false,
    versionSupported: (v) => v === 1,
    ...over,
  };
}

describe('parseLongHeader', () => {
  it('reads version, type, DCID, SCID and an Initial token', () => {
    const h = parseLongHeader(longPacket({ token: Uint8Array.of(1, 2, 3), size: 1200 }));
    expect(h).not.toBeNull();
    expect([h!.version, h!.type, [...h!.dcid], [...h!.scid], [...h!.token!]]).toEqual([
      1,
      0,
      [...dcid],
      [...scid],
      [1, 2, 3],
    ]);
  });

  it('refuses lengths past the end, v1 connection ids over 20 bytes, short headers', () => {
    const p = longPacket({ size: 0 });
    expect(parseLongHeader(p.subarray(0, 10))).toBeNull();
    const bad = longPacket({ size: 1200 });
    bad[5] = 21;
    expect(parseLongHeader(bad)).toBeNull();
    expect(parseLongHeader(Uint8Array.of(0x40, 1, 2, 3, 4, 5, 6, 7))).toBeNull();
  });

  it('a token length past the datagram is unparseable', () => {
    const p = longPacket({ token: Uint8Array.of(9), size: 0 });
    expect(parseLongHeader(p.subarray(0, p.length - 1))).toBeNull();
  });
});

describe('classifyDatagram', () => {
  it('a 1200-byte Initial for an unknown DCID is accepted; 1199 bytes is dropped (RFC 9000 §14.1)', () => {
    expect(classifyDatagram(longPacket({ size: 1200 }), ctx()).kind).toBe('accept');
    expect(classifyDatagram(longPacket({ size: 1199 }), ctx())).toEqual({ kind: 'drop', reason: 'small-initial' });
  });

  it('routes short and long headers of a known connection by DCID', () => {
    const key = Buffer.from(dcid).toString('latin1');
    const known = (k: string): boolean => k === key;
    const short = new Uint8Array(40);
    short[0] = 0x40;
    short.set(dcid, 1);
    expect(classifyDatagram(short, ctx({ known }))).toEqual({ kind: 'route', key });
    expect(classifyDatagram(longPacket({ type: 2, size: 60 }), ctx({ known }))).toEqual({ kind: 'route', key });
    expect(classifyDatagram(short, ctx())).toEqual({ kind: 'drop', reason: 'unknown-cid' });
  });

  it('an unsupported version gets Version Negotiation only in a datagram of 1200 bytes or more (RFC 9000 §6.1)', () => {
    expect(classifyDatagram(longPacket({ version: 0x1a2a3a4a, size: 1200 }), ctx()).kind).toBe('version-negotiation');
    expect(classifyDatagram(longPacket({ version: 0x1a2a3a4a, size: 100 }), ctx())).toEqual({
      kind: 'drop',
      reason: 'small-unsupported',
    });
    // A Version Negotiation packet (version 0) is never answered with one (it was).
    expect(classifyDatagram(longPacket({ version: 0, size: 1200 }), ctx())).toEqual({
      kind: 'drop',
      reason: 'version-negotiation',
    });
  });

  it('Retry when address validation is on and the Initial has no token; a token goes on to accept (checked by the endpoint)', () => {
    expect(classifyDatagram(longPacket({ size: 1200 }), ctx({ retry: true })).kind).toBe('retry');
    expect(classifyDatagram(longPacket({ token: Uint8Array.of(7, 7), size: 1200 }), ctx({ retry: true })).kind).toBe(
      'accept',
    );
  });

  it('drops: too short to route, not an Initial, connection cap reached, not a server, cut headers', () => {
    expect(classifyDatagram(new Uint8Array(CID), ctx())).toEqual({ kind: 'drop', reason: 'short' });
    expect(classifyDatagram(longPacket({ type: 2, size: 1200 }), ctx())).toEqual({
      kind: 'drop',
      reason: 'not-initial',
    });
    expect(classifyDatagram(longPacket({ size: 1200 }), ctx({ live: 10 }))).toEqual({ kind: 'drop', reason: 'full' });
    expect(classifyDatagram(longPacket({ size: 1200 }), ctx({ serving: false }))).toEqual({
      kind: 'drop',
      reason: 'not-serving',
    });
    expect(classifyDatagram(longPacket({ size: 1200 }).subarray(0, 20), ctx())).toEqual({
      kind: 'drop',
      reason: 'unparseable',
    });
    // RFC 9000 §17.2: servers SHOULD read longer connection ids of other versions to answer them.
    expect(classifyDatagram(new Uint8Array(1200).fill(0xff), ctx()).kind).toBe('version-negotiation');
  });

  it('never throws on random bytes (2,000 datagrams)', () => {
    let seed = 7;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) & 0xff;
    for (let i = 0; i < 2000; i++) {
      const b = Uint8Array.from({ length: 1 + ((rnd() * 7) % 1400) }, rnd);
      expect(() => classifyDatagram(b, ctx())).not.toThrow();
    }
  });
});
