/**
 * A request the Agent cannot send as given is refused before anything reaches the origin (OL_INVALID_ARGUMENT naming
 * the field), on every protocol. Found by a probe of the module's API (2026-11-29):
 * - a path or authority with CR LF became a field of its own on HTTP/1.1 (request smuggling);
 * - a Content-Length shorter than the body put the rest on the wire as the next request, whose answer went to an
 *   unrelated request of the pool; a longer one hung until headersTimeoutMs, blamed on the origin;
 * - a header value that was not text failed inside HTTP/2's HPACK encoder after earlier fields had entered its
 *   dynamic table, and the origin closed the shared connection on every stream (a compression error);
 * - a body of another type opened a connection, sent a chunked head and tore it down;
 * - `request(null)`, `new Agent(null)`, a non-signal `signal` threw TypeErrors or failed as network errors.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, ErrorCode, OriginlinkError } from '../../src/index.js';
import { startH2cOnly, type Peer } from '../helpers/h3-peers.js';

let origin: http.Server;
let base: string;
let connections = 0;
const arrived: string[] = [];
const heads: http.IncomingHttpHeaders[] = [];
let h2c: Peer;

beforeAll(async () => {
  origin = http.createServer((req, res) => {
    arrived.push(`${req.method} ${req.url}`);
    heads.push(req.headers);
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  origin.on('connection', () => {
    connections++;
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
  h2c = await startH2cOnly();
}, 30_000);

afterAll(async () => {
  origin.closeAllConnections();
  origin.close();
  await h2c?.stop();
});

const refusal = async (p: Promise<unknown>): Promise<{ code: string; field: unknown; message: string }> => {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(OriginlinkError);
  const oe = e as OriginlinkError;
  return { code: oe.code, field: oe.details['field'], message: oe.message };
};

describe('requests refused before anything is sent', () => {
  it('HTTP/1.1: injection by path, authority, method; bad headers, bodies and lengths; nothing reaches the origin', async () => {
    const agent = new Agent({ protocol: 'h1' });
    try {
      const bad: Array<[Record<string, unknown>, string]> = [
        [{ origin: base, path: '/a\r\nX: y' }, 'path'],
        [{ origin: base, path: '/a b' }, 'path'],
        [{ url: `${base}/`, authority: 'a\r\nX: y' }, 'authority'],
        [{ url: `${base}/`, method: 42 }, 'method'],
        [{ url: `${base}/`, method: 'GET /x HTTP/1.1\r\n' }, 'method'],
        [{ url: `${base}/`, method: 'POST', body: 123 }, 'body'],
        [{ url: `${base}/`, method: 'POST', body: { a: 1 } }, 'body'],
        [{ url: `${base}/`, headers: 'x-a: 1' }, 'headers'],
        [{ url: `${base}/`, headers: { 'x-a': { a: 1 } } }, 'headers.x-a'],
        [{ url: `${base}/`, headers: { 'x-a': null } }, 'headers.x-a'],
        [{ url: `${base}/`, headers: [['x-a']] }, 'headers'],
        [{ url: `${base}/`, headers: { 'x-a': 'v\r\nx-b: w' } }, 'headers.x-a'],
        [{ url: `${base}/`, headers: { 'bad name': 'v' } }, 'headers'],
        [
          {
            url: `${base}/`,
            method: 'POST',
            headers: { 'content-length': '4' },
            body: 'abcdGET /admin HTTP/1.1\r\nhost: internal\r\n\r\n',
          },
          'headers.content-length',
        ],
        [
          { url: `${base}/`, method: 'POST', headers: { 'content-length': '99' }, body: 'abc' },
          'headers.content-length',
        ],
        [
          { url: `${base}/`, method: 'POST', headers: { 'content-length': 'abc' }, body: 'abc' },
          'headers.content-length',
        ],
        [{ url: `${base}/`, headers: { 'content-length': '5' } }, 'headers.content-length'],
        [{ url: `${base}/`, responseBufferBytes: -1 }, 'responseBufferBytes'],
        [{ url: `${base}/`, signal: 'nope' }, 'signal'],
      ];
      for (const [req, field] of bad) {
        const r = await refusal(agent.request(req as never));
        expect([r.code, r.field], `${JSON.stringify(req)}: ${r.message}`).toEqual([ErrorCode.INVALID_ARGUMENT, field]);
      }
      expect(await refusal(agent.request(null as never))).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
      expect([connections, arrived]).toEqual([0, []]);
      // What is right still goes: numbers as field values, a matching Content-Length, an iterable body.
      const ok = await agent.request({
        url: `${base}/fine`,
        method: 'POST',
        headers: { 'x-n': 7 as unknown as string, 'content-length': '3' },
        body: 'abc',
      });
      expect([ok.status, await ok.text()]).toEqual([200, 'ok']);
      // A Headers (or a Map) gives its pairs; its own enumerable entries are none, and every field was dropped.
      const viaHeaders = await agent.request({
        url: `${base}/headers`,
        headers: new Headers({ 'x-from': 'headers' }) as never,
      });
      await viaHeaders.dump();
      expect(heads.at(-1)?.['x-from']).toBe('headers');
      const streamed = await agent.request({ url: `${base}/gen`, method: 'POST', body: [Buffer.from('a')] });
      expect(streamed.status).toBe(200);
      await streamed.dump();
      expect(arrived).toEqual(['POST /fine', 'GET /headers', 'POST /gen']);
    } finally {
      await agent.close();
    }
  });

  it('HTTP/1.1: a streamed body must come to the Content-Length given: nothing past it is written, nor waited for', async () => {
    const agent = new Agent({ protocol: 'h1', pool: { headersTimeoutMs: 60_000 } });
    const gen = (...parts: string[]) =>
      (async function* () {
        for (const p of parts) yield Buffer.from(p);
      })();
    const smuggled = 'GET /admin HTTP/1.1\r\nhost: internal\r\n\r\n';
    try {
      arrived.length = 0;
      for (const body of [gen(`abcd${smuggled}`), gen('abcd', smuggled)]) {
        const r = await refusal(
          agent.request({ url: `${base}/long`, method: 'POST', headers: { 'content-length': '4' }, body }),
        );
        expect([r.code, r.field, r.message]).toEqual([
          ErrorCode.INVALID_ARGUMENT,
          'headers.content-length',
          'request body is longer than its Content-Length (4)',
        ]);
      }
      const short = await refusal(
        agent.request({ url: `${base}/short`, method: 'POST', headers: { 'content-length': '10' }, body: gen('abc') }),
      );
      expect(short.message).toBe('request body ended short of its Content-Length (10)');
      const next = await agent.request({ url: `${base}/next` });
      expect(await next.text()).toBe('ok');
      await new Promise((r) => setTimeout(r, 50));
      expect(arrived.filter((a) => a.includes('/admin'))).toEqual([]);
    } finally {
      await agent.close();
    }
  });

  it('HTTP/2: a value that is not text is refused before HPACK, and the shared connection keeps serving', async () => {
    const agent = new Agent({ protocol: 'h2' });
    const url = `http://127.0.0.1:${h2c.port}/index.html`;
    try {
      const first = await agent.request({ url });
      expect([first.protocol, await first.text()]).toEqual(['h2', 'hello\n']);
      for (const headers of [{ 'x-a': 'okvalue', 'x-b': {} }, { 'x-a': ['v', true] }]) {
        const r = await refusal(agent.request({ url, headers: headers as never }));
        expect(r.code).toBe(ErrorCode.INVALID_ARGUMENT);
      }
      const after = await agent.request({ url, headers: { 'x-a': 'okvalue' } });
      expect([after.status, after.reused, after.connectionId]).toEqual([200, true, first.connectionId]);
      await after.dump();
    } finally {
      await agent.close();
    }
  });

  it('new Agent(null) is OL_INVALID_CONFIG, not a TypeError', () => {
    expect(() => new Agent(null as never)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_CONFIG }));
  });
});
