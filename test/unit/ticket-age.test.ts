import { describe, expect, it } from 'vitest';
import { boundTicketAge } from '../../src/quic/ticket-age.js';

/** DER of a positive INTEGER in its minimal form. */
function int(v: number): number[] {
  const bytes: number[] = [];
  do {
    bytes.unshift(v % 256);
    v = Math.floor(v / 256);
  } while (v > 0);
  if (bytes[0]! & 0x80) bytes.unshift(0);
  return [0x02, bytes.length, ...bytes];
}
const tlv = (tag: number, content: number[]): number[] => {
  if (content.length < 0x80) return [tag, content.length, ...content];
  return [tag, 0x82, content.length >> 8, content.length & 0xff, ...content];
};

/** A session blob as quiche makes it: [u64 len][SSL_SESSION DER as BoringSSL writes it][u64 len][params]. */
function blob(time: number, timeout: number, extra = 200): Uint8Array {
  const der = tlv(0x30, [
    ...int(1), // version
    ...int(0x0304), // TLS 1.3
    ...tlv(0x04, [0x13, 0x01]), // cipher
    ...tlv(0x04, new Array(32).fill(7)), // session id
    ...tlv(0x04, new Array(32).fill(9)), // secret
    ...tlv(0xa1, int(time)),
    ...tlv(0xa2, int(timeout)),
    ...tlv(0xa3, new Array(extra).fill(1)), // the rest (peer certificate…), not read
  ]);
  const params = [1, 2, 3, 4];
  const out = new Uint8Array(8 + der.length + 8 + params.length);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(der.length));
  out.set(der, 8);
  dv.setBigUint64(8 + der.length, BigInt(params.length));
  out.set(params, 16 + der.length);
  return out;
}

const T = 1_795_000_000; // a second in 2026 (4 bytes, high bit clear)

describe('boundTicketAge: the reported ticket age never above the true one (RFC 8446 §4.2.11.1, §8.3)', () => {
  it('moves the receipt time to the next second and shortens the lifetime by as much', () => {
    const b = blob(T, 7200);
    const copy = Uint8Array.from(b);
    const out = boundTicketAge(b, (T + 5) * 1000 + 300);
    expect(out).toEqual(blob(T + 1, 7199));
    expect(b).toEqual(copy); // the store's bytes are not changed
  });

  it('never into the future: a ticket used in the second it came keeps its time', () => {
    const b = blob(T, 7200);
    expect(boundTicketAge(b, T * 1000 + 999)).toBe(b);
  });

  it('a ticket used in the next second: its time becomes that second (reported age 0, not 1000 ms)', () => {
    expect(boundTicketAge(blob(T, 300), (T + 1) * 1000 + 20)).toEqual(blob(T + 1, 299));
  });

  it('long-form DER lengths (a session with a certificate) are read', () => {
    expect(boundTicketAge(blob(T, 7200, 1000), (T + 60) * 1000)).toEqual(blob(T + 1, 7199, 1000));
  });

  it('a lifetime whose encoding would shrink is left a second longer; the time still moves', () => {
    // 128 is 0x00 0x80 (two bytes), 127 one byte: not rewritable in place.
    const out = boundTicketAge(blob(T, 128), (T + 9) * 1000);
    expect(out).toEqual(blob(T + 1, 128));
  });

  it('a time whose encoding would grow is handed on unchanged', () => {
    const edge = 0x7fffffff; // +1 needs a fifth byte (0x00 0x80 …)
    const b = blob(edge, 7200);
    expect(boundTicketAge(b, (edge + 10) * 1000)).toBe(b);
  });

  it('anything that does not read as a session is handed on unchanged', () => {
    const cases = [
      new Uint8Array(0),
      new Uint8Array(7),
      Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 99, 1, 2]),
      Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 2, 0x31, 0]),
    ];
    for (const b of cases) expect(boundTicketAge(b, Date.now())).toBe(b);
    const wrong = blob(T, 7200);
    wrong[8 + 4 + 3 + 4] = 0x05; // the cipher's tag: not an OCTET STRING
    expect(boundTicketAge(wrong, (T + 9) * 1000)).toBe(wrong);
  });
});
