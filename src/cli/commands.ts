/**
 * The CLI's command table. Each command is `(argv) => exit code`, loaded lazily. The build makes this module and the
 * commands one file compiled through V8's code cache (scripts/bundle.mjs), trained by a `demo --selftest` run, so a
 * fresh process neither parses their code nor compiles a first request's path.
 */
export type Command = (argv: string[]) => Promise<number>;

export const commands = new Map<string, Command>([
  ['fetch', async (argv) => (await import('./fetch.js')).runFetch(argv)],
  ['probe', async (argv) => (await import('./probe.js')).runProbe(argv)],
  ['serve', async (argv) => (await import('./serve.js')).runServe(argv)],
  ['demo', async (argv) => (await import('./demo.js')).runDemo(argv)],
  ['info', async (argv) => (await import('./info.js')).runInfo(argv)],
]);
