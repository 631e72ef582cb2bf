import { describe, expect, it } from 'vitest';
import { FieldMemory, parseFieldLines, splitHead } from '../../src/h1/fields.js';
import { H1ParseError, H1ResponseParser, type H1Head } from '../../src/h1/parser.js';
import { serializeRequestHead } from '../../src/h1/request.js';
import type { HeaderList } from '../../src/http/types.js';
import { isClean, markClean } from '../../src/http/fields.js';

interface Out {
  heads: H1Head[];
  body: string;
  trailers: HeaderList[];
  complete: number;
}

function run(input: string, method = 'GET', chunk = 0): Out {
  const out: Out = { heads: [], body: '', trailers: [], complete: 0 };
  const p = new H1ResponseParser(
    {
      onHead: (h) => out.heads.push(h),
      onBody: (b) => {
        out.body += b.toString('latin1');
      },
      onTrailers: (t) => out.trailers.push(t),
      onComplete: () => {
        out.complete++;
      },
    },
    { maxHeaderBytes: 4096, maxHeaderCount: 50 },
  );
  p.expect(method);
  const buf = Buffer.from(input, 'latin1');
  if (chunk === 0) p.execute(buf);
  else for (let i = 0; i < buf.length; i += chunk) p.execute(buf.subarray(i, i + chunk));
  if (out.complete === 0) p.eof();
  return out;
}

/** Every case is checked fed whole and fed one byte at a time. */
const both = (input: string, method = 'GET'): Out => {
  const a = run(input, method);
  const b = run(input, method, 1);
  expect(b).toEqual(a);
  return a;
};

describe('H1ResponseParser', () => {
  it('content-length body', () => {
    const o = both('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello');
    expect(o.heads[0]?.status).toBe(200);
    expect(o.heads[0]?.headers).toEqual([
      ['content-length', '5'],
      ['x-a', 'b'],
    ]);
    expect(o.body).toBe('hello');
    expect(o.complete).toBe(1);
    expect(o.heads[0]?.keepAlive).toBe(true);
  });

  it('chunked body with extensions and trailers', () => {
    const o = both(
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n',
    );
    expect(o.body).toBe('hello world');
    expect(o.trailers).toEqual([[['x-t', '1']]]);
    expect(o.complete).toBe(1);
  });

  it('skips 1xx interim responses', () => {
    const o = both(
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n',
    );
    expect(o.heads.map((h) => h.status)).toEqual([204]);
    expect(o.complete).toBe(1);
  });

  it('an interim response with Connection: close ends the exchange (RFC 9112 §9.6; llhttp agrees): nothing after it is taken', () => {
    for (const chunk of [0, 1]) {
      expect(() =>
        run(
          'HTTP/1.1 103 Early Hints\r\nConnection: close\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n',
          'GET',
          chunk,
        ),
      ).toThrow(/Connection: close in an interim 103 response/);
    }
    // keep-alive (or any other option) in a 1xx changes nothing
    expect(
      both('HTTP/1.1 103 Early Hints\r\nConnection: keep-alive\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n').heads.map(
        (h) => h.status,
      ),
    ).toEqual([204]);
  });

  it("a response head equal to the connection's last one reads as it did, per request kind (HEAD has no body)", () => {
    const heads: H1Head[] = [];
    let body = '';
    const p = new H1ResponseParser(
      {
        onHead: (h) => heads.push(h),
        onBody: (b) => {
          body += b.toString('latin1');
        },
        onTrailers() {},
        onComplete() {},
      },
      { maxHeaderBytes: 4096, maxHeaderCount: 50 },
    );
    const res = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Long-Enough-Name: value\r\n\r\n';
    for (const method of ['GET', 'GET', 'HEAD', 'GET']) {
      p.expect(method);
      p.execute(Buffer.from(method === 'HEAD' ? res : `${res}hello`, 'latin1'));
    }
    expect(heads.map((h) => [h.framing, h.contentLength, h.keepAlive])).toEqual([
      ['length', 5, true],
      ['length', 5, true],
      ['none', 5, true],
      ['length', 5, true],
    ]);
    expect(body).toBe('hellohellohello');
    expect(heads[1]).toEqual(heads[0]);
    expect(heads[1]!.headers).not.toBe(heads[0]!.headers);
  });

  it('at most 16 interim responses before the final one (each is forwarded to the client): the 17th is malformed', () => {
    const interims = (n: number): string => 'HTTP/1.1 103 Early Hints\r\nlink: </s.css>\r\n\r\n'.repeat(n);
    expect(both(`${interims(16)}HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok`).body).toBe('ok');
    expect(() => run(`${interims(17)}HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok`)).toThrow(/more than 16 interim/);
  });

  it('HEAD, 204 and 304 have no body even with Content-Length (RFC 9112 §6.3)', () => {
    expect(both('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n', 'HEAD').complete).toBe(1);
    expect(both('HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n').complete).toBe(1);
  });

  it('read-until-close body completes at EOF and disables keep-alive', () => {
    const o = both('HTTP/1.1 200 OK\r\n\r\nabc');
    expect(o.heads[0]?.framing).toBe('close');
    expect(o.heads[0]?.keepAlive).toBe(false);
    expect(o.body).toBe('abc');
    expect(o.complete).toBe(1);
  });

  it('HTTP/1.0 needs keep-alive; Connection: close ends reuse; Keep-Alive timeout hint', () => {
    expect(both('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n').heads[0]?.keepAlive).toBe(false);
    expect(both('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n').heads[0]?.keepAlive).toBe(
      true,
    );
    expect(both('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n').heads[0]?.keepAlive).toBe(false);
    expect(
      both('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 0\r\n\r\n').heads[0]
        ?.keepAliveTimeoutMs,
    ).toBe(5000);
  });

  const bad: Array<[string, string, 'malformed' | 'too-large' | 'unsupported']> = [
    // RFC 9112 §6.1: we decode chunked only; a body in another coding would reach our caller still encoded, its
    // Transfer-Encoding gone (nginx answers such an upstream 502 as well).
    [
      'Transfer-Encoding gzip (read until close, still encoded)',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b',
      'unsupported',
    ],
    [
      'Transfer-Encoding gzip, chunked',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n\x1f\x8b\r\n0\r\n\r\n',
      'unsupported',
    ],
    ['bad status line', 'HTTP/1.1 2OO OK\r\n\r\n', 'malformed'],
    ['not HTTP', 'SSH-2.0-OpenSSH\r\n\r\n', 'malformed'],
    ['conflicting Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 'malformed'],
    [
      'Content-Length values that differ as written (5, 05)',
      'HTTP/1.1 200 OK\r\nContent-Length: 5, 05\r\n\r\nhello',
      'malformed',
    ],
    ['Content-Length ending in NBSP (not OWS)', 'HTTP/1.1 200 OK\r\nContent-Length: 1, 1\xa0\r\n\r\nx', 'malformed'],
    ['a 16-digit Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000\r\n\r\n', 'malformed'],
    // RFC 9112 §6.1: "ought to be handled as an error" — refused like nginx and llhttp (found by differential fuzzing).
    [
      'Content-Length with Transfer-Encoding',
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n',
      'malformed',
    ],
    [
      'a control character in the reason phrase (RFC 9112 §4)',
      'HTTP/1.1 200 O\x00K\r\ncontent-length: 0\r\n\r\n',
      'malformed',
    ],
    [
      'Transfer-Encoding `chunked,` (an empty element: llhttp reads it as not chunked)',
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked,\r\n\r\n0\r\n\r\n',
      'malformed',
    ],
    [
      'Transfer-Encoding `chunked` followed by tabs (llhttp reads it as not chunked; found by fuzzing the differential target 60 s)',
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\t\t \r\n\r\n0\r\n\r\n',
      'malformed',
    ],
    [
      'a 1xx labelled HTTP/1.0 (RFC 9110 §15.2)',
      'HTTP/1.0 103 Early Hints\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n',
      'malformed',
    ],
    [
      'Content-Length with a Transfer-Encoding that is not chunked',
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: cd\r\n\r\nTP',
      'malformed',
    ],
    ['negative Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', 'malformed'],
    ['space before colon', 'HTTP/1.1 200 OK\r\nX-A : b\r\n\r\n', 'malformed'],
    ['obs-fold', 'HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\n\r\n', 'malformed'],
    ['bad chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'malformed'],
    ['chunk without CRLF', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxyz\r\n', 'malformed'],
    [
      'a head of bare LF lines (refused at its empty line, not left to the headers timeout)',
      'HTTP/1.1 200 OK\ncontent-length: 0\n\n',
      'malformed',
    ],
    ['oversized header section', `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(5000)}\r\n\r\n`, 'too-large'],
    ['too many fields', `HTTP/1.1 200 OK\r\n${'X: y\r\n'.repeat(60)}\r\n`, 'too-large'],
  ];
  for (const [name, input, kind] of bad) {
    it(`rejects ${name} (whole and byte by byte)`, () => {
      for (const chunk of [0, 1]) {
        let err: unknown = null;
        try {
          run(input, 'GET', chunk);
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(H1ParseError);
        expect((err as H1ParseError).kind).toBe(kind);
      }
    });
  }

  it('a list of identical Content-Length values stands for one (RFC 9110 §8.6)', () => {
    const o = both('HTTP/1.1 200 OK\r\nContent-Length: 5,5\r\nContent-Length: 5\r\n\r\nhello');
    expect([o.heads[0]?.contentLength, o.body, o.complete]).toEqual([5, 'hello', 1]);
  });

  it('Connection options in any case, spacing and number of lines', () => {
    const ka = (fields: string, v = '1.1'): boolean | undefined =>
      both(`HTTP/${v} 200 OK\r\n${fields}Content-Length: 0\r\n\r\n`).heads[0]?.keepAlive;
    expect(ka('CONNECTION:  Close \r\n')).toBe(false);
    expect(ka('connection: foo, CLOSE\r\n')).toBe(false);
    expect(ka('Connection: foo\r\nConnection: close\r\n')).toBe(false);
    expect(ka('Connection: closed\r\n')).toBe(true);
    expect(ka('Connection: Keep-Alive\r\n', '1.0')).toBe(true);
    expect(ka('Connection: x,\tkeep-alive\r\n', '1.0')).toBe(true);
    expect(ka('Connection: keep-alive-ish\r\n', '1.0')).toBe(false);
  });

  it('field names: each spelling lower-cased, every new one checked, however many a peer invents', () => {
    // The parser keeps a bounded table of names it has seen (fields.ts): past its bound, names still parse the same.
    for (let i = 0; i < 600; i++) {
      const name = `X-Made-Up-${i}`;
      const spelled = i % 2 ? name.toUpperCase() : name;
      const o = run(`HTTP/1.1 200 OK\r\n${spelled}: v${i}\r\nCONTENT-length: 0\r\n\r\n`);
      expect(o.heads[0]?.headers).toEqual([
        [name.toLowerCase(), `v${i}`],
        ['content-length', '0'],
      ]);
      let err: unknown = null;
      try {
        run(`HTTP/1.1 200 OK\r\n${spelled}\u00e9: v\r\n\r\n`);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(H1ParseError);
    }
    for (const [wire, lower] of [
      ['ETag', 'etag'],
      ['eTaG', 'etag'],
      ['Www-Authenticate', 'www-authenticate'],
      ['tE', 'te'],
      // The table keys a name by its length and its first byte's low five bits: these share them with `age`, `Age`,
      // `etag` or `date` and are other names.
      ['!ge', '!ge'],
      ['Ag!', 'ag!'],
      ['%tag', '%tag'],
      ['Date', 'date'],
      ['$ate', '$ate'],
    ]) {
      expect(run(`HTTP/1.1 200 OK\r\n${wire}: x\r\nContent-Length: 0\r\n\r\n`).heads[0]?.headers[0]).toEqual([
        lower,
        'x',
      ]);
    }
  });

  it('a response that cannot begin "HTTP/" is refused at its first bytes, saying what it looks like (RFC 9112 §4)', () => {
    const refusal = (bytes: number[] | string, chunk = 0): string => {
      const input = typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('latin1');
      try {
        run(input, 'GET', chunk);
      } catch (e) {
        expect(e).toBeInstanceOf(H1ParseError);
        return (e as Error).message;
      }
      return 'accepted';
    };
    // nghttpd's answer on an h2c port: SETTINGS (type 4), then more; no line end for a long while.
    const settings = [0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100];
    expect(refusal(settings)).toMatch(/^not an HTTP\/1\.1 response: an HTTP\/2 SETTINGS frame/);
    expect(refusal(settings, 1)).toMatch(/^not an HTTP\/1\.1 response: begins "\\u0000"$/);
    // A TLS alert (21) from an https port.
    expect(refusal([21, 3, 3, 0, 2, 2, 40])).toMatch(/^not an HTTP\/1\.1 response: a TLS record/);
    expect(refusal('SSH-2.0-OpenSSH_9.2\r\n')).toBe('not an HTTP/1.1 response: begins "SSH-2.0-OpenSSH_"');
    expect(refusal('HTTX/1.1 200 OK\r\n\r\n')).toMatch(/^not an HTTP\/1\.1 response: begins "HTTX/);
    // A head split after "HTT" still reads.
    expect(both('HTTP/1.1 204 No Content\r\n\r\n').heads[0]?.status).toBe(204);
    expect(run('HTTP/1.1 204 No Content\r\n\r\n', 'GET', 3).heads[0]?.status).toBe(204);
  });

  it('seeded random bytes only ever throw H1ParseError', () => {
    let x = 12345;
    const rnd = (): number => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) / 2 ** 32;
    };
    const alphabet = 'HTTP/1.1 200OK\r\n:;0123456789abcdefxContent-LengthTransfer-Encodingchunked';
    for (let i = 0; i < 2000; i++) {
      let s = 'HTTP/1.1 200 OK\r\n';
      const n = Math.floor(rnd() * 200);
      for (let j = 0; j < n; j++) s += alphabet[Math.floor(rnd() * alphabet.length)];
      try {
        run(s, 'GET', 1 + Math.floor(rnd() * 7));
      } catch (e) {
        expect(e).toBeInstanceOf(H1ParseError);
      }
    }
  });
});

describe('serializeRequestHead', () => {
  const req = {
    method: 'GET',
    path: '/a?b',
    authority: 'x.test:8443',
    scheme: 'https' as const,
    headers: [] as HeaderList,
    body: null,
  };
  it('adds Host and frames bodies', () => {
    expect(serializeRequestHead(req).head).toBe('GET /a?b HTTP/1.1\r\nhost: x.test:8443\r\n\r\n');
    expect(serializeRequestHead({ ...req, method: 'POST', body: 'abc' }).head).toContain('content-length: 3\r\n');
    expect(serializeRequestHead({ ...req, method: 'POST' }).head).toContain('content-length: 0\r\n');
    expect(serializeRequestHead({ ...req, method: 'POST', body: [Buffer.from('x')] }).framing).toBe('chunked');
  });
  it('refuses header injection and CL+TE', () => {
    expect(() => serializeRequestHead({ ...req, headers: [['x', 'a\r\nevil: 1']] })).toThrow(TypeError);
    expect(() => serializeRequestHead({ ...req, headers: [['bad name', 'v']] })).toThrow(TypeError);
    expect(() =>
      serializeRequestHead({
        ...req,
        headers: [
          ['content-length', '1'],
          ['transfer-encoding', 'chunked'],
        ],
      }),
    ).toThrow(TypeError);
  });
  it('writes a list marked clean (http/fields.ts) as it is, and checks every other list', () => {
    // The mark is a claim our own code makes about a list it built from checked fields: it is what skips the checks.
    const odd: HeaderList = [['X-Odd', 'v']];
    expect(serializeRequestHead({ ...req, headers: odd }).head).toContain('X-Odd: v\r\n');
    expect(
      serializeRequestHead({
        ...req,
        headers: markClean([
          ['x-a', 'b'],
          ['host', 'skipped'],
        ] as HeaderList),
      }).head,
    ).toBe('GET /a?b HTTP/1.1\r\nhost: x.test:8443\r\nx-a: b\r\n\r\n');
    const bad: HeaderList = [['x', 'a\r\nevil: 1']];
    expect(() => serializeRequestHead({ ...req, headers: bad })).toThrow(TypeError);
    expect(isClean(bad)).toBe(false);
    // A copy of a clean list is not: the mark is on the list object, not its fields.
    expect(isClean([...markClean([['x-a', 'b']] as HeaderList)])).toBe(false);
  });
});

describe('parseFieldLines', () => {
  /**
   * A plain reading of RFC 9112 §5 and RFC 9110 §5.5 to compare with: the block split at CRLF, every line
   * counted first, then each line in order (obs-fold, the colon, the name, the value's characters).
   */
  function reference(text: string, from: number, maxCount: number): HeaderList | { kind: string } {
    const lines = text.slice(from).split('\r\n');
    if (from >= text.length) return [];
    if (lines.length > maxCount) return { kind: 'too-large' };
    const out: HeaderList = [];
    for (const line of lines) {
      if (line.startsWith(' ') || line.startsWith('\t')) return { kind: 'malformed' };
      const colon = line.indexOf(':');
      if (colon <= 0) return { kind: 'malformed' };
      const name = line.slice(0, colon);
      if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) return { kind: 'malformed' };
      const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
      if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) return { kind: 'malformed' };
      out.push([name.toLowerCase(), value]);
    }
    return out;
  }

  it('reads what a plain reading reads, and refuses what it refuses, with too-large first (random blocks)', () => {
    // Pieces that make valid lines, and the characters that break them, anywhere.
    const pieces = [
      'Host',
      'content-length',
      'X-A',
      'x',
      ': ',
      ':',
      'value',
      ' ',
      '\t',
      '\r\n',
      '\r',
      '\n',
      '\0',
      '\x7f',
      '\x01',
      'é',
      '"',
      '5',
      ',',
    ];
    let seed = 11;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    let refusedByValue = 0;
    // The same blocks read again with one FieldMemory across them, as one connection's heads: a line recalled
    // from an earlier block must read as the plain reading reads it, near misses (a remembered line with more
    // after it, a bad character added) included.
    const memory = new FieldMemory();
    let prev: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      let text = 'HTTP/1.1 200 OK\r\n';
      const from = text.length;
      const lines = 1 + rand(6);
      const cur: string[] = [];
      for (let l = 0; l < lines; l++) {
        // Mostly well-formed lines, some with a random piece dropped in; half of them the previous block's line
        // at this position (a connection's next head), which may get a piece too.
        let line =
          rand(2) === 0 && prev[l] !== undefined
            ? (prev[l] as string)
            : rand(3) === 0
              ? ['X-A', ':', ' ', 'value'].map((p) => (rand(4) === 0 ? pieces[rand(pieces.length)] : p)).join('')
              : `x-${rand(5)}: v${rand(9)}`;
        if (rand(8) === 0) line += pieces[rand(pieces.length)];
        cur.push(line);
      }
      text += cur.join('\r\n');
      prev = cur;
      const maxCount = rand(2) === 0 ? Infinity : 1 + rand(6);
      const want = reference(text, from, maxCount);
      let got: HeaderList | { kind: string };
      try {
        got = parseFieldLines(text, from, maxCount);
      } catch (e) {
        expect(e).toBeInstanceOf(H1ParseError);
        got = { kind: (e as H1ParseError).kind };
        if (/invalid header value/.test((e as Error).message)) refusedByValue++;
      }
      expect(got, JSON.stringify(text)).toEqual(want);
      let again: HeaderList | { kind: string };
      try {
        again = parseFieldLines(text, from, maxCount, 'header', memory);
      } catch (e) {
        expect(e).toBeInstanceOf(H1ParseError);
        again = { kind: (e as H1ParseError).kind };
      }
      expect(again, `with memory: ${JSON.stringify(text)}`).toEqual(want);
    }
    // The value check ran on the blocks that needed it, and the memory was used.
    expect(refusedByValue).toBeGreaterThan(100);
    expect(memory.recalled).toBeGreaterThan(5_000);
  });

  it('a FieldMemory gives each head new pairs: a caller changing one list changes no other', () => {
    const memory = new FieldMemory();
    const text =
      'HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nX-Long-Enough-Name: a value long enough to be a slice';
    const from = text.indexOf('\r\n') + 2;
    const first = parseFieldLines(text, from, 10, 'header', memory);
    (first[0] as [string, string])[1] = 'changed';
    first.push(['x-added', '1']);
    const second = parseFieldLines(text, from, 10, 'header', memory);
    expect(memory.recalled).toBe(3);
    expect(second).toEqual([
      ['server', 'nginx'],
      ['content-type', 'text/plain'],
      ['x-long-enough-name', 'a value long enough to be a slice'],
    ]);
    expect(second[0]).not.toBe(first[0]);
    // A line that changed is read anew (and remembered instead); the others are still recalled.
    const third = parseFieldLines(text.replace('nginx', 'caddy'), from, 10, 'header', memory);
    expect(third[0]).toEqual(['server', 'caddy']);
    expect(memory.recalled).toBe(5);
    // A line longer than the remembered one by a bad character is not it: refused.
    expect(() => parseFieldLines(text.replace('text/plain', 'text/plain\x01'), from, 10, 'header', memory)).toThrow(
      /invalid header value/,
    );
    // Too many lines is still too many.
    expect(() => parseFieldLines(text, from, 2, 'header', memory)).toThrow(/more than 2/);
  });

  it('a head equal to the last one is read from the memory whole; a head that threw in between is not mixed in', () => {
    const memory = new FieldMemory();
    const a = 'HTTP/1.1 200 OK\r\nServer: nginx\r\nX-A: one';
    const from = a.indexOf('\r\n') + 2;
    expect(parseFieldLines(a, from, 10, 'header', memory)).toEqual([
      ['server', 'nginx'],
      ['x-a', 'one'],
    ]);
    expect(memory.headBytes).toBe(a.length + 4);
    expect(parseFieldLines(a, from, 10, 'header', memory)).toEqual([
      ['server', 'nginx'],
      ['x-a', 'one'],
    ]);
    expect(memory.recalled).toBe(2);
    // Its first lines replace the remembered ones before a later line throws: the earlier head is then read anew.
    expect(() =>
      parseFieldLines('HTTP/1.1 200 OK\r\nServer: caddy\r\nX-A: two\r\nbad line', from, 10, 'header', memory),
    ).toThrow(H1ParseError);
    expect(parseFieldLines(a, from, 10, 'header', memory)).toEqual([
      ['server', 'nginx'],
      ['x-a', 'one'],
    ]);
  });
});

describe('splitHead', () => {
  const split = (s: string, memory: FieldMemory | null): [string, string] | null => {
    const h = splitHead(Buffer.from(s, 'latin1'), 4096, 'response', memory);
    return h && [h.text, h.rest.toString('latin1')];
  };
  /** A memory that has read `head`. */
  const after = (head: string): FieldMemory => {
    const m = new FieldMemory();
    parseFieldLines(head, head.indexOf('\r\n') + 2, 10, 'header', m);
    return m;
  };

  it('where the last head ended is tried first, and only taken when no head end comes before it', () => {
    const head = 'HTTP/1.1 200 OK\r\nA: b';
    const likely = after(head);
    expect(likely.head).toBe(head);
    expect(split(`${head}\r\n\r\nbody`, likely)).toEqual([head, 'body']);
    expect(split(`${head}\r\n\r\n`, likely)).toEqual([head, '']);
    // Shorter than the last one: its own end, the rest after it.
    expect(split('HTTP/1.1 200 OK\r\n\r\nA: b\r\n\r\n', likely)).toEqual(['HTTP/1.1 200 OK', 'A: b\r\n\r\n']);
    // A CRLF just before the four bytes makes an end two bytes earlier.
    expect(split('HTTP/1.1 200 OK\r\nA:\r\n\r\n\r\nx', likely)).toEqual(['HTTP/1.1 200 OK\r\nA:', '\r\nx']);
    // Longer, or not here yet.
    expect(split(`${head}xyz\r\n\r\n`, likely)).toEqual([`${head}xyz`, '']);
    expect(split(head, likely)).toBeNull();
    expect(split(`${head}\r\n\r\n`, null)).toEqual([head, '']);
    // As long as the last head, not it, with an end inside: that end.
    expect(split('HTTP/1.1 200 OK\r\n\r\n\r\n\r\nx', likely)).toEqual(['HTTP/1.1 200 OK', '\r\n\r\nx']);
    // A memory that kept no head (a line too long to keep) still gives where it ended.
    const long = `HTTP/1.1 200 OK\r\nA: ${'b'.repeat(300)}`;
    const noHead = after(long);
    expect(noHead.head).toBeNull();
    expect(split(`${long}\r\n\r\nrest`, noHead)).toEqual([long, 'rest']);
  });
});

describe('101 Switching Protocols (RFC 9110 §7.8)', () => {
  const parser = (heads: H1Head[]) =>
    new H1ResponseParser(
      { onHead: (h) => heads.push(h), onBody: () => {}, onTrailers: () => {}, onComplete: () => {} },
      { maxHeaderBytes: 4096, maxHeaderCount: 50 },
    );
  const switched = 'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n';

  it('to a request that asked: the final head, and every byte after it handed back unread', () => {
    const heads: H1Head[] = [];
    const p = parser(heads);
    p.expect('GET', true);
    const rest = p.execute(Buffer.from(`${switched}\x81\x05hello`, 'latin1'));
    expect(heads.map((h) => h.status)).toEqual([101]);
    expect(rest?.toString('latin1')).toBe('\x81\x05hello');
    expect(p.busy).toBe(false);
  });

  it('to a request that did not ask: malformed', () => {
    const p = parser([]);
    p.expect('GET');
    expect(() => p.execute(Buffer.from(switched, 'latin1'))).toThrow(/unexpected 101/);
  });
});
