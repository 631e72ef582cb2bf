// Shared by the fuzz targets: split an input into chunks whose sizes come from its first byte,
// so stream parsers see every way of being fed (whole, byte by byte, odd splits).
export function chunks(data) {
  if (data.length === 0) return [];
  const step = (data[0] % 17) + 1;
  const body = data.subarray(1);
  if (data[0] >= 240) return [body];
  const out = [];
  for (let i = 0; i < body.length; i += step) out.push(body.subarray(i, i + step));
  return out;
}

/** Rethrow anything that is not one of the expected typed errors: that is a bug the fuzzer found. */
export function expectOnly(fn, ...types) {
  try {
    fn();
  } catch (e) {
    if (!types.some((t) => e instanceof t)) throw e;
  }
}

// ---- differential fuzzing against llhttp (Node's own HTTP/1.1 parser, strict mode) ----
import { createRequire } from 'node:module';

const { HTTPParser, methods: LLHTTP_METHODS } = createRequire(import.meta.url)('_http_common');
export const LLHTTP_KNOWN_METHODS = new Set(LLHTTP_METHODS);

/**
 * llhttp's messages for `data` (one buffer: its framing does not depend on how bytes arrive):
 * { method | status, target, minor, headers: ['name: value'], body (latin1) }, and `error`, the HPE
 * code it stopped with (null if none). `kind` 'request' or 'response'; responses are to GETs.
 */
export function llhttpMessages(kind, data) {
  const msgs = [];
  let cur = null;
  let headers = [];
  let url = '';
  const p = new HTTPParser();
  p.initialize(kind === 'request' ? HTTPParser.REQUEST : HTTPParser.RESPONSE, {}, 1 << 20, HTTPParser.kLenientNone);
  p[HTTPParser.kOnHeaders] = (h, u) => {
    headers.push(...h);
    url += u ?? '';
  };
  p[HTTPParser.kOnHeadersComplete] = (major, minor, h, method, u, status) => {
    const hs = h ?? headers;
    const target = u ?? url;
    headers = [];
    url = '';
    const fields = [];
    for (let i = 0; i < hs.length; i += 2) fields.push(`${hs[i].toLowerCase()}: ${hs[i + 1]}`);
    cur =
      kind === 'request'
        ? { method: LLHTTP_METHODS[method], target, minor, headers: fields, body: [] }
        : { status, minor, headers: fields, body: [] };
    return 0;
  };
  p[HTTPParser.kOnBody] = (b, start, len) => {
    cur.body.push(Buffer.from(start === undefined ? b : b.subarray(start, start + len)));
  };
  p[HTTPParser.kOnMessageComplete] = () => {
    // 1xx interim responses are not messages of their own for the comparison (our parser skips them).
    if (!(kind === 'response' && cur.status < 200))
      msgs.push({ ...cur, body: Buffer.concat(cur.body).toString('latin1') });
    cur = null;
    headers = [];
    url = '';
  };
  const r = p.execute(Buffer.from(data));
  let error = r instanceof Error ? r.code : null;
  if (error === null) {
    const f = p.finish();
    if (f instanceof Error) error = f.code;
  }
  p.close?.();
  msgs.error = error;
  return msgs;
}

/** Same message (as both parsers report it)? */
export function sameMessage(a, b) {
  return (
    !!b &&
    a.method === b.method &&
    a.status === b.status &&
    a.target === b.target &&
    a.minor === b.minor &&
    a.body === b.body &&
    a.headers.length === b.headers.length &&
    a.headers.every((h, j) => h === b.headers[j])
  );
}

/**
 * The differential rule: every message of ours (completed by our parser from `data`) llhttp completes
 * alike, in order. `differs(msg, llhttp, i)` names a deliberate difference that ends the comparison.
 */
export function assertSameAsLlhttp(kind, mine, data, differs) {
  if (mine.length === 0) return;
  let other = llhttpMessages(kind, data);
  for (let i = 0; i < mine.length; i++) {
    if (differs(mine[i], other, i)) return;
    // One difference every h1 target shares: RFC 9110 §5.5 makes HTAB after a field value OWS, not
    // part of it, and we strip it from Content-Length as from any field; llhttp's strict mode refuses
    // "Content-Length: 5<HTAB>" (trailing SP it accepts). Nothing frames otherwise: llhttp must then
    // agree on the same bytes with those tabs turned into spaces (same length, so same offsets).
    if (other.length === i && other.error === 'HPE_INVALID_CONTENT_LENGTH' && !other.owsRetried) {
      const spaced = Buffer.from(
        Buffer.from(data)
          .toString('latin1')
          .replace(/(\ncontent-length:[ \t]*\d+)([ \t]+)(?=\r\n)/gi, (_, a, ws) => a + ' '.repeat(ws.length)),
        'latin1',
      );
      other = llhttpMessages(kind, spaced);
      other.owsRetried = true;
      i--;
      continue;
    }
    if (!sameMessage(mine[i], other[i])) {
      throw new Error(
        `parsers disagree on ${kind} ${i}: ours ${JSON.stringify(mine[i])} llhttp ${JSON.stringify(other[i] ?? null)}`,
      );
    }
    if (mine[i].upgrade) return;
  }
}
