/**
 * Which requests may travel as TLS/QUIC 0-RTT early data (RFC 8470). Early
 * data can be replayed by an attacker, so by default only safe methods
 * (RFC 9110 §9.2.1; RFC 8470 §4) go early. One rule for the Agent, the
 * service and the h3 transport's default.
 */
import { isIdempotentRequest, isSafeMethod } from './methods.js';

export type EarlyDataPolicy = 'never' | 'safe' | 'always';

/** `explicit`: the request's own `allowEarlyData`, which wins over the policy when given. */
export function earlyDataAllowed(policy: EarlyDataPolicy, method: string, explicit?: boolean): boolean {
  if (explicit !== undefined) return explicit;
  if (policy === 'always') return true;
  return policy === 'safe' && isSafeMethod(method);
}

/**
 * May a request that left as early data on a connection given up before its
 * handshake completed go again on another connection? The origin may have
 * processed it (nothing confirms or rejects 0-RTT without the handshake), so
 * only when repeating it has the effect of sending it once: an idempotent
 * method or an Idempotency-Key (RFC 9110 §9.2.2). Whatever the early-data
 * policy (`always` lets a POST go early), an unsafe, non-idempotent request
 * is never replayed; it stays on its connection and shares its fate.
 */
export function earlyReplayAllowed(method: string, headers: ReadonlyArray<readonly [string, string]>): boolean {
  return isIdempotentRequest(method, headers);
}
