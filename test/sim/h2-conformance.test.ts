/**
 * HTTP/2 conformance as tests: there is no h2spec on this machine kind, so
 * this is its equivalent for our sans-IO connection (src/h2), one case per
 * MUST of RFC 9113 (and RFC 7541 at the connection level; the Appendix C
 * vectors are in test/unit/hpack.test.ts), for each role where the rule
 * applies to it. Every case is fed to the connection whole and byte by byte.
 *
 * A case is the frames a misbehaving (or well-behaved) peer sends after the
 * connection is set up, and the outcome the RFC demands:
 *   conn(code)        GOAWAY with that code and the connection closed (§5.4.1)
 *   stream(id, code)  RST_STREAM on that stream with that code, connection up (§5.4.2)
 *   ok                neither (an ignored or accepted frame), optionally with a check
 *
 * Set-up. Server role: the peer (a raw client) has sent the preface and an
 * empty SETTINGS. Client role: the raw server has sent SETTINGS; the client
 * has opened stream 1 (GET, ended) and stream 3 (POST, body still open).
 *
 * Sections covered (the `sec` of each case below): RFC 9113 §3.4, §4.1,
 * §4.2, §4.3, §5.1 (idle, half-closed (remote), closed), §5.1.1, §5.1.2,
 * §5.3.1 (RFC 7540's self-dependency rule, which h2spec still checks), §5.5,
 * §6.1, §6.2, §6.3, §6.4, §6.5, §6.5.2, §6.5.3, §6.7, §6.8, §6.9, §6.9.1,
 * §6.9.2, §6.10, §8.1, §8.1.1, §8.2, §8.2.1, §8.2.2, §8.3, §8.3.1, §8.3.2,
 * §8.4, §8.5; RFC 8441 §3–§4 (extended CONNECT); RFC 7541 §2.3.3, §4.2,
 * §5.1, §5.2, §6.3 as COMPRESSION_ERROR.
 */
import { describe, expect, it } from 'vitest';
import { H2ErrorCode } from '../../src/codec/errors.js';
import { H2FrameType, H2Setting } from '../../src/codec/h2frame.js';
import { H2Connection } from '../../src/h2/connection.js';
import type { H2ConnectionOptions, H2Event } from '../../src/h2/types.js';

const E = H2ErrorCode;
const T = H2FrameType;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;

// ---- raw wire helpers (independent of our encoders) ----

function frame(type: number, flags: number, id: number, payload: Uint8Array | number[] = []): Buffer {
  const p = Buffer.from(payload);
  const h = Buffer.alloc(9);
  h.writeUIntBE(p.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(id >>> 0, 5);
  return Buffer.concat([h, p]);
}
const u32 = (n: number): number[] => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
const settings = (...s: Array<[number, number]>): Buffer =>
  frame(
    T.SETTINGS,
    0,
    0,
    s.flatMap(([id, v]) => [id >> 8, id & 0xff, ...u32(v)]),
  );
const ping = (flags = 0, id = 0, len = 8): Buffer =>
  frame(
    T.PING,
    flags,
    id,
    Array.from({ length: len }, (_, i) => i + 1),
  );
const rst = (id: number, code: number = E.CANCEL, len = 4): Buffer =>
  frame(
    T.RST_STREAM,
    0,
    id,
    u32(code)
      .concat(Array(Math.max(0, len - 4)).fill(0))
      .slice(0, len),
  );
const wu = (id: number, inc: number, len = 4): Buffer =>
  frame(
    T.WINDOW_UPDATE,
    0,
    id,
    u32(inc)
      .concat(Array(Math.max(0, len - 4)).fill(0))
      .slice(0, len),
  );
const data = (id: number, bytes: number | string, flags = 0): Buffer =>
  frame(T.DATA, flags, id, typeof bytes === 'number' ? Buffer.alloc(bytes, 0x61) : Buffer.from(bytes));

/** HPACK prefixed integer (RFC 7541 §5.1). */
function int(n: number, prefix: number, first: number): number[] {
  const max = (1 << prefix) - 1;
  if (n < max) return [first | n];
  const out = [first | max];
  n -= max;
  while (n >= 128) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}
const str = (s: string): number[] => [...int(s.length, 7, 0), ...Buffer.from(s, 'latin1')];
/** A field section as literals without indexing, new names (RFC 7541 §6.2.2): no dynamic table state. */
const block = (fields: Array<[string, string]>): number[] => fields.flatMap(([n, v]) => [0x00, ...str(n), ...str(v)]);
const headers = (id: number, fields: Array<[string, string]>, flags = END_HEADERS | END_STREAM): Buffer =>
  frame(T.HEADERS, flags, id, block(fields));

const req = (method = 'GET', path = '/'): Array<[string, string]> => [
  [':method', method],
  [':scheme', 'https'],
  [':authority', 'o.test'],
  [':path', path],
];
const GET = req();
const POST = req('POST');
const OK: Array<[string, string]> = [[':status', '200']];

// ---- the harness ----

type Outcome = { conn: number } | { stream: [number, number] } | { ok: true };
const conn = (code: number): Outcome => ({ conn: code });
const stream = (id: number, code: number): Outcome => ({ stream: [id, code] });
const ok: Outcome = { ok: true };

interface Ctx {
  c: H2Connection;
  events: H2Event[];
  /** Frames our connection sent after the set-up. */
  out: Array<{ type: number; flags: number; id: number; payload: Buffer }>;
}
interface Case {
  sec: string;
  must: string;
  role: 'server' | 'client' | 'both';
  /** Frames sent by the peer after the set-up (may depend on the role). */
  send: (role: 'server' | 'client') => Buffer[];
  expect: Outcome;
  /** Runs between set-up and `send` (e.g. our side answers or resets). */
  before?: (ctx: Ctx) => void;
  check?: (ctx: Ctx) => void;
  options?: Partial<H2ConnectionOptions>;
}

function parseFrames(b: Buffer): Ctx['out'] {
  const out: Ctx['out'] = [];
  for (let o = 0; o + 9 <= b.length; ) {
    const len = b.readUIntBE(o, 3);
    out.push({
      type: b[o + 3]!,
      flags: b[o + 4]!,
      id: b.readUInt32BE(o + 5) & 0x7fffffff,
      payload: b.subarray(o + 9, o + 9 + len),
    });
    o += 9 + len;
  }
  return out;
}

function setUp(role: 'server' | 'client', options: Partial<H2ConnectionOptions> = {}): Ctx {
  const c = new H2Connection({ role, windowSize: 65_535, connectionWindowSize: 65_535, ...options });
  const events: H2Event[] = [];
  c.on((e) => events.push(e));
  if (role === 'server') {
    c.receive(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), settings()]), 0);
  } else {
    c.receive(settings(), 0);
    c.request(GET, true);
    c.request(POST, false);
  }
  c.takeOutput();
  return { c, events, out: [] };
}

function run(k: Case, role: 'server' | 'client', mode: 'whole' | 'byte'): Ctx {
  const ctx = setUp(role, k.options);
  k.before?.(ctx);
  const sent = Buffer.concat(k.send(role));
  if (mode === 'whole') ctx.c.receive(sent, 1);
  else for (let i = 0; i < sent.length; i++) ctx.c.receive(sent.subarray(i, i + 1), 1);
  ctx.out = parseFrames(Buffer.concat(ctx.c.takeOutput()));
  return ctx;
}

function verdict(ctx: Ctx): Outcome {
  const goaway = ctx.out.find((f) => f.type === T.GOAWAY);
  if (goaway) return conn(goaway.payload.readUInt32BE(4));
  const r = ctx.out.find(
    (f) =>
      f.type === T.RST_STREAM && f.payload.readUInt32BE(0) !== E.NO_ERROR && f.payload.readUInt32BE(0) !== E.CANCEL,
  );
  if (r) return stream(r.id, r.payload.readUInt32BE(0));
  return ok;
}

const idle = (role: 'server' | 'client'): number => (role === 'server' ? 9 : 7);
/** A stream of the peer's side that is open both ways at the set-up (server role: the peer opens 1; client role: our 3). */
const openStream = (role: 'server' | 'client'): Buffer[] => (role === 'server' ? [headers(1, POST, END_HEADERS)] : []);
const openId = (role: 'server' | 'client'): number => (role === 'server' ? 1 : 3);
/** Client role: a response head on 3 that leaves it open for DATA. */
const respondOpen = (role: 'server' | 'client'): Buffer[] =>
  role === 'server' ? openStream(role) : [headers(3, OK, END_HEADERS)];

const CASES: Case[] = [
  // §4.1 Frame format.
  {
    sec: '4.1',
    must: 'frames of unknown types are ignored',
    role: 'both',
    send: () => [frame(0x7f, 0, 0, [1, 2, 3]), ping()],
    expect: ok,
    check: (ctx) => expect(ctx.out.some((f) => f.type === T.PING && f.flags === 1)).toBe(true),
  },
  {
    sec: '4.1',
    must: 'unknown flags are ignored',
    role: 'both',
    send: () => [ping(0xfe & ~0x1)],
    expect: ok,
    check: (ctx) => expect(ctx.out.some((f) => f.type === T.PING && f.flags === 1)).toBe(true),
  },
  {
    sec: '4.1',
    must: 'the reserved bit of the stream id is ignored',
    role: 'server',
    send: () => [headers(0x80000001, GET)],
    expect: ok,
    check: (ctx) => expect(ctx.events.some((e) => e.type === 'headers' && e.streamId === 1)).toBe(true),
  },

  // §4.2 Frame size.
  {
    sec: '4.2',
    must: 'a frame over SETTINGS_MAX_FRAME_SIZE is FRAME_SIZE_ERROR',
    role: 'both',
    send: () => [frame(0x7f, 0, 0, Buffer.alloc(16_385))],
    expect: conn(E.FRAME_SIZE_ERROR),
  },
  {
    sec: '4.2',
    must: 'DATA over SETTINGS_MAX_FRAME_SIZE is FRAME_SIZE_ERROR',
    role: 'both',
    send: (r) => [...respondOpen(r), data(openId(r), 16_385)],
    expect: conn(E.FRAME_SIZE_ERROR),
  },
  {
    sec: '4.2',
    must: 'HEADERS over SETTINGS_MAX_FRAME_SIZE is a connection FRAME_SIZE_ERROR (it alters connection state)',
    role: 'server',
    send: () => [
      frame(T.HEADERS, END_HEADERS | END_STREAM, 1, [...block(GET), ...block([['x-big', 'v'.repeat(16_400)]])]),
    ],
    expect: conn(E.FRAME_SIZE_ERROR),
  },

  // §4.3 Field section compression.
  {
    sec: '4.3',
    must: 'a field block that cannot be decoded is COMPRESSION_ERROR',
    role: 'both',
    send: (r) => [frame(T.HEADERS, END_HEADERS | END_STREAM, r === 'server' ? 1 : 3, [0xff, 0xff, 0xff, 0xff, 0x0f])],
    expect: conn(E.COMPRESSION_ERROR),
  },
  {
    sec: '4.3',
    must: 'a header block is contiguous: PRIORITY between HEADERS and CONTINUATION is PROTOCOL_ERROR',
    role: 'server',
    send: () => [
      headers(1, GET, END_STREAM),
      frame(T.PRIORITY, 0, 1, [0, 0, 0, 0, 16]),
      frame(T.CONTINUATION, END_HEADERS, 1, []),
    ],
    expect: conn(E.PROTOCOL_ERROR),
  },

  // §5.1 Stream states: idle.
  {
    sec: '5.1',
    must: 'idle: DATA is PROTOCOL_ERROR',
    role: 'both',
    send: (r) => [data(idle(r), 'x')],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '5.1',
    must: 'idle: RST_STREAM is PROTOCOL_ERROR',
    role: 'both',
    send: (r) => [rst(idle(r))],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '5.1',
    must: 'idle: WINDOW_UPDATE is PROTOCOL_ERROR',
    role: 'both',
    send: (r) => [wu(idle(r), 1)],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '5.1',
    must: 'idle: CONTINUATION is PROTOCOL_ERROR',
    role: 'both',
    send: (r) => [frame(T.CONTINUATION, END_HEADERS, idle(r), [])],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '5.1',
    must: 'idle: PRIORITY is allowed',
    role: 'both',
    send: (r) => [frame(T.PRIORITY, 0, idle(r), [0, 0, 0, 0, 16])],
    expect: ok,
    check: (ctx) => expect(ctx.c.closed).toBe(false),
  },
  // §5.1 half-closed (remote).
  {
    sec: '5.1',
    must: 'half-closed (remote): DATA is a STREAM_CLOSED stream error',
    role: 'both',
    send: (r) =>
      r === 'server' ? [headers(1, GET), data(1, 'x')] : [headers(3, OK, END_HEADERS | END_STREAM), data(3, 'x')],
    expect: stream(0, E.STREAM_CLOSED),
  },
  {
    sec: '5.1',
    must: 'half-closed (remote): HEADERS is a STREAM_CLOSED stream error',
    role: 'server',
    send: () => [headers(1, GET), headers(1, [['x-t', '1']])],
    expect: stream(1, E.STREAM_CLOSED),
  },
  {
    sec: '5.1',
    must: 'half-closed (remote): WINDOW_UPDATE and RST_STREAM are allowed',
    role: 'server',
    send: () => [headers(1, GET), wu(1, 10), rst(1)],
    expect: ok,
    check: (ctx) => expect(ctx.events.some((e) => e.type === 'reset' && e.streamId === 1 && e.byPeer)).toBe(true),
  },
  // §5.1 closed.
  {
    sec: '5.1',
    must: 'closed by our RST_STREAM: frames in flight are ignored',
    role: 'both',
    before: (ctx) => (ctx.c.role === 'server' ? ctx.c.receive(headers(1, POST, END_HEADERS), 0) : undefined),
    send: (r) => (r === 'server' ? [] : []),
    expect: ok,
    check: (ctx) => {
      const id = ctx.c.role === 'server' ? 1 : 3;
      ctx.c.reset(id, E.CANCEL);
      ctx.c.takeOutput();
      const late =
        ctx.c.role === 'server'
          ? [data(1, 'x'), headers(1, [['x-t', '1']])]
          : [headers(3, OK, END_HEADERS), data(3, 'x'), wu(3, 5), rst(3)];
      ctx.c.receive(Buffer.concat(late), 2);
      expect(verdict({ ...ctx, out: parseFrames(Buffer.concat(ctx.c.takeOutput())) })).toEqual(ok);
      expect(ctx.c.closed).toBe(false);
    },
  },
  {
    sec: '5.1',
    must: 'closed after the peer’s RST_STREAM: DATA is a STREAM_CLOSED stream error',
    role: 'server',
    send: () => [headers(1, POST, END_HEADERS), rst(1), data(1, 'x')],
    expect: stream(1, E.STREAM_CLOSED),
  },
  {
    sec: '5.1',
    must: 'closed after both END_STREAMs: DATA is a STREAM_CLOSED connection error',
    role: 'both',
    before: (ctx) => {
      if (ctx.c.role === 'server') {
        ctx.c.receive(headers(1, GET), 0);
        ctx.c.respond(1, OK, true);
      } else ctx.c.receive(headers(1, OK), 0);
      ctx.c.takeOutput();
    },
    send: () => [data(1, 'x')],
    expect: conn(E.STREAM_CLOSED),
  },
  {
    sec: '5.1',
    must: 'closed after both END_STREAMs: HEADERS is a STREAM_CLOSED connection error',
    role: 'server',
    before: (ctx) => {
      ctx.c.receive(headers(1, GET), 0);
      ctx.c.respond(1, OK, true);
      ctx.c.takeOutput();
    },
    send: () => [headers(1, GET)],
    expect: conn(E.STREAM_CLOSED),
  },
  {
    sec: '5.1',
    must: 'closed: WINDOW_UPDATE and RST_STREAM just after our END_STREAM are allowed',
    role: 'server',
    before: (ctx) => {
      ctx.c.receive(headers(1, GET), 0);
      ctx.c.respond(1, OK, true);
      ctx.c.takeOutput();
    },
    send: () => [wu(1, 100), rst(1, E.NO_ERROR), ping()],
    expect: ok,
    check: (ctx) => expect(ctx.c.closed).toBe(false),
  },

  // §5.1.1 Stream identifiers.
  {
    sec: '5.1.1',
    must: 'a client-opened stream with an even id is PROTOCOL_ERROR',
    role: 'server',
    send: () => [headers(2, GET)],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '5.1.1',
    must: 'a new stream id lower than one already opened is PROTOCOL_ERROR',
    role: 'server',
    send: () => [headers(5, GET), headers(3, GET)],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '5.1.1',
    must: 'a server may not open odd streams (or any: push is disabled)',
    role: 'client',
    send: () => [headers(5, OK)],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '5.1.1',
    must: 'a server stream (even id) without push is PROTOCOL_ERROR',
    role: 'client',
    send: () => [headers(2, OK)],
    expect: conn(E.PROTOCOL_ERROR),
  },

  // §5.1.2 Concurrency.
  {
    sec: '5.1.2',
    must: 'streams over SETTINGS_MAX_CONCURRENT_STREAMS are refused (REFUSED_STREAM, retryable)',
    role: 'server',
    options: { maxConcurrentStreams: 1 },
    send: () => [headers(1, POST, END_HEADERS), headers(3, GET)],
    expect: stream(3, E.REFUSED_STREAM),
  },

  // §5.3.1 (RFC 7540): a stream cannot depend on itself.
  {
    sec: '5.3.1',
    must: 'HEADERS depending on itself is a PROTOCOL_ERROR stream error',
    role: 'server',
    send: () => [
      frame(T.HEADERS, END_HEADERS | END_STREAM | PRIORITY, 1, [...u32(1), 16, ...block(GET)]),
      headers(3, GET),
    ],
    expect: stream(1, E.PROTOCOL_ERROR),
    check: (ctx) => expect(ctx.events.some((e) => e.type === 'headers' && e.streamId === 3)).toBe(true),
  },
  {
    sec: '5.3.1',
    must: 'PRIORITY depending on itself is a PROTOCOL_ERROR stream error',
    role: 'both',
    send: (r) => [frame(T.PRIORITY, 0, idle(r), [...u32(idle(r)), 16])],
    expect: stream(0, E.PROTOCOL_ERROR),
  },

  // §5.5 Extensions.
  {
    sec: '5.5',
    must: 'an unknown frame inside a header block is PROTOCOL_ERROR',
    role: 'server',
    send: () => [headers(1, GET, END_STREAM), frame(0x7f, 0, 1, [1]), frame(T.CONTINUATION, END_HEADERS, 1, [])],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '5.5',
    must: 'unknown settings are ignored',
    role: 'both',
    send: () => [settings([0x7777, 9])],
    expect: ok,
    check: (ctx) => expect(ctx.out.some((f) => f.type === T.SETTINGS && f.flags === 1)).toBe(true),
  },

  // §6.1 DATA.
  {
    sec: '6.1',
    must: 'DATA on stream 0 is PROTOCOL_ERROR',
    role: 'both',
    send: () => [data(0, 'x')],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '6.1',
    must: 'padding as long as the payload is PROTOCOL_ERROR',
    role: 'both',
    send: (r) => [...respondOpen(r), frame(T.DATA, PADDED, openId(r), [4, 1, 2, 3])],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '6.1',
    must: 'padding counts against flow control and is returned',
    role: 'server',
    send: () => [
      headers(1, POST, END_HEADERS),
      frame(T.DATA, PADDED | END_STREAM, 1, [200, ...Buffer.alloc(10, 1), ...Buffer.alloc(200)]),
    ],
    expect: ok,
    check: (ctx) => {
      const d = ctx.events.filter((e) => e.type === 'data') as Array<{ data: Uint8Array; endStream: boolean }>;
      expect([d.reduce((n, e) => n + e.data.length, 0), d.at(-1)?.endStream]).toEqual([10, true]);
      // All 211 octets counted against the connection window; the 201 of padding and pad length returned at once (§6.1, §6.9.1).
      expect(ctx.c.openStreams).toBe(1);
    },
  },

  // §6.2 HEADERS.
  {
    sec: '6.2',
    must: 'HEADERS on stream 0 is PROTOCOL_ERROR',
    role: 'both',
    send: () => [headers(0, GET)],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '6.2',
    must: 'padding longer than the HEADERS payload is PROTOCOL_ERROR',
    role: 'server',
    send: () => [frame(T.HEADERS, END_HEADERS | END_STREAM | PADDED, 1, [200, ...block(GET)])],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '6.2',
    must: 'padded HEADERS with priority fields are read past both',
    role: 'server',
    send: () => [
      frame(T.HEADERS, END_HEADERS | END_STREAM | PADDED | PRIORITY, 1, [3, 0, 0, 0, 0, 200, ...block(GET), 0, 0, 0]),
    ],
    expect: ok,
    check: (ctx) => expect(ctx.events.some((e) => e.type === 'headers' && e.streamId === 1)).toBe(true),
  },
  {
    sec: '6.2',
    must: 'HEADERS without END_HEADERS followed by another frame is PROTOCOL_ERROR',
    role: 'both',
    send: (r) => [headers(r === 'server' ? 1 : 3, r === 'server' ? GET : OK, 0), ping()],
    expect: conn(E.PROTOCOL_ERROR),
  },

  // §6.3 PRIORITY.
  {
    sec: '6.3',
    must: 'PRIORITY on stream 0 is PROTOCOL_ERROR',
    role: 'both',
    send: () => [frame(T.PRIORITY, 0, 0, [0, 0, 0, 1, 16])],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '6.3',
    must: 'PRIORITY of a length other than 5 is a FRAME_SIZE_ERROR stream error',
    role: 'both',
    send: (r) => [frame(T.PRIORITY, 0, openId(r), [0, 0, 0, 0])],
    expect: stream(0, E.FRAME_SIZE_ERROR),
  },
  {
    sec: '6.3',
    must: 'PRIORITY on an open stream changes nothing',
    role: 'server',
    send: () => [headers(1, POST, END_HEADERS), frame(T.PRIORITY, 0, 1, [0, 0, 0, 0, 255]), data(1, 'x', END_STREAM)],
    expect: ok,
  },

  // §6.4 RST_STREAM.
  {
    sec: '6.4',
    must: 'RST_STREAM on stream 0 is PROTOCOL_ERROR',
    role: 'both',
    send: () => [rst(0)],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '6.4',
    must: 'RST_STREAM of a length other than 4 is FRAME_SIZE_ERROR',
    role: 'both',
    send: (r) => [...openStream(r), rst(openId(r), E.CANCEL, 3)],
    expect: conn(E.FRAME_SIZE_ERROR),
  },
  {
    sec: '6.4',
    must: 'RST_STREAM ends the stream for the application',
    role: 'client',
    send: () => [rst(3, E.INTERNAL_ERROR)],
    expect: ok,
    check: (ctx) =>
      expect(ctx.events.some((e) => e.type === 'reset' && e.streamId === 3 && e.code === E.INTERNAL_ERROR)).toBe(true),
  },

  // §6.5 SETTINGS.
  {
    sec: '6.5',
    must: 'SETTINGS ACK with a payload is FRAME_SIZE_ERROR',
    role: 'both',
    send: () => [frame(T.SETTINGS, 1, 0, [0, 1, 0, 0, 0, 0])],
    expect: conn(E.FRAME_SIZE_ERROR),
  },
  {
    sec: '6.5',
    must: 'SETTINGS on a stream is PROTOCOL_ERROR',
    role: 'both',
    send: () => [frame(T.SETTINGS, 0, 1, [])],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '6.5',
    must: 'a SETTINGS length not a multiple of 6 is FRAME_SIZE_ERROR',
    role: 'both',
    send: () => [frame(T.SETTINGS, 0, 0, [0, 3, 0, 0, 0])],
    expect: conn(E.FRAME_SIZE_ERROR),
  },
  {
    sec: '6.5.2',
    must: 'SETTINGS_ENABLE_PUSH other than 0 or 1 is PROTOCOL_ERROR',
    role: 'both',
    send: () => [settings([H2Setting.ENABLE_PUSH, 2])],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '6.5.2',
    must: 'a client receiving SETTINGS_ENABLE_PUSH of 1 is PROTOCOL_ERROR',
    role: 'client',
    send: () => [settings([H2Setting.ENABLE_PUSH, 1])],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '6.5.2',
    must: 'SETTINGS_INITIAL_WINDOW_SIZE above 2^31 − 1 is FLOW_CONTROL_ERROR',
    role: 'both',
    send: () => [settings([H2Setting.INITIAL_WINDOW_SIZE, 2 ** 31])],
    expect: conn(E.FLOW_CONTROL_ERROR),
  },
  {
    sec: '6.5.2',
    must: 'SETTINGS_MAX_FRAME_SIZE below 2^14 is PROTOCOL_ERROR',
    role: 'both',
    send: () => [settings([H2Setting.MAX_FRAME_SIZE, 16_383])],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '6.5.2',
    must: 'SETTINGS_MAX_FRAME_SIZE above 2^24 − 1 is PROTOCOL_ERROR',
    role: 'both',
    send: () => [settings([H2Setting.MAX_FRAME_SIZE, 2 ** 24])],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '6.5.3',
    must: 'SETTINGS are acknowledged',
    role: 'both',
    send: () => [settings([H2Setting.MAX_CONCURRENT_STREAMS, 10])],
    expect: ok,
    check: (ctx) =>
      expect(ctx.out.filter((f) => f.type === T.SETTINGS && f.flags === 1 && f.payload.length === 0)).toHaveLength(1),
  },
  {
    sec: '6.5.3',
    must: 'a SETTINGS ACK for nothing sent is PROTOCOL_ERROR',
    role: 'both',
    send: () => [frame(T.SETTINGS, 1, 0), frame(T.SETTINGS, 1, 0)],
    expect: conn(E.PROTOCOL_ERROR),
  },

  // §6.7 PING.
  {
    sec: '6.7',
    must: 'PING is answered with an ACK carrying the same data',
    role: 'both',
    send: () => [ping()],
    expect: ok,
    check: (ctx) =>
      expect(ctx.out.find((f) => f.type === T.PING)?.payload).toEqual(Buffer.from([1, 2, 3, 4, 5, 6, 7, 8])),
  },
  {
    sec: '6.7',
    must: 'a PING ACK is not answered',
    role: 'both',
    send: () => [ping(1)],
    expect: ok,
    check: (ctx) => expect(ctx.out).toEqual([]),
  },
  {
    sec: '6.7',
    must: 'PING on a stream is PROTOCOL_ERROR',
    role: 'both',
    send: () => [ping(0, 1)],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '6.7',
    must: 'PING of a length other than 8 is FRAME_SIZE_ERROR',
    role: 'both',
    send: () => [ping(0, 0, 6)],
    expect: conn(E.FRAME_SIZE_ERROR),
  },

  // §6.8 GOAWAY.
  {
    sec: '6.8',
    must: 'GOAWAY on a stream is PROTOCOL_ERROR',
    role: 'both',
    send: () => [frame(T.GOAWAY, 0, 1, [0, 0, 0, 0, 0, 0, 0, 0])],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '6.8',
    must: 'after GOAWAY(last 1), our streams above it end as REFUSED_STREAM (safe to retry)',
    role: 'client',
    send: () => [frame(T.GOAWAY, 0, 0, [...u32(1), ...u32(E.NO_ERROR)])],
    expect: ok,
    check: (ctx) =>
      expect(
        ctx.events
          .filter((e) => e.type === 'reset')
          .map((e) => [(e as { streamId: number }).streamId, (e as { code: number }).code]),
      ).toEqual([[3, E.REFUSED_STREAM]]),
  },

  // §6.9 WINDOW_UPDATE.
  {
    sec: '6.9',
    must: 'a connection WINDOW_UPDATE of 0 is PROTOCOL_ERROR',
    role: 'both',
    send: () => [wu(0, 0)],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '6.9',
    must: 'a stream WINDOW_UPDATE of 0 is a PROTOCOL_ERROR stream error',
    role: 'both',
    send: (r) => [...openStream(r), wu(openId(r), 0)],
    expect: stream(0, E.PROTOCOL_ERROR),
  },
  {
    sec: '6.9',
    must: 'WINDOW_UPDATE of a length other than 4 is FRAME_SIZE_ERROR',
    role: 'both',
    send: () => [wu(0, 1, 3)],
    expect: conn(E.FRAME_SIZE_ERROR),
  },
  {
    sec: '6.9.1',
    must: 'a connection window over 2^31 − 1 is FLOW_CONTROL_ERROR',
    role: 'both',
    send: () => [wu(0, 2 ** 31 - 1)],
    expect: conn(E.FLOW_CONTROL_ERROR),
  },
  {
    sec: '6.9.1',
    must: 'a stream window over 2^31 − 1 is a FLOW_CONTROL_ERROR stream error',
    role: 'both',
    send: (r) => [...openStream(r), wu(openId(r), 2 ** 31 - 1)],
    expect: stream(0, E.FLOW_CONTROL_ERROR),
  },
  {
    sec: '6.9.1',
    must: 'DATA past our stream window is a FLOW_CONTROL_ERROR stream error',
    role: 'both',
    options: { windowSize: 100, connectionWindowSize: 100_000 },
    send: (r) => [...respondOpen(r), data(openId(r), 101)],
    expect: stream(0, E.FLOW_CONTROL_ERROR),
  },
  {
    sec: '6.9.1',
    must: 'DATA past our connection window is FLOW_CONTROL_ERROR',
    role: 'server',
    options: { windowSize: 65_535, connectionWindowSize: 65_535 },
    send: () => [
      headers(1, POST, END_HEADERS),
      headers(3, POST, END_HEADERS),
      data(1, 16_384),
      data(1, 16_384),
      data(3, 16_384),
      data(3, 16_384),
      data(3, 100),
    ],
    expect: conn(E.FLOW_CONTROL_ERROR),
  },
  {
    sec: '6.9.2',
    must: 'a SETTINGS_INITIAL_WINDOW_SIZE change that overflows a stream window is FLOW_CONTROL_ERROR',
    role: 'both',
    send: (r) => [
      ...openStream(r),
      wu(openId(r), 2 ** 31 - 1 - 65_535),
      settings([H2Setting.INITIAL_WINDOW_SIZE, 65_536]),
    ],
    expect: conn(E.FLOW_CONTROL_ERROR),
  },
  {
    sec: '6.9.2',
    must: 'a lowered SETTINGS_INITIAL_WINDOW_SIZE can make a window negative; sending resumes after WINDOW_UPDATE',
    role: 'server',
    send: () => [headers(1, GET)],
    expect: ok,
    check: (ctx) => {
      const sentData = (): number[] =>
        parseFrames(Buffer.concat(ctx.c.takeOutput()))
          .filter((f) => f.type === T.DATA)
          .map((f) => f.payload.length);
      ctx.c.respond(1, OK, false);
      ctx.c.data(1, Buffer.alloc(1000, 1), false);
      expect(sentData()).toEqual([1000]);
      ctx.c.receive(settings([H2Setting.INITIAL_WINDOW_SIZE, 0]), 2); // stream window: 65,535 − 1,000 − 65,535 = −1,000
      ctx.c.data(1, Buffer.alloc(500, 2), true);
      expect(sentData()).toEqual([]);
      ctx.c.receive(wu(1, 1000), 3); // back to 0: still nothing
      expect(sentData()).toEqual([]);
      ctx.c.receive(wu(1, 600), 4);
      expect(sentData()).toEqual([500]);
    },
  },

  // §6.10 CONTINUATION.
  {
    sec: '6.10',
    must: 'a header block may span several CONTINUATION frames',
    role: 'server',
    send: () => {
      const b = Buffer.from(block(GET));
      return [
        frame(T.HEADERS, END_STREAM, 1, b.subarray(0, 5)),
        frame(T.CONTINUATION, 0, 1, b.subarray(5, 20)),
        frame(T.CONTINUATION, END_HEADERS, 1, b.subarray(20)),
      ];
    },
    expect: ok,
    check: (ctx) => expect(ctx.events.some((e) => e.type === 'headers' && e.streamId === 1)).toBe(true),
  },
  {
    sec: '6.10',
    must: 'CONTINUATION after END_HEADERS is PROTOCOL_ERROR',
    role: 'server',
    send: () => [headers(1, POST, END_HEADERS), frame(T.CONTINUATION, END_HEADERS, 1, [])],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '6.10',
    must: 'CONTINUATION on another stream than its HEADERS is PROTOCOL_ERROR',
    role: 'server',
    send: () => [headers(1, GET, END_STREAM), frame(T.CONTINUATION, END_HEADERS, 3, block(GET))],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '6.10',
    must: 'CONTINUATION on stream 0 is PROTOCOL_ERROR',
    role: 'both',
    send: () => [frame(T.CONTINUATION, END_HEADERS, 0, [])],
    expect: conn(E.PROTOCOL_ERROR),
  },

  // §8.1 HTTP message framing.
  {
    sec: '8.1',
    must: 'trailers without END_STREAM are a PROTOCOL_ERROR stream error',
    role: 'both',
    send: (r) => [...respondOpen(r), data(openId(r), 'x'), headers(openId(r), [['x-t', '1']], END_HEADERS)],
    expect: stream(0, E.PROTOCOL_ERROR),
  },
  {
    sec: '8.1',
    must: 'DATA before the head is a PROTOCOL_ERROR stream error',
    role: 'client',
    send: () => [data(3, 'x')],
    expect: stream(3, E.PROTOCOL_ERROR),
  },
  {
    sec: '8.1',
    must: 'an interim 1xx with END_STREAM is a PROTOCOL_ERROR stream error',
    role: 'client',
    send: () => [headers(3, [[':status', '103']])],
    expect: stream(3, E.PROTOCOL_ERROR),
  },
  {
    sec: '8.1',
    must: 'interim responses precede the final one',
    role: 'client',
    send: () => [headers(3, [[':status', '100']], END_HEADERS), headers(3, OK)],
    expect: ok,
    check: (ctx) => expect(ctx.events.filter((e) => e.type === 'headers' && e.streamId === 3)).toHaveLength(1),
  },
  {
    sec: '8.1.1',
    must: 'a body longer than content-length is a PROTOCOL_ERROR stream error',
    role: 'both',
    send: (r) => [
      headers(openId(r), [...(r === 'server' ? POST : OK), ['content-length', '1']], END_HEADERS),
      data(openId(r), 'xy', END_STREAM),
    ],
    expect: stream(0, E.PROTOCOL_ERROR),
  },
  {
    sec: '8.1.1',
    must: 'a body shorter than content-length is a PROTOCOL_ERROR stream error',
    role: 'both',
    send: (r) => [
      headers(openId(r), [...(r === 'server' ? POST : OK), ['content-length', '5']], END_HEADERS),
      data(openId(r), 'xy', END_STREAM),
    ],
    expect: stream(0, E.PROTOCOL_ERROR),
  },
  {
    sec: '8.1.1',
    must: 'a HEAD response or a 304 may carry content-length without a body',
    role: 'client',
    send: () => [
      headers(3, [
        [':status', '304'],
        ['content-length', '10'],
      ]),
    ],
    expect: ok,
  },
  {
    sec: '8.1.1',
    must: 'DATA on a response that has no content (204, 304: RFC 9110 §6.4.1) is a PROTOCOL_ERROR stream error',
    role: 'client',
    send: () => [headers(3, [[':status', '204']], END_HEADERS), data(3, 'hello', END_STREAM)],
    expect: stream(0, E.PROTOCOL_ERROR),
  },

  // §8.2 Fields.
  {
    sec: '8.2',
    must: 'an upper-case field name is malformed',
    role: 'both',
    send: (r) => [headers(openId(r), [...(r === 'server' ? GET : OK), ['X-Up', '1']])],
    expect: stream(0, E.PROTOCOL_ERROR),
  },
  {
    sec: '8.2.1',
    must: 'a field value with CR, LF or NUL is malformed',
    role: 'both',
    send: (r) => [headers(openId(r), [...(r === 'server' ? GET : OK), ['x-v', 'a\rb']])],
    expect: stream(0, E.PROTOCOL_ERROR),
  },
  {
    sec: '8.2.1',
    must: 'a field name with a space or a colon inside is malformed',
    role: 'server',
    send: () => [headers(1, [...GET, ['x y', '1']])],
    expect: stream(1, E.PROTOCOL_ERROR),
  },
  {
    sec: '8.2.2',
    must: 'a connection-specific field is malformed',
    role: 'both',
    send: (r) => [headers(openId(r), [...(r === 'server' ? GET : OK), ['keep-alive', '1']])],
    expect: stream(0, E.PROTOCOL_ERROR),
  },
  {
    sec: '8.2.2',
    must: 'TE other than "trailers" is malformed',
    role: 'server',
    send: () => [headers(1, [...GET, ['te', 'gzip']])],
    expect: stream(1, E.PROTOCOL_ERROR),
  },
  {
    sec: '8.2.2',
    must: 'TE: trailers is allowed',
    role: 'server',
    send: () => [headers(1, [...GET, ['te', 'trailers']])],
    expect: ok,
  },

  // §8.3 Pseudo-header fields.
  {
    sec: '8.3',
    must: 'an undefined pseudo-header is malformed',
    role: 'both',
    send: (r) => [headers(openId(r), [...(r === 'server' ? GET : OK), [':foo', '1']])],
    expect: stream(0, E.PROTOCOL_ERROR),
  },
  {
    sec: '8.3',
    must: 'a response pseudo-header in a request is malformed',
    role: 'server',
    send: () => [headers(1, [...GET, [':status', '200']])],
    expect: stream(1, E.PROTOCOL_ERROR),
  },
  {
    sec: '8.3',
    must: 'a request pseudo-header in a response is malformed',
    role: 'client',
    send: () => [headers(3, [...OK, [':path', '/']])],
    expect: stream(3, E.PROTOCOL_ERROR),
  },
  {
    sec: '8.3',
    must: 'a pseudo-header in trailers is malformed',
    role: 'both',
    send: (r) => [...respondOpen(r), headers(openId(r), [[':path', '/']])],
    expect: stream(0, E.PROTOCOL_ERROR),
  },
  {
    sec: '8.3',
    must: 'a pseudo-header after a regular field is malformed',
    role: 'both',
    send: (r) => [
      headers(
        openId(r),
        r === 'server'
          ? [
              [':method', 'GET'],
              [':scheme', 'https'],
              ['x-a', '1'],
              [':path', '/'],
              [':authority', 'o'],
            ]
          : [
              ['x-a', '1'],
              [':status', '200'],
            ],
      ),
    ],
    expect: stream(0, E.PROTOCOL_ERROR),
  },
  {
    sec: '8.3.1',
    must: 'a duplicated :method is malformed',
    role: 'server',
    send: () => [headers(1, [...GET, [':method', 'GET']])],
    expect: stream(1, E.PROTOCOL_ERROR),
  },
  {
    sec: '8.3.1',
    must: 'an empty :path is malformed',
    role: 'server',
    send: () => [headers(1, req('GET', ''))],
    expect: stream(1, E.PROTOCOL_ERROR),
  },
  {
    sec: '8.3.1',
    must: 'a request without :method is malformed',
    role: 'server',
    send: () => [
      headers(
        1,
        GET.filter(([n]) => n !== ':method'),
      ),
    ],
    expect: stream(1, E.PROTOCOL_ERROR),
  },
  {
    sec: '8.3.1',
    must: 'a request without :scheme is malformed',
    role: 'server',
    send: () => [
      headers(
        1,
        GET.filter(([n]) => n !== ':scheme'),
      ),
    ],
    expect: stream(1, E.PROTOCOL_ERROR),
  },
  {
    sec: '8.3.1',
    must: 'a request without :path is malformed',
    role: 'server',
    send: () => [
      headers(
        1,
        GET.filter(([n]) => n !== ':path'),
      ),
    ],
    expect: stream(1, E.PROTOCOL_ERROR),
  },
  {
    sec: '8.3.2',
    must: 'a response without :status is malformed',
    role: 'client',
    send: () => [headers(3, [['x-a', '1']])],
    expect: stream(3, E.PROTOCOL_ERROR),
  },
  {
    sec: '8.3.2',
    must: 'a duplicated :status is malformed',
    role: 'client',
    send: () => [headers(3, [...OK, ...OK])],
    expect: stream(3, E.PROTOCOL_ERROR),
  },

  // §8.4 Server push.
  {
    sec: '8.4',
    must: 'a client may not push: PUSH_PROMISE to a server is PROTOCOL_ERROR',
    role: 'server',
    send: () => [headers(1, POST, END_HEADERS), frame(T.PUSH_PROMISE, END_HEADERS, 1, [0, 0, 0, 2, ...block(GET)])],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: '8.4',
    must: 'PUSH_PROMISE to a client that disabled push is PROTOCOL_ERROR',
    role: 'client',
    send: () => [frame(T.PUSH_PROMISE, END_HEADERS, 1, [0, 0, 0, 2, ...block(GET)])],
    expect: conn(E.PROTOCOL_ERROR),
  },

  // §8.5 CONNECT; RFC 8441 extended CONNECT.
  {
    sec: '8.5',
    must: 'CONNECT carries :authority only (with :scheme or :path it is malformed)',
    role: 'server',
    send: () => [headers(1, req('CONNECT'))],
    expect: stream(1, E.PROTOCOL_ERROR),
  },
  {
    sec: '8.5',
    must: 'CONNECT without :authority is malformed',
    role: 'server',
    send: () => [headers(1, [[':method', 'CONNECT']])],
    expect: stream(1, E.PROTOCOL_ERROR),
  },
  {
    sec: '8.5',
    must: 'CONNECT with :authority only is a tunnel request',
    role: 'server',
    send: () => [
      headers(
        1,
        [
          [':method', 'CONNECT'],
          [':authority', 'o.test:443'],
        ],
        END_HEADERS,
      ),
    ],
    expect: ok,
    check: (ctx) => expect(ctx.events.some((e) => e.type === 'headers' && e.streamId === 1)).toBe(true),
  },
  {
    sec: 'RFC 8441 §4',
    must: ':protocol without SETTINGS_ENABLE_CONNECT_PROTOCOL sent is malformed',
    role: 'server',
    send: () => [headers(1, [...req('CONNECT', '/chat'), [':protocol', 'websocket']], END_HEADERS)],
    expect: stream(1, E.PROTOCOL_ERROR),
  },
  {
    sec: 'RFC 8441 §4',
    must: 'extended CONNECT (:protocol with :scheme and :path) is accepted once enabled',
    role: 'server',
    options: { enableConnectProtocol: true },
    send: () => [headers(1, [...req('CONNECT', '/chat'), [':protocol', 'websocket']], END_HEADERS)],
    expect: ok,
    check: (ctx) => expect(ctx.events.some((e) => e.type === 'headers' && e.streamId === 1)).toBe(true),
  },
  {
    sec: 'RFC 8441 §4',
    must: 'extended CONNECT without :path is malformed',
    role: 'server',
    options: { enableConnectProtocol: true },
    send: () => [
      headers(
        1,
        [
          [':method', 'CONNECT'],
          [':scheme', 'https'],
          [':authority', 'o.test'],
          [':protocol', 'websocket'],
        ],
        END_HEADERS,
      ),
    ],
    expect: stream(1, E.PROTOCOL_ERROR),
  },
  {
    sec: 'RFC 8441 §4',
    must: ':protocol on a method other than CONNECT is malformed',
    role: 'server',
    options: { enableConnectProtocol: true },
    send: () => [headers(1, [...GET, [':protocol', 'websocket']])],
    expect: stream(1, E.PROTOCOL_ERROR),
  },
  {
    sec: 'RFC 8441 §3',
    must: 'SETTINGS_ENABLE_CONNECT_PROTOCOL other than 0 or 1 is PROTOCOL_ERROR',
    role: 'both',
    send: () => [settings([H2Setting.ENABLE_CONNECT_PROTOCOL, 2])],
    expect: conn(E.PROTOCOL_ERROR),
  },
  {
    sec: 'RFC 8441 §3',
    must: 'the setting may not go from 1 back to 0',
    role: 'client',
    send: () => [settings([H2Setting.ENABLE_CONNECT_PROTOCOL, 1]), settings([H2Setting.ENABLE_CONNECT_PROTOCOL, 0])],
    expect: conn(E.PROTOCOL_ERROR),
  },

  // RFC 7541 at the connection level: every decoding error is a connection COMPRESSION_ERROR (RFC 9113 §4.3).
  {
    sec: '7541 §2.3.3',
    must: 'index 0 is an error',
    role: 'both',
    send: (r) => [frame(T.HEADERS, END_HEADERS | END_STREAM, openId(r), [0x80])],
    expect: conn(E.COMPRESSION_ERROR),
  },
  {
    sec: '7541 §2.3.3',
    must: 'an index past both tables is an error',
    role: 'both',
    send: (r) => [frame(T.HEADERS, END_HEADERS | END_STREAM, openId(r), [0xbf])],
    expect: conn(E.COMPRESSION_ERROR),
  },
  {
    sec: '7541 §4.2',
    must: 'a table size update above SETTINGS_HEADER_TABLE_SIZE is an error',
    role: 'both',
    send: (r) => [frame(T.HEADERS, END_HEADERS | END_STREAM, openId(r), int(8192, 5, 0x20))],
    expect: conn(E.COMPRESSION_ERROR),
  },
  {
    sec: '7541 §4.2',
    must: 'a table size update after a field line is an error',
    role: 'server',
    send: () => [frame(T.HEADERS, END_HEADERS | END_STREAM, 1, [...block(GET), 0x20])],
    expect: conn(E.COMPRESSION_ERROR),
  },
  {
    sec: '7541 §5.1',
    must: 'an integer past its limit is an error',
    role: 'both',
    send: (r) => [
      frame(T.HEADERS, END_HEADERS | END_STREAM, openId(r), [0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
    ],
    expect: conn(E.COMPRESSION_ERROR),
  },
  {
    sec: '7541 §5.2',
    must: 'a Huffman string with EOS inside is an error',
    role: 'server',
    send: () => [frame(T.HEADERS, END_HEADERS | END_STREAM, 1, [0x00, 0x84, 0xff, 0xff, 0xff, 0xff, 0x01, 0x61])],
    expect: conn(E.COMPRESSION_ERROR),
  },
  {
    sec: '7541 §5.2',
    must: 'Huffman padding of more than 7 bits is an error',
    role: 'server',
    send: () => [frame(T.HEADERS, END_HEADERS | END_STREAM, 1, [0x00, 0x82, 0x1f, 0xff, 0x01, 0x61])],
    expect: conn(E.COMPRESSION_ERROR),
  },
  {
    sec: '7541 §5.2',
    must: 'Huffman padding that is not the EOS prefix is an error',
    role: 'server',
    send: () => [frame(T.HEADERS, END_HEADERS | END_STREAM, 1, [0x00, 0x81, 0x00, 0x01, 0x61])],
    expect: conn(E.COMPRESSION_ERROR),
  },
  {
    sec: '7541 §6.3',
    must: 'a table size update at the start of a block is applied',
    role: 'server',
    send: () => [frame(T.HEADERS, END_HEADERS | END_STREAM, 1, [0x20, ...block(GET)])],
    expect: ok,
    check: (ctx) => expect(ctx.events.some((e) => e.type === 'headers' && e.streamId === 1)).toBe(true),
  },
];

function title(k: Case, role: string): string {
  return `§${k.sec.replace(/^RFC /, '')} [${role}] ${k.must}`;
}

for (const mode of ['whole', 'byte'] as const) {
  describe(`RFC 9113 conformance, fed ${mode === 'whole' ? 'whole' : 'byte by byte'}`, () => {
    for (const k of CASES) {
      const roles = k.role === 'both' ? (['server', 'client'] as const) : ([k.role] as const);
      for (const role of roles) {
        it(title(k, role), () => {
          const ctx = run(k, role, mode);
          const got = verdict(ctx);
          let want = k.expect;
          // stream(0, …): the stream the case opened (server role 1, client role 3, or the idle one).
          if ('stream' in want && want.stream[0] === 0) {
            const id = k.sec === '5.3.1' ? idle(role) : k.sec === '5.1' ? (role === 'server' ? 1 : 3) : openId(role);
            want = stream(id, want.stream[1]);
          }
          expect(got).toEqual(want);
          if ('conn' in want) expect(ctx.c.closed).toBe(true);
          else expect(ctx.c.closed).toBe(false);
          k.check?.(ctx);
        });
      }
    }
  });
}

describe('§3.4 connection preface (before the set-up the cases assume)', () => {
  for (const mode of ['whole', 'byte'] as const) {
    const feed = (c: H2Connection, b: Buffer): void => {
      if (mode === 'whole') c.receive(b, 0);
      else for (let i = 0; i < b.length && !c.closed; i++) c.receive(b.subarray(i, i + 1), 0);
    };
    it(`[server] a preface other than the client preface ends the connection (PROTOCOL_ERROR), fed ${mode}`, () => {
      const c = new H2Connection({ role: 'server' });
      feed(c, Buffer.from('PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n'));
      expect(c.closed).toBe(true);
    });
    for (const role of ['server', 'client'] as const) {
      it(`[${role}] a first frame other than SETTINGS is PROTOCOL_ERROR, fed ${mode}`, () => {
        const c = new H2Connection({ role });
        c.takeOutput();
        feed(
          c,
          Buffer.concat([
            role === 'server' ? Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n') : Buffer.alloc(0),
            ping(),
          ]),
        );
        expect(verdict({ c, events: [], out: parseFrames(Buffer.concat(c.takeOutput())) })).toEqual(
          conn(E.PROTOCOL_ERROR),
        );
      });
      it(`[${role}] sends SETTINGS as its first frame (the client after its preface), fed ${mode}`, () => {
        const c = new H2Connection({ role });
        const out = Buffer.concat(c.takeOutput());
        const frames = parseFrames(role === 'client' ? out.subarray(24) : out);
        if (role === 'client') expect(out.subarray(0, 24).toString('latin1')).toBe('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
        expect([frames[0]?.type, frames[0]?.flags]).toEqual([T.SETTINGS, 0]);
      });
    }
  }
});

describe('conformance bookkeeping', () => {
  it('every section listed in the header has a case', () => {
    const secs = new Set(CASES.map((k) => k.sec));
    expect(secs.size).toBeGreaterThanOrEqual(38);
    expect(CASES.length).toBeGreaterThanOrEqual(100);
  });
});

describe('a header block received again (the decoder returns its kept list)', () => {
  const resets = (ctx: Ctx): Array<[number, number]> =>
    ctx.out.filter((f) => f.type === T.RST_STREAM).map((f) => [f.id, f.payload.readUInt32BE(0)]);

  it('[server] a malformed one is refused each time it comes (§8.1.1), a good one taken each time', () => {
    const ctx = setUp('server');
    const bad: Array<[string, string]> = [...GET, ['keep-alive', '1']];
    ctx.c.receive(Buffer.concat([headers(1, bad), headers(3, bad), headers(5, GET), headers(7, GET)]), 1);
    ctx.out = parseFrames(Buffer.concat(ctx.c.takeOutput()));
    expect(resets(ctx)).toEqual([
      [1, E.PROTOCOL_ERROR],
      [3, E.PROTOCOL_ERROR],
    ]);
    const opened = ctx.events.filter((e) => e.type === 'headers').map((e) => (e as { streamId: number }).streamId);
    expect(opened).toEqual([5, 7]);
  });

  it('[server] the same bytes checked as trailers are checked again as a request (§8.1, §8.3.1)', () => {
    const ctx = setUp('server');
    const fields: Array<[string, string]> = [['x-t', '1']];
    ctx.c.receive(Buffer.concat([headers(1, POST, END_HEADERS), headers(1, fields), headers(3, fields)]), 1);
    ctx.out = parseFrames(Buffer.concat(ctx.c.takeOutput()));
    expect(resets(ctx)).toEqual([[3, E.PROTOCOL_ERROR]]);
  });
});
