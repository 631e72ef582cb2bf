/**
 * An HTTP/1.1 request answered in another protocol: nghttpd (nghttp2) serving cleartext HTTP/2 by prior knowledge
 * only, the case of `fetch --http2 http://…` against an h2c port. Its answer is a SETTINGS frame and a GOAWAY; the
 * client used to hold those bytes waiting for a line end and report the close as a truncated response
 * (OL_SOCKET_CLOSED, exit 56). A response must begin "HTTP/" (RFC 9112 §4): it is refused at its first bytes as
 * OL_MALFORMED_RESPONSE, saying what it looks like, once (a protocol mismatch does not change on retry).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, ErrorCode, OriginlinkError } from '../../src/index.js';
import { startH2cOnly, type Peer } from '../helpers/h3-peers.js';

let h2c: Peer;

beforeAll(async () => {
  h2c = await startH2cOnly();
}, 30_000);

afterAll(async () => {
  await h2c?.stop();
});

describe('an HTTP/1.1 request to an origin that answers in HTTP/2', () => {
  it('fails at once as OL_MALFORMED_RESPONSE naming HTTP/2, after one attempt, however long the head may take', async () => {
    // A head timeout far past the test's: the answer must not wait for it, nor for the peer's close.
    const agent = new Agent({ protocol: 'h1', maxRetries: 3, pool: { headersTimeoutMs: 60_000 } });
    try {
      const e = await agent.request({ url: `http://127.0.0.1:${h2c.port}/index.html` }).then(
        () => null,
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(OriginlinkError);
      const oe = e as OriginlinkError;
      expect(oe.code).toBe(ErrorCode.MALFORMED_RESPONSE);
      expect(oe.message).toMatch(/^not an HTTP\/1\.1 response: an HTTP\/2 SETTINGS frame .*use protocol h2/);
      expect(oe.details['attempts'] ?? 1).toBe(1);
      // The same origin by prior knowledge answers.
      const ok = new Agent({ protocol: 'h2' });
      try {
        const res = await ok.request({ url: `http://127.0.0.1:${h2c.port}/index.html` });
        expect([res.status, res.protocol, await res.text()]).toEqual([200, 'h2', 'hello\n']);
      } finally {
        await ok.close();
      }
    } finally {
      await agent.close();
    }
  }, 20_000);
});
