/**
 * A request's beginning: its options checked and turned into its state for the attempts (agent-request.ts) — its
 * target (an origin, a failover list, or a group), its request target, its method, its fields (end-to-end only,
 * with the trace context), its body kept for a retry — before any span starts or anything is sent. Throws
 * OL_INVALID_ARGUMENT on a bad argument.
 */
import { ErrorCode, OriginlinkError } from '../errors.js';
import type { Endpoint } from '../group/endpoint.js';
import type { Group } from '../group/group.js';
import { bodyStream, isReplayable } from '../http/body.js';
import { endToEnd, isClean, isHopByHop, TOKEN_RE } from '../http/fields.js';
import { isIdempotentRequest } from '../http/methods.js';
import type { HeaderList } from '../http/types.js';
import { AgentRequest } from './agent-request.js';
import type { AgentGroups } from './groups.js';
import { checkRequest, type RequestOptions } from './options.js';
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
  if (!TOKEN_RE.test(method))
    throw new OriginlinkError(
      ErrorCode.INVALID_ARGUMENT,
      'local',
      `invalid method ${JSON.stringify(method.slice(0, 40))}`,
    );
  // An origin group is looked for only when the agent has some (a plain origin pays nothing), never for a failover
  // list.
  const owned = simple !== null || o.url === undefined;
  const group = named ?? (groups.size === 0 || typeof names !== 'string' ? null : groups.forUrl(url0 as URL, owned));
  if (group !== null) names = group.origins;
  const span = startRequestSpan(method, url0 as URL, path, o.traceContext);
  const headers = withTraceContext(span, normalizeHeaders(o.headers));
  const body = o.body ?? null;
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
  return path;
}

/** Lower-case names, end-to-end fields only (RFC 9110 §7.6.1, one rule with the service: http/fields.ts). */
export function normalizeHeaders(h: RequestOptions['headers']): HeaderList {
  // A list our own code built from checked fields (the service's forwarder) is sent as it is.
  if (Array.isArray(h) && isClean(h)) return h;
  const out: HeaderList = [];
  if (!h) return out;
  // The copy is filtered by endToEnd only when a field may need it (a forwarder's list, already end-to-end,
  // is copied once, not twice).
  let filter = false;
  if (Array.isArray(h)) {
    for (const f of h) {
      const name = f[0].toLowerCase();
      if (!filter && isHopByHop(name)) filter = true;
      out.push(name === f[0] ? f : [name, f[1]]); // a pair already lower-case is shared, not copied
    }
  } else {
    for (const [n, v] of Object.entries(h)) {
      if (v === undefined) continue;
      const name = n.toLowerCase();
      if (!filter && isHopByHop(name)) filter = true;
      if (Array.isArray(v)) for (const x of v) out.push([name, x]);
      else out.push([name, v]);
    }
  }
  return filter ? endToEnd(out) : out;
}
