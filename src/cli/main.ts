#!/usr/bin/env node
/** originlink command line: fetch, probe, serve, demo. */
import { isOriginlinkError } from '../errors.js';
import { FETCH_USAGE } from './fetch-args.js';

const USAGE = `usage: originlink <command> [options]
commands:
  fetch URL     a curl-like client through the pool (--help for options)
  probe URL     what the origin supports and which protocol would be chosen
  serve         run the connector service (--config FILE)
  demo          local origins on h1/h2/h3 and the connector in front (= npm start)
  info          versions, native addons (loaded or why not), QUIC binding, kernel features (--json)
  --version     the version (originlink -V)

${FETCH_USAGE}`;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    process.stdout.write(`${(await import('./version.js')).versionText()}\n`);
    return 0;
  }
  // The command table loads the commands' code (the build's commands bundle, compiled through V8's code cache:
  // scripts/bundle.mjs), which --version and --help do without.
  const cmd = (await import('./commands.js')).commands.get(name);
  if (!cmd) {
    process.stderr.write(`originlink: unknown command ${JSON.stringify(name)}\n${USAGE}\n`);
    return 2;
  }
  return cmd(rest);
}

/**
 * What the user did, not a bug of ours: an option parseArgs refused (exit 2, like a usage error), or a system call
 * that failed on the user's input or machine (a file named on the command line that is not there, a port in use).
 * Said in one line; anything else is a bug and keeps its stack.
 */
function userError(e: unknown): { message: string; code: number } | null {
  const c = (e as { code?: unknown } | null)?.code;
  if (typeof c !== 'string') return null;
  if (c.startsWith('ERR_PARSE_ARGS_')) {
    // Node's parser's text is a paragraph about positionals: the option and where the list is, in one line.
    const opt = /'(-[^']*)'/.exec((e as Error).message)?.[1];
    const cmd = process.argv[2] ?? '';
    if (c === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && opt)
      return { message: `option ${opt}: is unknown (originlink ${cmd} --help lists the options)`, code: 2 };
    return { message: (e as Error).message.split('\n')[0] ?? 'bad arguments', code: 2 };
  }
  if (/^E[A-Z]+$/.test(c) && typeof (e as { syscall?: unknown }).syscall === 'string')
    return { message: (e as Error).message, code: 1 };
  return null;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    const user = isOriginlinkError(e) ? null : userError(e);
    if (isOriginlinkError(e)) process.stderr.write(`originlink: ${e.code}: ${e.message}\n`);
    else if (user) process.stderr.write(`originlink: ${user.message}\n`);
    else process.stderr.write(`originlink: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = user ? user.code : isOriginlinkError(e) && e.code === 'OL_INVALID_ARGUMENT' ? 2 : 1;
  },
);
