/**
 * The CLI's command table: the one-shot commands (cli/one-shot.ts) and the two that run the service. Each command is
 * `(argv) => exit code`, loaded lazily. The build makes this module and the commands one file compiled through V8's
 * code cache (scripts/bundle.mjs), trained by a `demo --selftest` run, so a fresh `serve` neither parses their code
 * nor compiles a first request's path; the one-shot commands run from a file of their own.
 */
import { type Command, commands as oneShot } from './one-shot.js';

export type { Command };

export const commands = new Map<string, Command>([
  ...oneShot,
  ['serve', async (argv) => (await import('./serve.js')).runServe(argv)],
  ['demo', async (argv) => (await import('./demo.js')).runDemo(argv)],
]);
