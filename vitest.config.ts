import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // No test binds a fixed port: the default admin port is held for the whole run (test/setup/hold-default-ports.ts).
    globalSetup: ['test/setup/hold-default-ports.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Peer tests bind real ports and start real servers; files run in parallel
    // processes but each file picks free ports itself.
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
  },
});
