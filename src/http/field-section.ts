/**
 * Field section rules of multiplexed HTTP, the same for HTTP/2 (RFC 9113
 * §8.2, §8.3) and HTTP/3 (RFC 9114 §4.2, §4.3). A section that breaks them
 * makes the message malformed: a stream error (h2 PROTOCOL_ERROR, RFC 9113
 * §8.1.1; h3 H3_MESSAGE_ERROR, RFC 9114 §4.1.2) for a received message, a
 * caller error for one we are asked to send.
 */
import { BAD_FIELD_VALUE_RE, isAuthority, isClean, CONTENT_LENGTH_RE, TARGET_RE, TOKEN_RE, trimOws } from './fields.js';
import type { HeaderList, SharedHeaderList } from './types.js';

export type SectionKind = 'request' | 'response' | 'trailers';

/** RFC 9113 §8.2.2, RFC 9114 §4.2: connection-specific fields are malformed. */
const CONNECTION_SPECIFIC: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
]);
const REQUEST_PSEUDO: ReadonlySet<string> = new Set([':method', ':scheme', ':authority', ':path']);
/** RFC 9110 §5.1 token characters, lower-case only (RFC 9114 §4.2: upper case is malformed). */
const NAME_RE = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
/** Field lines are octets, carried as latin1 strings (one char per octet). */
const NON_OCTET_RE = /[^\x00-\xff]/;
/** Either of the two above: one scan per value in the common case. */
const SUSPECT_VALUE_RE = /[\x00-\x08\x0a-\x1f\x7f\u0100-\uffff]/;
const STATUS_RE = /^[1-5][0-9][0-9]$/;
/**
 * What a regular field name is to these rules, in one lookup: names repeat across messages (mostly the
 * same string objects, from a static table or a decoder's cache), and a Set per rule cost a lookup each
 * per field. Only valid names are remembered; bounded, cleared when full.
 */
const NAME_REGULAR = 0;
const NAME_CONNECTION_SPECIFIC = 1;
const NAME_TE = 2;
const NAME_HOST = 3;
const NAME_INVALID = 4;
const NAME_CLASSES_MAX = 512;
const nameClasses = new Map<string, number>();
function nameClass(name: string): number {
  let c = nameClasses.get(name);
  if (c !== undefined) return c;
  if (!NAME_RE.test(name)) return NAME_INVALID;
  c = CONNECTION_SPECIFIC.has(name)
    ? NAME_CONNECTION_SPECIFIC
    : name === 'te'
      ? NAME_TE
      : name === 'host'
        ? NAME_HOST
        : NAME_REGULAR;
  if (nameClasses.size >= NAME_CLASSES_MAX) nameClasses.clear();
  nameClasses.set(name, c);
  return c;
}

/** RFC 9114 §4.2.2 (via RFC 9204 §3.2.1): name + value + 32 per line. */
export function fieldSectionSize(headers: SharedHeaderList): number {
  let n = 0;
  for (const [k, v] of headers) n += k.length + v.length + 32;
  return n;
}

/**
 * Appends a request's fields to the pseudo-headers in `headers`, to be sent over HTTP/2 or HTTP/3: names in lower
 * case (RFC 9113 §8.2.1, RFC 9114 §4.2), and a content-length for a body of known length that has none. Returns where
 * checkFieldSection may skip its per-value scan: after the pseudo-headers when the fields are clean (http/fields.ts:
 * our own parsers held each value to the rules already, and the list is sent as it is), else the list's end.
 */
export function appendRequestFields(headers: HeaderList, fields: HeaderList, bodyLength: number | null): number {
  const pseudo = headers.length;
  const clean = isClean(fields);
  let hasLength = false;
  for (const f of fields) {
    const name = clean ? f[0] : f[0].toLowerCase();
    if (name === 'content-length') hasLength = true;
    headers.push(name === f[0] ? f : [name, f[1]]);
  }
  if (bodyLength !== null && bodyLength > 0 && !hasLength) headers.push(['content-length', String(bodyLength)]);
  return clean ? pseudo : headers.length;
}

/**
 * Returns why `headers` is malformed as `kind`, or null when it is well formed.
 * `extendedConnect`: the receiver of a request advertised
 * SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3, RFC 9220 §3), so
 * `:protocol` is a known pseudo-header. `edgeWhitespace`: a value that
 * starts or ends with SP or HTAB is malformed too — RFC 9113 §8.2.1 says so
 * for HTTP/2 (nghttp2 and Node hold received messages to it); RFC 9114 does
 * not for HTTP/3, and an HTTP/1.1 hop strips such whitespace as OWS. `trustedFrom`: the index from which the values
 * need no scan (appendRequestFields).
 */
export function checkFieldSection(
  headers: SharedHeaderList,
  kind: SectionKind,
  extendedConnect = false,
  edgeWhitespace = false,
  trustedFrom = headers.length,
): string | null {
  // The pseudo-headers seen, in locals (no Map per message: this runs for every message both ways).
  let method: string | undefined;
  let scheme: string | undefined;
  let authority: string | undefined;
  let path: string | undefined;
  let protocol: string | undefined;
  let status: string | undefined;
  let regularSeen = false;
  let host: string | null = null;
  for (let i = 0; i < headers.length; i++) {
    const [name, value] = headers[i] as readonly [string, string];
    // From `trustedFrom` on the values are clean (appendRequestFields): the names are still classed below.
    if (i < trustedFrom && SUSPECT_VALUE_RE.test(value)) {
      if (BAD_FIELD_VALUE_RE.test(value)) return `field ${name} has a forbidden character in its value`;
      if (NON_OCTET_RE.test(value)) return `field ${name} has a character above U+00FF (send octets as latin1)`;
    }
    const last = edgeWhitespace ? value.length - 1 : -1;
    if (last >= 0) {
      const a = value.charCodeAt(0);
      const z = value.charCodeAt(last);
      if (a === 0x20 || a === 0x09 || z === 0x20 || z === 0x09)
        return `field ${name} has whitespace at the start or end of its value`;
    }
    if (name.charCodeAt(0) === 0x3a) {
      // RFC 9114 §4.3: pseudo-headers only before regular fields, once each, only the defined ones.
      if (regularSeen) return `pseudo-header ${name} after a regular field`;
      if (kind === 'trailers') return `pseudo-header ${name} in trailers`;
      const allowed =
        kind === 'request' ? REQUEST_PSEUDO.has(name) || (extendedConnect && name === ':protocol') : name === ':status';
      if (!allowed) return `pseudo-header ${name} not allowed in a ${kind}`;
      let dup = false;
      switch (name) {
        case ':method':
          dup = method !== undefined;
          method = value;
          break;
        case ':scheme':
          dup = scheme !== undefined;
          scheme = value;
          break;
        case ':authority':
          dup = authority !== undefined;
          authority = value;
          break;
        case ':path':
          dup = path !== undefined;
          path = value;
          break;
        case ':protocol':
          dup = protocol !== undefined;
          protocol = value;
          break;
        default:
          dup = status !== undefined;
          status = value;
          break; // ':status', the only one a response allows
      }
      if (dup) return `duplicate pseudo-header ${name}`;
      continue;
    }
    regularSeen = true;
    const cls = nameClass(name);
    if (cls === NAME_REGULAR) continue;
    if (cls === NAME_INVALID) return `invalid field name ${JSON.stringify(name)}`;
    if (cls === NAME_CONNECTION_SPECIFIC) return `connection-specific field ${name}`;
    if (cls === NAME_TE && value.trim().toLowerCase() !== 'trailers') return 'TE other than "trailers"';
    if (cls === NAME_HOST) host = value;
  }
  if (kind === 'request') {
    if (method === undefined || method === '') return 'missing :method';
    if (!TOKEN_RE.test(method)) return `invalid :method ${JSON.stringify(method.slice(0, 40))}`; // RFC 9110 §9.1: a token
    if (authority !== undefined && authority !== '' && !isAuthority(authority))
      return `invalid :authority ${JSON.stringify(authority.slice(0, 80))}`;
    if (protocol !== undefined) {
      // RFC 8441 §4: extended CONNECT names its protocol and carries :scheme, :path and :authority.
      if (method !== 'CONNECT') return ':protocol on a method other than CONNECT';
      if (!protocol) return 'empty :protocol';
      if (!scheme || !path || !authority) return 'extended CONNECT without :scheme, :path or :authority';
      if (!TARGET_RE.test(path)) return 'invalid :path (whitespace, a control character or a fragment)';
      return null;
    }
    if (method === 'CONNECT') {
      // RFC 9113 §8.5, RFC 9114 §4.4: CONNECT carries :authority only.
      if (!authority) return 'CONNECT without :authority';
      if (scheme !== undefined || path !== undefined) return 'CONNECT with :scheme or :path';
      return null;
    }
    if (!scheme) return 'missing :scheme';
    if (!path) return 'missing or empty :path';
    if (!TARGET_RE.test(path)) return 'invalid :path (whitespace, a control character or a fragment)';
    // RFC 9114 §4.3.1, RFC 9113 §8.3.1: a scheme with a mandatory authority (http, https) needs :authority or Host.
    if ((scheme === 'http' || scheme === 'https') && authority === undefined && host === null)
      return 'missing :authority and Host';
    // Whatever the scheme says, an authority given is not empty, and both given name the same host (compared without
    // case or the scheme's default port; RFC 9114 §4.3.1 MUST, RFC 9113 §8.3.1 SHOULD) — else routing by one and an
    // origin by the other disagree. A `:scheme: foo` stepped around these checks.
    if (authority === '' || host === '') return 'empty :authority or Host';
    if (authority !== undefined && host !== null && !sameAuthority(authority, host, scheme))
      return ':authority and Host differ';
    return null;
  }
  if (kind === 'response') {
    if (status === undefined) return 'missing :status';
    if (!STATUS_RE.test(status)) return `invalid :status ${JSON.stringify(status)}`;
    // RFC 9113 §8.6, RFC 9114 §4.5: no Upgrade, so 101 has no meaning here.
    if (status === '101') return ':status 101 in a multiplexed response';
  }
  return null;
}

/**
 * The message's content-length (RFC 9110 §8.6), null when absent; throws
 * a string reason when invalid or inconsistent.
 */
export function contentLengthOf(headers: SharedHeaderList): number | null | { error: string } {
  // RFC 9110 §8.6: a list of identical values may stand for one; "identical" as written ("5" and "05" differ).
  let text: string | null = null;
  for (const [name, value] of headers) {
    if (name !== 'content-length') continue;
    if (text === null && CONTENT_LENGTH_RE.test(value)) {
      text = value;
      continue;
    }
    for (const part of value.split(',')) {
      const t = trimOws(part);
      if (!CONTENT_LENGTH_RE.test(t)) return { error: `invalid content-length ${JSON.stringify(value)}` };
      if (text !== null && text !== t) return { error: 'conflicting content-length values' };
      text = t;
    }
  }
  return text === null ? null : Number(text);
}

/**
 * The declared body length of a head its protocol layer has already checked with
 * `contentLengthOf` (h1 parser, h2 connection, h3 request stream): null when absent — and
 * null, never a guess, for a value that did not pass that rule.
 */
export function declaredLength(headers: HeaderList): number | null {
  const cl = contentLengthOf(headers);
  return typeof cl === 'number' ? cl : null;
}

/** `:status` as a number (caller validated the section). */
export function statusOf(headers: SharedHeaderList): number {
  for (const [k, v] of headers) if (k === ':status') return Number(v);
  return 0;
}

export function methodOf(headers: HeaderList): string | null {
  for (const [k, v] of headers) if (k === ':method') return v;
  return null;
}

/** Two authorities the same host and port, without case and the scheme's default port. */
function sameAuthority(a: string, b: string, scheme: string): boolean {
  const port = scheme === 'https' ? ':443' : scheme === 'http' ? ':80' : null;
  const norm = (x: string): string => {
    const l = x.toLowerCase();
    return port !== null && l.endsWith(port) ? l.slice(0, -port.length) : l;
  };
  return a === b || norm(a) === norm(b);
}

/** What a received field section was found to be (checkReceived), and under which rules. */
export interface ReceivedVerdict {
  kind: SectionKind;
  extendedConnect: boolean;
  edgeWhitespace: boolean;
  /** checkFieldSection's answer: null when the section is well-formed. */
  why: string | null;
  /** contentLengthOf's, for a head that passed; null otherwise. */
  contentLength: ReturnType<typeof contentLengthOf>;
  /** fieldSectionSize's. */
  size: number;
  /** statusOf's, for a response that passed; 0 otherwise. */
  status: number;
}
const VERDICTS = new WeakMap<SharedHeaderList, ReceivedVerdict>();

/**
 * A received section's check (checkFieldSection with the receiver's rules), its Content-Length, size and status.
 * `kept`: the decoder hands this very list out again for the same bytes (codec/repeats.ts), so the verdict is kept
 * with it and a repeat is not checked again — the same fields under the same rules get the same answer.
 */
export function checkReceived(
  headers: SharedHeaderList,
  kind: SectionKind,
  extendedConnect: boolean,
  edgeWhitespace: boolean,
  kept: boolean,
): ReceivedVerdict {
  let v = kept ? VERDICTS.get(headers) : undefined;
  if (
    v !== undefined &&
    v.kind === kind &&
    v.extendedConnect === extendedConnect &&
    v.edgeWhitespace === edgeWhitespace
  )
    return v;
  const why = checkFieldSection(headers, kind, extendedConnect, edgeWhitespace);
  const head = why === null && kind !== 'trailers';
  v = {
    kind,
    extendedConnect,
    edgeWhitespace,
    why,
    contentLength: head ? contentLengthOf(headers) : null,
    size: fieldSectionSize(headers),
    status: head && kind === 'response' ? statusOf(headers) : 0,
  };
  if (kept) VERDICTS.set(headers, v);
  return v;
}
