/**
 * Which requests may travel as TLS/QUIC 0-RTT early data (RFC 8470). Early
 * data can be replayed by an attacker, so by default only safe methods
 * (RFC 9110 §9.2.1; RFC 8470 §4) go early. One rule for the Agent, the
 * service and the h3 transport's default.
 */
import { isSafeMethod } from './methods.js';

export type EarlyDataPolicy = 'never' | 'safe' | 'always';

/** `explicit`: the request's own `allowEarlyData`, which wins over the policy when given. */
export function earlyDataAllowed(policy: EarlyDataPolicy, method: string, explicit?: boolean): boolean {
  if (explicit !== undefined) return explicit;
  if (policy === 'always') return true;
  return policy === 'safe' && isSafeMethod(method);
}
