/**
 * Seeded fuzzing of every parser: random and mutated inputs must either
 * parse or fail with the typed wire error, never with anything else, and
 * must terminate. Bounded: a few thousand cases per parser.
 */
import { describe, expect, it } from 'vitest';
import { concatBytes } from '../../src/codec/bytes.js';
import { H3Error, QpackError, WireError } from '../../src/codec/errors.js';
import { encodeFrame, encodeSettings, FrameParser, FrameType } from '../../src/codec/h3frame.js';
import { QpackDecoder } from '../../src/codec/qpack/decoder.js';
import { QpackEncoder } from '../../src/codec/qpack/encoder.js';
import { VarintRangeError, readVarint } from '../../src/codec/varint.js';
import { H3Connection } from '../../src/h3/connection.js';
import type { QuicStreamTransport } from '../../src/h3/quic-seam.js';

function rng(seed: number): (n: number) => number {
  let s = seed;
  return (n) => {
    s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff;
    return s % n;
  };
}

function randomBytes(r: (n: number) => number, max: number): Uint8Array {
  const out = new Uint8Array(r(max + 1));
  for (let i = 0; i < out.length; i++) out[i] = r(256);
  return out;
}

function mutate(r: (n: number) => number, src: Uint8Array): Uint8Array {
  const out = src.slice();
  const flips = 1 + r(4);
  for (let i = 0; i < flips && out.length > 0; i++) out[r(out.length)] = r(256);
  return r(3) === 0 ? out.subarray(0, r(out.length + 1)) : out;
}

const REQ: Array<[string, string]> = [
  [':method', 'GET'],
  [':scheme', 'https'],
  [':authority', 'a.example'],
  [':path', '/x?y=z'],
  ['user-agent', 'fuzz'],
];

describe('fuzz: parsers fail only with typed errors', () => {
  it('varint', () => {
    const r = rng(1);
    for (let i = 0; i < 5000; i++) {
      const b = randomBytes(r, 9);
      try {
        readVarint(b);
      } catch (e) {
        expect(e).toBeInstanceOf(VarintRangeError);
      }
    }
  });

  it('HTTP/3 frame parser (random chunking)', () => {
    const r = rng(2);
    const seed = concatBytes([
      encodeSettings([
        [1, 4096],
        [6, 100],
      ]),
      encodeFrame(FrameType.HEADERS, new QpackEncoder().encode(REQ)),
      encodeFrame(FrameType.DATA, new Uint8Array(40)),
      encodeFrame(FrameType.GOAWAY, Uint8Array.of(4)),
    ]);
    for (let i = 0; i < 3000; i++) {
      const b = i % 2 ? randomBytes(r, 64) : mutate(r, seed);
      const p = new FrameParser({ maxFrameSize: 256 });
      try {
        let off = 0;
        while (off < b.length) {
          const n = 1 + r(8);
          p.push(b.subarray(off, off + n));
          off += n;
        }
      } catch (e) {
        expect(e).toBeInstanceOf(H3Error);
      }
    }
  });

  it('QPACK decoder: field sections and encoder stream', () => {
    const r = rng(3);
    const inserts = Uint8Array.from(
      Buffer.from('3fbd01c00f7777772e6578616d706c652e636f6dc10c2f73616d706c652f70617468', 'hex'),
    );
    const section = Uint8Array.from(Buffer.from('0381d1d71011', 'hex'));
    const plain = new QpackEncoder().encode(REQ);
    for (let i = 0; i < 3000; i++) {
      const dec = new QpackDecoder({ maxTableCapacity: 220, maxBlockedStreams: 2 });
      try {
        dec.feedEncoderStream(i % 3 === 0 ? mutate(r, inserts) : inserts);
        dec.decodeSection(4, i % 3 === 1 ? mutate(r, section) : mutate(r, plain));
        dec.decodeSection(8, randomBytes(r, 24));
        dec.feedEncoderStream(randomBytes(r, 16));
        dec.takeDecoderStreamBytes();
      } catch (e) {
        expect(e).toBeInstanceOf(QpackError);
      }
    }
  });

  it('QPACK encoder: decoder stream input', () => {
    const r = rng(4);
    for (let i = 0; i < 3000; i++) {
      try {
        new QpackEncoder().feedDecoderStream(randomBytes(r, 12));
      } catch (e) {
        expect(e).toBeInstanceOf(QpackError);
      }
    }
  });

  it('H3Connection: random bytes on random streams never throw, only close', () => {
    const r = rng(5);
    const t: QuicStreamTransport = {
      isClient: false,
      openBidi: () => null,
      openUni: (() => {
        let n = 3;
        return () => (n += 4);
      })(),
      send: () => {},
      resetStream: () => {},
      stopSending: () => {},
      close: () => {},
    };
    const ctrl = concatBytes([Uint8Array.of(0), encodeSettings([[6, 1000]])]);
    const req = concatBytes([
      encodeFrame(FrameType.HEADERS, new QpackEncoder().encode(REQ)),
      encodeFrame(FrameType.DATA, new Uint8Array(5)),
    ]);
    let closedCount = 0;
    for (let i = 0; i < 1500; i++) {
      const h3 = new H3Connection(t, {
        role: i % 2 ? 'server' : 'client',
        maxFieldSectionSize: 4096,
        qpackMaxTableCapacity: 256,
        qpackBlockedStreams: 2,
        maxFrameSize: 1024,
      });
      let closed = false;
      h3.on((e) => {
        if (e.type === 'closed') {
          closed = true;
          // H3_INTERNAL_ERROR would mean a bug surfaced as an unexpected exception.
          if (e.error) expect(e.error.details['wireCode'], e.error.message).not.toBe(0x102);
        }
      });
      h3.onConnected(false);
      for (let k = 0; k < 6 && !closed; k++) {
        const id = r(12);
        const payload = r(2) ? mutate(r, id % 4 >= 2 ? ctrl : req) : randomBytes(r, 40);
        h3.onStreamData(id, payload, r(4) === 0);
        if (r(10) === 0) h3.onStreamReset(id, r(0x200));
      }
      if (closed) closedCount++;
      expect(h3.closed).toBe(closed);
    }
    expect(closedCount).toBeGreaterThan(100);
  });

  it('every wire error carries a code in the H3 or QPACK ranges', () => {
    const e = new WireError(0x106, 'x');
    expect(e.wireCode).toBe(0x106);
  });
});
