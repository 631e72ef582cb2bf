/**
 * HTTP/2 origins that misbehave: garbage instead of a connection preface,
 * a header list over our limit, a stream reset mid-body, a GOAWAY that
 * refuses in-flight streams. Each gives a typed error; nothing hangs.
 */
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, OriginlinkError } from '../../src/index.js';
import { makeCerts } from '../helpers/certs.js';
import { rawFrame } from '../helpers/h2-raw.js';
import { ourEnd } from '../helpers/client-sockets.js';

const certs = makeCerts();

describe('misbehaving HTTP/2 origins', () => {
  let garbage: tls.Server;
  let h2: http2.Http2SecureServer;
  let gPort = 0;
  let hPort = 0;
  let refusedOnce = false;
  beforeAll(async () => {
    // Negotiates h2, then answers the client preface with bytes that are not a SETTINGS frame.
    garbage = tls.createServer({ cert: certs.cert, key: certs.key, ALPNProtocols: ['h2'] }, (s) => {
      s.on('data', () => s.write(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\nnot http/2 at all')));
      s.on('error', () => {});
    });
    h2 = http2.createSecureServer({ cert: certs.cert, key: certs.key, settings: { maxConcurrentStreams: 50 } });
    h2.on('stream', (stream, headers) => {
      const path = headers[':path'];
      stream.on('error', () => {});
      if (path === '/huge-headers') {
        stream.respond({ ':status': 200, 'x-big': 'a'.repeat(200_000) });
        stream.end();
      } else if (path === '/reset-mid-body') {
        stream.respond({ ':status': 200 });
        stream.write(Buffer.alloc(1000, 98));
        // destroy() sends RST_STREAM without END_STREAM (close(code) would end the stream cleanly first).
        setTimeout(() => stream.destroy(new Error('origin failed mid-body')), 20);
      } else if (path === '/refuse-once' && !refusedOnce) {
        refusedOnce = true;
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      } else {
        stream.respond({ ':status': 200 });
        stream.end('ok');
      }
    });
    await new Promise<void>((r) => garbage.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
    gPort = (garbage.address() as AddressInfo).port;
    hPort = (h2.address() as AddressInfo).port;
  });
  afterAll(() => {
    garbage?.close();
    h2?.close();
  });

  it('GOAWAY that keeps the request, then silence: the headers timeout is reported as one (OL_HEADERS_TIMEOUT), not as the connection it ended', async () => {
    // Raw h2 over TLS: SETTINGS, an ACK of the client's, and for a request only GOAWAY(last = its stream, NO_ERROR).
    const frame = rawFrame;
    const silent = tls.createServer({ cert: certs.cert, key: certs.key, ALPNProtocols: ['h2'] }, (sock) => {
      sock.on('error', () => {});
      sock.write(frame(4, 0, 0));
      let buf = Buffer.alloc(0);
      let preface = false;
      sock.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (!preface) {
          if (buf.length < 24) return;
          buf = buf.subarray(24);
          preface = true;
        }
        while (buf.length >= 9) {
          const len = buf.readUIntBE(0, 3);
          if (buf.length < 9 + len) break;
          const type = buf[3] as number;
          const flags = buf[4] as number;
          const id = buf.readUInt32BE(5) & 0x7fffffff;
          buf = buf.subarray(9 + len);
          if (type === 4 && !(flags & 1)) sock.write(frame(4, 1, 0));
          if (type === 1) {
            const g = Buffer.alloc(8);
            g.writeUInt32BE(id, 0);
            sock.write(frame(7, 0, 0, g));
          }
        }
      });
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const agent = new Agent({ protocol: 'h2', tls: { ca: certs.ca }, maxRetries: 0, pool: { headersTimeoutMs: 400 } });
    try {
      const err = await agent
        .request({ url: `https://localhost:${(silent.address() as AddressInfo).port}/`, method: 'POST', body: 'x' })
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect((err as OriginlinkError).code).toBe('OL_HEADERS_TIMEOUT');
    } finally {
      agent.destroy();
      silent.close();
    }
  });

  it('garbage instead of the h2 preface → a typed error quickly, not a hang', async () => {
    const agent = new Agent({ protocol: 'h2', tls: { ca: certs.ca }, maxRetries: 0, pool: { headersTimeoutMs: 5000 } });
    const t0 = Date.now();
    const err = await agent.request({ url: `https://localhost:${gPort}/` }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OriginlinkError);
    expect(Date.now() - t0).toBeLessThan(4000);
    agent.destroy();
  });

  it('a response header list over maxHeaderBytes → typed error; the next request works', async () => {
    const agent = new Agent({ protocol: 'h2', tls: { ca: certs.ca }, pool: { maxHeaderBytes: 16_384 } });
    const err = await agent.request({ url: `https://localhost:${hPort}/huge-headers` }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OriginlinkError);
    const ok = await agent.request({ url: `https://localhost:${hPort}/ok` });
    expect(await ok.text()).toBe('ok');
    await agent.close();
  });

  it('a stream reset mid-body errors the body with OL_STREAM_RESET; the connection keeps serving', async () => {
    const agent = new Agent({ protocol: 'h2', tls: { ca: certs.ca } });
    const res = await agent.request({ url: `https://localhost:${hPort}/reset-mid-body` });
    const err = await res.bytes().then(
      () => null,
      (e: unknown) => e,
    );
    expect((err as OriginlinkError).code).toBe('OL_STREAM_RESET');
    expect((err as OriginlinkError).facts?.responseStarted).toBe(true);
    const ok = await agent.request({ url: `https://localhost:${hPort}/ok` });
    expect(await ok.text()).toBe('ok');
    expect(ok.connectionId).toBe(res.connectionId);
    await agent.close();
  });

  it('REFUSED_STREAM is retried for any method (the origin did not process it, RFC 9113 §8.7)', async () => {
    const agent = new Agent({ protocol: 'h2', tls: { ca: certs.ca } });
    const res = await agent.request({ url: `https://localhost:${hPort}/refuse-once`, method: 'POST', body: 'x' });
    expect(await res.text()).toBe('ok');
    expect(res.attempts).toBe(2);
    await agent.close();
  });

  it("body bytes that arrive with the HEADERS are never dropped (regression: node emits 'response' a tick after DATA)", async () => {
    // The origin answers at once, so HEADERS and DATA share a read; bodies of 1 byte to 20 KiB.
    const fast = http2.createSecureServer({ cert: certs.cert, key: certs.key });
    fast.on('stream', (stream, headers) => {
      const n = Number(new URL(`https://x${headers[':path']}`).searchParams.get('n'));
      stream.on('error', () => {});
      stream.respond({ ':status': 200 });
      stream.end(Buffer.alloc(n, 120));
    });
    await new Promise<void>((r) => fast.listen(0, '127.0.0.1', r));
    const port = (fast.address() as AddressInfo).port;
    const agent = new Agent({ protocol: 'h2', tls: { ca: certs.ca }, maxRetries: 0 });
    const sizes = Array.from({ length: 600 }, (_, i) => [1, 7, 100, 1000, 16_384, 20_000][i % 6] as number);
    const got = await Promise.all(
      sizes.map(
        async (n) => (await (await agent.request({ url: `https://localhost:${port}/?n=${n}` })).bytes()).length,
      ),
    );
    expect(got).toEqual(sizes);
    await agent.close();
    fast.close();
  });

  it('a plain TCP server that never speaks TLS → OL_CONNECT_TIMEOUT within connectTimeoutMs', async () => {
    const silent = net.createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const agent = new Agent({ tls: { ca: certs.ca }, maxRetries: 0, pool: { connectTimeoutMs: 300 } });
    const err = await agent.request({ url: `https://localhost:${(silent.address() as AddressInfo).port}/` }).then(
      () => null,
      (e: unknown) => e,
    );
    expect((err as OriginlinkError).code).toBe('OL_CONNECT_TIMEOUT');
    agent.destroy();
    silent.close();
  });

  it('an origin that reads none of what we send is not read either while more than 4 MiB of ours waits (our memory per connection stays bounded)', async () => {
    // Raw h2 with prior knowledge: windows as large as they go, then it stops reading; its PINGs keep coming.
    const frame = rawFrame;
    let originSock: net.Socket | null = null;
    const sink = net.createServer((sock) => {
      originSock = sock;
      sock.on('error', () => {});
      const big = Buffer.alloc(6);
      big.writeUInt16BE(0x4, 0);
      big.writeUInt32BE(0x7fffffff, 2); // INITIAL_WINDOW_SIZE
      const inc = Buffer.alloc(4);
      inc.writeUInt32BE(0x7fffffff - 65_535);
      sock.write(Buffer.concat([frame(0x4, 0, 0, big), frame(0x8, 0, 0, inc), frame(0x4, 0x1, 0)]));
      sock.once('data', () => sock.pause()); // the preface and the first frames, then nothing more
    });
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
    // tfo off: a plain net.connect, which test/helpers/client-sockets.ts sees (a TFO socket is made from its fd).
    const agent = new Agent({
      protocol: 'h2',
      maxRetries: 0,
      tfo: false,
      pool: { headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000 },
    });
    try {
      // More than the kernel's socket buffers on loopback take (several MiB each way), so the rest waits in ours.
      const upload = agent.request({
        url: `http://127.0.0.1:${(sink.address() as AddressInfo).port}/up`,
        method: 'POST',
        body: Buffer.alloc(48 * 1024 * 1024, 1),
      });
      upload.catch(() => {});
      const ours = async (): Promise<net.Socket> => {
        for (let i = 0; i < 300; i++) {
          const o = originSock as net.Socket | null;
          const found = o && ourEnd(o);
          if (found && found.writableLength > 4 * 1024 * 1024) return found;
          await new Promise((r) => setTimeout(r, 10));
        }
        throw new Error('the upload never filled our side');
      };
      const mine = await ours();
      const ping = frame(0x6, 0, 0, Buffer.alloc(8, 7));
      (originSock as unknown as net.Socket).write(ping); // a read: our side sees its output waiting, and stops reading
      await new Promise((r) => setTimeout(r, 100));
      expect(mine.isPaused()).toBe(true);
      const readBefore = mine.bytesRead;
      for (let i = 0; i < 20; i++) (originSock as unknown as net.Socket).write(ping);
      await new Promise((r) => setTimeout(r, 200));
      expect(mine.bytesRead).toBe(readBefore); // nothing of the origin's taken (its 20 PINGs would make 20 answers)
      (originSock as unknown as net.Socket).resume(); // the origin reads again: our output drains, and we read again
      for (let i = 0; i < 300 && mine.isPaused(); i++) await new Promise((r) => setTimeout(r, 10));
      expect(mine.isPaused()).toBe(false);
    } finally {
      await agent.destroy();
      sink.close();
    }
  });

  it('an upload to an origin that grants all the window there is and reads nothing is pulled from its source only as the socket takes it', async () => {
    const frame = rawFrame;
    const socks: net.Socket[] = [];
    const sink = net.createServer((sock) => {
      socks.push(sock);
      sock.on('error', () => {});
      const big = Buffer.alloc(6);
      big.writeUInt16BE(0x4, 0);
      big.writeUInt32BE(0x7fffffff, 2);
      const inc = Buffer.alloc(4);
      inc.writeUInt32BE(0x7fffffff - 65_535);
      sock.write(Buffer.concat([frame(0x4, 0, 0, big), frame(0x8, 0, 0, inc), frame(0x4, 0x1, 0)]));
      sock.once('data', () => sock.pause());
    });
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
    const agent = new Agent({ protocol: 'h2', maxRetries: 0, pool: { headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000 } });
    let made = 0;
    async function* source(): AsyncGenerator<Uint8Array> {
      while (made < 64 << 20) {
        made += 65536;
        yield Buffer.alloc(65536, 2);
      }
    }
    try {
      const upload = agent.request({
        url: `http://127.0.0.1:${(sink.address() as AddressInfo).port}/up`,
        method: 'POST',
        body: source(),
      });
      upload.catch(() => {});
      let last = -1;
      for (let i = 0; i < 30 && made !== last; i++) {
        last = made;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(made).toBeGreaterThan(1 << 20);
      expect(made).toBeLessThan(16 << 20); // was all 64 MiB: credit alone let the whole upload into our memory
    } finally {
      await agent.destroy();
      for (const s of socks) s.destroy();
      sink.close();
    }
  });
});
