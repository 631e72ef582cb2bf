/**
 * `await agent.close()` returns (docs/module.md: the line after it always runs), found otherwise by a probe of the
 * module's API (2026-11-29):
 * - an HTTP/1.1 response whose body nobody read held close() for ever: the reader's backpressure kept the body
 *   timer waiting. Once the pool closes, a reader that takes nothing for a further bodyTimeoutMs is given up
 *   (OL_POOL_CLOSED), on every protocol;
 * - a dial to an origin that never answers held close() for its whole connect timeout, although the request that
 *   wanted it had already failed OL_POOL_CLOSED: close() stops the dials.
 */
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, ErrorCode, OriginlinkError } from '../../src/index.js';

let big: http.Server;
let silent: net.Server;
const held: net.Socket[] = [];

beforeAll(async () => {
  big = http.createServer((_req, res) => res.end(Buffer.alloc(8 * 1024 * 1024, 0x61)));
  silent = net.createServer((s) => {
    held.push(s);
  });
  await Promise.all([
    new Promise<void>((r) => big.listen(0, '127.0.0.1', r)),
    new Promise<void>((r) => silent.listen(0, '127.0.0.1', r)),
  ]);
});

afterAll(() => {
  for (const s of held) s.destroy();
  big.closeAllConnections();
  big.close();
  silent.close();
});

const port = (s: net.Server): number => (s.address() as net.AddressInfo).port;

describe('agent.close() returns', () => {
  it('with a response body nobody reads: after the pool closes, bodyTimeoutMs more, then OL_POOL_CLOSED', async () => {
    const agent = new Agent({ protocol: 'h1', pool: { bodyTimeoutMs: 200 } });
    const res = await agent.request({ url: `http://127.0.0.1:${port(big)}/` });
    expect(res.status).toBe(200);
    await agent.close(); // before: never returned (8 MB do not fit the buffers: the origin waits on our reader)
    const e = await res.bytes().then(
      () => null,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(OriginlinkError);
    expect((e as OriginlinkError).code).toBe(ErrorCode.POOL_CLOSED);
  }, 10_000);

  it('a body read while the pool closes is read whole', async () => {
    const agent = new Agent({ protocol: 'h1', pool: { bodyTimeoutMs: 200 } });
    const res = await agent.request({ url: `http://127.0.0.1:${port(big)}/` });
    const [bytes] = await Promise.all([res.bytes(), agent.close()]);
    expect(bytes.length).toBe(8 * 1024 * 1024);
  }, 10_000);

  it('with a dial in flight to an origin that never answers: the dial is stopped, not waited out', async () => {
    const agent = new Agent({ protocol: 'h1', pool: { connectTimeoutMs: 20_000 } });
    const req = agent.request({ url: `https://127.0.0.1:${port(silent)}/` }).then(
      () => null,
      (err: unknown) => err,
    );
    await new Promise((r) => setTimeout(r, 200));
    const t0 = performance.now();
    await agent.close();
    // Well inside the 20 s connect timeout it waited out before.
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect(((await req) as OriginlinkError).code).toBe(ErrorCode.POOL_CLOSED);
  }, 15_000);
});
