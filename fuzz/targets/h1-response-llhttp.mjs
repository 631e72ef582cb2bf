// Differential: our HTTP/1.1 response parser (the client side, reading origins) against llhttp. A
// response the two frame differently is a desync between us and whatever else reads that origin's
// bytes, so: every response OUR parser completes (to a GET; several in a row, as on a kept-alive
// connection), llhttp must complete too, with the same status, version, field lines and body bytes.
// A body delimited by the connection's close counts once the input ends (both parsers are told).
// We may refuse more than llhttp, never less — with two deliberate differences that frame alike, where
// the comparison ends: a Content-Length repeated with the same value, which RFC 9110 §8.6 lets a
// recipient accept (origins in the wild send it), and Content-Length or Transfer-Encoding in a trailer
// section, which we drop (RFC 9110 §6.5.1) — llhttp refuses both.
import { H1ParseError, H1ResponseParser } from '../../dist/h1/parser.js';
import { assertSameAsLlhttp, chunks } from './_util.mjs';

function ours(parts) {
  const msgs = [];
  let cur = null;
  // A response that closes the connection is the last one read on it (the transport closes; RFC 9112 §9.6).
  let last = false;
  const p = new H1ResponseParser(
    {
      onHead(h) {
        cur = { status: h.status, minor: h.minor, headers: h.headers.map(([n, v]) => `${n}: ${v}`), body: [] };
        last = !h.keepAlive;
      },
      onBody(c) {
        cur.body.push(Buffer.from(c));
      },
      onTrailers(t) {
        if (t.some(([n]) => n === 'content-length' || n === 'transfer-encoding')) cur.framingTrailers = true;
      },
      onComplete() {
        msgs.push({ ...cur, body: Buffer.concat(cur.body).toString('latin1') });
        cur = null;
      },
    },
    { maxHeaderBytes: 4096, maxHeaderCount: 64 },
  );
  p.expect('GET');
  try {
    for (const c of parts) {
      let rest = p.execute(Buffer.from(c));
      // The next response on the same connection: ask for it and go on with the same bytes.
      for (let n = 0; rest && rest.length && !last && n < 64; n++) {
        p.expect('GET');
        rest = p.execute(rest);
      }
      if (last && msgs.length && cur === null) return msgs;
    }
    p.eof();
  } catch (e) {
    if (!(e instanceof H1ParseError)) throw e;
  }
  return msgs;
}

export function fuzz(data) {
  if (data.length === 0) return;
  // The deliberate differences (above): a repeated identical Content-Length, framing fields in trailers.
  assertSameAsLlhttp('response', ours(chunks(data)), data.subarray(1), (a, other, i) => {
    const lengths = a.headers.filter((h) => h.startsWith('content-length: '));
    return (
      (other.length === i &&
        other.error === 'HPE_UNEXPECTED_CONTENT_LENGTH' &&
        lengths.length > 1 &&
        new Set(lengths).size === 1) ||
      a.framingTrailers === true
    );
  });
}
