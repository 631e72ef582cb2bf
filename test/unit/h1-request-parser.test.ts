/**
 * The server-side HTTP/1.1 request parser (src/h1/request-parser.ts): each
 * RFC 9112 framing rule that request smuggling leans on is a refusal of the
 * right kind, fed whole and byte by byte; pipelined messages come out in
 * order with their bodies; chunked bodies and trailers; pauses and upgrades.
 */
import { describe, expect, it } from 'vitest';
import { H1ParseError } from '../../src/h1/fields.js';
import { H1RequestParser, type H1RequestHead } from '../../src/h1/request-parser.js';
import type { HeaderList } from '../../src/http/types.js';

interface Msg {
  head: H1RequestHead;
  body: string;
  trailers: HeaderList | null;
  complete: boolean;
}

function parse(
  input: string,
  mode: 'whole' | 'byte' = 'whole',
  limits = { maxHeaderBytes: 8192, maxHeaderCount: 100 },
): { msgs: Msg[]; error: H1ParseError | null; rest: Buffer | null; parser: H1RequestParser } {
  const msgs: Msg[] = [];
  const parser = new H1RequestParser(
    {
      onHead: (head) => msgs.push({ head, body: '', trailers: null, complete: false }),
      onBody: (c) => {
        msgs[msgs.length - 1]!.body += c.toString('latin1');
      },
      onTrailers: (t) => {
        msgs[msgs.length - 1]!.trailers = t;
      },
      onComplete: () => {
        msgs[msgs.length - 1]!.complete = true;
      },
    },
    limits,
  );
  const buf = Buffer.from(input, 'latin1');
  let rest: Buffer | null = null;
  try {
    if (mode === 'whole') rest = parser.execute(buf);
    else
      for (let i = 0; i < buf.length; i++) {
        const r = parser.execute(buf.subarray(i, i + 1));
        if (r) {
          rest = Buffer.concat([r, buf.subarray(i + 1)]);
          break;
        }
      }
  } catch (e) {
    if (e instanceof H1ParseError) return { msgs, error: e, rest, parser };
    throw e;
  }
  return { msgs, error: null, rest, parser };
}

const H = 'host: o.test\r\n';

/** [RFC section, what, request bytes, refusal kind] */
const REFUSALS: Array<[string, string, string, H1ParseError['kind']]> = [
  [
    '§6.1',
    'Transfer-Encoding with Content-Length (CL.TE / TE.CL)',
    `POST / HTTP/1.1\r\n${H}content-length: 6\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nG`,
    'malformed',
  ],
  [
    '§6.1',
    'Content-Length with Transfer-Encoding, other order',
    `POST / HTTP/1.1\r\n${H}transfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n`,
    'malformed',
  ],
  [
    '§6.3 (4)',
    'final coding not chunked',
    `POST / HTTP/1.1\r\n${H}transfer-encoding: chunked, identity\r\n\r\n`,
    'malformed',
  ],
  [
    '§6.3 (4)',
    'chunked twice',
    `POST / HTTP/1.1\r\n${H}transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n`,
    'malformed',
  ],
  [
    '§6.3 (4)',
    'an obfuscated coding (TE: xchunked)',
    `POST / HTTP/1.1\r\n${H}transfer-encoding: xchunked\r\n\r\n`,
    'malformed',
  ],
  [
    '§6.3 (4)',
    'Transfer-Encoding `chunked,` (an empty list element; llhttp reads it as not chunked)',
    `POST / HTTP/1.1\r\n${H}transfer-encoding: chunked,\r\n\r\n0\r\n\r\n`,
    'malformed',
  ],
  [
    '§6.1, §11.2',
    'Transfer-Encoding `chunked` followed by a tab (OWS to RFC 9110; llhttp reads it as not chunked)',
    `POST / HTTP/1.1\r\n${H}transfer-encoding: chunked\t\r\n\r\n0\r\n\r\n`,
    'malformed',
  ],
  ['§6.3 (4)', 'an empty Transfer-Encoding', `POST / HTTP/1.1\r\n${H}transfer-encoding: \r\n\r\n`, 'malformed'],
  [
    '§6.1',
    'a coding we do not implement before chunked: 501',
    `POST / HTTP/1.1\r\n${H}transfer-encoding: gzip, chunked\r\n\r\n`,
    'unsupported',
  ],
  ['§6.1', 'Transfer-Encoding in HTTP/1.0', `POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n`, 'malformed'],
  [
    'RFC 9110 §5.5',
    'a control character in a field value (found by differential fuzzing against llhttp)',
    `GET / HTTP/1.1\r\n${H}expect: \x18100-continue\r\n\r\n`,
    'malformed',
  ],
  [
    'RFC 9110 §5.5',
    'a bare LF at the end of a trailer value (trim() would have hidden it)',
    `POST / HTTP/1.1\r\n${H}transfer-encoding: chunked\r\n\r\n0\r\nx-t: a\n\r\n\r\n`,
    'malformed',
  ],
  [
    'RFC 9110 §6.5.1',
    'Transfer-Encoding in the trailer section',
    `POST / HTTP/1.1\r\n${H}transfer-encoding: chunked\r\n\r\n0\r\ntransfer-encoding: chunked\r\n\r\n`,
    'malformed',
  ],
  [
    'RFC 9110 §6.5.1',
    'Content-Length in the trailer section',
    `POST / HTTP/1.1\r\n${H}transfer-encoding: chunked\r\n\r\n0\r\ncontent-length: 5\r\n\r\n`,
    'malformed',
  ],
  [
    '§6.3 (4)',
    '`chunked` followed by 0xA0 (obs-text, NBSP in latin1, is not whitespace)',
    `POST / HTTP/1.1\r\n${H}transfer-encoding: chunked\xa0\r\n\r\n0\r\n\r\n`,
    'malformed',
  ],
  [
    '§7.1.1',
    'a chunk extension value that is neither a token nor a quoted-string',
    `POST / HTTP/1.1\r\n${H}transfer-encoding: chunked\r\n\r\n3;e=\xac\r\nabc\r\n0\r\n\r\n`,
    'malformed',
  ],
  [
    '§7.1.1',
    'whitespace in a chunk extension (BWS: refused like llhttp strict; found by differential fuzzing)',
    `POST / HTTP/1.1\r\n${H}transfer-encoding: chunked\r\n\r\n3;e= 1\r\nabc\r\n0\r\n\r\n`,
    'malformed',
  ],
  [
    '§7.1.1',
    'whitespace between the chunk size and its extension',
    `POST / HTTP/1.1\r\n${H}transfer-encoding: chunked\r\n\r\n3 ;e=1\r\nabc\r\n0\r\n\r\n`,
    'malformed',
  ],
  [
    '§7.1.1',
    'an unterminated quoted chunk extension',
    `POST / HTTP/1.1\r\n${H}transfer-encoding: chunked\r\n\r\n3;e="x\r\nabc\r\n0\r\n\r\n`,
    'malformed',
  ],
  ['RFC 9110 §5.5', 'DEL in a field value', `GET / HTTP/1.1\r\n${H}x-a: b\x7f\r\n\r\n`, 'malformed'],
  [
    '§6.3 (5)',
    'two Content-Length fields',
    `POST / HTTP/1.1\r\n${H}content-length: 3\r\ncontent-length: 3\r\n\r\nabc`,
    'malformed',
  ],
  ['§6.3 (5)', 'a Content-Length list', `POST / HTTP/1.1\r\n${H}content-length: 3, 3\r\n\r\nabc`, 'malformed'],
  ['§6.3 (5)', 'a signed Content-Length', `POST / HTTP/1.1\r\n${H}content-length: +3\r\n\r\nabc`, 'malformed'],
  ['§6.3 (5)', 'a hex Content-Length', `POST / HTTP/1.1\r\n${H}content-length: 0x3\r\n\r\nabc`, 'malformed'],
  [
    '§6.3 (5)',
    'a Content-Length past 15 digits',
    `POST / HTTP/1.1\r\n${H}content-length: 1234567890123456\r\n\r\n`,
    'malformed',
  ],
  [
    '§7.1',
    'a chunk size that is not hex',
    `POST / HTTP/1.1\r\n${H}transfer-encoding: chunked\r\n\r\nzz\r\n`,
    'malformed',
  ],
  [
    '§7.1',
    'a chunk size that overflows',
    `POST / HTTP/1.1\r\n${H}transfer-encoding: chunked\r\n\r\nfffffffffffffffff\r\n`,
    'malformed',
  ],
  [
    '§7.1',
    'a chunk not followed by CRLF',
    `POST / HTTP/1.1\r\n${H}transfer-encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n`,
    'malformed',
  ],
  ['§7.1', 'a negative chunk size', `POST / HTTP/1.1\r\n${H}transfer-encoding: chunked\r\n\r\n-1\r\n`, 'malformed'],
  ['§5.2', 'obs-fold', `GET / HTTP/1.1\r\n${H}x-a: 1\r\n  folded\r\n\r\n`, 'malformed'],
  ['§5.1', 'whitespace before the colon', `GET / HTTP/1.1\r\n${H}transfer-encoding : chunked\r\n\r\n`, 'malformed'],
  ['§2.2', 'a bare CR inside a field line', `GET / HTTP/1.1\r\n${H}x-a: 1\rx-b: 2\r\n\r\n`, 'malformed'],
  ['§2.2', 'a bare LF inside a field line', `GET / HTTP/1.1\r\n${H}x-a: 1\nx-b: 2\r\n\r\n`, 'malformed'],
  ['§5.5', 'NUL in a value', `GET / HTTP/1.1\r\n${H}x-a: 1\u0000\r\n\r\n`, 'malformed'],
  ['§3.2', 'no Host in HTTP/1.1', `GET / HTTP/1.1\r\n\r\n`, 'malformed'],
  ['§3.2', 'two Host fields', `GET / HTTP/1.1\r\n${H}${H}\r\n`, 'malformed'],
  ['§3.2', 'an invalid Host', `GET / HTTP/1.1\r\nhost: a b\r\n\r\n`, 'malformed'],
  ['§3', 'a malformed request line (two spaces)', `GET  / HTTP/1.1\r\n${H}\r\n`, 'malformed'],
  ['§3', 'a control character in the target', `GET /a\u0001b HTTP/1.1\r\n${H}\r\n`, 'malformed'],
  ['§3', 'a method that is not a token', `G(T / HTTP/1.1\r\n${H}\r\n`, 'malformed'],
  ['§2.3', 'HTTP/2.0 in a request line: 505', `GET / HTTP/2.0\r\n${H}\r\n`, 'version'],
  ['§3.2.3', 'CONNECT without host:port', `CONNECT o.test HTTP/1.1\r\n${H}\r\n`, 'malformed'],
  ['§3.2.4', 'asterisk-form with GET', `GET * HTTP/1.1\r\n${H}\r\n`, 'malformed'],
  ['§3.2', 'a target of no known form', `GET o.test/x HTTP/1.1\r\n${H}\r\n`, 'malformed'],
  [
    '§3.2',
    'a fragment in the target (RFC 3986 §3.5: never sent; :path refuses it too)',
    `GET /a#frag HTTP/1.1\r\n${H}\r\n`,
    'malformed',
  ],
  [
    'limits',
    'a header section over the limit: 431',
    `GET / HTTP/1.1\r\n${H}x-big: ${'a'.repeat(9000)}\r\n\r\n`,
    'too-large',
  ],
  ['limits', 'more fields than allowed: 431', `GET / HTTP/1.1\r\n${H}${'x-a: 1\r\n'.repeat(101)}\r\n`, 'too-large'],
  [
    '§2.2',
    'a head of bare LF lines, refused at its empty line (not left to the headers timeout)',
    `GET / HTTP/1.1\nhost: a\n\n`,
    'malformed',
  ],
  ['§2.2', 'a head whose last line is a bare LF', `GET / HTTP/1.1\r\n${H}\n`, 'malformed'],
  [
    'limits',
    'a request line longer than the head limit: 414 (RFC 9112 §3)',
    `GET /${'a'.repeat(9000)} HTTP/1.1\r\n${H}\r\n`,
    'target-too-long',
  ],
  ['limits', 'a request line that never ends, past the limit: 414', `GET /${'a'.repeat(9000)}`, 'target-too-long'],
  [
    'limits',
    'a head that never ends, past the limit: 431',
    `GET / HTTP/1.1\r\n${H}x-a: ${'b'.repeat(9000)}`,
    'too-large',
  ],
];

for (const mode of ['whole', 'byte'] as const) {
  describe(`refusals, fed ${mode}`, () => {
    for (const [sec, what, input, kind] of REFUSALS) {
      it(`${sec}: ${what} → ${kind}`, () => {
        const r = parse(input, mode);
        expect(r.error?.kind, r.error?.message ?? 'no error').toBe(kind);
        // Nothing of a refused message reached the application as complete.
        expect(r.msgs.filter((m) => m.complete)).toEqual([]);
      });
    }
  });

  describe(`well-formed messages, fed ${mode}`, () => {
    it('pipelined requests in order, with a counted body, a chunked body with trailers and an empty one', () => {
      const input =
        `GET /a HTTP/1.1\r\n${H}\r\n` +
        `POST /b HTTP/1.1\r\n${H}content-length: 5\r\n\r\nhello` +
        `POST /c HTTP/1.1\r\n${H}transfer-encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n10\r\n${'x'.repeat(16)}\r\n0\r\nx-sum: 9\r\n\r\n` +
        `\r\nDELETE /d HTTP/1.1\r\n${H}content-length: 0\r\nconnection: close\r\n\r\n`;
      const r = parse(input, mode);
      expect(r.error).toBeNull();
      expect(r.msgs.map((m) => [m.head.method, m.head.target, m.body, m.complete, m.head.keepAlive])).toEqual([
        ['GET', '/a', '', true, true],
        ['POST', '/b', 'hello', true, true],
        ['POST', '/c', `abc${'x'.repeat(16)}`, true, true],
        ['DELETE', '/d', '', true, false],
      ]);
      expect(r.msgs[2]!.trailers).toEqual([['x-sum', '9']]);
      expect(r.msgs[2]!.head.framing).toBe('chunked');
    });

    it('HTTP/1.0 keeps alive only when asked; absolute-form takes its authority; CONNECT and OPTIONS * forms', () => {
      const r = parse(
        `GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\nGET http://a.test:81/p?q HTTP/1.1\r\nhost: b.test\r\n\r\n` +
          `CONNECT c.test:443 HTTP/1.1\r\nhost: c.test:443\r\n\r\n`,
        mode,
      );
      expect(r.error).toBeNull();
      expect(r.msgs.map((m) => [m.head.form, m.head.authority, m.head.keepAlive])).toEqual([
        ['origin', '', true],
        ['absolute', 'a.test:81', true],
        ['authority', 'c.test:443', true],
      ]);
      expect(parse(`GET / HTTP/1.0\r\n\r\n`, mode).msgs.map((m) => m.head.keepAlive)).toEqual([false]);
      const o = parse(`OPTIONS * HTTP/1.1\r\n${H}\r\n`, mode);
      expect(o.msgs[0]!.head.form).toBe('asterisk');
    });

    it('RFC 9112 §9.6: nothing after a request that closes the connection is parsed (HTTP/1.1 close, HTTP/1.0 without keep-alive)', () => {
      for (const first of [
        `POST /a HTTP/1.1\r\n${H}connection: close\r\ncontent-length: 3\r\n\r\nabc`,
        'GET /a HTTP/1.0\r\n\r\n',
      ]) {
        const next = `GET /smuggled HTTP/1.1\r\n${H}\r\n`;
        const r = parse(first + next, mode);
        expect(r.error).toBeNull();
        expect(r.msgs.map((m) => [m.head.target, m.complete])).toEqual([['/a', true]]);
        expect(r.rest?.toString('latin1')).toBe(next);
        r.parser.resume();
        expect(r.parser.execute(Buffer.from(next))?.toString('latin1')).toBe(next);
        expect(r.msgs.length).toBe(1);
      }
    });

    it('RFC 9110 §9.3.6: a CONNECT request has no content; the parser stops after its head (what follows is the tunnel’s)', () => {
      const r = parse(
        `CONNECT h.test:443 HTTP/1.1\r\nhost: h.test:443\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
        mode,
      );
      expect(r.error).toBeNull();
      expect(r.msgs.map((m) => [m.head.method, m.head.framing, m.body, m.complete])).toEqual([
        ['CONNECT', 'none', '', false],
      ]);
      expect(r.rest?.toString('latin1')).toBe('3\r\nabc\r\n0\r\n\r\n');
    });

    it('Expect: 100-continue is reported for a request with a body', () => {
      const r = parse(`POST / HTTP/1.1\r\n${H}expect: 100-continue\r\ncontent-length: 2\r\n\r\nok`, mode);
      expect([r.msgs[0]!.head.expectContinue, r.msgs[0]!.body]).toEqual([true, 'ok']);
    });

    it('an upgrade request stops the parser after its head: the rest is the new protocol’s', () => {
      const r = parse(
        `GET /ws HTTP/1.1\r\n${H}connection: keep-alive, Upgrade\r\nupgrade: websocket\r\n\r\n\x81\x05hello`,
        mode,
      );
      expect(r.msgs.map((m) => [m.head.upgrade, m.complete])).toEqual([['websocket', false]]);
      expect(r.rest?.toString('latin1')).toBe('\x81\x05hello');
      // Upgrade without Connection: upgrade is an ordinary request.
      const n = parse(`GET / HTTP/1.1\r\n${H}upgrade: websocket\r\n\r\n`, mode);
      expect([n.msgs[0]!.head.upgrade, n.msgs[0]!.complete]).toEqual([null, true]);
      // An Upgrade that names h2c (RFC 9113 §3.1, deprecated) is ignored: an ordinary request, the next one parsed too.
      for (const up of ['h2c', 'websocket, H2C', 'h2c ,websocket']) {
        const h = parse(
          `GET / HTTP/1.1\r\n${H}connection: Upgrade, HTTP2-Settings\r\nupgrade: ${up}\r\nhttp2-settings: AAMAAABkAAQAAP__\r\n\r\nGET /2 HTTP/1.1\r\n${H}\r\n`,
          mode,
        );
        expect(h.msgs.map((m) => [m.head.target, m.head.upgrade, m.complete])).toEqual([
          ['/', null, true],
          ['/2', null, true],
        ]);
      }
      expect(
        parse(`GET / HTTP/1.1\r\n${H}connection: upgrade\r\nupgrade: h2cx\r\n\r\n`, mode).msgs[0]!.head.upgrade,
      ).toBe('h2cx');
    });
  });
}

describe('bounded pipelining', () => {
  it('pauseAfterMessage stops at the end of the message; resume continues with the returned bytes', () => {
    const msgs: string[] = [];
    const p: H1RequestParser = new H1RequestParser(
      {
        onHead: (h) => msgs.push(h.target),
        onBody: () => {},
        onTrailers: () => {},
        onComplete: () => p.pauseAfterMessage(),
      },
      { maxHeaderBytes: 8192, maxHeaderCount: 100 },
    );
    const rest = p.execute(Buffer.from(`GET /1 HTTP/1.1\r\n${H}\r\nGET /2 HTTP/1.1\r\n${H}\r\n`));
    expect(msgs).toEqual(['/1']);
    p.resume();
    expect(p.execute(rest!)).toBeNull();
    expect(msgs).toEqual(['/1', '/2']);
  });

  it("a request equal to the connection's last one reads as it did (new head object and field pairs); a changed one is read anew", () => {
    const req = 'POST /a HTTP/1.1\r\nHost: o.test\r\nContent-Length: 2\r\nX-Long-Enough-Name: value\r\n\r\nhi';
    const { msgs, error } = parse(`${req}${req}${req.replace('Length: 2', 'Length: 3')}x${req}`);
    expect(error).toBeNull();
    expect(msgs.map((m) => [m.head.method, m.head.contentLength, m.head.framing, m.body, m.complete])).toEqual([
      ['POST', 2, 'length', 'hi', true],
      ['POST', 2, 'length', 'hi', true],
      ['POST', 3, 'length', 'hix', true],
      ['POST', 2, 'length', 'hi', true],
    ]);
    const [a, b] = msgs;
    expect(b!.head).toEqual(a!.head);
    expect(b!.head).not.toBe(a!.head);
    expect(b!.head.headers).not.toBe(a!.head.headers);
    expect(b!.head.headers[0]).not.toBe(a!.head.headers[0]);
    // Every message fed byte by byte reads the same.
    expect(parse(`${req}${req}`, 'byte').msgs.map((m) => m.head)).toEqual([a!.head, a!.head]);
  });

  it('a request that was refused is refused again when it comes again', () => {
    const bad = 'GET / HTTP/1.1\r\nX-A: b\r\n\r\n';
    expect(parse(`${bad}`).error?.message).toMatch(/missing Host/);
    // Same bytes after a good request on the same connection (pipelined): the second is refused too.
    const good = 'GET / HTTP/1.1\r\nHost: o.test\r\nX-A: b\r\n\r\n';
    const r = parse(`${good}${good}${bad}`);
    expect(r.msgs).toHaveLength(2);
    expect(r.error?.message).toMatch(/missing Host/);
  });
});
