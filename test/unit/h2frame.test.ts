/**
 * HTTP/2 frames (src/codec/h2frame.ts): every type parsed, fed whole and one
 * byte at a time; the rules a frame carries alone (RFC 9113 §4.2 size, §6.x
 * stream ids, fixed payload sizes, padding, SETTINGS values); encoders; and
 * a differential run against an independent parser (Debian's
 * python3-hyperframe) in both directions.
 *
 * RFC 9113 sections covered: §4.1 (header, reserved bit, unknown types),
 * §4.2 (SETTINGS_MAX_FRAME_SIZE), §4.3 (header block split into HEADERS +
 * CONTINUATION), §6.1 DATA, §6.2 HEADERS, §6.3 PRIORITY, §6.4 RST_STREAM,
 * §6.5 SETTINGS (§6.5.2 values), §6.6 PUSH_PROMISE, §6.7 PING, §6.8 GOAWAY,
 * §6.9 WINDOW_UPDATE, §6.10 CONTINUATION.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  dataFrameHeader,
  encodeGoaway,
  encodeHeaders,
  encodePing,
  encodeRstStream,
  encodeSettings,
  encodeWindowUpdate,
  FRAME_HEADER,
  H2Error,
  H2FrameReader,
  headersFrames,
  type H2Frame,
} from '../../src/codec/h2frame.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const cat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(Buffer.concat(parts));

function whole(bytes: Uint8Array): H2Frame[] {
  return new H2FrameReader().push(bytes);
}
/** Fed one byte at a time; DATA comes out in pieces as it arrives, joined here per frame for comparison. */
function byteByByte(bytes: Uint8Array): H2Frame[] {
  const r = new H2FrameReader();
  const out: H2Frame[] = [];
  let open: Extract<H2Frame, { type: 'data' }> | null = null;
  for (const b of bytes) {
    for (const f of r.push(Uint8Array.of(b))) {
      if (f.type !== 'data') {
        out.push(f);
        continue;
      }
      open = open
        ? {
            ...open,
            data: Uint8Array.from(Buffer.concat([open.data, f.data])),
            endStream: f.endStream,
            flowLength: open.flowLength + f.flowLength,
          }
        : f;
      if (!r.midFrame) {
        out.push(open);
        open = null;
      }
    }
  }
  expect(r.buffered).toBe(0);
  expect(r.midFrame).toBe(false);
  return out;
}
const plain = (f: H2Frame[]): unknown =>
  JSON.parse(JSON.stringify(f, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v)));

/** A connection error thrown, or (with `stream`) a stream error in the frame's place: the frames around it still come. */
function fails(bytes: Uint8Array, code: number, stream: number | null = null): void {
  if (stream !== null) {
    const ping = hex('000008 06 00 00000000 0102030405060708');
    const frames = whole(cat(ping, bytes, ping));
    expect(frames.map((f) => f.type)).toEqual(['ping', 'stream-error', 'ping']);
    expect(frames[1]).toMatchObject({ type: 'stream-error', streamId: stream, code });
    return;
  }
  const e = (() => {
    try {
      whole(bytes);
      return null;
    } catch (x) {
      return x as H2Error;
    }
  })();
  expect(e).toBeInstanceOf(H2Error);
  expect(e!.wireCode).toBe(code);
  expect(e!.streamId).toBe(stream);
}

describe('parsing every frame type, whole and byte by byte', () => {
  const all = cat(
    dataFrameHeader(1, 5, true),
    Buffer.from('hello'),
    hex('000005 00 09 00000003 02 6869 0000'), // DATA, PADDED (2 bytes of padding) + END_STREAM
    ...encodeHeaders(3, hex('8286'), false, 16_384),
    hex('00000a 01 2c 00000005 02 80000001 10 8286 0000'), // HEADERS with PADDED|PRIORITY|END_HEADERS
    hex('000005 02 00 00000005 00000003 10'), // PRIORITY (dropped)
    encodeRstStream(7, 8),
    encodeSettings([
      [1, 4096],
      [3, 100],
      [4, 65_535],
      [5, 16_384],
    ]),
    encodeSettings([], true),
    encodePing(hex('0102030405060708')),
    encodeGoaway(9, 0, 'bye'),
    encodeWindowUpdate(0, 1000),
    hex('000002 09 04 00000003 8286'), // CONTINUATION, END_HEADERS
    hex('000003 fa 07 00000001 aabbcc'), // unknown type 0xfa, unknown flags
    dataFrameHeader(1, 0, false), // an empty DATA frame (no padding): legal
  );
  it('the same frames whether fed whole or one byte at a time', () => {
    const a = whole(all);
    expect(plain(byteByByte(all))).toEqual(plain(a));
    expect(a.map((f) => f.type)).toEqual([
      'data',
      'data',
      'headers',
      'headers',
      'priority',
      'rst-stream',
      'settings',
      'settings',
      'ping',
      'goaway',
      'window-update',
      'continuation',
      'unknown',
      'data',
    ]);
    expect(plain([a[1]])).toEqual([{ type: 'data', streamId: 3, data: '6869', endStream: true, flowLength: 5 }]);
    expect(plain([a[3]])).toEqual([
      { type: 'headers', streamId: 5, block: '8286', endStream: false, endHeaders: true, dependsOn: 1 },
    ]);
    expect(a[6]).toMatchObject({
      type: 'settings',
      ack: false,
      settings: [
        [1, 4096],
        [3, 100],
        [4, 65_535],
        [5, 16_384],
      ],
    });
    expect(a[9]).toMatchObject({ type: 'goaway', lastStreamId: 9, code: 0 });
  });

  it('§4.3: a block larger than the frame size becomes HEADERS + CONTINUATION, END_HEADERS on the last', () => {
    const frames = encodeHeaders(1, new Uint8Array(40).fill(0x82), true, 16).map((f) => whole(f)[0]!);
    expect(frames.map((f) => [f.type, (f as { endHeaders: boolean }).endHeaders])).toEqual([
      ['headers', false],
      ['continuation', false],
      ['continuation', true],
    ]);
    expect((frames[0] as { endStream: boolean }).endStream).toBe(true);
  });

  it('a block written after room for a frame header becomes its HEADERS frame in place, or HEADERS + CONTINUATION', () => {
    const roomed = new Uint8Array(FRAME_HEADER + 2);
    roomed.set([0x82, 0x86], FRAME_HEADER);
    const one = headersFrames(5, roomed, false, 16);
    expect(one).toBe(roomed); // no second buffer, no copy
    expect(whole(one as Uint8Array)).toEqual(whole(cat(...encodeHeaders(5, hex('8286'), false, 16))));
    const big = new Uint8Array(FRAME_HEADER + 40).fill(0x82);
    const split = headersFrames(1, big, true, 16) as Uint8Array[];
    expect(Array.isArray(split)).toBe(true);
    expect(whole(cat(...split))).toEqual(whole(cat(...encodeHeaders(1, new Uint8Array(40).fill(0x82), true, 16))));
  });

  it('§4.1: the reserved bit of a stream id is ignored', () => {
    expect(whole(hex('000004 03 00 80000001 00000008'))[0]).toMatchObject({ type: 'rst-stream', streamId: 1 });
  });
});

describe('rules a frame carries alone', () => {
  it('§4.2: a frame over SETTINGS_MAX_FRAME_SIZE is FRAME_SIZE_ERROR, judged from its header alone', () => {
    const r = new H2FrameReader();
    expect(() => r.push(hex('004001 00 00 00000001'))).toThrow(H2Error);
  });
  it('§6: stream-id rules are PROTOCOL_ERROR', () => {
    fails(hex('000001 00 00 00000000 61'), 0x1); // DATA on 0
    fails(hex('000001 01 04 00000000 82'), 0x1); // HEADERS on 0
    fails(
      encodeSettings([]).map((b, i) => (i === 8 ? 1 : b)),
      0x1,
    ); // SETTINGS on stream 1
    fails(hex('000008 06 00 00000001 0000000000000000'), 0x1); // PING on a stream
    fails(hex('000008 07 00 00000001 0000000000000000'), 0x1); // GOAWAY on a stream
    fails(hex('000004 03 00 00000000 00000000'), 0x1); // RST_STREAM on 0
    fails(hex('000001 09 04 00000000 82'), 0x1); // CONTINUATION on 0
  });
  it('fixed payload sizes are FRAME_SIZE_ERROR', () => {
    fails(hex('000003 03 00 00000001 000000'), 0x6); // RST_STREAM
    fails(hex('000007 06 00 00000000 00000000000000'), 0x6); // PING
    fails(hex('000005 04 00 00000000 0000000000'), 0x6); // SETTINGS not a multiple of 6
    fails(hex('000006 04 01 00000000 000100001000'), 0x6); // SETTINGS ACK with a payload
    fails(hex('000003 08 00 00000000 000001'), 0x6); // WINDOW_UPDATE
    fails(hex('000004 07 00 00000000 00000000'), 0x6); // GOAWAY too short
  });
  it('§6.3: a PRIORITY of the wrong size is a stream error', () =>
    fails(hex('000004 02 00 00000003 00000000'), 0x6, 3));
  it('§6.1: padding as long as the payload is PROTOCOL_ERROR', () => {
    fails(hex('000003 00 08 00000001 03 6161'), 0x1);
    fails(hex('000001 00 08 00000001 01'), 0x1);
  });
  it('§6.9: a zero increment is a stream error on a stream, a connection error on stream 0', () => {
    fails(hex('000004 08 00 00000005 00000000'), 0x1, 5);
    fails(hex('000004 08 00 00000000 00000000'), 0x1, null);
  });
  it('§6.5.2: SETTINGS values out of range', () => {
    fails(encodeSettings([[2, 2]]), 0x1); // ENABLE_PUSH
    fails(encodeSettings([[4, 2 ** 31]]), 0x3); // INITIAL_WINDOW_SIZE: FLOW_CONTROL_ERROR
    fails(encodeSettings([[5, 16_383]]), 0x1); // MAX_FRAME_SIZE too small
    fails(encodeSettings([[5, 2 ** 24]]), 0x1); // too large
    expect(whole(encodeSettings([[0x99, 7]]))[0]).toMatchObject({ settings: [[0x99, 7]] }); // §6.5.2: unknown ids are ignored (by the connection)
  });
});

/** Debian's python3-hyperframe, an independent frame implementation. */
const PY = '/usr/bin/python3';
const PY_FRAMES = `
import sys, json
from hyperframe.frame import Frame, DataFrame, HeadersFrame, RstStreamFrame, SettingsFrame, PingFrame, GoAwayFrame, WindowUpdateFrame, ContinuationFrame
req = json.load(sys.stdin)
if req['op'] == 'parse':
    data = bytes.fromhex(req['hex']); out = []; off = 0
    while off < len(data):
        f, length = Frame.parse_frame_header(memoryview(data[off:off+9]))
        f.parse_body(memoryview(data[off+9:off+9+length])); off += 9 + length
        d = {'type': type(f).__name__, 'stream': f.stream_id, 'flags': sorted(f.flags)}
        if isinstance(f, (DataFrame,)): d['data'] = f.data.hex()
        if isinstance(f, (HeadersFrame, ContinuationFrame)): d['data'] = f.data.hex()
        if isinstance(f, RstStreamFrame): d['code'] = f.error_code
        if isinstance(f, SettingsFrame): d['settings'] = sorted([list(x) for x in f.settings.items()])
        if isinstance(f, PingFrame): d['data'] = f.opaque_data.hex()
        if isinstance(f, GoAwayFrame): d['last'] = f.last_stream_id; d['code'] = f.error_code
        if isinstance(f, WindowUpdateFrame): d['inc'] = f.window_increment
        out.append(d)
    print(json.dumps(out))
else:
    fs = []
    f = DataFrame(1, b'abc', flags=['END_STREAM', 'PADDED'], pad_length=4); fs.append(f)
    f = HeadersFrame(3, b'\\x82\\x86', flags=['END_HEADERS', 'PRIORITY'], depends_on=1, stream_weight=10); fs.append(f)
    fs.append(RstStreamFrame(5, error_code=7))
    f = SettingsFrame(0); f.settings = {1: 100, 4: 1000}; fs.append(f)
    fs.append(PingFrame(0, opaque_data=b'12345678', flags=['ACK']))
    fs.append(GoAwayFrame(0, last_stream_id=11, error_code=2, additional_data=b'x'))
    fs.append(WindowUpdateFrame(3, window_increment=99))
    fs.append(ContinuationFrame(3, b'\\x84', flags=['END_HEADERS']))
    print(b''.join(x.serialize() for x in fs).hex())
`;
const python = (req: unknown): string =>
  execFileSync(PY, ['-c', PY_FRAMES], { input: JSON.stringify(req), encoding: 'utf8' });

describe('differential against python3-hyperframe', () => {
  it('frames serialized there (padding, priority fields, flags) parse here to the same fields', () => {
    const f = whole(hex(python({ op: 'serialize' })));
    expect(plain(f)).toEqual([
      { type: 'data', streamId: 1, data: '616263', endStream: true, flowLength: 8 },
      { type: 'headers', streamId: 3, block: '8286', endStream: false, endHeaders: true, dependsOn: 1 },
      { type: 'rst-stream', streamId: 5, code: 7 },
      {
        type: 'settings',
        ack: false,
        settings: [
          [1, 100],
          [4, 1000],
        ],
      },
      { type: 'ping', ack: true, data: Buffer.from('12345678').toString('hex') },
      { type: 'goaway', lastStreamId: 11, code: 2, debug: '78' },
      { type: 'window-update', streamId: 3, increment: 99 },
      { type: 'continuation', streamId: 3, block: '84', endHeaders: true },
    ]);
  });

  it('frames encoded here parse there to the same fields', () => {
    const bytes = cat(
      dataFrameHeader(1, 3, true),
      Buffer.from('abc'),
      ...encodeHeaders(3, hex('8286'), true, 16_384),
      encodeRstStream(5, 8),
      encodeSettings([
        [3, 250],
        [6, 65_536],
      ]),
      encodePing(hex('0807060504030201'), true),
      encodeGoaway(7, 0xb, 'calm'),
      encodeWindowUpdate(0, 65_535),
    );
    expect(JSON.parse(python({ op: 'parse', hex: Buffer.from(bytes).toString('hex') }))).toEqual([
      { type: 'DataFrame', stream: 1, flags: ['END_STREAM'], data: '616263' },
      { type: 'HeadersFrame', stream: 3, flags: ['END_HEADERS', 'END_STREAM'], data: '8286' },
      { type: 'RstStreamFrame', stream: 5, flags: [], code: 8 },
      {
        type: 'SettingsFrame',
        stream: 0,
        flags: [],
        settings: [
          [3, 250],
          [6, 65_536],
        ],
      },
      { type: 'PingFrame', stream: 0, flags: ['ACK'], data: '0807060504030201' },
      { type: 'GoAwayFrame', stream: 0, flags: [], last: 7, code: 0xb },
      { type: 'WindowUpdateFrame', stream: 0, flags: [], inc: 65_535 },
    ]);
  });
});
