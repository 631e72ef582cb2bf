/**
 * A client and a server H3Connection paired in memory over a fake
 * QuicStreamTransport that delivers bytes in random chunking (often one
 * byte at a time) and interleaves streams at random.
 */
import { describe, expect, it } from 'vitest';
import { H3ErrorCode, QpackErrorCode } from '../../src/codec/errors.js';
import { encodeFrame, encodeGoaway, FrameType } from '../../src/codec/h3frame.js';
import { QpackEncoder } from '../../src/codec/qpack/encoder.js';
import { OriginlinkError } from '../../src/errors.js';
import { H3Connection, type H3Event } from '../../src/h3/connection.js';
import type { HeaderList } from '../../src/http/types.js';
import type { QuicStreamHandler, QuicStreamTransport } from '../../src/h3/quic-seam.js';

type Item =
  | { kind: 'data'; id: number; data: Uint8Array; fin: boolean }
  | { kind: 'reset'; id: number; code: number }
  | { kind: 'stop'; id: number; code: number };

class PeerClosed extends Error {
  constructor(
    readonly wireCode: number,
    reason: string,
  ) {
    super(`peer closed with 0x${wireCode.toString(16)}: ${reason}`);
  }
}

class Net {
  readonly queues = new Map<string, { to: FakeQuic; items: Item[] }>();
  #seed: number;
  constructor(
    seed: number,
    readonly maxChunk: number,
  ) {
    this.#seed = seed;
  }
  rand(n: number): number {
    this.#seed = (Math.imul(this.#seed, 1103515245) + 12345) & 0x7fffffff;
    return this.#seed % n;
  }
  enqueue(to: FakeQuic, item: Item): void {
    const key = `${to.isClient ? 'c' : 's'}:${item.id}`;
    let q = this.queues.get(key);
    if (!q) this.queues.set(key, (q = { to, items: [] }));
    q.items.push(item);
  }
  /** Deliver until idle; returns the number of deliveries. */
  run(maxSteps = 2_000_000): number {
    let steps = 0;
    for (;;) {
      const keys = [...this.queues.keys()].filter((k) => this.queues.get(k)!.items.length > 0);
      if (keys.length === 0) return steps;
      if (++steps > maxSteps) throw new Error('network did not go idle');
      const q = this.queues.get(keys[this.rand(keys.length)]!)!;
      const head = q.items[0]!;
      if (q.to.closed) {
        q.items.length = 0;
        continue;
      }
      if (head.kind !== 'data') {
        q.items.shift();
        if (head.kind === 'reset') q.to.deliverReset(head.id, head.code);
        else q.to.handler.onStopSending(head.id, head.code);
        continue;
      }
      const r = this.rand(10);
      const size = r < 4 ? 1 : 1 + this.rand(this.maxChunk);
      const n = Math.min(size, head.data.length);
      const chunk = head.data.slice(0, n);
      head.data = head.data.subarray(n);
      const last = head.data.length === 0;
      if (last) q.items.shift();
      q.to.deliverData(head.id, chunk, last && head.fin);
    }
  }
}

class FakeQuic implements QuicStreamTransport {
  peer!: FakeQuic;
  handler!: QuicStreamHandler;
  closed = false;
  closeCode: number | null = null;
  #nextBidi: number;
  #nextUni: number;
  readonly active = new Map<number, { sent: boolean; recv: boolean }>();
  /** Size of the first write on each bidi stream (the HEADERS frame). */
  readonly firstWrite = new Map<number, number>();
  constructor(
    readonly isClient: boolean,
    readonly net: Net,
    public bidiLimit: number,
  ) {
    this.#nextBidi = isClient ? 0 : 1;
    this.#nextUni = isClient ? 2 : 3;
  }
  openBidi(): number | null {
    if (this.closed || this.active.size >= this.bidiLimit) return null;
    const id = this.#nextBidi;
    this.#nextBidi += 4;
    this.active.set(id, { sent: false, recv: false });
    return id;
  }
  openUni(): number | null {
    if (this.closed) return null;
    const id = this.#nextUni;
    this.#nextUni += 4;
    return id;
  }
  send(id: number, data: Uint8Array, fin: boolean): void {
    if (this.closed) return;
    if ((id & 2) === 0 && !this.firstWrite.has(id)) this.firstWrite.set(id, data.length);
    this.net.enqueue(this.peer, { kind: 'data', id, data: data.slice(), fin });
    if (fin) this.#mark(id, 'sent');
  }
  resetStream(id: number, code: number): void {
    if (this.closed) return;
    this.net.enqueue(this.peer, { kind: 'reset', id, code });
    this.#mark(id, 'sent');
  }
  stopSending(id: number, code: number): void {
    if (this.closed) return;
    this.net.enqueue(this.peer, { kind: 'stop', id, code });
  }
  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeCode = code;
    this.handler.onClosed(null);
    if (!this.peer.closed) {
      this.peer.closed = true;
      this.peer.handler.onClosed(new PeerClosed(code, reason));
    }
  }
  deliverData(id: number, data: Uint8Array, fin: boolean): void {
    this.handler.onStreamData(id, data, fin);
    if (fin) this.#mark(id, 'recv');
  }
  deliverReset(id: number, code: number): void {
    this.handler.onStreamReset(id, code);
    this.#mark(id, 'recv');
    // A reset by the peer also ends its interest: QUIC lets the peer's side close.
    this.peer.#mark(id, 'sent-by-peer');
  }
  /** Track completion of our own bidi streams; when both sides end, the peer grants credit. */
  #mark(id: number, what: 'sent' | 'recv' | 'sent-by-peer'): void {
    const a = this.active.get(id);
    if (!a) return;
    if (what === 'sent') a.sent = true;
    if (what === 'recv') a.recv = true;
    if (what === 'sent-by-peer') a.recv = true;
    if (a.sent && a.recv) {
      this.active.delete(id);
      this.handler.onStreamsAvailable();
    }
  }
}

const OPTS = { maxFieldSectionSize: 16384, qpackMaxTableCapacity: 4096, qpackBlockedStreams: 16, maxFrameSize: 65536 };

interface Received {
  heads: HeaderList[];
  body: Uint8Array[];
  trailers: HeaderList | null;
  ended: boolean;
  reset: number | null;
}

function pair(
  seed: number,
  maxChunk: number,
  o: { bidiLimit?: number; connectClient?: boolean; connectServer?: boolean } = {},
) {
  const bidiLimit = o.bidiLimit ?? 1000;
  const net = new Net(seed, maxChunk);
  const ct = new FakeQuic(true, net, bidiLimit);
  const st = new FakeQuic(false, net, bidiLimit);
  ct.peer = st;
  st.peer = ct;
  const client = new H3Connection(ct, { role: 'client', ...OPTS });
  const server = new H3Connection(st, { role: 'server', ...OPTS });
  ct.handler = client;
  st.handler = server;
  const cEvents: H3Event[] = [];
  const sEvents: H3Event[] = [];
  client.on((e) => cEvents.push(e));
  server.on((e) => sEvents.push(e));
  const track = (events: H3Event[]) => {
    const by = new Map<number, Received>();
    const get = (id: number): Received => {
      let r = by.get(id);
      if (!r) by.set(id, (r = { heads: [], body: [], trailers: null, ended: false, reset: null }));
      return r;
    };
    return {
      by,
      handle(e: H3Event): void {
        if (e.type === 'headers') {
          get(e.streamId).heads.push(e.headers);
          if (e.end) get(e.streamId).ended = true;
        } else if (e.type === 'data') {
          get(e.streamId).body.push(e.data.slice());
          if (e.end) get(e.streamId).ended = true;
        } else if (e.type === 'trailers') {
          get(e.streamId).trailers = e.headers;
          get(e.streamId).ended = true;
        } else if (e.type === 'reset') get(e.streamId).reset = e.code;
      },
    };
  };
  const cRecv = track(cEvents);
  const sRecv = track(sEvents);
  client.on(cRecv.handle);
  server.on(sRecv.handle);
  if (o.connectClient ?? true) client.onConnected(false);
  if (o.connectServer ?? true) server.onConnected(false);
  return { net, ct, st, client, server, cEvents, sEvents, cRecv: cRecv.by, sRecv: sRecv.by };
}

const concat = (parts: Uint8Array[]): Buffer => Buffer.concat(parts);
const req = (path: string, method = 'GET', extra: HeaderList = []): HeaderList => [
  [':method', method],
  [':scheme', 'https'],
  [':authority', 'origin.example'],
  [':path', path],
  ...extra,
];

/** Echo server: on a complete request, answer 200 with the body reversed and a trailer. */
function echoServer(p: ReturnType<typeof pair>): void {
  p.server.on((e) => {
    if (!('streamId' in e)) return;
    const r = p.sRecv.get(e.streamId);
    if (!r || !r.ended || e.type === 'reset') return;
    if ((e.type === 'data' && e.end) || (e.type === 'headers' && e.end) || e.type === 'trailers') {
      const body = concat(r.body);
      const path = r.heads[0]!.find(([k]) => k === ':path')![1];
      p.server.sendHeaders(
        e.streamId,
        [
          [':status', '103'],
          ['link', '</a.css>; rel=preload'],
        ],
        false,
      );
      p.server.sendHeaders(
        e.streamId,
        [
          [':status', '200'],
          ['content-length', String(body.length + path.length)],
          ['x-path', path],
        ],
        false,
      );
      p.server.sendData(e.streamId, Buffer.from(path), false);
      p.server.sendData(e.streamId, Uint8Array.from(body).reverse(), false);
      p.server.sendHeaders(e.streamId, [['x-trailer', `n=${body.length}`]], true);
    }
  });
}

describe('HTTP/3 client and server in memory', () => {
  for (const [seed, maxChunk] of [
    [1, 1],
    [2, 3],
    [3, 17],
    [4, 4096],
  ] as const) {
    it(`request/response with body, interim response and trailers (seed ${seed}, chunks up to ${maxChunk})`, () => {
      const p = pair(seed, maxChunk);
      echoServer(p);
      p.net.run();
      expect(p.cEvents.filter((e) => e.type === 'settings')).toHaveLength(1);
      expect(p.sEvents.filter((e) => e.type === 'settings')).toHaveLength(1);
      const body = Buffer.alloc(20_000, 0).map((_, i) => i % 251);
      const id = p.client.openRequest(req('/upload', 'POST', [['content-length', String(body.length)]]), false)!;
      expect(id).toBe(0);
      p.client.sendData(id, body.subarray(0, 7000), false);
      p.client.sendData(id, body.subarray(7000), false);
      p.client.sendHeaders(id, [['x-req-trailer', 'yes']], true);
      p.net.run();
      const s = p.sRecv.get(id)!;
      expect(s.heads[0]).toEqual(req('/upload', 'POST', [['content-length', '20000']]));
      expect(concat(s.body).equals(body)).toBe(true);
      expect(s.trailers).toEqual([['x-req-trailer', 'yes']]);
      const c = p.cRecv.get(id)!;
      expect(c.heads.map((h) => h[0])).toEqual([
        [':status', '103'],
        [':status', '200'],
      ]);
      expect(concat(c.body).equals(Buffer.concat([Buffer.from('/upload'), Buffer.from(body).reverse()]))).toBe(true);
      expect(c.trailers).toEqual([['x-trailer', 'n=20000']]);
      expect(c.reset).toBeNull();
      expect(p.client.closed).toBe(false);
      expect(p.server.activeStreams).toBe(0);
      expect(p.client.activeStreams).toBe(0);
    });
  }

  it('GET without a body: headers with end=true reach the server', () => {
    const p = pair(9, 5);
    echoServer(p);
    const id = p.client.openRequest(req('/nobody'), true)!;
    p.net.run();
    const hs = p.sEvents.find((e) => e.type === 'headers');
    expect(hs).toMatchObject({ type: 'headers', streamId: id, end: true });
    expect(p.cRecv.get(id)!.trailers).toEqual([['x-trailer', 'n=0']]);
  });

  it('100 concurrent requests all complete', () => {
    const p = pair(11, 64, { bidiLimit: 100 });
    echoServer(p);
    const ids: number[] = [];
    for (let i = 0; i < 100; i++) {
      const id = p.client.openRequest(req(`/r/${i}`, 'POST'), false);
      expect(id).not.toBeNull();
      ids.push(id!);
      p.client.sendData(id!, Buffer.from(`body-${i}`), true);
    }
    expect(p.client.openRequest(req('/overflow'), true)).toBeNull();
    p.net.run();
    for (let i = 0; i < 100; i++) {
      const c = p.cRecv.get(ids[i]!)!;
      expect(c.ended).toBe(true);
      expect(concat(c.body).toString()).toBe(`/r/${i}${Buffer.from(`body-${i}`).reverse().toString()}`);
      expect(c.heads[1]).toContainEqual(['x-path', `/r/${i}`]);
    }
    expect(p.client.activeStreams).toBe(0);
  });

  it('QPACK dynamic table: repeated fields shrink later HEADERS, in both directions', () => {
    const p = pair(21, 7);
    echoServer(p);
    p.net.run(); // SETTINGS exchanged: both encoders may use the peer's table
    const extra: HeaderList = [
      ['user-agent', 'originlink-test/1.0 (a fairly long product token)'],
      ['x-tenant', 'acme-corporation-eu-west'],
    ];
    const sizes: number[] = [];
    for (let i = 0; i < 5; i++) {
      const id = p.client.openRequest(req(`/q/${i}`, 'GET', extra), true)!;
      p.net.run();
      sizes.push(p.ct.firstWrite.get(id)!);
      expect(p.sRecv.get(id)!.heads[0]).toEqual(req(`/q/${i}`, 'GET', extra));
      expect(p.cRecv.get(id)!.ended).toBe(true);
    }
    // First request: literals (plus inserts on the encoder stream); later ones: dynamic references.
    expect(sizes.at(-1)!).toBeLessThan(sizes[0]! * 0.6);
    const cs = p.client.stats();
    expect(cs.requestsOpened).toBe(5);
    expect(cs.qpack.encoderTableCapacity).toBe(4096);
    expect(cs.qpack.encoderInsertCount).toBeGreaterThan(0);
    expect(cs.qpack.encoderKnownReceived).toBe(cs.qpack.encoderInsertCount);
    const ss = p.server.stats();
    expect(ss.requestsAccepted).toBe(5);
    expect(ss.qpack.decoderInsertCount).toBe(cs.qpack.encoderInsertCount);
    expect(ss.qpack.decoderTableSize).toBeGreaterThan(0);
    expect(p.client.closed || p.server.closed).toBe(false);
  });

  it('stream credit exhaustion returns null, then streams-available lets the caller retry', () => {
    const p = pair(12, 8, { bidiLimit: 2 });
    echoServer(p);
    const a = p.client.openRequest(req('/a'), true);
    const b = p.client.openRequest(req('/b'), true);
    expect(a).not.toBeNull();
    expect(b).not.toBeNull();
    expect(p.client.openRequest(req('/c'), true)).toBeNull();
    let retried: number | null = null;
    p.client.on((e) => {
      if (e.type === 'streams-available' && retried === null) retried = p.client.openRequest(req('/c'), true);
    });
    p.net.run();
    expect(p.cEvents.some((e) => e.type === 'streams-available')).toBe(true);
    expect(retried).not.toBeNull();
    expect(p.cRecv.get(retried!)!.ended).toBe(true);
  });

  it('GOAWAY: processed requests finish, unprocessed ones are rejected, new ones refused', () => {
    const p = pair(13, 16);
    const first = p.client.openRequest(req('/first'), true)!;
    p.net.run();
    // The server has accepted stream 0 only; it now shuts down gracefully.
    p.server.goaway();
    const second = p.client.openRequest(req('/second'), true)!;
    p.net.run();
    expect(p.cEvents).toContainEqual({ type: 'goaway', id: 4 });
    // Stream 4 is at/above the GOAWAY id: the client reports it as rejected (retry-safe).
    expect(p.cEvents).toContainEqual({ type: 'reset', streamId: second, code: H3ErrorCode.REQUEST_REJECTED });
    expect(() => p.client.openRequest(req('/third'), true)).toThrow(/GOAWAY/);
    // The accepted request still gets its answer.
    p.server.sendHeaders(first, [[':status', '204']], true);
    p.net.run();
    expect(p.cRecv.get(first)!.heads[0]).toEqual([[':status', '204']]);
    expect(p.cRecv.get(first)!.ended).toBe(true);
    // The server never surfaced the refused request.
    expect(p.sEvents.filter((e) => e.type === 'headers').map((e) => (e as { streamId: number }).streamId)).toEqual([
      first,
    ]);
    p.client.close(H3ErrorCode.NO_ERROR, 'done');
    expect(p.cEvents.at(-1)).toEqual({ type: 'closed', error: null });
    expect(p.sEvents.at(-1)).toMatchObject({ type: 'closed' });
  });

  it('client GOAWAY carries push id 0; peer reset surfaces as a reset event', () => {
    const p = pair(14, 16);
    const id = p.client.openRequest(req('/x'), false)!;
    p.net.run();
    p.client.goaway();
    p.client.resetStream(id, H3ErrorCode.REQUEST_CANCELLED);
    p.net.run();
    expect(p.sEvents).toContainEqual({ type: 'goaway', id: 0 });
    expect(p.sEvents).toContainEqual({ type: 'reset', streamId: id, code: H3ErrorCode.REQUEST_CANCELLED });
    expect(p.server.closed).toBe(false);
  });

  it('a malformed response is a stream error; the connection survives', () => {
    const p = pair(15, 16);
    const bad = p.client.openRequest(req('/bad'), true)!;
    const good = p.client.openRequest(req('/good'), true)!;
    p.net.run();
    // content-length promises 10 bytes, 3 arrive.
    p.server.sendHeaders(
      bad,
      [
        [':status', '200'],
        ['content-length', '10'],
      ],
      false,
    );
    p.server.sendData(bad, Buffer.from('abc'), true);
    p.server.sendHeaders(
      good,
      [
        [':status', '200'],
        ['content-length', '2'],
      ],
      false,
    );
    p.server.sendData(good, Buffer.from('ok'), true);
    p.net.run();
    expect(p.cRecv.get(bad)!.reset).toBe(H3ErrorCode.MESSAGE_ERROR);
    expect(concat(p.cRecv.get(good)!.body).toString()).toBe('ok');
    expect(p.client.closed).toBe(false);
    expect(p.server.closed).toBe(false);
  });

  it('HEAD responses may announce a length without a body', () => {
    const p = pair(16, 16);
    const id = p.client.openRequest(req('/h', 'HEAD'), true)!;
    p.net.run();
    p.server.sendHeaders(
      id,
      [
        [':status', '200'],
        ['content-length', '1234'],
      ],
      true,
    );
    p.net.run();
    expect(p.cRecv.get(id)!.ended).toBe(true);
    expect(p.cRecv.get(id)!.reset).toBeNull();
  });

  it('refuses to send malformed headers or headers over the peer limit', () => {
    const p = pair(17, 16);
    p.net.run();
    expect(() =>
      p.client.openRequest(
        [
          [':method', 'GET'],
          ['Host', 'x'],
        ],
        true,
      ),
    ).toThrow(/malformed/);
    expect(() => p.client.openRequest(req('/', 'GET', [['connection', 'close']]), true)).toThrow(/connection-specific/);
    expect(() => p.client.openRequest(req('/', 'GET', [['x-big', 'a'.repeat(20000)]]), true)).toThrow(
      /exceeds the peer's limit/,
    );
  });
});

describe('protocol violations over the fake network close both ends', () => {
  const closedWith = (events: H3Event[]): number | undefined => {
    const c = events.find((e) => e.type === 'closed') as { error: OriginlinkError | null } | undefined;
    return c?.error?.details['wireCode'] as number | undefined;
  };
  /** Raw bytes from the client's QUIC endpoint, bypassing its H3Connection. */
  const inject = (p: ReturnType<typeof pair>, bytes: Uint8Array, fin: boolean): number => {
    const id = p.ct.openBidi()!;
    p.ct.send(id, bytes, fin);
    return id;
  };
  const fieldSection = new QpackEncoder().encode(req('/'));

  for (const seed of [31, 32]) {
    it(`DATA before HEADERS -> H3_FRAME_UNEXPECTED (seed ${seed})`, () => {
      const p = pair(seed, 3);
      p.net.run();
      inject(p, encodeFrame(FrameType.DATA, Buffer.from('x')), false);
      p.net.run();
      expect(p.st.closeCode).toBe(H3ErrorCode.FRAME_UNEXPECTED);
      expect(closedWith(p.sEvents)).toBe(H3ErrorCode.FRAME_UNEXPECTED);
      // The client learns of the close from its QUIC layer.
      expect(p.cEvents.at(-1)).toMatchObject({ type: 'closed' });
      expect(p.client.closed).toBe(true);
    });

    it(`truncated HEADERS at stream end -> H3_FRAME_ERROR (seed ${seed})`, () => {
      const p = pair(seed, 3);
      p.net.run();
      const frame = encodeFrame(FrameType.HEADERS, fieldSection);
      inject(p, frame.subarray(0, frame.length - 2), true);
      p.net.run();
      expect(p.st.closeCode).toBe(H3ErrorCode.FRAME_ERROR);
      expect(p.client.closed).toBe(true);
    });

    it(`unexpected frame on the control stream -> H3_FRAME_UNEXPECTED (seed ${seed})`, () => {
      const p = pair(seed, 3, { connectClient: false });
      const ctrl = p.ct.openUni()!;
      p.ct.send(ctrl, Uint8Array.from([0x00, 0x04, 0x00, ...encodeFrame(FrameType.HEADERS, fieldSection)]), false);
      p.net.run();
      expect(p.st.closeCode).toBe(H3ErrorCode.FRAME_UNEXPECTED);
    });

    it(`control stream without SETTINGS first -> H3_MISSING_SETTINGS (seed ${seed})`, () => {
      const p = pair(seed, 2, { connectClient: false });
      const ctrl = p.ct.openUni()!;
      p.ct.send(ctrl, Uint8Array.from([0x00, ...encodeGoaway(0)]), false);
      p.net.run();
      expect(p.st.closeCode).toBe(H3ErrorCode.MISSING_SETTINGS);
      expect(closedWith(p.sEvents)).toBe(H3ErrorCode.MISSING_SETTINGS);
    });

    it(`QPACK reference outside the table -> QPACK_DECOMPRESSION_FAILED (seed ${seed})`, () => {
      const p = pair(seed, 3);
      p.net.run();
      // Required Insert Count 0, then an indexed dynamic reference (0x80): nothing to refer to.
      inject(p, encodeFrame(FrameType.HEADERS, Uint8Array.of(0x00, 0x00, 0x80)), true);
      p.net.run();
      expect(p.st.closeCode).toBe(QpackErrorCode.DECOMPRESSION_FAILED);
      const err = (p.sEvents.find((e) => e.type === 'closed') as { error: OriginlinkError }).error;
      expect(err.code).toBe('OL_QPACK_ERROR');
      expect(p.client.closed).toBe(true);
    });
  }

  it('peer unidirectional streams are accepted before our handshake completes', () => {
    const p = pair(40, 5, { connectServer: false });
    p.net.run();
    // The server's QUIC layer has not reported the handshake yet; the client's SETTINGS still count.
    expect(p.sEvents).toEqual([{ type: 'settings', settings: expect.any(Map) }]);
    p.server.onConnected(false);
    p.net.run();
    expect(p.cEvents.some((e) => e.type === 'settings')).toBe(true);
    expect(p.server.closed || p.client.closed).toBe(false);
  });
});
