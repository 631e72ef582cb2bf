/**
 * Per-origin selection state and the pure policy over it. No clock and no
 * sockets: every method takes `now` (wall-clock epoch ms, because the facts
 * are persisted). The Agent owns one OriginState per origin.
 */
import type { Protocol } from '../http/types.js';
import type { ProtocolPolicy } from '../connect/connect.js';
import { findH3, type AltSvcResult } from './alt-svc.js';
import type { OriginCache, OriginFacts } from '../store/origin-cache.js';

export interface SelectionOptions {
  /** Delay before TCP starts in a race; null derives it from the RTT estimate. */
  raceDelayMs: number | null;
  /** Bound on a QUIC handshake started by a race, ms. */
  quicTimeoutMs: number;
  /** First broken-h3 backoff, doubling per consecutive failure. */
  brokenBackoffMs: number;
  brokenBackoffMaxMs: number;
  /** Share h2 connections between names that resolve to the same address and are covered by the certificate. */
  coalesce: boolean;
}

export const DEFAULT_SELECTION: Readonly<SelectionOptions> = Object.freeze({
  raceDelayMs: null,
  quicTimeoutMs: 3000,
  brokenBackoffMs: 5 * 60_000,
  brokenBackoffMaxMs: 48 * 3_600_000,
  coalesce: true,
});

/** Race delay when no RTT is known. */
export const UNKNOWN_RTT_RACE_DELAY_MS = 300;

export interface Choice {
  /** `quic`: race QUIC (first) against TCP; `tcp`: TCP+TLS only. */
  transport: 'quic' | 'tcp';
  /** The protocol expected to carry requests; null = ALPN decides (h2, else h1). */
  protocol: Protocol | null;
  reason: string;
}

export function emptyFacts(now: number): OriginFacts {
  return { h3: null, alpn: null, rttMs: null, brokenUntil: 0, brokenCount: 0, updatedAt: now };
}

/** The policy: forced > h3 when known and not broken > h2 when ALPN offers it > h1. */
export function selectProtocol(f: OriginFacts | undefined, policy: ProtocolPolicy, now: number): Choice {
  if (policy !== 'auto')
    return {
      transport: policy === 'h3' ? 'quic' : 'tcp',
      protocol: policy,
      reason: `${policy} forced by configuration`,
    };
  let why = '';
  if (f?.h3 && f.h3.expiresAt > now) {
    if (f.brokenUntil <= now) {
      return {
        transport: 'quic',
        protocol: 'h3',
        reason: `h3 advertised by ${f.h3.source} (port ${f.h3.port}, fresh for ${Math.round((f.h3.expiresAt - now) / 1000)} s); racing QUIC against TCP`,
      };
    }
    why = `h3 advertised but marked broken for ${Math.round((f.brokenUntil - now) / 1000)} s more (failure #${f.brokenCount}); `;
  } else if (f?.h3) why = 'h3 advertisement expired; ';
  else why = 'no h3 advertised; ';
  if (f?.alpn === 'h2') return { transport: 'tcp', protocol: 'h2', reason: `${why}ALPN offers h2` };
  if (f?.alpn === 'http/1.1') return { transport: 'tcp', protocol: 'h1', reason: `${why}ALPN offers only http/1.1` };
  return { transport: 'tcp', protocol: null, reason: `${why}ALPN (h2, http/1.1) decides` };
}

/** Delay before TCP joins a race: clamp(2·RTT + 25, 25, 300) ms; 300 ms when the RTT is unknown. */
export function raceDelayFor(f: OriginFacts | undefined, configured: number | null): number {
  if (configured !== null) return configured;
  if (!f || f.rttMs === null) return UNKNOWN_RTT_RACE_DELAY_MS;
  return Math.min(UNKNOWN_RTT_RACE_DELAY_MS, Math.max(25, Math.round(2 * f.rttMs + 25)));
}

export type AltSvcChange = 'learned' | 'refreshed' | 'cleared' | 'none';

/** One origin's facts plus run-time flags; writes through to the cache when something worth keeping changes. */
export class OriginState {
  readonly origin: string;
  #f: OriginFacts;
  #cache: OriginCache;
  /** The cache generation the facts were last read at (shared caches change under us). */
  #gen: number | undefined;
  /** A QUIC attempt for this origin is in flight (never start a second one without TCP). */
  quicPending = false;

  constructor(origin: string, cache: OriginCache) {
    this.origin = origin;
    this.#cache = cache;
    // updatedAt 0 marks "nothing known yet": the first fact is always written through.
    this.#gen = cache.generation;
    this.#f = cache.get(origin) ?? emptyFacts(0);
  }

  get facts(): Readonly<OriginFacts> {
    this.#sync();
    return this.#f;
  }

  choose(policy: ProtocolPolicy, now: number): Choice {
    this.#sync();
    return selectProtocol(this.#f, policy, now);
  }

  isBroken(now: number): boolean {
    this.#sync();
    return this.#f.brokenUntil > now;
  }

  /** A shared cache learned something from the fleet (its merge keeps the newest): adopt it. */
  #sync(): void {
    const g = this.#cache.generation;
    if (g === this.#gen) return;
    this.#gen = g;
    const f = this.#cache.get(this.origin);
    if (f !== undefined) this.#f = f;
  }

  raceDelay(configured: number | null): number {
    return raceDelayFor(this.#f, configured);
  }

  /** Apply an Alt-Svc field value seen on a response from this origin. */
  learnAltSvc(r: AltSvcResult, now: number, source: 'alt-svc' | 'probe' = 'alt-svc'): AltSvcChange {
    if (r.type === 'clear') {
      if (!this.#f.h3) return 'none';
      this.#save({ ...this.#f, h3: null }, now);
      return 'cleared';
    }
    const alt = findH3(r);
    if (!alt) return 'none';
    const expiresAt = now + alt.maxAge * 1000;
    const prev = this.#f.h3;
    const fresh = prev !== null && prev.expiresAt > now;
    if (fresh && prev.host === alt.host && prev.port === alt.port) {
      // Refresh the expiry without rewriting the cache on every response.
      if (expiresAt - prev.expiresAt > Math.max(60_000, alt.maxAge * 100))
        this.#save({ ...this.#f, h3: { ...prev, expiresAt } }, now);
      return 'refreshed';
    }
    this.#save({ ...this.#f, h3: { host: alt.host, port: alt.port, expiresAt, source } }, now);
    return 'learned';
  }

  /** A QUIC attempt failed or timed out: back off (base · 2^(n−1), capped). */
  h3Failed(now: number, o: Pick<SelectionOptions, 'brokenBackoffMs' | 'brokenBackoffMaxMs'>): number {
    const n = this.#f.brokenCount + 1;
    const ms = Math.min(o.brokenBackoffMaxMs, o.brokenBackoffMs * 2 ** Math.min(n - 1, 30));
    this.#save({ ...this.#f, brokenCount: n, brokenUntil: now + ms }, now);
    return ms;
  }

  h3Succeeded(now: number): void {
    if (this.#f.brokenCount === 0 && this.#f.brokenUntil === 0) return;
    this.#save({ ...this.#f, brokenCount: 0, brokenUntil: 0 }, now);
  }

  /** After a TCP(+TLS) connection: remember the ALPN result and an RTT sample. */
  noteTcp(alpn: string | null, rttSampleMs: number | null, now: number): void {
    const rtt = this.#smooth(rttSampleMs);
    const rttMoved =
      rtt !== null && (this.#f.rttMs === null || Math.abs(rtt - this.#f.rttMs) > Math.max(2, this.#f.rttMs * 0.2));
    if (alpn === this.#f.alpn && !rttMoved && this.#f.updatedAt > 0) return;
    this.#save({ ...this.#f, alpn, rttMs: rtt }, now);
  }

  noteRtt(sampleMs: number | null, now: number): void {
    const rtt = this.#smooth(sampleMs);
    if (rtt === null || (this.#f.rttMs !== null && Math.abs(rtt - this.#f.rttMs) <= Math.max(2, this.#f.rttMs * 0.2))) {
      if (rtt !== null) this.#f = { ...this.#f, rttMs: rtt };
      return;
    }
    this.#save({ ...this.#f, rttMs: rtt }, now);
  }

  /** Store a probe's results alongside the facts. */
  noteProbe(probe: unknown, alpn: string | null, now: number): void {
    this.#save({ ...this.#f, alpn, probe }, now);
  }

  #smooth(sample: number | null): number | null {
    if (sample === null || !Number.isFinite(sample) || sample < 0) return this.#f.rttMs;
    // RFC 6298-style EWMA with alpha = 1/8.
    return this.#f.rttMs === null ? sample : this.#f.rttMs * 0.875 + sample * 0.125;
  }

  #save(f: OriginFacts, now: number): void {
    this.#f = { ...f, updatedAt: now };
    this.#cache.put(this.origin, this.#f);
  }
}
