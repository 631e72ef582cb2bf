/**
 * Method properties, one table for every layer (RFC 9110 §9.2). Method
 * names are case-sensitive (§9.1): `get` is not GET and has no property.
 */

interface MethodProps {
  /** RFC 9110 §9.2.1: read-only semantics; the only ones sent as 0-RTT early data by default (RFC 8470 §4). */
  readonly safe: boolean;
  /** RFC 9110 §9.2.2: repeating the request has the effect of sending it once. */
  readonly idempotent: boolean;
}

const METHODS: ReadonlyMap<string, MethodProps> = new Map([
  ['GET', { safe: true, idempotent: true }],
  ['HEAD', { safe: true, idempotent: true }],
  ['OPTIONS', { safe: true, idempotent: true }],
  ['TRACE', { safe: true, idempotent: true }],
  ['PUT', { safe: false, idempotent: true }],
  ['DELETE', { safe: false, idempotent: true }],
  ['POST', { safe: false, idempotent: false }],
  ['PATCH', { safe: false, idempotent: false }],
  ['CONNECT', { safe: false, idempotent: false }],
]);

/** The methods of the table (RFC 9110 §9.3 and RFC 5789's PATCH), GET first: parsers read them as these constants. */
export const KNOWN_METHODS: readonly string[] = [...METHODS.keys()];

/** RFC 9110 §9.2.1. */
export function isSafeMethod(method: string): boolean {
  return METHODS.get(method)?.safe === true;
}

/** RFC 9110 §9.2.2. */
export function isIdempotentMethod(method: string): boolean {
  return METHODS.get(method)?.idempotent === true;
}

/**
 * May this request be repeated without changing the outcome: an idempotent
 * method, or any method carrying an `Idempotency-Key` (the IETF httpapi
 * draft's field; the server de-duplicates on it). The key must say something:
 * the draft makes it a non-empty String, and an empty one (`Idempotency-Key:`
 * or `""`) gives the server nothing to de-duplicate on.
 */
export function isIdempotentRequest(method: string, headers: ReadonlyArray<readonly [string, string]>): boolean {
  if (isIdempotentMethod(method)) return true;
  for (const [n, v] of headers) if (n === 'idempotency-key' && meaningfulKey(v)) return true;
  return false;
}

function meaningfulKey(v: string): boolean {
  const t = v.trim();
  return t !== '' && t !== '""';
}
