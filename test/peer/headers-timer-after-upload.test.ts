/**
 * The headers timer runs from the request's end, not its dispatch: a streamed upload longer than headersTimeoutMs
 * succeeds (h1, h2, h3; it failed as OL_HEADERS_TIMEOUT before), and the timer still fires once the request is sent.
 */
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, ErrorCode, type OriginlinkError } from '../../src/index.js';
import type { H3Server } from '../../src/server/h3.js';
import { makeCerts } from '../helpers/certs.js';
import { startTestH3Server } from '../helpers/h3-server.js';

const certs = makeCerts();

/** A streamed body: `n` chunks, `gapMs` apart. */
async function* slowBody(n: number, gapMs: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < n; i++) {
    await new Promise((r) => setTimeout(r, gapMs));
    yield Buffer.from(`chunk${i};`);
  }
}

async function readBody(req: AsyncIterable<Buffer>): Promise<string> {
  let s = '';
  for await (const c of req) s += c.toString();
  return s;
}

describe('the headers timer starts when the request is fully sent', () => {
  let h1: http.Server;
  let h2: http2.Http2Server;
  let h3: H3Server;
  beforeAll(async () => {
    h1 = http.createServer((req, res) => {
      void readBody(req).then((b) => res.end(`got ${b.length}`));
    });
    h2 = http2.createServer((req, res) => {
      void readBody(req).then((b) => res.end(`got ${b.length}`));
    });
    await new Promise<void>((r) => h1.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
    h3 = await startTestH3Server({
      async handler(r) {
        const b = await readBody(r.body as AsyncIterable<Buffer>);
        return { status: 200, body: `got ${b.length}` };
      },
    });
  });
  afterAll(async () => {
    h1?.close();
    h2?.close();
    await h3?.close(100);
  });

  // 8 chunks 100 ms apart: the upload takes ~800 ms against a 300 ms headers timeout.
  const cases: Array<[string, () => string, 'h1' | 'h2' | 'h3']> = [
    ['h1', () => `http://127.0.0.1:${(h1.address() as AddressInfo).port}/up`, 'h1'],
    ['h2 (prior knowledge)', () => `http://127.0.0.1:${(h2.address() as AddressInfo).port}/up`, 'h2'],
    ['h3', () => `https://localhost:${h3.address.port}/up`, 'h3'],
  ];
  for (const [name, url, protocol] of cases) {
    it(`${name}: an 800 ms streamed upload with headersTimeoutMs 300 succeeds`, async () => {
      const agent = new Agent({
        protocol,
        tls: { ca: certs.ca },
        pool: { headersTimeoutMs: 300, bodyTimeoutMs: 2000 },
        maxRetries: 0,
      });
      try {
        const res = await agent.request({ url: url(), method: 'POST', body: slowBody(8, 100) });
        expect(res.status).toBe(200);
        expect(res.protocol).toBe(protocol);
        expect(await res.text()).toBe(`got ${'chunk0;'.length * 8}`);
      } finally {
        await agent.close();
      }
    });
  }

  it('h1: the headers timer still fires after the request is sent', async () => {
    const silent = http.createServer(() => {
      /* never answers */
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const agent = new Agent({ protocol: 'h1', pool: { headersTimeoutMs: 300 }, maxRetries: 0 });
    try {
      const t0 = Date.now();
      const err = await agent
        .request({
          url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/`,
          method: 'POST',
          body: slowBody(3, 100),
        })
        .catch((e: unknown) => e);
      expect((err as OriginlinkError).code).toBe(ErrorCode.HEADERS_TIMEOUT);
      expect((err as OriginlinkError).facts).toMatchObject({ requestSent: true, responseStarted: false });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(550); // ~300 ms of upload + 300 ms of waiting
    } finally {
      agent.destroy();
      silent.closeAllConnections();
      silent.close();
    }
  });
});
