/**
 * Route selection by host and path prefix. The most specific route wins:
 * an exact host beats a `*.domain` wildcard, which beats any host; among
 * those, the longest path prefix wins; ties keep config order.
 */
import type { RouteConfig } from './config.js';

export interface RouteMatch {
  route: RouteConfig;
  index: number;
}

export class Router {
  readonly #routes: Array<{ r: RouteConfig; match: RouteMatch }>;

  constructor(routes: readonly RouteConfig[]) {
    this.#routes = routes
      .map((r, index) => ({ r, index, hostRank: r.host === null ? 0 : r.host.startsWith('*.') ? 1 : 2 }))
      .sort((a, b) => b.hostRank - a.hostRank || b.r.path.length - a.r.path.length || a.index - b.index)
      .map(({ r, index }) => ({ r, match: { route: r, index } }));
  }

  /**
   * The route for a request: `authority` as the client gave it (Host or :authority: `host[:port]`, `[v6]:port`, any
   * case, a final dot allowed), normalised only when a route names a host; `path` from the request target (may carry
   * a query). The match is the route's own (one object per route, not to be changed).
   */
  match(authority: string, path: string): Readonly<RouteMatch> | null {
    let host: string | null = null;
    for (const { r, match } of this.#routes) {
      if (r.host !== null) {
        if (host === null) {
          host = hostOnly(authority);
          if (host.charCodeAt(host.length - 1) === 0x2e) host = host.slice(0, -1);
        }
        if (!hostMatches(r.host, host)) continue;
      }
      if (!pathMatches(r.path, path)) continue;
      return match;
    }
    return null;
  }
}

function hostMatches(pattern: string, host: string): boolean {
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
  return pattern === host;
}

/** `/api` matches `/api`, `/api/x` and `/api?q`, not `/apix`; `/api/` matches `/api/x`. */
export function pathMatches(prefix: string, path: string): boolean {
  if (prefix === '/') return true;
  if (!path.startsWith(prefix)) return false;
  if (path.length === prefix.length || prefix.endsWith('/')) return true;
  const next = path[prefix.length];
  return next === '/' || next === '?';
}

/** The upstream request target after an optional prefix strip (always starts with `/`). */
export function rewritePath(route: RouteConfig, path: string): string {
  if (!route.stripPrefix || route.path === '/') return path;
  const rest = path.slice(route.path.endsWith('/') ? route.path.length - 1 : route.path.length);
  return rest === '' || rest.startsWith('?') ? `/${rest}` : rest;
}

/** Split `host[:port]` / `[v6]:port` into the host part, lower-cased. */
export function hostOnly(authority: string): string {
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    return (end > 0 ? authority.slice(1, end) : authority).toLowerCase();
  }
  const i = authority.lastIndexOf(':');
  return (i >= 0 ? authority.slice(0, i) : authority).toLowerCase();
}
