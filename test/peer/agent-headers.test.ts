/**
 * What an Agent user's header list becomes on the wire (RFC 9110 §7.6.1):
 * connection-specific fields — the fixed set, the names Connection lists,
 * `proxy-*` — do not leave; `te: trailers` may; names go lower-case; the rest
 * leaves as given, in order. Origins: a node:http server over h1 (its raw
 * header list) and a node:http2 server over h2c.
 */
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';

let h1: http.Server;
let h2: http2.Http2Server;
const seen: Array<string[]> = [];

beforeAll(async () => {
  h1 = http.createServer((req, res) => {
    seen.push(req.rawHeaders);
    if (req.url === '/kept') res.setHeader('x-kept', 'a');
    res.end('ok');
  });
  h2 = http2.createServer((req, res) => {
    seen.push(req.rawHeaders);
    if (req.url === '/kept') res.setHeader('x-kept', 'a');
    res.end('ok');
  });
  await Promise.all([
    new Promise<void>((r) => h1.listen(0, '127.0.0.1', r)),
    new Promise<void>((r) => h2.listen(0, '127.0.0.1', r)),
  ]);
});
afterAll(async () => {
  await Promise.all([new Promise((r) => h1.close(r)), new Promise((r) => h2.close(r))]);
});

/** The fields a request arrived with, lower-case names, without the ones each protocol adds on its own. */
function fields(raw: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!.toLowerCase();
    if (n.startsWith(':') || n === 'host' || n === 'connection' || n === 'content-length') continue;
    out.push([n, raw[i + 1]!]);
  }
  return out;
}

describe.each([
  ['h1', () => `http://127.0.0.1:${(h1.address() as AddressInfo).port}`],
  ['h2', () => `http://127.0.0.1:${(h2.address() as AddressInfo).port}`],
] as const)('Agent over %s', (protocol, origin) => {
  it('drops connection-specific fields, keeps te: trailers and the rest in order (list and record forms)', async () => {
    const agent = new Agent({ protocol });
    try {
      seen.length = 0;
      const hopByHop: Array<[string, string]> = [
        ['X-First', 'a'],
        ['Connection', 'x-private, keep-alive'],
        ['X-Private', 'secret'],
        ['Keep-Alive', 'timeout=5'],
        ['Proxy-Authorization', 'Basic eDp5'],
        ['Upgrade', 'websocket'],
        ['TE', 'trailers'],
        ['Transfer-Encoding', 'chunked'],
        ['x-last', 'z'],
      ];
      const clean: Array<[string, string]> = [
        ['x-one', '1'],
        ['accept', '*/*'],
        ['x-two', '2'],
      ];
      for (const headers of [hopByHop, clean, Object.fromEntries(hopByHop)]) {
        const r = await agent.request({ origin: origin(), path: '/', headers });
        expect(r.status).toBe(200);
        await r.bytes();
      }
      expect(seen.map(fields)).toEqual([
        [
          ['x-first', 'a'],
          ['te', 'trailers'],
          ['x-last', 'z'],
        ],
        [
          ['x-one', '1'],
          ['accept', '*/*'],
          ['x-two', '2'],
        ],
        [
          ['x-first', 'a'],
          ['te', 'trailers'],
          ['x-last', 'z'],
        ],
      ]);
    } finally {
      await agent.close();
    }
  });

  it("a response's fields are its own: writing into them does not reach the next response on the connection", async () => {
    // The same head again on one connection is read from what the last one made (h1's FieldMemory; HPACK's kept
    // blocks, codec/repeats.ts): what the application gets must still be a copy.
    const agent = new Agent({ protocol });
    try {
      const heads: Array<Array<readonly [string, string]>> = [];
      for (let i = 0; i < 3; i++) {
        const r = await agent.request({ origin: origin(), path: '/kept' });
        await r.bytes();
        heads.push(r.headers.filter(([n]) => n === 'x-kept').map(([n, v]) => [n, v] as const));
        for (const f of r.headers) (f as [string, string])[1] = 'changed';
        r.headers.length = 0;
      }
      expect(heads).toEqual([[['x-kept', 'a']], [['x-kept', 'a']], [['x-kept', 'a']]]);
      expect(agent.stats().some((s) => s.connectionsOpened === 1)).toBe(true);
    } finally {
      await agent.close();
    }
  });
});
