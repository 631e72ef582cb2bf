/**
 * quiche's congestion controllers, as a vocabulary the layers above can name
 * without loading the native QUIC binding (quic/config.ts applies them).
 */
export const CC_ALGORITHMS = ['reno', 'cubic', 'bbr', 'bbr2'] as const;
export type CcAlgorithm = (typeof CC_ALGORITHMS)[number];
/**
 * The controller of every QUIC connection we open or accept unless an origin or listener names another: BBR
 * (quiche 0.30's bbr2_gcongestion on our own engine, paced by our pacer, quic/pacer.ts). Under random loss it keeps
 * TCP BBR's bulk throughput or better, where cubic is held near the Mathis bound (bench/RESULTS.md `loss`). On the
 * fallback engine (quiche 0.18) `bbr` is its BBRv1 — with its recovery bug, still far above cubic under loss
 * (native-notes/quiche.md). `bbr2` names the same controller as `bbr`.
 */
export const DEFAULT_CC: CcAlgorithm = 'bbr';

/**
 * BBR's tuning by default (QuicOptions.bbr), on our quiche 0.30 engine: a loss threshold of 10 % per round where
 * quiche's own is 1.5 %. quiche's BBRv2 takes random loss above its threshold for congestion and lowers its
 * inflight ceiling; Linux TCP's BBR (v1, the host default here and the loss goal's yardstick) does not. With 0.1,
 * h3 bulk keeps up with TCP BBR's at 1, 2 and 5 % loss; with quiche's 0.015 it falls behind at 5 %, and 0.05 sits
 * between (bench/RESULTS.md `loss` and its history). A real bottleneck still slows it down: BBR follows its
 * delivery-rate estimate and paces to it; only random loss up to 10 % no longer halves its ceiling.
 */
export const DEFAULT_BBR: Readonly<BbrTuning> = Object.freeze({ lossThreshold: 0.1 });

/** How loss lowers BBR's short-term bounds (quiche's `BbrBwLoReductionStrategy`, by its names). */
export const BW_LO_REDUCTIONS = ['default', 'minrtt', 'inflight', 'cwnd'] as const;
export type BwLoReduction = (typeof BW_LO_REDUCTIONS)[number];

/** BBR tuning (QuicOptions.bbr, an origin's or listener's `quic.bbr`). */
export interface BbrTuning {
  /**
   * Loss rate per round above which BBR lowers its inflight ceiling, 0.001 – 0.2. Default DEFAULT_BBR's 0.1 (quiche's
   * own: 0.015).
   */
  lossThreshold?: number;
  /**
   * How a loss lowers BBR's short-term bounds: `default` (quiche's: after each round with any loss, bandwidth_lo and
   * inflight_lo to the round's delivery, at least 0.7× themselves, the window capped by inflight_lo), `minrtt`,
   * `inflight`, `cwnd` (bandwidth_lo lowered in proportion to the bytes lost, never below the latest delivery
   * rate; inflight_lo unused).
   */
  bwLoReduction?: BwLoReduction;
}

/** Why a BBR tuning is refused (the field and reason), or null. */
export function bbrTuningError(b: BbrTuning): { field: string; reason: string } | null {
  for (const k of Object.keys(b))
    if (k !== 'lossThreshold' && k !== 'bwLoReduction')
      return { field: k, reason: 'unknown option (allowed: lossThreshold, bwLoReduction)' };
  const v = b.lossThreshold;
  if (v !== undefined && !(typeof v === 'number' && v >= 0.001 && v <= 0.2))
    return { field: 'lossThreshold', reason: `must be a number 0.001–0.2, got ${JSON.stringify(v)}` };
  const r = b.bwLoReduction;
  if (r !== undefined && !BW_LO_REDUCTIONS.includes(r))
    return {
      field: 'bwLoReduction',
      reason: `must be one of ${BW_LO_REDUCTIONS.join(', ')}, got ${JSON.stringify(r)}`,
    };
  return null;
}
