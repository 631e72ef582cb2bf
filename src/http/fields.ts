/**
 * Connection-specific ("hop-by-hop") fields: one rule for the Agent's
 * request headers, the service's upstream and downstream headers and
 * trailers (RFC 9110 §7.6.1). HTTP/2 and HTTP/3 forbid them outright
 * (RFC 9113 §8.2.2, RFC 9114 §4.2), so stripping them is right for every
 * protocol we speak upstream.
 */
import { ipFamily } from '../util/ip.js';
import { NameSet } from '../util/name-set.js';

/** RFC 9110 §5.6.2: a token (field names, methods, Alt-Svc protocol ids, transfer codings). */
export const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * `test`, remembered for the strings that passed it: field names repeat across messages (most are the
 * same string objects every time, from a static table or a decoder's cache, so the lookup hashes
 * nothing). A bounded set, cleared when full; a string that fails is tested again each time.
 */
export function remembered(test: (s: string) => boolean, max = 512): (s: string) => boolean {
  const passed = new Set<string>();
  return (s) => {
    if (passed.has(s)) return true;
    if (!test(s)) return false;
    if (passed.size >= max) passed.clear();
    passed.add(s);
    return true;
  };
}

/** RFC 3986 §3.2.2 reg-name (an IPv4 address is one too), then §3.2.3 `:` port. */
const NAME_AUTHORITY_RE = /^[A-Za-z0-9.\-_~%!$&'()*+,;=]+(?::[0-9]*)?$/;
/** RFC 3986 §3.2.2 IP-literal, then the port: what is between the brackets must be an IPv6 address (ipFamily). */
const IP_LITERAL_AUTHORITY_RE = /^\[([0-9A-Fa-f:.]+)\](?::[0-9]*)?$/;

/**
 * An authority as Host or :authority carries it, host[:port] (RFC 3986 §3.2): a reg-name or IPv4 address, or an
 * IPv6 address in brackets — one rule for the HTTP/1.1 parser's Host and for every front's authority. Brackets
 * around anything else (`[internal.example]`) are not a host: routed as its name, it reached a route that the
 * client's own name did not.
 */
export function isAuthority(s: string): boolean {
  if (s.charCodeAt(0) !== 0x5b) return NAME_AUTHORITY_RE.test(s);
  const m = IP_LITERAL_AUTHORITY_RE.exec(s);
  return m !== null && ipFamily(m[1] as string) === 6;
}

/** A field name we send over HTTP/1.1 is a token (RFC 9110 §5.1), remembered. */
export const isFieldName = remembered((s) => TOKEN_RE.test(s));

/**
 * Field lists whose every name is a lower-case token and every value octets (no character above U+00FF: read as
 * latin1) free of what BAD_FIELD_VALUE_RE finds, with no connection-specific field: lists built by our own code from
 * fields our parsers already held to those rules (the forwarder's upstream request fields). The Agent, the HTTP/1.1
 * serializer and the HTTP/2 and HTTP/3 clients (field-section.ts appendRequestFields) send such a list as it is
 * instead of checking, lower-casing and copying it again. The mark is a property under a symbol of this module on the
 * list object (a copy, a filter or a spread is not marked); only code of this package sets it, once the list is
 * complete (a list changed after would be sent unchecked, so none is). A WeakSet cost ~0.7 µs per request here
 * (identity hash, ephemeron table).
 */
const CLEAN = Symbol('originlink.cleanFields');
export function markClean<T extends ReadonlyArray<readonly [string, string]>>(list: T): T {
  (list as unknown as Record<symbol, boolean>)[CLEAN] = true;
  return list;
}
export function isClean(list: ReadonlyArray<readonly [string, string]>): boolean {
  return (list as unknown as Record<symbol, boolean | undefined>)[CLEAN] === true;
}

/**
 * A character no field value may carry, received or sent, in any protocol: RFC 9110 §5.5 allows
 * VCHAR, obs-text, SP and HTAB; CR, LF and NUL are dangerous (a recipient MUST reject or replace them;
 * RFC 9113 §8.2.1 and RFC 9114 §4.2 make them malformed), the other controls and DEL are outside the
 * grammar (RFC 9113 §8.2.1 lets a recipient treat them as malformed; llhttp's strict mode and HAProxy
 * refuse them). A proxy that passed them on would hand the next parser bytes it may read otherwise.
 */
export const BAD_FIELD_VALUE_RE = /[\x00-\x08\x0a-\x1f\x7f]/;

/**
 * RFC 9110 §8.6: Content-Length = 1*DIGIT. At most 15 digits, so that the number stays exact (a safe
 * integer) — longer is refused, as nginx refuses what overflows its off_t. One rule for every parser and
 * protocol.
 */
export const CONTENT_LENGTH_RE = /^[0-9]{1,15}$/;

/**
 * A request target's characters, on every protocol (RFC 9112 §3.2 and RFC 3986 for HTTP/1.1's request line; RFC 9113
 * §8.3.1 and RFC 9114 §4.3.1 for :path): visible ASCII and obs-text (passed on, as nginx does) — no whitespace, no
 * control character, and no `#` (a fragment is never sent).
 */
export const TARGET_RE = /^[\x21\x22\x24-\x7e\x80-\xff]+$/;

/**
 * RFC 9110 §5.5: only OWS (SP, HTAB) around a value is dropped. String.prototype.trim() would also take
 * a bare CR or LF and the obs-text byte 0xA0 (NBSP in latin1) off the ends.
 */
export function trimOws(v: string): string {
  let a = 0;
  let b = v.length;
  while (a < b && (v.charCodeAt(a) === 0x20 || v.charCodeAt(a) === 0x09)) a++;
  while (b > a && (v.charCodeAt(b - 1) === 0x20 || v.charCodeAt(b - 1) === 0x09)) b--;
  return a === 0 && b === v.length ? v : v.slice(a, b);
}

/**
 * Always connection-specific: RFC 9110 §7.6.1 lists Connection, Proxy-Connection,
 * Keep-Alive, TE, Transfer-Encoding and Upgrade; Host becomes :authority or is
 * rewritten per hop; HTTP2-Settings belongs to the h2c upgrade (RFC 7540 §3.2.1).
 * TE is handled apart (`te: trailers` may cross, see keepTe). Expect and Trailer
 * are answered or rebuilt per hop by whoever frames the message.
 */
export const HOP_BY_HOP = new NameSet([
  'connection',
  'proxy-connection',
  'keep-alive',
  'te',
  'transfer-encoding',
  'upgrade',
  'host',
  'http2-settings',
  'expect',
  'trailer',
]);

const NONE: ReadonlySet<string> = new Set();

/**
 * Field names listed in Connection (lower-case), beyond the fixed set. RFC 9110 §7.6.1: they go too. One pass over
 * the list; nothing made when it has no Connection field, or only one naming a field that goes anyway (the usual
 * `keep-alive`).
 */
export function connectionNamed(pairs: ReadonlyArray<readonly [string, string]>): ReadonlySet<string> {
  let out: Set<string> | null = null;
  for (let i = 0; i < pairs.length; i++) {
    const f = pairs[i] as readonly [string, string];
    if (f[0] !== 'connection') continue;
    const v = f[1];
    if (HOP_BY_HOP.has(v)) continue;
    for (const t of v.split(',')) {
      const name = t.trim().toLowerCase();
      if (name && !HOP_BY_HOP.has(name)) (out ??= new Set()).add(name);
    }
  }
  return out ?? NONE;
}

/**
 * Is `name` (lower-case) connection-specific, given the names Connection listed? `proxy-*` fields never cross either.
 */
export function isHopByHop(name: string, named: ReadonlySet<string> = NONE): boolean {
  return HOP_BY_HOP.has(name) || (named.size > 0 && named.has(name)) || name.startsWith('proxy-');
}

/** RFC 9110 §10.1.4: `TE: trailers` is the one TE value that may be sent on (and the only one allowed in h2/h3). */
export function teAllowsTrailers(value: string): boolean {
  return /(^|,)\s*trailers\s*(;|,|$)/i.test(value);
}

/**
 * End-to-end fields of a list whose names are lower-case: the fixed set,
 * the names Connection lists and `proxy-*` removed; `te` kept as `trailers`
 * only when it asked for them.
 */
export function endToEnd(list: ReadonlyArray<readonly [string, string]>): Array<[string, string]> {
  const named = connectionNamed(list);
  const out: Array<[string, string]> = [];
  for (const f of list) {
    const n = f[0];
    if (n === 'te') {
      if (teAllowsTrailers(f[1])) out.push(['te', 'trailers']);
      continue;
    }
    if (isHopByHop(n, named)) continue;
    out.push(f as [string, string]); // field pairs are never mutated: the copy shares them
  }
  return out;
}
