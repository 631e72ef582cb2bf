/**
 * The path of an origin-form request target as the connector routes it and, for a route that strips its prefix,
 * sends it on — nginx's way: a location is matched against the decoded, normalised path; `proxy_pass` without a
 * URI sends the request as the client wrote it, with one it sends the normalised path with the prefix replaced.
 * Matched raw, `/public/../internal/`, `/public/%2e%2e/internal/` or `/public/..%2Finternal/` passed a `/public/`
 * route and reached an origin that resolved them to `/internal/`; `//admin` stepped around an `/admin` route.
 *
 * - `routingPath`: every `%XX` decoded (`%2F` too: an origin may decode it before resolving dot segments; not
 *   `%3F` or `%23`, which would end the path), runs of `/` merged, dot segments resolved (RFC 3986 §5.2.4); a
 *   `..` above the root is refused. For matching only.
 * - `normalizeTarget`: the syntax-based normalisation of RFC 3986 §6.2.2 (unreserved escapes decoded, others
 *   upper-cased; `%2F` and `%5C` stay encoded), slashes merged, dot segments resolved: what a prefix-stripping
 *   route sends on.
 * The query is left as it is. Case and `;` parameters are kept: paths are case-sensitive (RFC 3986 §6.2.2.1),
 * and what `;` means is the origin's.
 */

/** Anything in a path that normalisation could change: `%`, a dot segment's start, two slashes. */
const MAY_CHANGE_RE = /%|\/\.|\/\//;
const ESCAPE_RE = /%([0-9A-Fa-f]{2})/g;
const UNRESERVED_RE = /[A-Za-z0-9\-._~]/;

/**
 * The target with its path normalised for sending on (RFC 3986 §6.2.2), or null when a `..` would climb above the
 * root (a 400). A target whose path holds no `%`, no `/.` and no `//` (nearly every request) comes back as it is,
 * the same string.
 */
export function normalizeTarget(target: string): string | null {
  return normalized(target, (m, hex) => {
    const c = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED_RE.test(c) ? c : m.toUpperCase();
  });
}

/** The target as routes match it (every escape but `%3F`/`%23` decoded), or null above the root. See above. */
export function routingPath(target: string): string | null {
  return normalized(target, (m, hex) => {
    const code = parseInt(hex, 16);
    return code === 0x3f || code === 0x23 ? m.toUpperCase() : String.fromCharCode(code);
  });
}

function normalized(target: string, decodeEscape: (match: string, hex: string) => string): string | null {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  if (!MAY_CHANGE_RE.test(path)) return target;
  const decoded = path.indexOf('%') < 0 ? path : path.replace(ESCAPE_RE, decodeEscape);
  const out: string[] = [];
  const segments = decoded.split('/');
  // segments[0] is '' (the path starts with '/'); the last one may be '' (a trailing slash).
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i] as string;
    const last = i === segments.length - 1;
    if (s === '.' || s === '..') {
      if (s === '..') {
        if (out.length === 0) return null;
        out.pop();
      }
      if (last) out.push(''); // `/a/b/..` is `/a/`: the result names a directory
      continue;
    }
    if (s === '' && !last) continue; // merged slashes
    out.push(s);
  }
  const normal = `/${out.join('/')}`;
  return q < 0 ? normal : normal + target.slice(q);
}
