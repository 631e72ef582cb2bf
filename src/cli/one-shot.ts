/**
 * The one-shot commands' table: each is `(argv) => exit code`, loaded lazily. The build makes it a file of its own
 * (dist/bundle/client.cjs, scripts/bundle.mjs) with a code cache trained by fetches, which `fetch`, `probe` and `info`
 * load instead of the whole command table (cli/commands.ts): without the service's code and the packages only it
 * imports, a fresh process reads, deserializes and evaluates about half as much before its first line runs.
 */
export type Command = (argv: string[]) => Promise<number>;

export const commands = new Map<string, Command>([
  ['fetch', async (argv) => (await import('./fetch.js')).runFetch(argv)],
  ['probe', async (argv) => (await import('./probe.js')).runProbe(argv)],
  ['info', async (argv) => (await import('./info.js')).runInfo(argv)],
]);
