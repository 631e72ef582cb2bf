// Differential: our HTTP/1.1 request parser against llhttp (Node's own parser, a second implementation
// of RFC 9112, strict mode). Smuggling lives in the gap between two parsers that frame the same bytes
// differently, so the rule is: every message OUR parser completes, llhttp must complete too, with the
// same method, target, version, field lines and body bytes, in the same order. Where llhttp refuses a
// message we accept, or frames it otherwise, that is a finding. (The other way round is allowed: we
// refuse more than llhttp.) Three deliberate differences end the comparison at that message, none of
// which changes where a message ends: an extension method (llhttp refuses any method outside its fixed
// list; RFC 9110 §9.1 allows any token), obs-text (bytes 0x80–0xFF) in the target, which we pass on as
// nginx does and llhttp's strict mode refuses, and an HTTP/1.x minor version above 1, which RFC 9110
// §2.5 says to process as HTTP/1.1 and llhttp refuses. And one that ends it after a message: an Upgrade we
// ignore (one naming h2c, or on a request with content, RFC 9110 §7.8), after which llhttp stops (the rest is
// the new protocol's to it) and we read on.
import { H1ParseError } from '../../dist/h1/fields.js';
import { H1RequestParser } from '../../dist/h1/request-parser.js';
import { assertSameAsLlhttp, chunks, LLHTTP_KNOWN_METHODS } from './_util.mjs';

/** llhttp's refusals for the deliberate differences (above), at the message where they stop it. */
const LENIENT = new Set(['HPE_INVALID_VERSION']);

/** Our parser's messages for `data` fed in `parts`; stops at an error or an upgrade. */
function ours(parts) {
  const msgs = [];
  let cur = null;
  let ignored = false;
  const p = new H1RequestParser(
    {
      onHead(h) {
        const asked =
          h.headers.some(([n]) => n === 'upgrade') &&
          h.headers.some(([n, v]) => n === 'connection' && /(^|,)\s*upgrade\s*(,|$)/i.test(v));
        cur = {
          method: h.method,
          target: h.target,
          minor: h.minor,
          headers: h.headers.map(([n, v]) => `${n}: ${v}`),
          body: [],
          upgrade: h.upgrade !== null || h.method === 'CONNECT',
          afterIgnoredUpgrade: ignored,
        };
        if (asked && h.upgrade === null && h.minor === 1) ignored = true;
      },
      onBody(c) {
        cur.body.push(Buffer.from(c));
      },
      onTrailers() {},
      onComplete() {
        msgs.push({ ...cur, body: Buffer.concat(cur.body).toString('latin1') });
        cur = null;
      },
    },
    { maxHeaderBytes: 4096, maxHeaderCount: 64 },
  );
  try {
    for (const c of parts) {
      const rest = p.execute(Buffer.from(c));
      // A pause (upgrade, CONNECT): what follows is not HTTP/1.1 any more; stop comparing there.
      if (rest) break;
    }
  } catch (e) {
    if (!(e instanceof H1ParseError)) throw e;
  }
  return msgs;
}

export function fuzz(data) {
  if (data.length === 0) return;
  // The deliberate differences (above): an extension method, obs-text in the target, llhttp's refusal of a minor above 1.
  assertSameAsLlhttp(
    'request',
    ours(chunks(data)),
    data.subarray(1),
    (a, other, i) =>
      a.afterIgnoredUpgrade ||
      !LLHTTP_KNOWN_METHODS.has(a.method) ||
      /[\x80-\xff]/.test(a.target) ||
      (other.length === i && LENIENT.has(other.error)),
  );
}
