/**
 * Header rules of the forwarder, pure: request checks (limits, framing),
 * the upstream header list, and the response headers sent back.
 */
import type { ClientCertificate } from '../server/client-certificate.js';
import type { HeaderList } from '../http/types.js';
import {
  connectionNamed,
  isAuthority,
  CONTENT_LENGTH_RE,
  HOP_BY_HOP,
  isHopByHop,
  teAllowsTrailers,
} from '../http/fields.js';
import type { ForwardedPolicy, LimitsConfig } from './config.js';
import { NameSet } from '../util/name-set.js';

export type Reject = { status: 400 | 413 | 431; reason: string };

export interface RequestFacts {
  /** Declared Content-Length, or null. */
  contentLength: number | null;
  chunked: boolean;
  /** Authority from Host or :authority. */
  authority: string | null;
  teTrailers: boolean;
}

/**
 * Check a request head against the limits and the framing rules: `fields`
 * are the regular fields (lower-case names, wire order), `authority` the
 * :authority of a multiplexed request (null for HTTP/1.1, whose Host is in
 * `fields`). Our HTTP/1.1 parser refuses the framing errors first
 * (src/h1/request-parser.ts); these checks hold for every front alike.
 * Field values are not checked for forbidden characters here: every server
 * refused such a request already (ServerRequest.headers).
 */
export function inspectRequest(
  fields: HeaderList,
  authority: string | null,
  h2: boolean,
  limits: LimitsConfig,
  http10 = false,
): Reject | RequestFacts {
  let bytes = 0;
  let count = 0;
  let cl: string | null = null;
  let clCount = 0;
  let te: string[] | null = null;
  let hosts = 0;
  let host: string | null = null;
  let teTrailers = false;
  if (authority !== null) bytes += authority.length + 14;
  for (const [name, value] of fields) {
    bytes += name.length + value.length + 4;
    count++;
    switch (name) {
      case 'content-length':
        cl = value;
        clCount++;
        break;
      case 'transfer-encoding':
        (te ??= []).push(value);
        break;
      case 'host':
        hosts++;
        host = value;
        break;
      case 'te':
        if (teAllowsTrailers(value)) teTrailers = true;
        break;
    }
  }
  if (count > limits.maxHeaderCount) return { status: 431, reason: `more than ${limits.maxHeaderCount} header fields` };
  if (bytes > limits.maxHeaderBytes)
    return { status: 431, reason: `header section larger than ${limits.maxHeaderBytes} bytes` };
  // RFC 9112 §6.3 (3): CL with TE is a smuggling signature; a proxy MUST NOT forward it as is. We refuse it.
  if (clCount > 0 && te !== null) return { status: 400, reason: 'both Content-Length and Transfer-Encoding' };
  // RFC 9110 §8.6: differing or repeated Content-Length values are unrecoverable framing errors.
  if (clCount > 1) return { status: 400, reason: 'duplicate Content-Length' };
  let contentLength: number | null = null;
  if (cl !== null) {
    if (!CONTENT_LENGTH_RE.test(cl)) return { status: 400, reason: 'invalid Content-Length' };
    contentLength = Number(cl);
  }
  let chunked = false;
  if (te !== null) {
    // RFC 9113 §8.2.2: Transfer-Encoding in HTTP/2 makes the request malformed.
    if (h2) return { status: 400, reason: 'Transfer-Encoding in HTTP/2' };
    const codings = te
      .join(',')
      .split(',')
      .map((s) => s.trim().toLowerCase())
      .filter(Boolean);
    // RFC 9112 §6.3 (4): chunked must be the final coding, exactly once, else 400.
    if (codings.length !== 1 || codings[0] !== 'chunked')
      return { status: 400, reason: 'unsupported Transfer-Encoding' };
    chunked = true;
  }
  if (!h2) {
    // RFC 9112 §3.2: an HTTP/1.1 request without Host, or any with more than one, gets 400. An empty Host is what a
    // client sends for a target without an authority (§3.2): nothing a route or an origin can be named by here.
    // HTTP/1.0 had no Host: such a request routes by path alone (authority ''), its origin's own name sent on.
    if (hosts > 1) return { status: 400, reason: 'more than one Host' };
    if (hosts === 1 && !host) return { status: 400, reason: 'empty Host' };
    if (hosts === 0 && !http10) return { status: 400, reason: 'missing Host' };
    authority ??= host ?? ''; // an absolute-form target's authority, when given, replaces Host (RFC 9112 §3.2.2)
  } else if (authority === null && host !== null) {
    authority = host;
  }
  if (authority !== null && authority !== '' && !isAuthority(authority)) return { status: 400, reason: 'invalid Host' };
  if (limits.maxBodyBytes > 0 && contentLength !== null && contentLength > limits.maxBodyBytes) {
    return { status: 413, reason: `body larger than ${limits.maxBodyBytes} bytes` };
  }
  return { contentLength, chunked, authority, teTrailers };
}

export function isReject(x: Reject | RequestFacts): x is Reject {
  return 'status' in x;
}

export interface UpstreamHeaderInput {
  clientIp: string;
  /** Scheme the client used at our front. */
  proto: 'http' | 'https';
  /** Client's authority (Host / :authority). */
  authority: string;
  /** `1.1`, `2` or `3`. */
  clientVersion: string;
  via: string;
  xff: ForwardedPolicy;
  teTrailers: boolean;
  /** Pass on field names with `_` (`proxy.underscoresInHeaders`); false drops them. */
  underscores: boolean;
  /** The request came in early data (ServerRequest.earlyData): it leaves marked `Early-Data: 1`. */
  earlyData: boolean;
  /**
   * The front's `tls.clientCertHeader` and the client certificate it verified (null: none): the client's own field
   * of that name is dropped (never believed), ours added when there is a certificate. Null: no such field.
   */
  clientCert?: { name: string; cert: ClientCertificate | null } | null;
}

/**
 * The field value for a verified client certificate, in the form of Envoy's x-forwarded-client-cert (what origins
 * behind a mesh already parse): `Hash=<SHA-256 hex>;Subject="<DN>"`, `"` and `\` escaped, anything outside
 * printable ASCII as `?`.
 */
export function clientCertField(c: ClientCertificate): string {
  const subject = c.subject.replace(/[^\x20-\x7e]/g, '?').replace(/["\\]/g, '\\$&');
  return `Hash=${c.fingerprint};Subject="${subject}"`;
}

/**
 * Other fields that describe the forwarding hop, which `xForwardedFor: replace` does not let a client write either:
 * RFC 7239 Forwarded (frameworks prefer it to X-Forwarded-*: Spring's ForwardedHeaderFilter) and the X-Real-IP,
 * X-Forwarded-Port and X-Forwarded-Prefix that nginx setups and frameworks read. `append` passes them on, as nginx.
 */
const CLIENT_FORWARDING = new NameSet(['forwarded', 'x-real-ip', 'x-forwarded-port', 'x-forwarded-prefix']);

/** End-to-end request fields for the upstream (`fields`: lower-case names), with Via and X-Forwarded-* added. */
export function upstreamHeaders(fields: HeaderList, o: UpstreamHeaderInput): HeaderList {
  const named = connectionNamed(fields);
  const out: HeaderList = [];
  let xff: string[] | null = null;
  let via: string[] | null = null;
  const forwarded = o.xff !== 'off';
  const replace = o.xff === 'replace';
  const certField = o.clientCert?.name ?? null;
  for (const f of fields) {
    const n = f[0];
    if (n.charCodeAt(0) === 0x3a || isHopByHop(n, named)) continue;
    if (n === certField) continue;
    // A name with `_` is dropped (nginx's underscores_in_headers off): CGI-style origins map `_` and `-` to one name,
    // so `Transfer_Encoding` beside Content-Length would be read there as a second framing.
    if (!o.underscores && n.includes('_')) continue;
    if (n === 'via') {
      (via ??= []).push(f[1]);
      continue;
    }
    if (replace && CLIENT_FORWARDING.has(n)) continue;
    if (forwarded && (n === 'x-forwarded-for' || n === 'x-forwarded-proto' || n === 'x-forwarded-host')) {
      if (n === 'x-forwarded-for') (xff ??= []).push(f[1]);
      continue;
    }
    out.push(f); // field pairs are never mutated: copies of a list share them
  }
  // RFC 9110 §7.6.3: each intermediary appends received-protocol and a pseudonym.
  const hop = `${o.clientVersion} ${o.via}`;
  out.push(['via', via ? `${via.join(', ')}, ${hop}` : hop]);
  if (forwarded) {
    out.push(['x-forwarded-for', o.xff === 'append' && xff ? `${xff.join(', ')}, ${o.clientIp}` : o.clientIp]);
    out.push(['x-forwarded-proto', o.proto]);
    if (o.authority !== '') out.push(['x-forwarded-host', o.authority]);
  }
  if (o.teTrailers) out.push(['te', 'trailers']);
  // RFC 8470 §5.1: an intermediary that forwards a request before its client's handshake completed MUST send it with
  // Early-Data: 1, adding it if the client did not (and never removing the client's).
  if (o.earlyData && !hasField(fields, 'early-data')) out.push(['early-data', '1']);
  if (certField !== null && o.clientCert?.cert) out.push([certField, clientCertField(o.clientCert.cert)]);
  return out;
}

function hasField(fields: HeaderList, name: string): boolean {
  for (const f of fields) if (f[0] === name) return true;
  return false;
}

/**
 * Response fields for the client: hop-by-hop removed (RFC 9110 §7.6.1), Via appended (§7.6.3). Field lines keep
 * their order. The origin's Alt-Svc speaks of the origin's host, not of ours (RFC 7838 §2: an alternative is for
 * the origin the client asked): it is dropped, and `altSvc` — ours, the h3 listeners of this service, when the
 * front offers them — is added.
 */
export function downstreamHeaders(
  list: HeaderList,
  upstreamVersion: string,
  via: string,
  altSvc: string | null = null,
): HeaderList {
  const named = connectionNamed(list);
  const out: HeaderList = [];
  let prevVia: string | null = null;
  for (const f of list) {
    const n = f[0];
    if (n.charCodeAt(0) === 0x3a || isHopByHop(n, named) || n === 'alt-svc') continue;
    if (n === 'via') {
      prevVia = prevVia === null ? f[1] : `${prevVia}, ${f[1]}`;
      continue;
    }
    out.push(f);
  }
  const hop = `${upstreamVersion} ${via}`;
  out.push(['via', prevVia === null ? hop : `${prevVia}, ${hop}`]);
  if (altSvc) out.push(['alt-svc', altSvc]);
  return out;
}

/** Trailer fields safe to pass on (RFC 9110 §6.5.1: no framing, routing or auth fields), or null when none are left. */
export function trailerList(list: HeaderList): HeaderList | null {
  const out: HeaderList = [];
  for (const f of list) {
    const k = f[0];
    if (HOP_BY_HOP.has(k) || k === 'content-length' || k.charCodeAt(0) === 0x3a) continue;
    out.push(f);
  }
  return out.length ? out : null;
}
