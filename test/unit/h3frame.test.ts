import { describe, expect, it } from 'vitest';
import { concatBytes } from '../../src/codec/bytes.js';
import { H3Error, H3ErrorCode } from '../../src/codec/errors.js';
import {
  encodeDataFrameHeader,
  encodeFrame,
  encodeGoaway,
  encodeSettings,
  FrameParser,
  FrameType,
  isGrease,
  StreamTypeReader,
  type FrameEvent,
} from '../../src/codec/h3frame.js';
import { encodeVarint } from '../../src/codec/varint.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'));

/** Feed in the given chunk sizes (cycled); merge DATA chunks of one frame for comparison. */
function parse(bytes: Uint8Array, chunk: number | 'random', maxFrameSize = 1 << 16): FrameEvent[] {
  const p = new FrameParser({ maxFrameSize });
  const events: FrameEvent[] = [];
  let off = 0;
  let seed = 7;
  while (off < bytes.length) {
    let n = chunk === 'random' ? ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 9) + 1 : chunk;
    n = Math.min(n, bytes.length - off);
    events.push(...p.push(bytes.subarray(off, off + n)));
    off += n;
  }
  expect(p.midFrame).toBe(false);
  return mergeData(events);
}

function mergeData(events: FrameEvent[]): FrameEvent[] {
  const out: FrameEvent[] = [];
  let acc: Uint8Array[] | null = null;
  for (const e of events) {
    if (e.kind === 'data') {
      if (e.first) acc = [];
      acc!.push(e.chunk.slice());
      if (e.last) {
        out.push({ kind: 'data', chunk: concatBytes(acc!), first: true, last: true });
        acc = null;
      }
    } else out.push(e);
  }
  return out;
}

function h3error(fn: () => unknown): H3Error {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(H3Error);
    return e as H3Error;
  }
  throw new Error('expected an H3Error');
}

const sample = concatBytes([
  encodeSettings([
    [0x01, 4096],
    [0x06, 16384],
    [0x07, 100],
    [0x1f * 3 + 0x21, 5],
  ]),
  encodeFrame(FrameType.HEADERS, hex('0000d1d7')),
  encodeFrame(0x21, hex('deadbeef')), // grease frame, skipped
  encodeFrame(FrameType.DATA, new Uint8Array(300).fill(7)),
  encodeFrame(FrameType.DATA, new Uint8Array(0)),
  encodeFrame(0x1fn * 1000000000000000n + 0x21n, hex('00')), // 8-byte grease type
  encodeGoaway(8),
  encodeFrame(FrameType.MAX_PUSH_ID, encodeVarint(3)),
  encodeFrame(FrameType.CANCEL_PUSH, encodeVarint(2)),
  encodeFrame(FrameType.PUSH_PROMISE, concatBytes([encodeVarint(1), hex('0000c1')])),
]);

describe('HTTP/3 frame parser', () => {
  const expected: FrameEvent[] = [
    {
      kind: 'settings',
      settings: new Map([
        [1, 4096],
        [6, 16384],
        [7, 100],
        [0x1f * 3 + 0x21, 5],
      ]),
    },
    { kind: 'headers', block: hex('0000d1d7') },
    { kind: 'unknown', type: 0x21n },
    { kind: 'data', chunk: new Uint8Array(300).fill(7), first: true, last: true },
    { kind: 'data', chunk: new Uint8Array(0), first: true, last: true },
    { kind: 'unknown', type: 0x1fn * 1000000000000000n + 0x21n },
    { kind: 'goaway', id: 8 },
    { kind: 'max-push-id', pushId: 3 },
    { kind: 'cancel-push', pushId: 2 },
    { kind: 'push-promise', pushId: 1, block: hex('0000c1') },
  ];
  for (const chunk of [sample.length, 1, 2, 3, 7, 'random'] as const) {
    it(`parses every frame type in chunks of ${chunk}`, () => {
      expect(parse(sample, chunk)).toEqual(expected);
    });
  }

  it('streams DATA without waiting for the whole frame', () => {
    const p = new FrameParser({ maxFrameSize: 16 });
    const frame = concatBytes([encodeDataFrameHeader(1000), new Uint8Array(1000).fill(1)]);
    const ev1 = p.push(frame.subarray(0, 103));
    expect(ev1).toHaveLength(1);
    expect(ev1[0]).toMatchObject({ kind: 'data', first: true, last: false });
    expect((ev1[0] as { chunk: Uint8Array }).chunk.length).toBe(100);
    expect(p.midFrame).toBe(true);
    const ev2 = p.push(frame.subarray(103));
    expect(ev2[0]).toMatchObject({ kind: 'data', first: false, last: true });
    expect(p.midFrame).toBe(false);
  });

  it('skips unknown frames larger than the limit without buffering them', () => {
    const big = encodeFrame(0x1f * 7 + 0x21, new Uint8Array(100_000));
    expect(parse(big, 4096, 1024)).toEqual([{ kind: 'unknown', type: BigInt(0x1f * 7 + 0x21) }]);
  });

  it('skips an unknown frame whose length is past 2^53 (RFC 9114 §9: ignored, not a connection error); a known one is H3_FRAME_ERROR', () => {
    const head = (type: number): Uint8Array =>
      concatBytes([encodeVarint(type), new Uint8Array([0xd0, 0, 0, 0, 0, 0, 0, 0])]); // length 2^60
    const p = new FrameParser({ maxFrameSize: 1024 });
    expect(p.push(concatBytes([head(0x21), new Uint8Array(5000)]))).toEqual([{ kind: 'unknown', type: 0x21n }]);
    expect(p.midFrame).toBe(true);
    expect(h3error(() => new FrameParser({ maxFrameSize: 1024 }).push(head(FrameType.HEADERS))).wireCode).toBe(
      H3ErrorCode.FRAME_ERROR,
    );
  });

  it('enforces the max frame size for non-DATA frames', () => {
    const p = new FrameParser({ maxFrameSize: 10 });
    const e = h3error(() => p.push(encodeFrame(FrameType.HEADERS, new Uint8Array(11))));
    expect(e.wireCode).toBe(H3ErrorCode.EXCESSIVE_LOAD);
    // DATA is not limited.
    expect(parse(encodeFrame(FrameType.DATA, new Uint8Array(100)), 1, 10)).toHaveLength(1);
  });

  it('reports reserved HTTP/2 frame types', () => {
    expect(parse(encodeFrame(0x06, new Uint8Array(8)), 1)).toEqual([{ kind: 'reserved-h2', type: 6 }]);
  });

  it('rejects malformed payloads with H3_FRAME_ERROR', () => {
    const mk = (): FrameParser => new FrameParser({ maxFrameSize: 100 });
    expect(h3error(() => mk().push(encodeFrame(FrameType.GOAWAY, hex('0000')))).wireCode).toBe(H3ErrorCode.FRAME_ERROR);
    expect(h3error(() => mk().push(encodeFrame(FrameType.GOAWAY, hex('40')))).wireCode).toBe(H3ErrorCode.FRAME_ERROR);
    expect(h3error(() => mk().push(encodeFrame(FrameType.SETTINGS, hex('01')))).wireCode).toBe(H3ErrorCode.FRAME_ERROR);
    expect(h3error(() => mk().push(encodeFrame(FrameType.MAX_PUSH_ID, hex('')))).wireCode).toBe(
      H3ErrorCode.FRAME_ERROR,
    );
  });

  it('rejects duplicate and HTTP/2 settings with H3_SETTINGS_ERROR', () => {
    const mk = (): FrameParser => new FrameParser({ maxFrameSize: 100 });
    expect(
      h3error(() =>
        mk().push(
          encodeSettings([
            [1, 0],
            [1, 0],
          ]),
        ),
      ).wireCode,
    ).toBe(H3ErrorCode.SETTINGS_ERROR);
    expect(h3error(() => mk().push(encodeSettings([[2, 0]]))).wireCode).toBe(H3ErrorCode.SETTINGS_ERROR);
  });

  it('saturates huge setting values and ignores huge identifiers', () => {
    const f = encodeSettings([
      [6, (1n << 62n) - 1n],
      [(1n << 62n) - 1n, 1],
    ]);
    expect(parse(f, 1)).toEqual([{ kind: 'settings', settings: new Map([[6, Number.MAX_SAFE_INTEGER]]) }]);
  });

  it('reports a truncated frame via midFrame', () => {
    const p = new FrameParser({ maxFrameSize: 100 });
    p.push(encodeFrame(FrameType.HEADERS, hex('000000')).subarray(0, 3));
    expect(p.midFrame).toBe(true);
    const q = new FrameParser({ maxFrameSize: 100 });
    q.push(hex('40'));
    expect(q.midFrame).toBe(true);
  });

  it('recognises grease values', () => {
    expect(isGrease(0x21)).toBe(true);
    expect(isGrease(0x40)).toBe(true);
    expect(isGrease(0x22)).toBe(false);
    expect(isGrease(0x1fn * 123456789012345n + 0x21n)).toBe(true);
  });
});

describe('unidirectional stream type reader', () => {
  it('reads the type in any chunking and returns the rest', () => {
    const r = new StreamTypeReader();
    expect(r.push(hex('80'))).toBeNull();
    expect(r.push(hex('00'))).toBeNull();
    expect(r.push(hex('00'))).toBeNull();
    const got = r.push(hex('02 0405'));
    expect(got?.type).toBe(0x2n);
    expect([...got!.rest]).toEqual([4, 5]);
    expect(new StreamTypeReader().push(hex('00'))).toEqual({ type: 0n, rest: new Uint8Array(0) });
  });
});
