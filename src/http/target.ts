/**
 * The path of an origin-form request target as the connector routes it and sends it on: syntax-based
 * normalisation (RFC 3986 §6.2.2) plus merged slashes, as nginx does before it matches a location. Matched raw,
 * `/public/../internal`, `/public/%2e%2e/internal` or `//admin` passed a route's prefix test (or missed a
 * protecting one) and reached an origin that resolved them to another path.
 *
 * - `%XX` of an unreserved character (ALPHA DIGIT - . _ ~) is decoded, any other `%xx` upper-cased (§6.2.2.1,
 *   §6.2.2.2); `%2F` and `%5C` stay encoded (an origin may read them as part of a segment).
 * - runs of `/` become one (nginx's merge_slashes).
 * - dot segments are removed (§5.2.4, after decoding, so `%2e%2e` is one); a `..` above the root is refused.
 * The query is left as it is. Case and `;` parameters are kept: paths are case-sensitive (RFC 3986 §6.2.2.1),
 * and what `;` means is the origin's.
 */

/** Anything in a path that normalisation could change: `%`, a dot segment's start, two slashes. */
const MAY_CHANGE_RE = /%|\/\.|\/\//;
const ESCAPE_RE = /%([0-9A-Fa-f]{2})/g;
const UNRESERVED_RE = /[A-Za-z0-9\-._~]/;

/**
 * The target with its path normalised, or null when a `..` would climb above the root (a 400). A target whose
 * path holds no `%`, no `/.` and no `//` (nearly every request) comes back as it is, the same string.
 */
export function normalizeTarget(target: string): string | null {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  if (!MAY_CHANGE_RE.test(path)) return target;
  const decoded = path.indexOf('%') < 0 ? path : path.replace(ESCAPE_RE, (m, hex: string) => {
    const c = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED_RE.test(c) ? c : m.toUpperCase();
  });
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
