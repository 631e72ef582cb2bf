import { defineConfig } from 'vitest/config';

/**
 * HTTP/3 runs on our own QUIC engine (native/quic, quiche 0.30) unless it was not built, then on the prebuilt
 * fallback (@matrixai/quic-linux-x64, quiche 0.18): the interop, 0-RTT, migration, raw QUIC, Chromium and batch-call suites run a second
 * time on the fallback (ORIGINLINK_QUIC_ENGINE=matrixai), so both engines stay proven.
 */
const BOTH_ENGINES = [
  'test/peer/h3-interop.test.ts',
  'test/peer/zero-rtt.test.ts',
  'test/peer/migration.test.ts',
  'test/peer/quic-raw.test.ts',
  'test/peer/h3-chromium.test.ts',
  'test/peer/h3-chromium-port-migration.test.ts',
  'test/peer/quic-batch-calls.test.ts',
];

export default defineConfig({
  test: {
    // No test binds a fixed port: the default admin port is held for the whole run (test/setup/hold-default-ports.ts).
    globalSetup: ['test/setup/hold-default-ports.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Peer tests bind real ports and start real servers; files run in parallel
    // processes but each file picks free ports itself.
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'originlink', include: ['test/**/*.test.ts'] } },
      {
        extends: true,
        test: { name: 'fallback-quic-engine', include: BOTH_ENGINES, env: { ORIGINLINK_QUIC_ENGINE: 'matrixai' } },
      },
    ],
  },
});
