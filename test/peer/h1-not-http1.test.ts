/**
 * A protocol the origin does not speak, asked for anyway. An HTTP/1.1 request answered in another protocol: nghttpd (nghttp2) serving cleartext HTTP/2 by prior knowledge
 * only, the case of `fetch --http2 http://…` against an h2c port. Its answer is a SETTINGS frame and a GOAWAY; the
 * client used to hold those bytes waiting for a line end and report the close as a truncated response
 * (OL_SOCKET_CLOSED, exit 56). A response must begin "HTTP/" (RFC 9112 §4): it is refused at its first bytes as
 * OL_MALFORMED_RESPONSE, saying what it looks like, once (a protocol mismatch does not change on retry).
 * And h2 alone offered to an HTTP/1.1-only TLS origin: its alert no_application_protocol (RFC 7301 §3.2) was a TLS
 * failure (OL_TLS_FAILED, fetch exit 35); it is the protocol not spoken, OL_UNSUPPORTED_PROTOCOL (exit 1), as when a
 * server completes the handshake without choosing h2.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { Agent, ErrorCode, OriginlinkError } from '../../src/index.js';
import { makeCerts } from '../helpers/certs.js';
import { startH2cOnly, type Peer } from '../helpers/h3-peers.js';

let h2c: Peer;

beforeAll(async () => {
  h2c = await startH2cOnly();
}, 30_000);

afterAll(async () => {
  await h2c?.stop();
});

describe('an HTTP/1.1 request to an origin that answers in HTTP/2', () => {
  it('fails at once, after one attempt, however long the head may take: naming HTTP/2, or the bytes that came first', async () => {
    // A head timeout far past the test's: the answer must not wait for it, nor for the peer's close.
    const agent = new Agent({ protocol: 'h1', maxRetries: 3, pool: { headersTimeoutMs: 60_000 } });
    try {
      const e = await agent.request({ url: `http://127.0.0.1:${h2c.port}/index.html` }).then(
        () => null,
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(OriginlinkError);
      const oe = e as OriginlinkError;
      // nghttpd sends its SETTINGS as it accepts. Read as the answer (the request gone out first, or waiting for its
      // turn's end): the parser's refusal, naming HTTP/2. Seen on the new connection before it was handed out: bytes
      // no request asked for, which fail the waiting request too (it is not sent). Before, the second case dropped
      // the connection, dialled again, and the same again, until the request's pendingTimeoutMs (30 s).
      if (oe.code === ErrorCode.MALFORMED_RESPONSE)
        expect(oe.message).toMatch(/^not an HTTP\/1\.1 response: an HTTP\/2 SETTINGS frame .*use protocol h2/);
      else
        expect([oe.code, oe.message]).toEqual([
          ErrorCode.UNSOLICITED_RESPONSE,
          expect.stringMatching(/sent bytes with no request outstanding/),
        ]);
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

describe('h2 asked of an origin that speaks HTTP/1.1 only, over TLS', () => {
  it('is OL_UNSUPPORTED_PROTOCOL naming what was offered, after one attempt', async () => {
    const certs = makeCerts();
    const origin = https.createServer({ cert: certs.cert, key: certs.key, ALPNProtocols: ['http/1.1'] }, (_q, r) =>
      r.end('ok'),
    );
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const agent = new Agent({ protocol: 'h2', maxRetries: 3, tls: { ca: certs.ca } });
    try {
      const url = `https://localhost:${(origin.address() as AddressInfo).port}/`;
      const e = (await agent.request({ url }).then(
        () => null,
        (err: unknown) => err,
      )) as OriginlinkError;
      expect(e).toBeInstanceOf(OriginlinkError);
      expect([e.code, e.details['attempts'] ?? 1]).toEqual([ErrorCode.UNSUPPORTED_PROTOCOL, 1]);
      expect(e.message).toMatch(/speaks none of h2 offered by ALPN \(TLS alert no_application_protocol\)$/);
    } finally {
      await agent.close();
      origin.close();
    }
  });
});
