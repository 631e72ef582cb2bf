/**
 * One H3Connection driven by hand-written peer bytes: protocol violations
 * must end in the right RFC 9114 / RFC 9204 error, whole and one byte at a
 * time; tolerated oddities (grease, unknown types, QPACK blocking) must not.
 */
import { describe, expect, it } from 'vitest';
import { concatBytes } from '../../src/codec/bytes.js';
import { H3ErrorCode, QpackErrorCode } from '../../src/codec/errors.js';
import {
  encodeFrame,
  encodeGoaway,
  encodePriorityUpdate,
  encodeSettings,
  FrameParser,
  FrameType,
} from '../../src/codec/h3frame.js';
import { QpackEncoder } from '../../src/codec/qpack/encoder.js';
import { encodeVarint } from '../../src/codec/varint.js';
import { OriginlinkError } from '../../src/errors.js';
import { H3Connection, type H3Event } from '../../src/h3/connection.js';
import { DEFAULT_PRIORITY, PENDING_PRIORITY_LIMIT } from '../../src/h3/priority.js';
import type { HeaderList } from '../../src/http/types.js';
import type { QuicStreamTransport } from '../../src/h3/quic-seam.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'));

class Rec implements QuicStreamTransport {
  readonly sent = new Map<number, Uint8Array[]>();
  readonly resets: Array<[number, number]> = [];
  readonly stops: Array<[number, number]> = [];
  closeCode: number | null = null;
  #bidi: number;
  #uni: number;
  constructor(readonly isClient: boolean) {
    this.#bidi = isClient ? 0 : 1;
    this.#uni = isClient ? 2 : 3;
  }
  openBidi(): number | null {
    const id = this.#bidi;
    this.#bidi += 4;
    return id;
  }
  openUni(): number | null {
    const id = this.#uni;
    this.#uni += 4;
    return id;
  }
  send(id: number, data: Uint8Array, _fin: boolean): void {
    let l = this.sent.get(id);
    if (!l) this.sent.set(id, (l = []));
    l.push(data.slice());
  }
  resetStream(id: number, code: number): void {
    this.resets.push([id, code]);
  }
  stopSending(id: number, code: number): void {
    this.stops.push([id, code]);
  }
  close(code: number): void {
    if (this.closeCode === null) this.closeCode = code;
  }
  bytes(id: number): Uint8Array {
    return concatBytes(this.sent.get(id) ?? []);
  }
}

type Mode = 'whole' | 'bytes';

function endpoint(
  role: 'client' | 'server',
  opts: Partial<{ qpackBlockedStreams: number; maxFrameSize: number }> = {},
) {
  const t = new Rec(role === 'client');
  const h3 = new H3Connection(t, {
    role,
    maxFieldSectionSize: 8192,
    qpackMaxTableCapacity: 220,
    qpackBlockedStreams: opts.qpackBlockedStreams ?? 4,
    maxFrameSize: opts.maxFrameSize ?? 4096,
  });
  const events: H3Event[] = [];
  h3.on((e) => events.push(e));
  h3.onConnected(false);
  return { t, h3, events };
}

function feed(h3: H3Connection, id: number, bytes: Uint8Array, fin: boolean, mode: Mode): void {
  if (mode === 'whole') {
    h3.onStreamData(id, bytes, fin);
    return;
  }
  if (bytes.length === 0) h3.onStreamData(id, bytes, fin);
  for (let i = 0; i < bytes.length; i++) h3.onStreamData(id, bytes.subarray(i, i + 1), fin && i === bytes.length - 1);
}

const settings = (): Uint8Array =>
  concatBytes([
    Uint8Array.of(0x00),
    encodeSettings([
      [0x06, 8192],
      [0x21, 7],
    ]),
  ]);
const enc = new QpackEncoder();
const headers = (h: HeaderList): Uint8Array => encodeFrame(FrameType.HEADERS, enc.encode(h));
const data = (s: string): Uint8Array => encodeFrame(FrameType.DATA, Buffer.from(s));
const REQ: HeaderList = [
  [':method', 'POST'],
  [':scheme', 'https'],
  [':authority', 'o.example'],
  [':path', '/p'],
];

function expectClosed(e: ReturnType<typeof endpoint>, code: number): void {
  expect(e.t.closeCode, `expected close with 0x${code.toString(16)}`).toBe(code);
  const closed = e.events.find((x) => x.type === 'closed');
  expect(closed).toBeDefined();
  const err = (closed as { error: OriginlinkError | null }).error;
  expect(err).toBeInstanceOf(OriginlinkError);
  expect(err!.details['wireCode']).toBe(code);
  expect(e.h3.closed).toBe(true);
}

const MODES: Mode[] = ['whole', 'bytes'];

describe('control stream violations (server role, client peer streams 2/6/10)', () => {
  for (const mode of MODES) {
    it(`missing SETTINGS -> H3_MISSING_SETTINGS (${mode})`, () => {
      const e = endpoint('server');
      feed(e.h3, 2, concatBytes([Uint8Array.of(0), encodeGoaway(0)]), false, mode);
      expectClosed(e, H3ErrorCode.MISSING_SETTINGS);
    });

    it(`unexpected frames on the control stream -> H3_FRAME_UNEXPECTED (${mode})`, () => {
      for (const bad of [data('x'), headers(REQ), encodeSettings([]), encodeFrame(0x06, new Uint8Array(8))]) {
        const e = endpoint('server');
        feed(e.h3, 2, concatBytes([settings(), bad]), false, mode);
        expectClosed(e, H3ErrorCode.FRAME_UNEXPECTED);
      }
    });

    it(`second control stream -> H3_STREAM_CREATION_ERROR (${mode})`, () => {
      const e = endpoint('server');
      feed(e.h3, 2, settings(), false, mode);
      feed(e.h3, 6, settings(), false, mode);
      expectClosed(e, H3ErrorCode.STREAM_CREATION_ERROR);
    });

    it(`closing a critical stream -> H3_CLOSED_CRITICAL_STREAM (${mode})`, () => {
      const a = endpoint('server');
      feed(a.h3, 2, settings(), true, mode);
      expectClosed(a, H3ErrorCode.CLOSED_CRITICAL_STREAM);
      const b = endpoint('server');
      feed(b.h3, 6, Uint8Array.of(0x02), false, mode);
      b.h3.onStreamReset(6, 0);
      expectClosed(b, H3ErrorCode.CLOSED_CRITICAL_STREAM);
      const c = endpoint('server');
      c.h3.onStopSending(c.t.sent.keys().next().value as number, 0);
      expectClosed(c, H3ErrorCode.CLOSED_CRITICAL_STREAM);
    });

    it(`bad SETTINGS -> H3_SETTINGS_ERROR (${mode})`, () => {
      const e = endpoint('server');
      feed(
        e.h3,
        2,
        concatBytes([
          Uint8Array.of(0),
          encodeSettings([
            [1, 0],
            [1, 0],
          ]),
        ]),
        false,
        mode,
      );
      expectClosed(e, H3ErrorCode.SETTINGS_ERROR);
      const f = endpoint('server');
      feed(f.h3, 2, concatBytes([Uint8Array.of(0), encodeSettings([[0x04, 100]])]), false, mode);
      expectClosed(f, H3ErrorCode.SETTINGS_ERROR);
    });

    it(`grease streams, frames and settings are tolerated (${mode})`, () => {
      const e = endpoint('server');
      feed(e.h3, 2, concatBytes([settings(), encodeFrame(0x1f * 5 + 0x21, Buffer.from('grease'))]), false, mode);
      feed(e.h3, 6, concatBytes([encodeVarint(0x1f * 9 + 0x21), Buffer.from('ignored payload')]), true, mode);
      feed(
        e.h3,
        0,
        concatBytes([
          encodeFrame(0x21, new Uint8Array(3)),
          headers(REQ),
          encodeFrame(0x40, new Uint8Array(0)),
          data('hi'),
        ]),
        true,
        mode,
      );
      expect(e.h3.closed).toBe(false);
      expect(e.t.stops).toContainEqual([6, H3ErrorCode.STREAM_CREATION_ERROR]);
      expect(e.events.filter((x) => x.type === 'settings')).toEqual([
        {
          type: 'settings',
          settings: new Map([
            [6, 8192],
            [0x21, 7],
          ]),
        },
      ]);
      expect(e.events).toContainEqual({
        type: 'headers',
        streamId: 0,
        headers: REQ,
        end: false,
        priority: DEFAULT_PRIORITY,
      });
      expect(e.events).toContainEqual({ type: 'data', streamId: 0, data: expect.anything(), end: true });
    });
  }

  it('our own control stream starts with SETTINGS and QPACK streams are opened', () => {
    const e = endpoint('server');
    const ctrl = e.t.bytes(3);
    expect([...ctrl.subarray(0, 2)]).toEqual([0x00, 0x04]);
    expect([...e.t.bytes(7)]).toEqual([0x02]);
    expect([...e.t.bytes(11)]).toEqual([0x03]);
  });
});

describe('request stream violations (server role)', () => {
  for (const mode of MODES) {
    it(`DATA before HEADERS -> H3_FRAME_UNEXPECTED (${mode})`, () => {
      const e = endpoint('server');
      feed(e.h3, 0, concatBytes([data('early'), headers(REQ)]), false, mode);
      expectClosed(e, H3ErrorCode.FRAME_UNEXPECTED);
    });

    it(`truncated frame at stream end -> H3_FRAME_ERROR (${mode})`, () => {
      const h = headers(REQ);
      for (const cut of [1, 2, h.length - 1]) {
        const e = endpoint('server');
        feed(e.h3, 0, h.subarray(0, cut), true, mode);
        expectClosed(e, H3ErrorCode.FRAME_ERROR);
      }
    });

    it(`a HEADERS frame above the size limit -> H3_EXCESSIVE_LOAD on its stream, refused before its payload; the connection serves on (${mode})`, () => {
      const e = endpoint('server', { maxFrameSize: 64 });
      feed(e.h3, 0, encodeFrame(FrameType.HEADERS, new Uint8Array(65)), false, mode);
      expect(e.events).toContainEqual(
        expect.objectContaining({ type: 'reset', streamId: 0, code: H3ErrorCode.EXCESSIVE_LOAD }),
      );
      expect(e.h3.closed).toBe(false);
      feed(e.h3, 4, headers(REQ), true, mode);
      expect(e.events).toContainEqual(expect.objectContaining({ type: 'headers', streamId: 4 }));
    });

    it(`control frames and PUSH_PROMISE on a request stream -> H3_FRAME_UNEXPECTED (${mode})`, () => {
      for (const bad of [
        encodeGoaway(0),
        encodeFrame(FrameType.PUSH_PROMISE, hex('000000')),
        encodeFrame(FrameType.MAX_PUSH_ID, hex('00')),
      ]) {
        const e = endpoint('server');
        feed(e.h3, 0, concatBytes([headers(REQ), bad]), false, mode);
        expectClosed(e, H3ErrorCode.FRAME_UNEXPECTED);
      }
    });

    it(`frames after trailers -> H3_FRAME_UNEXPECTED (${mode})`, () => {
      const e = endpoint('server');
      feed(e.h3, 0, concatBytes([headers(REQ), headers([['x-t', '1']]), data('late')]), false, mode);
      expectClosed(e, H3ErrorCode.FRAME_UNEXPECTED);
    });

    it(`malformed requests are stream errors H3_MESSAGE_ERROR (${mode})`, () => {
      const bad: HeaderList[] = [
        [...REQ, ['X-Upper', 'v']],
        [
          [':method', 'GET'],
          [':scheme', 'https'],
          [':authority', 'o'],
        ],
        [
          [':method', 'GET'],
          ['x', 'y'],
          [':scheme', 'https'],
          [':authority', 'o'],
          [':path', '/'],
        ],
        [...REQ, ['connection', 'keep-alive']],
        [...REQ, ['te', 'gzip']],
        [...REQ, [':status', '200']],
        [...REQ, ['x-bad', 'a\r\nb']],
        [...REQ, ['content-length', 'abc']],
      ];
      for (const h of bad) {
        const e = endpoint('server');
        feed(e.h3, 0, headers(h), true, mode);
        expect(e.h3.closed).toBe(false);
        expect(e.events.some((x) => x.type === 'headers')).toBe(false);
        expect(e.events).toContainEqual(
          expect.objectContaining({ type: 'reset', streamId: 0, code: H3ErrorCode.MESSAGE_ERROR }),
        );
        expect(e.t.resets).toContainEqual([0, H3ErrorCode.MESSAGE_ERROR]);
      }
    });

    it(`content-length / DATA mismatch -> H3_MESSAGE_ERROR (${mode})`, () => {
      for (const body of [['abc'], ['abcdef'], []]) {
        const e = endpoint('server');
        feed(e.h3, 0, concatBytes([headers([...REQ, ['content-length', '5']]), ...body.map(data)]), true, mode);
        expect(e.h3.closed).toBe(false);
        expect(e.events).toContainEqual(
          expect.objectContaining({ type: 'reset', streamId: 0, code: H3ErrorCode.MESSAGE_ERROR }),
        );
        expect(e.events.some((x) => x.type === 'data' && x.end)).toBe(false);
      }
    });

    it(`request stream ending without HEADERS -> H3_REQUEST_INCOMPLETE (${mode})`, () => {
      const e = endpoint('server');
      feed(e.h3, 0, encodeFrame(0x21, new Uint8Array(2)), true, mode);
      expect(e.t.resets).toContainEqual([0, H3ErrorCode.REQUEST_INCOMPLETE]);
      expect(e.h3.closed).toBe(false);
    });
  }
});

describe('QPACK on the connection', () => {
  // Encoder stream: capacity 220; insert :authority=www.example.com and :path=/sample/path (RFC 9204 B.2).
  const inserts = hex('3fbd01 c00f 7777 772e 6578 616d 706c 652e 636f 6d c10c 2f73 616d 706c 652f 7061 7468');
  // RIC 2 (encoded 3), Base 0 (sign, delta 1); :method GET, :scheme https, post-base 0 and 1.
  const blockedHeaders = encodeFrame(FrameType.HEADERS, hex('0381 d1 d7 10 11'));
  const WANT: HeaderList = [
    [':method', 'GET'],
    [':scheme', 'https'],
    [':authority', 'www.example.com'],
    [':path', '/sample/path'],
  ];

  for (const mode of MODES) {
    it(`a blocked HEADERS is delivered once the encoder stream unblocks it, in order with DATA and FIN (${mode})`, () => {
      const e = endpoint('server');
      feed(e.h3, 0, concatBytes([blockedHeaders, data('body')]), true, mode);
      expect(e.events.some((x) => x.type === 'headers' || x.type === 'data')).toBe(false);
      feed(e.h3, 2, settings(), false, mode);
      feed(e.h3, 6, concatBytes([Uint8Array.of(0x02), inserts]), false, mode);
      const rel = e.events.filter((x) => x.type === 'headers' || x.type === 'data');
      expect(rel[0]).toEqual({ type: 'headers', streamId: 0, headers: WANT, end: false, priority: DEFAULT_PRIORITY });
      expect(Buffer.concat(rel.slice(1).map((x) => (x as { data: Uint8Array }).data)).toString()).toBe('body');
      expect(rel.at(-1)).toMatchObject({ type: 'data', end: true });
      // Our decoder stream (server-initiated uni 11) carries a Section Acknowledgment for stream 0.
      const dec = [...e.t.bytes(11)];
      expect(dec[0]).toBe(0x03);
      expect(dec.at(-1)).toBe(0x80);
      expect(e.h3.closed).toBe(false);
    });

    it(`reference outside the table -> QPACK_DECOMPRESSION_FAILED (${mode})`, () => {
      // Dynamic index with RIC 0; static index 99 (indexed, and as a literal's name).
      for (const block of ['0000 80', '0000 ff24', '0000 5f54 00']) {
        const e = endpoint('server');
        feed(e.h3, 6, concatBytes([Uint8Array.of(0x02), inserts]), false, mode);
        feed(e.h3, 0, encodeFrame(FrameType.HEADERS, hex(block)), true, mode);
        expectClosed(e, QpackErrorCode.DECOMPRESSION_FAILED);
      }
    });

    it(`more blocked streams than allowed -> QPACK_DECOMPRESSION_FAILED (${mode})`, () => {
      const e = endpoint('server', { qpackBlockedStreams: 1 });
      feed(e.h3, 0, blockedHeaders, false, mode);
      expect(e.h3.closed).toBe(false);
      feed(e.h3, 4, blockedHeaders, false, mode);
      expectClosed(e, QpackErrorCode.DECOMPRESSION_FAILED);
    });

    it(`bad encoder / decoder stream -> QPACK_ENCODER_STREAM_ERROR / QPACK_DECODER_STREAM_ERROR (${mode})`, () => {
      const a = endpoint('server');
      feed(a.h3, 6, hex('02 3fbe01'), false, mode); // capacity 221 > 220
      expectClosed(a, QpackErrorCode.ENCODER_STREAM_ERROR);
      const b = endpoint('server');
      feed(b.h3, 10, hex('03 80'), false, mode); // Section Acknowledgment with nothing outstanding
      expectClosed(b, QpackErrorCode.DECODER_STREAM_ERROR);
    });
  }

  it('a reset of a blocked stream cancels it on the decoder stream', () => {
    const e = endpoint('server');
    feed(e.h3, 0, blockedHeaders, false, 'whole');
    e.h3.onStreamReset(0, H3ErrorCode.REQUEST_CANCELLED);
    expect([...e.t.bytes(11)]).toEqual([0x03, 0x40]);
    feed(e.h3, 6, concatBytes([Uint8Array.of(0x02), inserts]), false, 'whole');
    expect(e.events.some((x) => x.type === 'headers')).toBe(false);
    expect(e.h3.closed).toBe(false);
  });
});

describe('client-side violations (server peer streams 1/3/7)', () => {
  const RESP: HeaderList = [[':status', '200']];
  for (const mode of MODES) {
    it(`server-initiated bidi stream -> H3_STREAM_CREATION_ERROR (${mode})`, () => {
      const e = endpoint('client');
      feed(e.h3, 1, headers(RESP), false, mode);
      expectClosed(e, H3ErrorCode.STREAM_CREATION_ERROR);
    });

    it(`push stream and PUSH_PROMISE without MAX_PUSH_ID -> H3_ID_ERROR (${mode})`, () => {
      const a = endpoint('client');
      feed(a.h3, 3, hex('01 00'), false, mode);
      expectClosed(a, H3ErrorCode.ID_ERROR);
      const b = endpoint('client');
      const id = b.h3.openRequest(REQ, true)!;
      feed(b.h3, id, encodeFrame(FrameType.PUSH_PROMISE, hex('00 0000')), false, mode);
      expectClosed(b, H3ErrorCode.ID_ERROR);
    });

    it(`GOAWAY rules -> H3_ID_ERROR; MAX_PUSH_ID from a server -> H3_FRAME_UNEXPECTED (${mode})`, () => {
      const a = endpoint('client');
      feed(a.h3, 3, concatBytes([settings(), encodeGoaway(5)]), false, mode);
      expectClosed(a, H3ErrorCode.ID_ERROR);
      const b = endpoint('client');
      feed(b.h3, 3, concatBytes([settings(), encodeGoaway(4), encodeGoaway(8)]), false, mode);
      expectClosed(b, H3ErrorCode.ID_ERROR);
      const c = endpoint('client');
      feed(c.h3, 3, concatBytes([settings(), encodeFrame(FrameType.MAX_PUSH_ID, hex('00'))]), false, mode);
      expectClosed(c, H3ErrorCode.FRAME_UNEXPECTED);
    });

    it(`MAX_PUSH_ID from a client may grow, never shrink -> H3_ID_ERROR (RFC 9114 §7.2.7) (${mode})`, () => {
      const a = endpoint('server');
      feed(
        a.h3,
        2,
        concatBytes([
          settings(),
          encodeFrame(FrameType.MAX_PUSH_ID, hex('05')),
          encodeFrame(FrameType.MAX_PUSH_ID, hex('0a')),
        ]),
        false,
        mode,
      );
      expect(a.h3.closed).toBe(false);
      const b = endpoint('server');
      feed(
        b.h3,
        2,
        concatBytes([
          settings(),
          encodeFrame(FrameType.MAX_PUSH_ID, hex('0a')),
          encodeFrame(FrameType.MAX_PUSH_ID, hex('05')),
        ]),
        false,
        mode,
      );
      expectClosed(b, H3ErrorCode.ID_ERROR);
    });

    it(`interim responses are delivered, then the final one (${mode})`, () => {
      const e = endpoint('client');
      const id = e.h3.openRequest(REQ, true)!;
      feed(
        e.h3,
        id,
        concatBytes([
          headers([[':status', '100']]),
          headers([
            [':status', '103'],
            ['link', '<x>'],
          ]),
          headers(RESP),
          data('ok'),
        ]),
        true,
        mode,
      );
      const hs = e.events.filter((x) => x.type === 'headers').map((x) => (x as { headers: HeaderList }).headers[0]);
      expect(hs).toEqual([
        [':status', '100'],
        [':status', '103'],
        [':status', '200'],
      ]);
      expect(e.events.at(-1)).toMatchObject({ type: 'data', end: true });
    });

    it(`at most 16 interim responses per request; the 17th is H3_EXCESSIVE_LOAD on that stream (${mode})`, () => {
      const e = endpoint('client');
      const ok = e.h3.openRequest(REQ, true)!;
      feed(
        e.h3,
        ok,
        concatBytes([...Array.from({ length: 16 }, () => headers([[':status', '103']])), headers(RESP)]),
        true,
        mode,
      );
      expect(e.events).not.toContainEqual(expect.objectContaining({ type: 'reset', streamId: ok }));
      const id = e.h3.openRequest(REQ, true)!;
      feed(e.h3, id, concatBytes(Array.from({ length: 17 }, () => headers([[':status', '103']]))), false, mode);
      expect(e.events).toContainEqual(
        expect.objectContaining({ type: 'reset', streamId: id, code: H3ErrorCode.EXCESSIVE_LOAD }),
      );
      expect(e.h3.closed).toBe(false);
    });

    it(`a response ending without a final status is a stream error (${mode})`, () => {
      const e = endpoint('client');
      const id = e.h3.openRequest(REQ, true)!;
      feed(e.h3, id, headers([[':status', '103']]), true, mode);
      expect(e.events).toContainEqual(
        expect.objectContaining({ type: 'reset', streamId: id, code: H3ErrorCode.MESSAGE_ERROR }),
      );
      expect(e.h3.closed).toBe(false);
    });
  }

  it('maps a peer close to a closed event with an OriginlinkError', () => {
    const e = endpoint('client');
    e.h3.onClosed(new Error('idle timeout'));
    expect(e.events.at(-1)).toMatchObject({ type: 'closed' });
    expect((e.events.at(-1) as { error: unknown }).error).toBeInstanceOf(OriginlinkError);
    expect(() => e.h3.openRequest(REQ, true)).toThrow(/closed/);
  });
});

describe('stream lifecycle edges (client role)', () => {
  const RESP: HeaderList = [
    [':status', '200'],
    ['content-length', '2'],
  ];

  it('STOP_SENDING(H3_NO_ERROR) ends the upload quietly; the response still arrives', () => {
    const e = endpoint('client');
    const id = e.h3.openRequest(REQ, false)!;
    e.h3.sendData(id, Buffer.from('part1'), false);
    e.h3.onStopSending(id, H3ErrorCode.NO_ERROR);
    expect(e.t.resets).toContainEqual([id, H3ErrorCode.NO_ERROR]);
    const before = e.t.bytes(id).length;
    e.h3.sendData(id, Buffer.from('part2'), false); // dropped, no throw
    e.h3.endStream(id);
    expect(e.t.bytes(id).length).toBe(before);
    expect(e.events.some((x) => x.type === 'reset')).toBe(false);
    feed(e.h3, id, concatBytes([headers(RESP), data('ok')]), true, 'bytes');
    expect(e.events.filter((x) => x.type === 'headers')).toHaveLength(1);
    expect(e.events.at(-1)).toMatchObject({ type: 'data', end: true });
  });

  it('writes racing a peer reset are dropped; writes on unknown streams and after our end throw', () => {
    const e = endpoint('client');
    const id = e.h3.openRequest(REQ, false)!;
    e.h3.onStreamReset(id, H3ErrorCode.REQUEST_REJECTED);
    expect(e.events).toContainEqual(
      expect.objectContaining({ type: 'reset', streamId: id, code: H3ErrorCode.REQUEST_REJECTED }),
    );
    expect(() => e.h3.sendData(id, Buffer.from('late'), true)).not.toThrow();
    expect(() => e.h3.sendData(400, Buffer.from('x'), true)).toThrow(/not open/);
    const id2 = e.h3.openRequest(REQ, true)!;
    expect(() => e.h3.sendData(id2, Buffer.from('x'), true)).toThrow(/closed for sending/);
  });

  it('a server rejects requests after its GOAWAY and reports the right id', () => {
    const e = endpoint('server');
    feed(e.h3, 0, headers(REQ), true, 'whole');
    feed(e.h3, 8, headers(REQ), true, 'whole');
    e.h3.goaway();
    // Stream 4 was never seen but is below the GOAWAY id (12): still accepted.
    expect([...e.t.bytes(3)].slice(-3)).toEqual([0x07, 0x01, 12]);
    feed(e.h3, 4, headers(REQ), true, 'whole');
    feed(e.h3, 12, headers(REQ), true, 'whole');
    const heads = e.events.filter((x) => x.type === 'headers').map((x) => (x as { streamId: number }).streamId);
    expect(heads).toEqual([0, 8, 4]);
    expect(e.t.resets).toContainEqual([12, H3ErrorCode.REQUEST_REJECTED]);
    // A second GOAWAY never raises the id.
    e.h3.goaway();
    expect([...e.t.bytes(3)].slice(-3)).toEqual([0x07, 0x01, 12]);
  });
});

describe('re-entrancy', () => {
  it('closing from a listener stops further events', () => {
    const e = endpoint('server');
    const seen: string[] = [];
    e.h3.on((ev) => {
      seen.push(ev.type);
      if (ev.type === 'headers') e.h3.close(H3ErrorCode.NO_ERROR, 'enough');
    });
    feed(e.h3, 0, concatBytes([headers(REQ), data('a'), data('b')]), true, 'whole');
    expect(seen).toEqual(['headers', 'closed']);
    expect(e.t.closeCode).toBe(H3ErrorCode.NO_ERROR);
  });

  it('a throwing listener does not break the connection', async () => {
    const e = endpoint('server');
    e.h3.on((ev) => {
      if (ev.type === 'headers') throw new Error('listener bug');
    });
    const errors: unknown[] = [];
    const onErr = (err: unknown): void => {
      errors.push(err);
    };
    process.on('uncaughtException', onErr);
    try {
      feed(e.h3, 0, concatBytes([headers(REQ), data('abc')]), true, 'whole');
      await new Promise((r) => setTimeout(r, 10));
    } finally {
      process.off('uncaughtException', onErr);
    }
    expect(e.h3.closed).toBe(false);
    expect(e.events.at(-1)).toMatchObject({ type: 'data', end: true });
    // The listener's exception surfaced asynchronously instead of vanishing.
    expect(errors.map((x) => (x as Error).message)).toContain('listener bug');
  });
});

describe('options', () => {
  it('rejects invalid options with INVALID_CONFIG naming the field', () => {
    const base = {
      role: 'client' as const,
      maxFieldSectionSize: 1,
      qpackMaxTableCapacity: 0,
      qpackBlockedStreams: 0,
      maxFrameSize: 1,
    };
    const t = new Rec(true);
    expect(() => new H3Connection(t, { ...base, maxFrameSize: -1 })).toThrow(/maxFrameSize/);
    expect(() => new H3Connection(t, { ...base, qpackMaxTableCapacity: 1.5 })).toThrow(/qpackMaxTableCapacity/);
    expect(() => new H3Connection(t, { ...base, qpackEncoderTableCapacity: Number.NaN })).toThrow(
      /qpackEncoderTableCapacity/,
    );
    expect(() => new H3Connection(t, { ...base, role: 'proxy' as unknown as 'client' })).toThrow(/role/);
    try {
      new H3Connection(t, { ...base, maxFieldSectionSize: -5 });
    } catch (e) {
      expect((e as OriginlinkError).code).toBe('OL_INVALID_CONFIG');
    }
  });
});

describe('PRIORITY_UPDATE (RFC 9218 §7.2)', () => {
  const GET = (extra: HeaderList = []): HeaderList => [
    [':method', 'GET'],
    [':scheme', 'https'],
    [':authority', 'o.example'],
    [':path', '/g'],
    ...extra,
  ];
  const heads = (e: ReturnType<typeof endpoint>) =>
    e.events.filter((x) => x.type === 'headers') as Array<Extract<H3Event, { type: 'headers' }>>;
  const prios = (e: ReturnType<typeof endpoint>) => e.events.filter((x) => x.type === 'priority');

  it('the frame round-trips through the parser, whole and one byte at a time; an empty payload is H3_FRAME_ERROR', () => {
    const f = encodePriorityUpdate(1_000_000, 'u=1, i');
    for (const step of [f.length, 1]) {
      const p = new FrameParser({ maxFrameSize: 100 });
      const evs = [];
      for (let i = 0; i < f.length; i += step) evs.push(...p.push(f.subarray(i, i + step)));
      expect(evs).toEqual([{ kind: 'priority-update', push: false, id: 1_000_000, value: 'u=1, i' }]);
    }
    expect(() =>
      new FrameParser({ maxFrameSize: 100 }).push(encodeFrame(FrameType.PRIORITY_UPDATE_REQUEST, new Uint8Array(0))),
    ).toThrow(/truncated/);
  });

  for (const mode of MODES) {
    it(`reprioritises a request once its head is reported (${mode})`, () => {
      const e = endpoint('server');
      feed(e.h3, 2, settings(), false, mode);
      feed(e.h3, 0, headers(GET([['priority', 'u=5']])), true, mode);
      expect(heads(e)[0]!.priority).toEqual({ urgency: 5, incremental: false });
      feed(e.h3, 2, encodePriorityUpdate(0, 'u=0, i'), false, mode);
      expect(prios(e)).toEqual([
        { type: 'priority', streamId: 0, priority: { urgency: 0, incremental: true }, written: false },
      ]);
      // Out-of-range members are ignored (§4.1): the update means the defaults.
      feed(e.h3, 2, encodePriorityUpdate(0, 'u=9'), false, mode);
      expect(prios(e).at(-1)).toEqual({ type: 'priority', streamId: 0, priority: DEFAULT_PRIORITY, written: false });
      e.h3.sendHeaders(0, [[':status', '200']], true);
      // All written, maybe not all sent: still reported (the driver reorders what it holds).
      feed(e.h3, 2, encodePriorityUpdate(0, 'u=1'), false, mode);
      expect(prios(e).at(-1)).toEqual({
        type: 'priority',
        streamId: 0,
        priority: { urgency: 1, incremental: false },
        written: true,
      });
      expect(e.h3.stats()).toMatchObject({ priorityUpdates: 3, pendingPriorityUpdates: 0 });
      expect(e.h3.closed).toBe(false);
    });

    it(`an update for a request not open yet (or whose head is still arriving) is its starting priority, over its header (${mode})`, () => {
      const e = endpoint('server');
      feed(
        e.h3,
        2,
        concatBytes([
          settings(),
          encodePriorityUpdate(8, 'u=6'),
          encodePriorityUpdate(4, 'u=2'),
          encodePriorityUpdate(4, 'u=1, i'),
        ]),
        false,
        mode,
      );
      expect(e.h3.stats()).toMatchObject({ priorityUpdates: 3, pendingPriorityUpdates: 2 });
      feed(e.h3, 4, headers(GET([['priority', 'u=7']])), true, mode);
      // Half a HEADERS frame on stream 8, then another update, then the rest.
      const h8 = headers(GET());
      feed(e.h3, 8, h8.subarray(0, 5), false, mode);
      feed(e.h3, 2, encodePriorityUpdate(8, 'u=0'), false, mode);
      feed(e.h3, 8, h8.subarray(5), true, mode);
      feed(
        e.h3,
        0,
        headers(
          GET([
            ['priority', 'u=4'],
            ['priority', 'i'],
          ]),
        ),
        true,
        mode,
      );
      expect(heads(e).map((h) => [h.streamId, h.priority])).toEqual([
        [4, { urgency: 1, incremental: true }],
        [8, { urgency: 0, incremental: false }],
        [0, { urgency: 4, incremental: true }], // no update: both header lines, one Dictionary
      ]);
      expect(prios(e)).toEqual([]);
      expect(e.h3.stats().pendingPriorityUpdates).toBe(0);
    });
  }

  it('an update waiting for a QPACK-blocked request applies when it is unblocked', () => {
    const e = endpoint('server');
    const inserts = hex('3fbd01 c00f 7777 772e 6578 616d 706c 652e 636f 6d c10c 2f73 616d 706c 652f 7061 7468');
    feed(e.h3, 0, encodeFrame(FrameType.HEADERS, hex('0381 d1 d7 10 11')), true, 'whole');
    feed(e.h3, 2, concatBytes([settings(), encodePriorityUpdate(0, 'u=2')]), false, 'whole');
    feed(e.h3, 6, concatBytes([Uint8Array.of(0x02), inserts]), false, 'whole');
    expect(heads(e).map((h) => h.priority)).toEqual([{ urgency: 2, incremental: false }]);
  });

  it(`keeps at most ${PENDING_PRIORITY_LIMIT} updates for unopened requests, dropping the oldest; finished requests are not kept`, () => {
    const e = endpoint('server');
    feed(e.h3, 2, settings(), false, 'whole');
    feed(e.h3, 0, headers(GET()), true, 'whole');
    e.h3.sendHeaders(0, [[':status', '204']], true);
    feed(e.h3, 2, encodePriorityUpdate(0, 'u=1'), false, 'whole'); // finished: reported at once, not kept
    expect(prios(e)).toEqual([
      { type: 'priority', streamId: 0, priority: { urgency: 1, incremental: false }, written: true },
    ]);
    expect(e.h3.stats().pendingPriorityUpdates).toBe(0);
    const n = PENDING_PRIORITY_LIMIT + 72;
    for (let i = 1; i <= n; i++) feed(e.h3, 2, encodePriorityUpdate(4 * i, 'u=6'), false, 'whole');
    expect(e.h3.stats()).toMatchObject({ priorityUpdates: n + 1, pendingPriorityUpdates: PENDING_PRIORITY_LIMIT });
    feed(e.h3, 4, headers(GET()), true, 'whole'); // its update was among the oldest: dropped
    feed(e.h3, 4 * n, headers(GET()), true, 'whole');
    expect(
      heads(e)
        .slice(1)
        .map((h) => h.priority!.urgency),
    ).toEqual([3, 6]);
    expect(e.h3.closed).toBe(false);
  });

  for (const mode of MODES) {
    it(`violations: push variant and non-request ids -> H3_ID_ERROR, on a request stream or from a server -> H3_FRAME_UNEXPECTED, first on the control stream -> H3_MISSING_SETTINGS (${mode})`, () => {
      const push = endpoint('server');
      feed(
        push.h3,
        2,
        concatBytes([
          settings(),
          encodeFrame(FrameType.PRIORITY_UPDATE_PUSH, concatBytes([encodeVarint(0), Buffer.from('u=1')])),
        ]),
        false,
        mode,
      );
      expectClosed(push, H3ErrorCode.ID_ERROR);
      for (const id of [1, 2, 3, 6]) {
        const e = endpoint('server');
        feed(e.h3, 2, concatBytes([settings(), encodePriorityUpdate(id, 'u=1')]), false, mode);
        expectClosed(e, H3ErrorCode.ID_ERROR);
      }
      const onRequest = endpoint('server');
      feed(onRequest.h3, 0, concatBytes([headers(GET()), encodePriorityUpdate(0, 'u=1')]), false, mode);
      expectClosed(onRequest, H3ErrorCode.FRAME_UNEXPECTED);
      const client = endpoint('client');
      feed(client.h3, 3, concatBytes([settings(), encodePriorityUpdate(0, 'u=1')]), false, mode);
      expectClosed(client, H3ErrorCode.FRAME_UNEXPECTED);
      const first = endpoint('server');
      feed(first.h3, 2, concatBytes([Uint8Array.of(0), encodePriorityUpdate(0, 'u=1')]), false, mode);
      expectClosed(first, H3ErrorCode.MISSING_SETTINGS);
    });
  }

  it('a client sends it on its control stream; a server may not, nor for a stream it never opened', () => {
    const c = endpoint('client');
    const id = c.h3.openRequest(GET(), false)!;
    c.h3.sendPriorityUpdate(id, 'u=0, i');
    expect(Buffer.from(c.t.bytes(2)).includes(Buffer.from(encodePriorityUpdate(id, 'u=0, i')))).toBe(true);
    expect(() => c.h3.sendPriorityUpdate(id + 4, 'u=1')).toThrow(/not a request we opened/);
    expect(() => c.h3.sendPriorityUpdate(id, 'u=1\n')).toThrow(/printable ASCII/);
    const s = endpoint('server');
    expect(() => s.h3.sendPriorityUpdate(0, 'u=1')).toThrow(/sent by clients/);
  });
});
