/**
 * `originlink serve --config FILE`: run the connector. SIGTERM/SIGINT drain
 * and stop (a second signal cuts at once); SIGHUP reloads the config, and a
 * bad new config keeps the old one running.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ErrorCode, OriginlinkError } from '../errors.js';
import { ConfigError, configErrorAt, failedField, loadConfigFile, type ServiceConfig } from '../service/config.js';
import { Service } from '../service/service.js';
import { reloadFromFile } from '../service/reload.js';
import { parseWorkers, runCluster, workerSlot } from '../service/cluster.js';

/** The package's docs/ (shipped with it: package.json "files"), so --help names a file that is there. */
const DOCS = fileURLToPath(new URL('../../docs/', import.meta.url));

export const SERVE_USAGE = `usage: originlink serve [--config FILE] [--check] [--workers N|auto]
  --config FILE   YAML config (default ./originlink.yaml); every field: ${DOCS}config.md
  --check         build what serve builds before binding (TLS contexts, binds against each other; ports
                  another process holds are not tried) without serving; exit 0 = valid, 78 = not
  --workers N     run N worker processes (node:cluster; auto = one per core); see ${DOCS}workers.md
a bad config: one line file:line: field: reason, exit 78
signals: SIGTERM/SIGINT graceful stop (shutdown.graceMs), SIGHUP reload config`;

export async function runServe(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c' },
      check: { type: 'boolean', default: false },
      workers: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${SERVE_USAGE}\n`);
    return 0;
  }
  const file = values.config ?? (existsSync('originlink.yaml') ? 'originlink.yaml' : null);
  if (!file)
    throw new OriginlinkError(
      ErrorCode.INVALID_ARGUMENT,
      'local',
      `no config: give --config FILE (or have originlink.yaml in the current directory)\n${SERVE_USAGE}`,
    );
  let config: ServiceConfig;
  try {
    config = loadConfigFile(file);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`originlink: config error: ${e.message}\n`);
      return 78;
    } // EX_CONFIG
    throw e;
  }
  if (values.check) {
    process.stdout.write(
      `${file}: ok (${config.listeners.length} listener(s), ${config.origins.size} origin(s), ${config.routes.length} route(s))\n`,
    );
    return 0;
  }
  if (values.workers !== undefined || workerSlot() !== null) return serveCluster(file, config, values.workers);
  let svc: Service;
  try {
    svc = await Service.start(config);
  } catch (e) {
    // A listener that cannot bind (another process holds its port): its field's error, one line, as --check's.
    const field = failedField(e, config);
    if (field === null) throw e;
    process.stderr.write(
      `originlink: config error: ${configErrorAt(file, field, String((e as OriginlinkError).details['reason'])).message}\n`,
    );
    return 78;
  }
  const code = await serveUntilSignal(svc, file);
  setTimeout(() => process.exit(code), 500).unref(); // nothing may hold the process once stopped
  return code;
}

/** `--workers`: this process is the primary (forks the workers) or one of its workers. */
async function serveCluster(file: string, config: ServiceConfig, workers: string | undefined): Promise<number> {
  const slot = workerSlot();
  if (slot !== null) {
    // The IPC channel would hold a drained (or failed) worker alive; a cluster worker that
    // disconnects exits at once (node:cluster), so exit outright once stdout had a moment.
    const exit = (code: number): void => {
      setTimeout(() => process.exit(code), 50);
    };
    try {
      const code = await (await import('../service/cluster-worker.js')).runWorker(file, slot);
      exit(code);
      return code;
    } catch (e) {
      exit(1);
      throw e;
    }
  }
  const code = await runCluster(file, config, parseWorkers(workers ?? 'auto'));
  setTimeout(() => process.exit(code), 500).unref();
  return code;
}

/** Wire signals to a running service; resolves with the exit code after shutdown. */
export function serveUntilSignal(svc: Service, file: string): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    let reloading = Promise.resolve();
    const stop = (sig: NodeJS.Signals): void => {
      if (stopping) {
        svc.log.warn({ signal: sig }, 'second signal: exiting now');
        resolve(1);
        return;
      }
      stopping = true;
      svc.log.info({ signal: sig, graceMs: svc.config.shutdown.graceMs }, 'shutting down');
      svc.shutdown().then(
        () => resolve(0),
        (e: unknown) => {
          svc.log.error({ err: e }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    const hup = (): void => {
      reloading = reloading.then(async () => {
        if (!stopping) await reloadFromFile(svc, file);
      });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.on('SIGHUP', hup);
  });
}
