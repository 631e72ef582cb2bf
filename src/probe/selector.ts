/**
 * The Agent's protocol selection: one OriginState per origin, the racing
 * Dialer for `auto` pools, Alt-Svc learning from responses and the h3
 * upgrade of a pool that so far only holds TCP connections.
 */
import type { Dialer, Pool } from '../pool/pool.js';
import type { HeaderList, PooledConnection } from '../http/types.js';
import { connectAltH3, connectOrigin, h3Connector, type ConnectContext, type OriginSpec } from '../connect/connect.js';
import { parseAltSvc } from './alt-svc.js';
import { MemoryOriginCache, type OriginCache } from '../store/origin-cache.js';
import { raceDial } from './race.js';
import { DEFAULT_SELECTION, OriginState, type SelectionOptions } from './state.js';
import { LruMap } from '../util/lru.js';
import { type DialSignal, LegSignal } from '../util/leg-signal.js';

export type DialContext = Omit<ConnectContext, 'signal'>;

/** Run-time counters per origin (not persisted). */
export interface SelectionCounters {
  races: number;
  quicAttempts: number;
  quicFailures: number;
  quicWins: number;
  tcpWins: number;
  upgrades: number;
  /** Races whose QUIC leg was handed out at 0-RTT readiness (a ticket for a known-good alternative). */
  earlyStarts: number;
  /** Early starts where TCP was established before the QUIC handshake completed and took over. */
  fallbacks: number;
}

export class Selector {
  readonly cache: OriginCache;
  readonly opts: Readonly<SelectionOptions>;
  /** Per-origin state, bounded (the persisted facts live in `cache`, bounded too). */
  #states: LruMap<string, OriginState>;
  #counters: LruMap<string, SelectionCounters>;
  #upgrading = new Set<string>();

  #connect: (origin: OriginSpec, ctx: ConnectContext) => Promise<PooledConnection>;

  /** `connect`: how the TCP leg dials (the Agent's `connect` option); h3 always uses the QUIC connector. */
  constructor(cache?: OriginCache, opts: Partial<SelectionOptions> = {}, maxOrigins = 1024, connect = connectOrigin) {
    this.#connect = connect;
    this.#states = new LruMap(maxOrigins);
    this.#counters = new LruMap(maxOrigins);
    this.cache = cache ?? new MemoryOriginCache();
    this.opts = { ...DEFAULT_SELECTION, ...opts };
    for (const k of ['quicTimeoutMs', 'brokenBackoffMs', 'brokenBackoffMaxMs'] as const) {
      if (!Number.isFinite(this.opts[k]) || this.opts[k] <= 0)
        throw new RangeError(`selection.${k} must be a positive number`);
    }
    if (this.opts.raceDelayMs !== null && (!Number.isFinite(this.opts.raceDelayMs) || this.opts.raceDelayMs < 0))
      throw new RangeError('selection.raceDelayMs must be >= 0 or null');
  }

  state(origin: string): OriginState {
    return this.#states.upsert(origin, () => new OriginState(origin, this.cache));
  }

  counters(origin: string): SelectionCounters {
    return this.#counters.upsert(origin, () => ({
      races: 0,
      quicAttempts: 0,
      quicFailures: 0,
      quicWins: 0,
      tcpWins: 0,
      upgrades: 0,
      earlyStarts: 0,
      fallbacks: 0,
    }));
  }

  /** Origins with state held now (at most the bound). */
  get size(): number {
    return this.#states.size;
  }

  /** The Dialer for an `auto` pool: TCP (ALPN decides), or a QUIC-first race when h3 is known and not broken. */
  autoDialer(origin: string, spec: OriginSpec, ctx: DialContext, pool: () => Pool | null): Dialer {
    const st = this.state(origin);
    const n = this.counters(origin);
    const tcp = (signal: DialSignal): Promise<PooledConnection> =>
      this.#connect({ ...spec, protocol: 'auto' }, { ...ctx, signal }).then((c) => {
        this.noteConnection(origin, c);
        return c;
      });
    return (signal) => {
      const now = Date.now();
      const choice = st.choose('auto', now);
      const alt = st.facts.h3;
      if (choice.transport === 'tcp' || st.quicPending || !alt) return tcp(signal);
      st.quicPending = true;
      n.races++;
      n.quicAttempts++;
      // Early start only for a known-good alternative: one that has not failed
      // recently (Chromium requires handshake confirmation on an alternative
      // that was broken before). Without a ticket the QUIC leg resolves at
      // its handshake anyway.
      const early = ctx.earlyData !== 'never' && st.facts.brokenCount === 0;
      // The QUIC module loads before the race starts: its loading is not network time (the race
      // delay would otherwise be spent on it, and a fresh process would hand its first request to TCP).
      // A module that fails to load fails the QUIC leg at once, as before.
      return h3Connector()
        .then(
          () => {},
          () => {},
        )
        .then(() =>
          raceDial({
            quic: (sig) =>
              connectAltH3(spec, alt, { ...ctx, signal: sig }, this.opts.quicTimeoutMs, early).then((c) => {
                if (c.handshakePending?.()) n.earlyStarts++;
                return c;
              }),
            tcp: (sig) =>
              tcp(sig).then((c) => {
                n.tcpWins++;
                return c;
              }),
            delayMs: st.raceDelay(this.opts.raceDelayMs),
            quicTimeoutMs: this.opts.quicTimeoutMs + 500,
            signal,
            onFallback: (c, quic) => {
              n.fallbacks++;
              pool()?.adopt(c) ?? c.destroy();
              quic.yieldToFallback?.();
            },
            onQuic: (o) => {
              st.quicPending = false;
              if (o.ok === 'aborted') return false;
              if (o.ok === false) {
                n.quicFailures++;
                st.h3Failed(Date.now(), this.opts);
                return false;
              }
              this.noteConnection(origin, o.conn);
              if (!o.late) {
                n.quicWins++;
                return false;
              }
              // QUIC answered after TCP won: the path works; keep it and let TCP drain.
              const p = pool();
              if (o.early) {
                // Already in the pool (it won early); only TCP goes.
                n.upgrades++;
                p?.drainOthers('h3');
                return false;
              }
              if (!p || !p.adopt(o.conn)) return true;
              n.upgrades++;
              p.drainOthers('h3');
              return true;
            },
          }),
        );
    };
  }

  /** Record what a new connection tells about its origin. */
  noteConnection(origin: string, c: PooledConnection): void {
    const st = this.state(origin);
    const now = Date.now();
    if (c.protocol === 'h3') {
      st.h3Succeeded(now);
      st.noteRtt(c.facts.rttMs, now);
    } else {
      // TCP connect time is one RTT (not with TFO: the SYN completes at once).
      st.noteTcp(c.facts.alpn, c.facts.tfo ? null : c.facts.connectMs, now);
    }
  }

  /**
   * Learn Alt-Svc from a response carried for `origin` (RFC 7838 §3). When h3
   * is newly usable and the pool holds no h3 connection, dial one in the
   * background; on success it joins the pool and the TCP connections drain.
   */
  onResponse(origin: string, headers: HeaderList, spec: OriginSpec, ctx: DialContext, pool: Pool | null): void {
    if (spec.scheme !== 'https') return;
    let values: string[] | null = null; // made only for a response that carries Alt-Svc (this runs for every response)
    for (const [k, v] of headers) if (k === 'alt-svc') (values ??= []).push(v);
    if (values === null) return;
    const st = this.state(origin);
    const now = Date.now();
    st.learnAltSvc(parseAltSvc(values), now);
    const alt = st.facts.h3;
    if (!pool || !alt || alt.expiresAt <= now || st.isBroken(now) || st.quicPending || this.#upgrading.has(origin))
      return;
    if (pool.connections().some((c) => c.protocol === 'h3' && c.state === 'ready')) return;
    this.#upgrading.add(origin);
    st.quicPending = true;
    const n = this.counters(origin);
    n.quicAttempts++;
    const ctl = new LegSignal(null);
    connectAltH3(spec, alt, { ...ctx, signal: ctl }, this.opts.quicTimeoutMs).then(
      (c) => {
        this.#upgrading.delete(origin);
        st.quicPending = false;
        this.noteConnection(origin, c);
        if (pool.adopt(c)) {
          n.upgrades++;
          pool.drainOthers('h3');
        }
      },
      () => {
        this.#upgrading.delete(origin);
        st.quicPending = false;
        n.quicFailures++;
        st.h3Failed(Date.now(), this.opts);
      },
    );
  }
}
