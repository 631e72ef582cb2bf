/**
 * The bytes the HTTP/1.1 parsers hold between reads (HeldBytes, src/h1/fields.ts): a head, a response head or a
 * trailer section that arrives in pieces parses as it does whole, wherever the pieces split it (the end CR LF CR LF
 * across two, three or four reads included), and the bytes searched for its end grow with its length, not with its
 * length squared — the request head comes from any client, the response head from any origin.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { H1ParseError } from '../../src/h1/fields.js';
import { H1ResponseParser } from '../../src/h1/parser.js';
import { H1RequestParser } from '../../src/h1/request-parser.js';

/** Seeded pieces: mostly 1–4 bytes, sometimes larger, so every split of CR LF CR LF comes up. */
function pieces(buf: Buffer, seed: number): Buffer[] {
  let s = seed;
  const rnd = (): number => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x7fffffff;
  };
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; ) {
    const n = rnd() < 0.8 ? 1 + Math.floor(rnd() * 4) : 1 + Math.floor(rnd() * 64);
    out.push(buf.subarray(i, i + n));
    i += n;
  }
  return out;
}

function requests(parts: Buffer[]): string[] {
  const events: string[] = [];
  const p = new H1RequestParser(
    {
      onHead: (h) => events.push(`head ${h.method} ${h.target} ${JSON.stringify(h.headers)}`),
      onBody: (c) => events.push(`body ${c.toString('latin1')}`),
      onTrailers: (t) => events.push(`trailers ${JSON.stringify(t)}`),
      onComplete: () => events.push('complete'),
    },
    { maxHeaderBytes: 8192, maxHeaderCount: 100 },
  );
  try {
    for (const part of parts) p.execute(part);
  } catch (e) {
    if (!(e instanceof H1ParseError)) throw e;
    events.push(`error ${e.kind}`);
  }
  events.push(`eof ${p.eof()}`);
  return events;
}

function responses(parts: Buffer[], count: number): string[] {
  const events: string[] = [];
  const p = new H1ResponseParser(
    {
      onHead: (h) => events.push(`head ${h.status} ${JSON.stringify(h.headers)}`),
      onBody: (c) => events.push(`body ${c.toString('latin1')}`),
      onTrailers: (t) => events.push(`trailers ${JSON.stringify(t)}`),
      onComplete: () => {
        events.push('complete');
        if (--count > 0) p.expect('GET');
      },
    },
    { maxHeaderBytes: 8192, maxHeaderCount: 100 },
  );
  p.expect('GET');
  try {
    for (const part of parts) {
      const rest = p.execute(part);
      if (rest !== null) events.push(`rest ${rest.length}`);
    }
  } catch (e) {
    if (!(e instanceof H1ParseError)) throw e;
    events.push(`error ${e.kind}`);
  }
  return events;
}

/** Body events joined: how a body is cut into onBody calls depends on the reads, its bytes do not. */
const joined = (events: string[]): string[] =>
  events.reduce<string[]>((out, e) => {
    const last = out[out.length - 1];
    if (e.startsWith('body ') && last?.startsWith('body ')) out[out.length - 1] = last + e.slice(5);
    else out.push(e);
    return out;
  }, []);

const REQUESTS = [
  'GET /a HTTP/1.1\r\nhost: o.test\r\nx-one: 1\r\n\r\n',
  '\r\nPOST /b HTTP/1.1\r\nhost: o.test\r\ncontent-length: 5\r\n\r\nhello',
  'POST /c HTTP/1.1\r\nhost: o.test\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\nx-u: 2\r\n\r\n',
  'GET /d HTTP/1.1\r\nhost: o.test\r\n\r\n',
].join('');

const RESPONSES = [
  'HTTP/1.1 200 OK\r\ncontent-length: 3\r\nx-a: 1\r\n\r\nabc',
  'HTTP/1.1 103 Early Hints\r\nlink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nx-t: 9\r\n\r\n',
  'HTTP/1.1 204 No Content\r\nx-b: 2\r\n\r\n',
].join('');

describe('HeldBytes: a head in pieces', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('pipelined requests (leading CRLF, a counted body, chunked with trailers) parse as they do whole, for 200 seeded splits', () => {
    const buf = Buffer.from(REQUESTS, 'latin1');
    const whole = joined(requests([buf]));
    expect(whole.filter((e) => e === 'complete')).toHaveLength(4);
    for (let seed = 1; seed <= 200; seed++) expect(joined(requests(pieces(buf, seed))), `seed ${seed}`).toEqual(whole);
  });

  it('responses (an interim one, chunked with trailers, a 204) parse as they do whole, for 200 seeded splits', () => {
    const buf = Buffer.from(RESPONSES, 'latin1');
    const whole = joined(responses([buf], 3));
    expect(whole.filter((e) => e === 'complete')).toHaveLength(3);
    for (let seed = 1; seed <= 200; seed++)
      expect(joined(responses(pieces(buf, seed), 3)), `seed ${seed}`).toEqual(whole);
  });

  it('a head over the limit is refused however it arrives; one ending in bare LFs too', () => {
    const big = Buffer.from(`GET / HTTP/1.1\r\nhost: o.test\r\nx-big: ${'a'.repeat(9000)}\r\n\r\n`, 'latin1');
    for (let seed = 1; seed <= 5; seed++) expect(requests(pieces(big, seed))).toContain('error too-large');
    const lf = Buffer.from('GET / HTTP/1.1\nhost: o.test\n\n', 'latin1');
    for (let seed = 1; seed <= 20; seed++) expect(requests(pieces(lf, seed))).toContain('error malformed');
  });

  /** Bytes handed to Buffer#indexOf while `feed` runs: the search for a head's end is the parsers' only use of it. */
  function searched(feed: () => void): number {
    let bytes = 0;
    const original = Buffer.prototype.indexOf;
    vi.spyOn(Buffer.prototype, 'indexOf').mockImplementation(function (
      this: Buffer,
      ...args: Parameters<Buffer['indexOf']>
    ) {
      bytes += this.length;
      return original.apply(this, args);
    });
    feed();
    vi.restoreAllMocks();
    return bytes;
  }

  it('a head sent a byte at a time is searched in bytes linear in its length (was its length squared)', () => {
    let req = 'GET / HTTP/1.1\r\nhost: o.test\r\n';
    for (let i = 0; req.length < 8000; i++) req += `x-h${i}: ${'v'.repeat(40)}\r\n`;
    const reqBytes = Buffer.from(`${req}\r\n`, 'latin1');
    const n = reqBytes.length;
    const inRequests = searched(() =>
      requests(pieces(reqBytes, 0).flatMap((p) => [...p].map((b) => Buffer.from([b])))),
    );
    // Joined and searched again on every byte, this was n²/2 ≈ 32 million bytes; each byte is searched a few times now.
    expect(inRequests).toBeLessThan(20 * n);

    let res = 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n';
    for (let i = 0; res.length < 8000; i++) res += `x-h${i}: ${'v'.repeat(40)}\r\n`;
    const resBytes = Buffer.from(`${res}\r\n`, 'latin1');
    const inResponses = searched(() =>
      responses(
        [...resBytes].map((b) => Buffer.from([b])),
        1,
      ),
    );
    expect(inResponses).toBeLessThan(20 * resBytes.length);

    const trailer =
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n' +
      Array.from({ length: 150 }, (_, i) => `x-t${i}: ${'v'.repeat(40)}\r\n`).join('') +
      '\r\n';
    const trBytes = Buffer.from(trailer, 'latin1');
    const inTrailers = searched(() =>
      expect(
        responses(
          [...trBytes].map((b) => Buffer.from([b])),
          1,
        ),
      ).toContain('complete'),
    );
    expect(inTrailers).toBeLessThan(20 * trBytes.length);
  });
});
