/**
 * A request's beginning: its options checked and turned into its state for the attempts (agent-request.ts) — its
 * target (an origin, a failover list, or a group), its request target, its method, its fields (end-to-end only,
 * with the trace context), its body kept for a retry — before any span starts or anything is sent. Throws
 * OL_INVALID_ARGUMENT on a bad argument.
 */
import { ErrorCode, OriginlinkError } from '../errors.js';
import type { Endpoint } from '../group/endpoint.js';
import type { Group } from '../group/group.js';
import { bodyStream, isReplayable, knownLength } from '../http/body.js';
import {
  BAD_FIELD_VALUE_RE,
  CONTENT_LENGTH_RE,
  endToEnd,
  isClean,
  isHopByHop,
  TARGET_RE,
  TOKEN_RE,
} from '../http/fields.js';
import { isIdempotentRequest } from '../http/methods.js';
import type { HeaderList, RequestBody } from '../http/types.js';
import { AgentRequest } from './agent-request.js';
import type { AgentGroups } from './groups.js';
import { badRequestField, checkRequest, type RequestOptions } from './options.js';
import { ReplayBody } from './replay-body.js';
import { startRequestSpan, withTraceContext } from './tracing.js';
import { parseUrl, splitSimpleUrl, type OriginUrls } from './url.js';

export function beginRequest(
  o: RequestOptions,
  urls: OriginUrls,
  groups: AgentGroups,
  retryBufferBytes: number,
): AgentRequest {
  // The real time now: the turn's first reading (turnNow) can be older than this request by all the work the turn
  // did before it, and its ttfbMs then exceeded the wall time (3.37 ms reported for 1.03 ms).
  const t0 = performance.now();
  checkRequest(o);
  let names: string | readonly string[];
  let path: string;
  let url0: URL | null = null;
  let named: Group | null = null;
  const simple = typeof o.url === 'string' ? splitSimpleUrl(o.url) : null;
  if (o.group !== undefined) {
    named = groups.named(o.group);
    names = named.origins;
    // The group's first endpoint stands for it where one URL is needed (the request span's).
    url0 = (named.endpoints[0] as Endpoint).url;
    path = checkPath(o.path);
  } else if (simple !== null) {
    // The origin parsed once (cached), the request target as written (agent/url.ts says when that is exact).
    url0 = urls.get(simple.origin, 'url');
    names = url0.origin;
    path = simple.target;
  } else if (o.url !== undefined) {
    url0 = typeof o.url === 'string' ? parseUrl(o.url, 'url') : o.url;
    if (!(url0 instanceof URL))
      throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', 'url: must be a string or a URL', {
        details: { field: 'url' },
      });
    names = url0.origin;
    path = `${url0.pathname}${url0.search}`;
  } else {
    names = o.origin as string | readonly string[];
    if (typeof names !== 'string' && !Array.isArray(names))
      throw new OriginlinkError(
        ErrorCode.INVALID_ARGUMENT,
        'local',
        'a request needs url, origin and path, or group and path',
        { details: { field: 'url' } },
      );
    if (typeof names !== 'string' && names.length === 0)
      throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', 'origin list is empty');
    // Every origin of the list parsed now: a bad one is the caller's error before anything is sent.
    if (typeof names === 'string') url0 = urls.get(names);
    else
      for (const n of names) {
        const u = urls.get(n);
        url0 ??= u;
      }
    path = checkPath(o.path);
  }
  // RFC 9110 §9.1: methods are case-sensitive tokens; a proxied `get` stays `get`.
  const method = o.method ?? 'GET';
  if (typeof method !== 'string' || !TOKEN_RE.test(method))
    throw new OriginlinkError(
      ErrorCode.INVALID_ARGUMENT,
      'local',
      `invalid method ${JSON.stringify(String(method).slice(0, 40))}`,
      { details: { field: 'method' } },
    );
  // An origin group is looked for only when the agent has some (a plain origin pays nothing), never for a failover
  // list.
  const owned = simple !== null || o.url === undefined;
  const group = named ?? (groups.size === 0 || typeof names !== 'string' ? null : groups.forUrl(url0 as URL, owned));
  if (group !== null) names = group.origins;
  const span = startRequestSpan(method, url0 as URL, path, o.traceContext);
  const body = o.body ?? null;
  const headers = withTraceContext(span, normalizeHeaders(o.headers, body));
  // A streamed body is kept as it leaves, up to retryBufferBytes, for an attempt the origin did not process.
  const replay =
    !isReplayable(body) && retryBufferBytes > 0 ? new ReplayBody(bodyStream(body), retryBufferBytes) : null;
  return new AgentRequest(
    o,
    t0,
    names,
    url0 as URL,
    owned,
    path,
    method,
    span,
    headers,
    body,
    replay,
    replay === null && isReplayable(body),
    isIdempotentRequest(method, headers),
    group,
  );
}

/** A request path: `/…`, or `*` (OPTIONS); else OL_INVALID_ARGUMENT. */
function checkPath(path: unknown): string {
  if (typeof path !== 'string')
    throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', 'path: must be a string starting with "/"', {
      details: { field: 'path' },
    });
  if (path.charCodeAt(0) !== 0x2f && path !== '*')
    throw new OriginlinkError(
      ErrorCode.INVALID_ARGUMENT,
      'local',
      `path must start with "/" (got ${JSON.stringify(path.slice(0, 40))})`,
    );
  // No whitespace or control character: the path is the request line's (HTTP/1.1), `/a\r\nX: y` a field of its own.
  if (!TARGET_RE.test(path))
    throw badRequestField(
      'path',
      `must be visible characters, percent-encoded (got ${JSON.stringify(path.slice(0, 40))})`,
    );
  return path;
}

/**
 * A request body is absent, text, bytes or an (async) iterable of bytes (a Readable, a generator): anything else
 * (a number, an object) is the caller's error now, not a connection opened, a chunked head sent and then torn down.
 */
function checkBody(body: unknown): void {
  if (body === null || typeof body === 'string' || body instanceof Uint8Array) return;
  if (typeof body === 'object' && (Symbol.asyncIterator in body || Symbol.iterator in body)) return;
  throw badRequestField('body', 'must be a string, bytes (Uint8Array) or an (async) iterable of bytes');
}

/** A field's value: text, or a number written as text; anything else is refused (`[object Object]` went out). */
function fieldValue(name: string, v: unknown): string {
  if (typeof v === 'string') {
    if (BAD_FIELD_VALUE_RE.test(v))
      throw badRequestField(`headers.${name}`, 'a value may not hold CR, LF, NUL or other controls');
    return v;
  }
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  throw badRequestField(
    `headers.${name}`,
    `must be a string (or a list of them), got ${v === null ? 'null' : typeof v}`,
  );
}

/**
 * Lower-case names, end-to-end fields only (RFC 9110 §7.6.1, one rule with the service: http/fields.ts), each name a
 * token and each value text without controls, checked here for every protocol before any of it is encoded: a value
 * that was not text failed inside HTTP/2's HPACK encoder after earlier fields had entered its table, and the origin
 * then closed the connection on everyone's streams (a compression error). A Content-Length the caller gives must be
 * the body's, when its length is known: a shorter one put the rest of the body on the wire as the next request.
 */
export function normalizeHeaders(h: RequestOptions['headers'], body: unknown = null): HeaderList {
  if (body !== null) checkBody(body);
  // A list our own code built from checked fields (the service's forwarder) is sent as it is.
  if (Array.isArray(h) && isClean(h)) return h;
  const out: HeaderList = [];
  if (h == null) return out;
  if (typeof h !== 'object') throw badRequestField('headers', 'must be an object or a list of [name, value] pairs');
  // The copy is filtered by endToEnd only when a field may need it (a forwarder's list, already end-to-end,
  // is copied once, not twice).
  let filter = false;
  let length: string | null = null;
  const add = (n: unknown, v: unknown, pair: readonly [string, string] | null): void => {
    if (typeof n !== 'string' || !TOKEN_RE.test(n))
      throw badRequestField('headers', `a field name must be a token, got ${JSON.stringify(String(n).slice(0, 40))}`);
    const name = n.toLowerCase();
    const value = fieldValue(name, v);
    if (!filter && isHopByHop(name)) filter = true;
    if (name === 'content-length') {
      if (length !== null || !CONTENT_LENGTH_RE.test(value))
        throw badRequestField('headers.content-length', 'must be one decimal number');
      length = value;
    }
    // A pair already lower-case and text is shared, not copied.
    out.push(pair !== null && name === n && value === v ? pair : [name, value]);
  };
  if (Array.isArray(h)) {
    for (const f of h as unknown[]) {
      if (!Array.isArray(f) || f.length !== 2) throw badRequestField('headers', 'a list holds [name, value] pairs');
      add(f[0], f[1], f as unknown as readonly [string, string]);
    }
  } else if (Symbol.iterator in h) {
    // A Headers or a Map: its [name, value] pairs (an object's own entries would be none: every field dropped).
    for (const f of h as Iterable<unknown>) {
      if (!Array.isArray(f) || f.length !== 2)
        throw badRequestField('headers', 'an iterable holds [name, value] pairs');
      add(f[0], f[1], null);
    }
  } else {
    for (const [n, v] of Object.entries(h)) {
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const x of v as unknown[]) add(n, x, null);
      else add(n, v, null);
    }
  }
  if (length !== null) {
    const known = knownLength(body as RequestBody);
    if (known !== null && Number(length) !== known)
      throw badRequestField('headers.content-length', `is ${length}, but the body is ${known} bytes`);
  }
  return filter ? endToEnd(out) : out;
}
