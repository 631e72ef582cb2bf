/**
 * The first phases of forwarding (forward.ts): the request's checks, then its target — the route, the upstream, and
 * the request the upstream is asked (its path, fields and authority). Pure functions of the request and the config
 * generation: a refusal is a value, sent by the forwarder.
 */
import { endToEnd, markClean } from '../http/fields.js';
import { normalizeTarget, routingPath } from '../http/target.js';
import type { ServerRequest } from '../server/request.js';
import type { SignalLike } from '../util/leg-signal.js';
import type { RouteConfig, ServiceConfig } from './config.js';
import { inspectRequest, isReject, upstreamHeaders, type RequestFacts } from './headers.js';
import { hostOnly, pathMatches, rewritePath, type Router } from './router.js';
import type { Upstream, UpstreamRequest } from './upstream.js';

/** What one config generation offers the forwarder. */
export interface Generation {
  config: ServiceConfig;
  router: Router;
  upstreams: Map<string, Upstream>;
}

export interface FrontInfo {
  listener: string;
  secure: boolean;
  /**
   * The listener checks client certificates (`tls.clientCa`): the field that carries a verified one to the origin
   * (`tls.clientCertHeader`, null: none). Undefined: it asks for none.
   */
  clientCertHeader?: string | null;
}

/** A request refused before any origin is asked: its status, what the client is told, its code and metric reason. */
export class Refusal {
  constructor(
    readonly status: 400 | 404 | 413 | 431,
    readonly reason: string,
    readonly code: string,
    /** The `front.rejected` metric's reason, or null when the refusal is not counted there. */
    readonly rejected: string | null = null,
  ) {}
}

/** Where a request goes: its route, the upstream, and the request it is asked. */
export interface Target {
  route: RouteConfig;
  routeIndex: number;
  upstream: Upstream;
  request: UpstreamRequest;
}

/** Phase 1: the head against the limits and framing rules, the scheme, the method and the request target. */
export function checkRequest(req: ServerRequest, cfg: ServiceConfig, mux: boolean): RequestFacts | Refusal {
  const facts = inspectRequest(req.headers, req.authority || null, mux, cfg.limits, req.version === '1.0');
  if (isReject(facts)) {
    const s = facts.status;
    return new Refusal(
      s,
      facts.reason,
      s === 431 ? 'headers_too_large' : s === 413 ? 'body_too_large' : 'bad_request',
      s === 431 ? 'headers' : s === 413 ? 'body_size' : 'framing',
    );
  }
  // The connector serves http and https URIs only (RFC 9113 §8.3.1 lets :scheme name others: a gateway's to
  // translate).
  if (req.scheme !== 'http' && req.scheme !== 'https') return new Refusal(400, 'unsupported :scheme', 'bad_request');
  // A CONNECT that is not a tunnel we make (RFC 9110 §9.3.6: host:port; HTTP/2 and HTTP/3 carry no :path for it):
  // the connector is no forward proxy. The same answer on every front.
  if (req.method === 'CONNECT' && req.protocol === null)
    return new Refusal(400, 'CONNECT is not supported (no forward proxying)', 'bad_request');
  if (req.path.charCodeAt(0) !== 0x2f) return new Refusal(400, 'unsupported request target', 'bad_request');
  return facts;
}

/**
 * Phase 2: the route and upstream for a checked request, and the request it is asked (fields rewritten for the
 * origin, the authority the route says, 1xx relayed to the client) going out with `signal`.
 */
export function chooseTarget(
  req: ServerRequest,
  facts: RequestFacts,
  gen: Generation,
  front: FrontInfo,
  signal: SignalLike,
): Target | Refusal {
  const cfg = gen.config;
  const authority = facts.authority ?? '';
  // Routed by the decoded, normalised path (http/target.ts), as nginx matches a location.
  const routing = cfg.proxy.normalizePath ? routingPath(req.path) : req.path;
  if (routing === null) return new Refusal(400, 'request path climbs above the root', 'bad_request');
  const match = gen.router.match(authority, routing);
  if (!match)
    return new Refusal(404, `no route for ${hostOnly(authority)}${req.path.split('?')[0]}`, 'no_route', 'no_route');
  const route = match.route;
  // Sent on as the client wrote it — or, where the route strips its prefix, normalised (RFC 3986 §6.2.2) with the
  // prefix off (nginx's proxy_pass with a URI); one that matched only once fully decoded has no such form: 400.
  let target = req.path;
  if (cfg.proxy.normalizePath && route.stripPrefix) {
    const normal = normalizeTarget(req.path);
    if (normal === null || !pathMatches(route.path, normal))
      return new Refusal(400, 'request path matches its route only once decoded', 'bad_request');
    target = normal;
  }
  const remote = req.remoteAddress;
  // Clean (http/fields.ts): our servers' parsers held the client's fields to the rules, and what is added here
  // (Via's token, the client's address, the checked authority) keeps them.
  const headers = markClean(
    upstreamHeaders(req.headers, {
      clientIp: remote.startsWith('::ffff:') ? remote.slice(7) : remote,
      proto: front.secure ? 'https' : 'http',
      authority,
      clientVersion: req.version,
      via: cfg.proxy.via,
      xff: cfg.proxy.xForwardedFor,
      teTrailers: facts.teTrailers,
      underscores: cfg.proxy.underscoresInHeaders,
      earlyData: req.earlyData,
      clientCert: front.clientCertHeader ? { name: front.clientCertHeader, cert: req.clientCertificate() } : null,
    }),
  );
  const request: UpstreamRequest = {
    path: rewritePath(route, target),
    method: req.method,
    headers,
    signal,
    responseBufferBytes: cfg.proxy.responseBufferBytes,
    // RFC 9110 §15.2: a proxy forwards 1xx responses (103 Early Hints above all) — not 100, which the front
    // answers itself (Expect is not sent on); end-to-end fields only. Dropped once the answer started (servers).
    onInformational: (status, fields, reason) => {
      if (status !== 100) req.informational(status, endToEnd(fields), reason);
    },
  };
  // `preserve` with no authority (an HTTP/1.0 request without Host): the origin's own name.
  const hostHeader =
    route.hostHeader === 'origin' ? null : route.hostHeader === 'preserve' ? authority || null : route.hostHeader;
  if (hostHeader !== null) request.authority = hostHeader;
  return { route, routeIndex: match.index, upstream: gen.upstreams.get(route.origin) as Upstream, request };
}
