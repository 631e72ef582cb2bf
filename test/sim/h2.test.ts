/**
 * The sans-IO HTTP/2 connection (src/h2) in both roles, paired in memory:
 * bytes cross in random chunks (and one at a time), the clock is a number.
 * Requests and responses with bodies past every window, trailers, interim
 * responses, concurrency limits, graceful GOAWAY, resets, and every
 * protection (rapid reset, CONTINUATION flood, SETTINGS/PING/empty-DATA
 * floods, HPACK bombs, malformed fields, content-length, a peer that never
 * opens its window).
 *
 * RFC 9113 sections covered: §3.4 (preface, SETTINGS first), §5.1 (states,
 * idle and closed streams), §5.1.2 (concurrency, REFUSED_STREAM), §5.2/§6.9
 * (flow control both levels, credit on consumption, overflow),
 * §6.5 (SETTINGS ACK), §6.8 (GOAWAY, two-step), §6.10 (CONTINUATION
 * sequencing), §8.1 (interim, trailers need END_STREAM), §8.1.1 (malformed,
 * content-length), §8.2/§8.3 (fields), §10.5 (floods).
 */
import { describe, expect, it } from 'vitest';
import { H2ErrorCode } from '../../src/codec/errors.js';
import { encodeSettings, encodePing, encodeRstStream, H2FrameType } from '../../src/codec/h2frame.js';
import { HpackEncoder } from '../../src/codec/hpack/encoder.js';
import { H2Connection } from '../../src/h2/connection.js';
import type { H2ConnectionOptions, H2Event } from '../../src/h2/types.js';
import type { HeaderList } from '../../src/http/types.js';
import { rawFrame } from '../helpers/h2-raw.js';

let seed = 1;
const rnd = (n: number): number => (seed = (seed * 1103515245 + 12345) >>> 0) % n;

/** Two connections joined by a lossless pipe that delivers in random chunk sizes. */
class Pair {
  client: H2Connection;
  server: H2Connection;
  c: H2Event[] = [];
  s: H2Event[] = [];
  now = 0;
  constructor(
    co: Partial<H2ConnectionOptions> = {},
    so: Partial<H2ConnectionOptions> = {},
    readonly chunk: 'random' | 'byte' = 'random',
  ) {
    this.client = new H2Connection({ role: 'client', windowSize: 65_535, ...co });
    this.server = new H2Connection({ role: 'server', windowSize: 65_535, ...so });
    this.client.on((e) => this.c.push(e));
    this.server.on((e) => this.s.push(e));
  }
  /** Move bytes both ways until quiet (bounded). */
  run(): void {
    for (let i = 0; i < 10_000; i++) {
      const a = this.#move(this.client, this.server);
      const b = this.#move(this.server, this.client);
      if (!a && !b) return;
    }
    throw new Error('pair did not settle');
  }
  #move(from: H2Connection, to: H2Connection): boolean {
    const out = from.takeOutput();
    if (out.length === 0) return false;
    const all = Buffer.concat(out);
    let off = 0;
    while (off < all.length) {
      const n = this.chunk === 'byte' ? 1 : 1 + rnd(3000);
      to.receive(all.subarray(off, off + n), this.now);
      off += n;
    }
    return true;
  }
  /** Server side: answer every complete request with `respond`. */
  serve(respond: (id: number, headers: HeaderList, body: Buffer) => void): void {
    const bodies = new Map<number, Buffer[]>();
    let seen = 0;
    const step = (): void => {
      for (; seen < this.s.length; seen++) {
        const e = this.s[seen]!;
        if (e.type === 'headers' && !e.trailers) {
          bodies.set(e.streamId, []);
          if (e.endStream) respond(e.streamId, e.headers, Buffer.alloc(0));
        } else if (e.type === 'data') {
          bodies.get(e.streamId)?.push(Buffer.from(e.data));
          this.server.consumed(e.streamId, e.data.length);
          if (e.endStream) respond(e.streamId, [], Buffer.concat(bodies.get(e.streamId) ?? []));
        }
      }
    };
    const orig = this.run.bind(this);
    this.run = () => {
      for (let i = 0; i < 200; i++) {
        orig();
        const before = this.s.length;
        step();
        if (this.s.length === before && this.server.takeOutput.length === 0) {
          orig();
          if (this.s.length === before) return;
        }
      }
    };
  }
  /** Client side: a response as events of one stream. */
  response(
    id: number,
    consume = true,
  ): { status: number | null; body: Buffer; trailers: HeaderList | null; reset: number | null; ended: boolean } {
    let status: number | null = null;
    const body: Buffer[] = [];
    let trailers: HeaderList | null = null;
    let reset: number | null = null;
    let ended = false;
    for (const e of this.c) {
      if (!('streamId' in e) || e.streamId !== id) continue;
      if (e.type === 'headers' && !e.trailers) status = Number(e.headers.find(([n]) => n === ':status')?.[1]);
      if (e.type === 'headers' && e.trailers) trailers = e.headers;
      if (e.type === 'data') body.push(Buffer.from(e.data));
      if (e.type === 'reset') reset = e.code;
      if ((e.type === 'headers' || e.type === 'data') && e.endStream) ended = true;
    }
    void consume;
    return { status, body: Buffer.concat(body), trailers, reset, ended };
  }
}

const get = (path = '/'): HeaderList => [
  [':method', 'GET'],
  [':scheme', 'https'],
  [':authority', 'o.test'],
  [':path', path],
];
const post = (path = '/'): HeaderList => [
  [':method', 'POST'],
  [':scheme', 'https'],
  [':authority', 'o.test'],
  [':path', path],
];

/** A client that consumes everything it gets (credit returns as the application reads). */
function autoConsume(p: Pair): void {
  p.client.on((e) => {
    p.c.push(e);
    if (e.type === 'data') p.client.consumed(e.streamId, e.data.length);
  });
}

describe('request and response', () => {
  for (const mode of ['random', 'byte'] as const) {
    it(`a GET and a 200 KiB POST echo, bodies past every window (chunks: ${mode})`, () => {
      const p = new Pair({}, {}, mode);
      autoConsume(p);
      p.serve((id, _h, body) => {
        p.server.respond(
          id,
          [
            [':status', '200'],
            ['content-length', String(body.length)],
          ],
          body.length === 0,
        );
        if (body.length) p.server.data(id, body, true);
      });
      p.run();
      const a = p.client.request(get('/a'), true)!;
      const big = Buffer.alloc(mode === 'byte' ? 20_000 : 200 * 1024, 7);
      const b = p.client.request([...post('/b'), ['content-length', String(big.length)]], false)!;
      p.client.data(b, big, true);
      p.run();
      expect(p.response(a)).toMatchObject({ status: 200, ended: true, reset: null });
      const rb = p.response(b);
      expect([rb.status, rb.body.length, rb.ended]).toEqual([200, big.length, true]);
      expect(rb.body.equals(big)).toBe(true);
      expect([p.client.openStreams, p.server.openStreams]).toEqual([0, 0]);
    });
  }

  it('§8.1 stopReading: RST_STREAM(NO_ERROR) only after the whole answer left, flow-controlled DATA included; the client keeps the answer', () => {
    // The client's stream window (65,535) holds back a 200 KiB answer until the client consumes it.
    const p = new Pair();
    p.run();
    const id = p.client.request(post('/early'), false)!;
    p.client.data(id, Buffer.alloc(1000, 1), false); // the request body has begun and will not end
    p.run();
    const big = Buffer.alloc(200 * 1024, 9);
    p.server.respond(
      id,
      [
        [':status', '413'],
        ['content-length', String(big.length)],
      ],
      false,
    );
    p.server.data(id, big, true);
    p.server.stopReading(id);
    p.run();
    // Held back by flow control: no reset yet, the stream still open on both sides.
    expect(p.response(id).reset).toBeNull();
    expect(p.server.openStreams).toBe(1);
    let consumedSoFar = 0;
    for (let i = 0; i < 20 && !p.response(id).ended; i++) {
      const got = p.response(id).body.length; // the application reads what came: credit goes back
      p.client.consumed(id, got - consumedSoFar);
      consumedSoFar = got;
      p.run();
    }
    const r = p.response(id);
    expect([r.status, r.body.length, r.ended]).toEqual([413, big.length, true]);
    expect(r.body.equals(big)).toBe(true);
    expect(r.reset).toBe(H2ErrorCode.NO_ERROR); // after the END_STREAM, not before
    expect([p.client.openStreams, p.server.openStreams]).toEqual([0, 0]);

    // An answer that left at once (END_STREAM on its HEADERS): the reset follows at once.
    const id2 = p.client.request(post('/early-small'), false)!;
    p.client.data(id2, Buffer.alloc(1000, 1), false);
    p.run();
    p.server.respond(id2, [[':status', '405']], true);
    p.server.stopReading(id2);
    p.run();
    expect(p.response(id2)).toMatchObject({ status: 405, ended: true, reset: H2ErrorCode.NO_ERROR });
    expect([p.client.openStreams, p.server.openStreams]).toEqual([0, 0]);
  });

  it('trailers end a response; an interim 103 is skipped', () => {
    const p = new Pair();
    autoConsume(p);
    p.serve((id) => {
      p.server.respond(
        id,
        [
          [':status', '103'],
          ['link', '</a>; rel=preload'],
        ],
        false,
      );
      p.server.respond(id, [[':status', '200']], false);
      p.server.data(id, Buffer.from('body'), false);
      p.server.trailers(id, [['x-checksum', 'abc']]);
    });
    p.run();
    const id = p.client.request(get(), true)!;
    p.run();
    expect(p.response(id)).toMatchObject({ status: 200, trailers: [['x-checksum', 'abc']], ended: true });
  });

  it('§6.9: a reader that does not consume holds the sender at one window; consuming lets it go on', () => {
    const p = new Pair();
    p.serve((id) => {
      p.server.respond(id, [[':status', '200']], false);
      p.server.data(id, Buffer.alloc(300_000, 1), true);
    });
    p.run();
    const id = p.client.request(get(), true)!;
    p.run();
    const got = (): number => p.response(id).body.length;
    expect(got()).toBe(65_535); // the stream window, not more
    expect(p.server.pending(id)).toBe(300_000 - 65_535);
    p.client.consumed(id, 65_535);
    p.run();
    expect(got()).toBeGreaterThan(65_535);
  });
});

describe('concurrency and shutdown', () => {
  it('§5.1.2: past the server’s limit, request() returns null; a freed slot lets the next one open', () => {
    const p = new Pair({}, { maxConcurrentStreams: 2 });
    p.run();
    const ids = [
      p.client.request(get('/1'), true),
      p.client.request(get('/2'), true),
      p.client.request(get('/3'), true),
    ];
    expect(ids[2]).toBeNull();
    p.run();
    const first = p.s.find((e) => e.type === 'headers') as { streamId: number };
    p.server.respond(first.streamId, [[':status', '204']], true);
    p.run();
    expect(p.client.request(get('/3'), true)).not.toBeNull();
  });

  it('§6.8: graceful GOAWAY in two steps — requests in flight finish, new ones are refused', () => {
    const p = new Pair();
    autoConsume(p);
    p.run();
    const a = p.client.request(get('/in-flight'), true)!;
    p.run();
    p.server.shutdown();
    p.run();
    expect(p.c.some((e) => e.type === 'goaway')).toBe(true);
    expect(p.client.request(get('/late'), true)).toBeNull();
    p.server.respond(a, [[':status', '200']], true);
    p.run();
    expect(p.response(a)).toMatchObject({ status: 200, ended: true });
    expect(p.server.closed).toBe(true);
  });

  it('a GOAWAY with a lower last id refuses the client’s streams above it (retry-safe)', () => {
    const p = new Pair();
    p.run();
    const ids = [p.client.request(get('/1'), true)!, p.client.request(get('/2'), true)!];
    p.run();
    p.server.fail(H2ErrorCode.NO_ERROR, 'bye');
    p.run();
    const resets = p.c.filter((e) => e.type === 'reset') as Array<{ streamId: number; code: number }>;
    expect(resets.map((r) => [r.streamId, r.code])).toEqual(
      [
        [ids[0], H2ErrorCode.REFUSED_STREAM],
        [ids[1], H2ErrorCode.REFUSED_STREAM],
      ].slice(0, resets.length),
    );
  });
});

interface HandDriven {
  events: H2Event[];
  send: (...frames: Uint8Array[]) => void;
  out: () => Buffer;
  enc: HpackEncoder;
  now: { t: number };
}

/** One of our connections facing a peer driven by hand (its greeting sent, our first output dropped). */
function handDriven(conn: H2Connection, greeting: Uint8Array[]): HandDriven {
  const events: H2Event[] = [];
  conn.on((e) => events.push(e));
  const now = { t: 0 };
  const send = (...frames: Uint8Array[]): void => conn.receive(Buffer.concat(frames), now.t);
  send(...greeting);
  conn.takeOutput();
  return { events, send, out: () => Buffer.concat(conn.takeOutput()), enc: new HpackEncoder(), now };
}

/** Raw frames from a hand-driven client, to break rules our own client never breaks. */
function rawClient(so: Partial<H2ConnectionOptions> = {}): HandDriven & { server: H2Connection } {
  const server = new H2Connection({ role: 'server', ...so });
  return { server, ...handDriven(server, [Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), encodeSettings([])]) };
}

const frame = rawFrame;
const goawayCode = (b: Buffer): number | null => {
  for (let o = 0; o + 9 <= b.length; ) {
    const len = b.readUIntBE(o, 3);
    if (b[o + 3] === H2FrameType.GOAWAY) return b.readUInt32BE(o + 13);
    o += 9 + len;
  }
  return null;
};
const rstCodes = (b: Buffer): number[] => {
  const out: number[] = [];
  for (let o = 0; o + 9 <= b.length; ) {
    const len = b.readUIntBE(o, 3);
    if (b[o + 3] === H2FrameType.RST_STREAM) out.push(b.readUInt32BE(o + 9));
    o += 9 + len;
  }
  return out;
};

describe('protections (server role)', () => {
  it('§3.4: a bad preface or a first frame that is not SETTINGS is PROTOCOL_ERROR', () => {
    const s = new H2Connection({ role: 'server' });
    s.receive(Buffer.from('GET / HTTP/1.1\r\n\r\n'), 0);
    expect(s.closed).toBe(true);
    const t = new H2Connection({ role: 'server' });
    t.receive(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), encodePing(new Uint8Array(8))]), 0);
    expect(goawayCode(Buffer.concat(t.takeOutput()))).toBe(H2ErrorCode.PROTOCOL_ERROR);
  });

  it('rapid reset: HEADERS + RST_STREAM past the limit per second ends with GOAWAY ENHANCE_YOUR_CALM', () => {
    const c = rawClient({ limits: { resets: 50 } });
    let id = 1;
    for (let i = 0; i < 60 && !c.server.closed; i++, id += 2) {
      c.send(frame(H2FrameType.HEADERS, 0x5, id, c.enc.encode(get())), encodeRstStream(id, H2ErrorCode.CANCEL));
    }
    expect(c.server.closed).toBe(true);
    expect(goawayCode(c.out())).toBe(H2ErrorCode.ENHANCE_YOUR_CALM);
    // The application saw every stream end: nothing keeps working for a reset stream.
    expect(c.events.filter((e) => e.type === 'reset').length).toBeGreaterThanOrEqual(50);
  });

  it("a server's RST_STREAM(NO_ERROR) after early complete responses is no flood: 500 in one second keep the client's connection", () => {
    // RFC 9113 §8.1: a server may answer before the request body is in, then ask the client to stop with NO_ERROR.
    const p = new Pair({ limits: { resets: 50 } }, { maxConcurrentStreams: 1000 });
    autoConsume(p);
    let seen = 0;
    /** Move bytes; the server answers each new request at its head and resets the rest of it. */
    const run = (): void => {
      for (let round = 0; round < 100; round++) {
        p.run();
        const answered = seen;
        for (; seen < p.s.length; seen++) {
          const e = p.s[seen]!;
          if (e.type !== 'headers' || e.trailers) continue;
          p.server.respond(
            e.streamId,
            [
              [':status', '405'],
              ['content-length', '0'],
            ],
            true,
          );
          p.server.reset(e.streamId, H2ErrorCode.NO_ERROR);
        }
        if (seen === answered) return;
      }
    };
    run();
    const ids: number[] = [];
    for (let i = 0; i < 500; i++) {
      const id = p.client.request([...post(`/u${i}`), ['content-length', '100000']], false)!;
      p.client.data(id, Buffer.alloc(1000, 1), false); // the rest of the body never goes: the answer came first
      ids.push(id);
      if (i % 50 === 49) run();
    }
    run();
    expect(p.client.closed).toBe(false);
    for (const id of ids) expect(p.response(id)).toMatchObject({ status: 405, ended: true });
    expect(p.client.request(get('/after'), true)).not.toBeNull();
  });

  it('the same resets spread over time are fine (the limit is per second)', () => {
    const c = rawClient({ limits: { resets: 50 } });
    let id = 1;
    for (let i = 0; i < 200; i++, id += 2) {
      c.now.t = i * 25; // 40 per second
      c.send(frame(H2FrameType.HEADERS, 0x5, id, c.enc.encode(get())), encodeRstStream(id, H2ErrorCode.CANCEL));
    }
    expect(c.server.closed).toBe(false);
  });

  it('CONTINUATION flood: a header block is bounded in frames (ENHANCE_YOUR_CALM), whatever it decodes to', () => {
    const c = rawClient();
    c.send(frame(H2FrameType.HEADERS, 0x0, 1, c.enc.encode(get())));
    for (let i = 0; i < 200 && !c.server.closed; i++) c.send(frame(H2FrameType.CONTINUATION, 0, 1, new Uint8Array(0)));
    expect(goawayCode(c.out())).toBe(H2ErrorCode.ENHANCE_YOUR_CALM);
  });

  it('§6.10: a header block interrupted by another frame is PROTOCOL_ERROR', () => {
    const c = rawClient();
    c.send(frame(H2FrameType.HEADERS, 0x0, 1, c.enc.encode(get())), encodePing(new Uint8Array(8)));
    expect(goawayCode(c.out())).toBe(H2ErrorCode.PROTOCOL_ERROR);
  });

  for (const [name, make] of [
    ['SETTINGS', () => encodeSettings([])],
    ['PING', () => encodePing(new Uint8Array(8))],
    ['empty DATA', () => frame(H2FrameType.DATA, 0, 1, new Uint8Array(0))],
  ] as const) {
    it(`${name} flood ends with GOAWAY ENHANCE_YOUR_CALM`, () => {
      const c = rawClient();
      if (name === 'empty DATA') c.send(frame(H2FrameType.HEADERS, 0x4, 1, c.enc.encode(post())));
      for (let i = 0; i < 500 && !c.server.closed; i++) c.send(make());
      expect(c.server.closed).toBe(true);
      expect(goawayCode(c.out())).toBe(H2ErrorCode.ENHANCE_YOUR_CALM);
    });
  }

  it('HPACK bomb: a list past SETTINGS_MAX_HEADER_LIST_SIZE resets that stream; the connection keeps serving', () => {
    const c = rawClient({ maxHeaderListSize: 4096 });
    const fields: HeaderList = [
      ...get(),
      ...Array.from({ length: 200 }, (_, i) => [`x-f${i}`, 'v'.repeat(30)] as [string, string]),
    ];
    c.send(frame(H2FrameType.HEADERS, 0x5, 1, c.enc.encode(fields)));
    expect(rstCodes(c.out())).toEqual([H2ErrorCode.PROTOCOL_ERROR]);
    c.send(frame(H2FrameType.HEADERS, 0x5, 3, c.enc.encode(get('/next'))));
    expect(c.events.some((e) => e.type === 'headers' && e.streamId === 3)).toBe(true);
    expect(c.server.closed).toBe(false);
  });

  it('§8.2/§8.1.1: malformed requests are stream errors (upper-case name, connection field, missing :path, content-length mismatch)', () => {
    const c = rawClient();
    c.send(frame(H2FrameType.HEADERS, 0x5, 1, c.enc.encode([...get(), ['X-Upper', '1']])));
    c.send(frame(H2FrameType.HEADERS, 0x5, 3, c.enc.encode([...get(), ['connection', 'close']])));
    c.send(frame(H2FrameType.HEADERS, 0x5, 5, c.enc.encode(get().filter(([n]) => n !== ':path'))));
    c.send(
      frame(H2FrameType.HEADERS, 0x4, 7, c.enc.encode([...post(), ['content-length', '10']])),
      frame(H2FrameType.DATA, 0x1, 7, Buffer.from('12345')),
    );
    expect(rstCodes(c.out())).toEqual([1, 1, 1, 1]);
    expect(c.events.filter((e) => e.type === 'headers').map((e) => (e as { streamId: number }).streamId)).toEqual([7]);
    expect(c.server.closed).toBe(false);
  });

  it('§5.1: DATA on an idle stream, and §5.1.1: a new stream below the last one opened, are connection errors', () => {
    const c = rawClient();
    c.send(frame(H2FrameType.DATA, 0, 9, Buffer.from('x')));
    expect(goawayCode(c.out())).toBe(H2ErrorCode.PROTOCOL_ERROR);
    const d = rawClient();
    d.send(
      frame(H2FrameType.HEADERS, 0x5, 5, d.enc.encode(get())),
      frame(H2FrameType.HEADERS, 0x5, 3, d.enc.encode(get())),
    );
    expect(goawayCode(d.out())).toBe(H2ErrorCode.PROTOCOL_ERROR); // 3 was never opened: an unexpected identifier
  });

  it('§6.9.1: a peer that sends past our window is FLOW_CONTROL_ERROR', () => {
    const c = rawClient({ windowSize: 1000, connectionWindowSize: 1_000_000 });
    c.send(frame(H2FrameType.HEADERS, 0x4, 1, c.enc.encode(post())), frame(H2FrameType.DATA, 0, 1, Buffer.alloc(1001)));
    expect(rstCodes(c.out())).toEqual([H2ErrorCode.FLOW_CONTROL_ERROR]);
  });

  it('§5.1.2: streams past SETTINGS_MAX_CONCURRENT_STREAMS are REFUSED_STREAM', () => {
    const c = rawClient({ maxConcurrentStreams: 2 });
    for (const id of [1, 3, 5]) c.send(frame(H2FrameType.HEADERS, 0x4, id, c.enc.encode(post())));
    expect(rstCodes(c.out())).toEqual([H2ErrorCode.REFUSED_STREAM]);
  });
});

/** A hand-driven origin for our client role: frames an origin may send, whatever our own server would. */
function rawOrigin(co: Partial<H2ConnectionOptions> = {}): HandDriven & { client: H2Connection } {
  const client = new H2Connection({ role: 'client', ...co });
  return { client, ...handDriven(client, [encodeSettings([])]) };
}

const status = (code: string, extra: HeaderList = []): HeaderList => [[':status', code], ...extra];

describe('protections (client role): an origin that attacks or breaks the rules', () => {
  it('a SETTINGS frame of more than 32 entries is ENHANCE_YOUR_CALM (CVE-2020-11080: 2,730 HEADER_TABLE_SIZE entries rebuilt our table 2,730 times a frame); 32 are taken', () => {
    const o = rawOrigin();
    const entries = (n: number): Array<[number, number]> =>
      Array.from({ length: n }, (_, i) => [0x1, i % 2 ? 4096 : 0] as [number, number]);
    o.send(encodeSettings(entries(32)));
    expect(o.client.closed).toBe(false);
    const id = o.client.request(get(), true) as number;
    expect(id).toBe(1);
    o.send(encodeSettings(entries(33)));
    expect(o.client.closed).toBe(true);
    expect(goawayCode(o.out())).toBe(H2ErrorCode.ENHANCE_YOUR_CALM);
  });

  it('§5.1: a zero WINDOW_UPDATE on a stream never opened is a connection error, not a RST_STREAM per frame', () => {
    const o = rawOrigin();
    o.send(frame(H2FrameType.WINDOW_UPDATE, 0, 1, Buffer.from([0, 0, 0, 0])));
    expect(goawayCode(o.out())).toBe(H2ErrorCode.PROTOCOL_ERROR);
  });

  it('the resets an origin makes us send are counted: 200 self-dependent PRIORITY frames end the connection (ENHANCE_YOUR_CALM)', () => {
    const o = rawOrigin();
    o.client.request(get(), true);
    for (let i = 0; i < 200 && !o.client.closed; i++)
      o.send(frame(H2FrameType.PRIORITY, 0, 1, Buffer.from([0, 0, 0, 1, 0])));
    expect(o.client.closed).toBe(true);
    expect(goawayCode(o.out())).toBe(H2ErrorCode.ENHANCE_YOUR_CALM);
  });

  it('at most 16 interim responses per request: the 17th resets the stream (each was forwarded to our client)', () => {
    const o = rawOrigin();
    const a = o.client.request(get('/a'), true) as number;
    const b = o.client.request(get('/b'), true) as number;
    for (let i = 0; i < 16; i++)
      o.send(frame(H2FrameType.HEADERS, 0x4, a, o.enc.encode(status('103', [['link', '</s.css>']]))));
    o.send(frame(H2FrameType.HEADERS, 0x5, a, o.enc.encode(status('200'))));
    for (let i = 0; i < 17; i++) o.send(frame(H2FrameType.HEADERS, 0x4, b, o.enc.encode(status('103'))));
    expect(o.events.filter((e) => e.type === 'interim').length).toBe(32);
    expect(o.events.some((e) => e.type === 'headers' && e.streamId === a)).toBe(true);
    expect(rstCodes(o.out())).toEqual([H2ErrorCode.PROTOCOL_ERROR]);
    expect(o.client.closed).toBe(false);
  });

  it("§6.1: padding is credited to the stream's window too — an origin that pads every frame is not stalled after a window of padding", () => {
    const o = rawOrigin({ windowSize: 65_535, connectionWindowSize: 1 << 24 });
    const id = o.client.request(get(), true) as number;
    o.send(frame(H2FrameType.HEADERS, 0x4, id, o.enc.encode(status('200'))));
    o.client.consumed(id, 0);
    let window = 65_535;
    let sent = 0;
    // Each frame: pad length, 1 data octet, 254 octets of padding (255 of flow control for 1 of data).
    const padded = frame(
      H2FrameType.DATA,
      0x8,
      id,
      Buffer.concat([Buffer.from([254]), Buffer.from('x'), Buffer.alloc(254)]),
    );
    for (let i = 0; i < 1000; i++) {
      if (window < 256) break;
      o.send(padded);
      window -= 256;
      sent++;
      for (const e of o.events.splice(0)) if (e.type === 'data') o.client.consumed(id, e.data.length);
      const b = o.out();
      for (let off = 0; off + 9 <= b.length; ) {
        const len = b.readUIntBE(off, 3);
        if (b[off + 3] === H2FrameType.WINDOW_UPDATE && (b.readUInt32BE(off + 5) & 0x7fffffff) === id)
          window += b.readUInt32BE(off + 9);
        off += 9 + len;
      }
    }
    expect(sent).toBe(1000); // without the stream's padding credit: stalled at 255 frames, its window spent on padding
  });

  it('an empty DATA frame flood counts frames without a data octet, padded ones too', () => {
    const o = rawOrigin();
    const id = o.client.request(get(), true) as number;
    o.send(frame(H2FrameType.HEADERS, 0x4, id, o.enc.encode(status('200'))));
    const paddedEmpty = frame(H2FrameType.DATA, 0x8, id, Buffer.from([0]));
    for (let i = 0; i < 500 && !o.client.closed; i++) o.send(paddedEmpty);
    expect(o.client.closed).toBe(true);
    expect(goawayCode(o.out())).toBe(H2ErrorCode.ENHANCE_YOUR_CALM);
  });

  it("one field longer than the header list may be resets its stream only (it was the connection's COMPRESSION_ERROR)", () => {
    const o = rawOrigin({ maxHeaderListSize: 4096 });
    const a = o.client.request(get('/a'), true) as number;
    const b = o.client.request(get('/b'), true) as number;
    o.send(frame(H2FrameType.HEADERS, 0x5, a, o.enc.encode(status('200', [['x-big', 'v'.repeat(6000)]]))));
    expect(rstCodes(o.out())).toEqual([H2ErrorCode.PROTOCOL_ERROR]);
    o.send(frame(H2FrameType.HEADERS, 0x5, b, o.enc.encode(status('200', [['x-after', '1']]))));
    const head = o.events.find((e) => e.type === 'headers' && e.streamId === b) as { headers: HeaderList } | undefined;
    expect(head?.headers).toEqual([
      [':status', '200'],
      ['x-after', '1'],
    ]);
    expect(o.client.closed).toBe(false);
  });
});
