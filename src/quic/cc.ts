/**
 * quiche's congestion controllers, as a vocabulary the layers above can name
 * without loading the native QUIC binding (quic/config.ts applies them).
 */
export const CC_ALGORITHMS = ['reno', 'cubic', 'bbr'] as const;
export type CcAlgorithm = (typeof CC_ALGORITHMS)[number];
/**
 * The controller of every QUIC connection we open or accept unless an origin or listener names another.
 * Still cubic, on purpose. `npm run bench -- loss` (bench/RESULTS.md `loss`, 2026-11-22 23:56–00:01 UTC, 20 MiB
 * at 50 ms RTT): BBR moves 18.6 / 8.6 / 9.4 / 5.0 MiB/s at 0 / 1 / 2 / 5 % loss where cubic moves 18.8 / 0.42 /
 * 0.24 / 0.08 (held near the Mathis bound by random loss) — but without pacing (the binding's send times are
 * not read, native-notes/quiche.md) BBR bursts into a bottleneck's queue: test/peer/h3-priority.test.ts's small
 * requests behind a bulk response wait p50 157 ms with BBR against < 110 ms with cubic. Pacing first, then BBR
 * as the default; until then `quicCongestionControl` / `quic.congestionControl` choose it per origin or listener.
 */
export const DEFAULT_CC: CcAlgorithm = 'cubic';
