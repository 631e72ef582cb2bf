/**
 * Happy Eyeballs v2 (RFC 8305) over any attempt function: the candidates in
 * the order given (callers interleave families, §4), one attempt started
 * every `attemptDelayMs` or as soon as the previous one fails (§5), the first
 * success wins and every other attempt is aborted; a success that lands after
 * the winner is disposed.
 */
import { ErrorCode, OriginlinkError } from '../errors.js';
import type { ResolvedAddress } from './resolver.js';
import type { DialSignal } from '../util/leg-signal.js';

/** RFC 8305 §8: "Connection Attempt Delay" recommended 250 ms; §5: never below 10 ms (100 ms recommended minimum). */
export const DEFAULT_ATTEMPT_DELAY_MS = 250;
export const MIN_ATTEMPT_DELAY_MS = 10;

export interface RaceResult<T> {
  value: T;
  address: ResolvedAddress;
  /** Attempts started, the winner's included. */
  attempts: number;
}

export interface RaceOptions<T> {
  attemptDelayMs: number;
  signal?: DialSignal | undefined;
  /** Called for a value that succeeded after another attempt had won. */
  dispose: (value: T) => void;
  /** An attempt failed before the race was decided (aborted losers are not reported). */
  onFail?: ((address: ResolvedAddress, error: Error) => void) | undefined;
  /**
   * An attempt still unanswered when one started after it won: it had a whole
   * attempt delay of head start (a blackholed or very slow address).
   */
  onOutrun?: ((address: ResolvedAddress) => void) | undefined;
}

/**
 * RFC 8305 §4: reorder so address families alternate, starting with the
 * family of the first candidate; order within a family is kept.
 */
export function interleaveFamilies<A extends { family: 4 | 6 }>(list: readonly A[]): A[] {
  const first = list[0]?.family;
  const a = list.filter((x) => x.family === first);
  const b = list.filter((x) => x.family !== first);
  const out: A[] = [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x) out.push(x);
    if (y) out.push(y);
  }
  return out;
}

export function raceAddresses<T>(
  candidates: readonly ResolvedAddress[],
  attempt: (address: ResolvedAddress, signal: AbortSignal) => Promise<T>,
  o: RaceOptions<T>,
): Promise<RaceResult<T>> {
  return new Promise((resolve, reject) => {
    if (candidates.length === 0) {
      reject(new OriginlinkError(ErrorCode.CONNECT_FAILED, 'network', 'no address to dial', { retrySafe: true }));
      return;
    }
    const aborts: AbortController[] = [];
    /** Per attempt (same index as `aborts`): still unanswered. */
    const pending: boolean[] = [];
    const failed: Array<{ address: ResolvedAddress; error: Error }> = [];
    let next = 0;
    let running = 0;
    let settled = false;
    let timer: NodeJS.Timeout | null = null;
    /**
     * Abort every attempt but the winner's (its signal may still guard work it does after resolving: a QUIC handshake
     * behind 0-RTT).
     */
    const finish = (winner = -1): void => {
      settled = true;
      if (timer) clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      aborts.forEach((a, i) => {
        if (i !== winner) a.abort();
      });
    };
    const onAbort = (): void => {
      if (settled) return;
      finish();
      reject(new OriginlinkError(ErrorCode.ABORTED, 'local', 'connect aborted', { retrySafe: true }));
    };
    const startNext = (): void => {
      if (settled) return;
      if (timer) {
        clearTimeout(timer);
        timer = null;
      }
      const address = candidates[next++];
      if (!address) return;
      const ac = new AbortController();
      const idx = aborts.length;
      aborts.push(ac);
      pending.push(true);
      running++;
      attempt(address, ac.signal).then(
        (value) => {
          running--;
          pending[idx] = false;
          if (settled) {
            o.dispose(value);
            return;
          }
          for (let i = 0; i < idx; i++) if (pending[i]) o.onOutrun?.(candidates[i] as ResolvedAddress);
          finish(idx);
          resolve({ value, address, attempts: next });
        },
        (err: unknown) => {
          running--;
          pending[idx] = false;
          if (settled) return;
          failed.push({ address, error: err as Error });
          o.onFail?.(address, err as Error);
          // §5: a failed attempt starts the next one at once.
          if (next < candidates.length) startNext();
          else if (running === 0) {
            finish();
            const last = failed[failed.length - 1]?.error;
            const msg = failed.map((f) => `${f.address.address}: ${f.error.message}`).join('; ');
            reject(
              last instanceof OriginlinkError && failed.length === 1
                ? last
                : new OriginlinkError(
                    last instanceof OriginlinkError ? last.code : ErrorCode.CONNECT_FAILED,
                    'network',
                    `every address failed (${msg})`,
                    { cause: last, retrySafe: true, details: { addresses: failed.map((f) => f.address.address) } },
                  ),
            );
          }
        },
      );
      if (next < candidates.length) timer = setTimeout(startNext, o.attemptDelayMs);
    };
    if (o.signal?.aborted) {
      onAbort();
      return;
    }
    o.signal?.addEventListener('abort', onAbort, { once: true });
    startNext();
  });
}
