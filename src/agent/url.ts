/**
 * A request URL string split into its origin and its request target without
 * a full WHATWG parse, when that parse could not change a byte of it.
 *
 * `new URL()` costs the Agent several microseconds a request (the parse, its
 * native context, the getters); the origin part is what selects the pool and
 * repeats from request to request, so the Agent parses each origin once
 * (cached) and takes the path and query as they are. That is only right when
 * the URL Standard's parser would leave them unchanged: for the special
 * schemes http/https it percent-encodes some characters (space, `"`, `<`,
 * `>`, `` ` ``, `{`, `}`, and `'` in the query), turns `\` into `/`, removes
 * dot segments (also written `%2e`), drops a fragment and an empty query, and
 * the authority may carry user info. So the fast path takes only strings
 * made of characters the parser copies verbatim, with no dot segment, user
 * info, fragment or empty query; anything else returns null and gets the full
 * parse. test/unit/url-target.test.ts checks it against `new URL()`.
 */

import { ErrorCode, OriginlinkError } from '../errors.js';
import { LruMap } from '../util/lru.js';
import { redact } from '../util/redact.js';

/** `new URL(text)`, or OL_INVALID_ARGUMENT naming `field` (never the parser's bare TypeError). */
export function parseUrl(text: string, field: string): URL {
  try {
    return new URL(text);
  } catch {
    throw new OriginlinkError(
      ErrorCode.INVALID_ARGUMENT,
      'local',
      `${field}: not a URL: ${JSON.stringify(redact(String(text)).slice(0, 200))}`,
      { details: { field } },
    );
  }
}

/** scheme://authority then a path of verbatim characters and an optional query of verbatim characters. */
const SIMPLE =
  /^(https?:\/\/[A-Za-z0-9.\-:[\]]+)(\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*(?:\?[A-Za-z0-9\-._~!$&()*+,;=:@%/?]+)?)$/;

/** `{ origin, target }` of an http(s) URL string the parser would not rewrite; null when a full parse is needed. */
export function splitSimpleUrl(s: string): { origin: string; target: string } | null {
  const m = SIMPLE.exec(s);
  if (m === null) return null;
  const target = m[2]!;
  // Dot segments ("." or "..", also as %2e) are resolved by the parser.
  if (target.includes('/.') || target.includes('%2e') || target.includes('%2E')) return null;
  return { origin: m[1]!, target };
}

/** Origin strings parsed once each (bounded), so `{ origin, path }` and simple URL strings parse no origin again. */
export class OriginUrls {
  #cache: LruMap<string, URL>;

  constructor(max: number) {
    this.#cache = new LruMap(max);
  }

  /** `scheme://host[:port]` as a URL; OL_INVALID_ARGUMENT naming `field` for anything else. */
  get(origin: string, field = 'origin'): URL {
    // peek: a parse cache needs no recency bookkeeping on the hot path (LruMap.get re-inserts).
    let u = this.#cache.peek(origin);
    if (!u) {
      u = parseUrl(origin, field);
      if (u.pathname !== '/' || u.search !== '')
        throw new OriginlinkError(
          ErrorCode.INVALID_ARGUMENT,
          'local',
          `origin must be scheme://host[:port] (got ${JSON.stringify(origin)})`,
        );
      this.#cache.set(origin, u);
    }
    return u;
  }
}
