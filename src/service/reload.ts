/**
 * SIGHUP's work, shared by the single-process `serve` and each cluster worker: read the config file again and swap
 * it in; a broken file (or a reload the service refuses) is logged and the running config stays. A worker of
 * `serve --workers` is handed the config its primary read (`reloadConfig`): one parse per machine, not one per
 * process at the same moment (a 100-origin file costs a cold process ~50 ms of YAML; nine at once stalled a loaded
 * two-core machine for most of a second: bench/RESULTS.md `fleet-reuse`).
 */
import { ConfigError, configErrorAt, failedField, loadConfigFile, type ServiceConfig } from './config.js';
import type { Service } from './service.js';

/** `shape`: what this process runs of the file (a cluster worker drops the admin listener, maybe h3). */
export async function reloadFromFile(
  svc: Service,
  file: string,
  shape: (c: ServiceConfig) => ServiceConfig = (c) => c,
): Promise<boolean> {
  let next: ServiceConfig;
  try {
    next = shape(loadConfigFile(file));
  } catch (e) {
    svc.metrics.front.reloads.inc({ result: 'failed' }); // a file that does not parse is a failed reload too (reload() counts its own)
    return failed(svc, file, e);
  }
  return reloadConfig(svc, file, next);
}

/** Swap in `next`, read from `file` (here or by the primary); false, logged, when the service refuses it. */
export async function reloadConfig(svc: Service, file: string, next: ServiceConfig): Promise<boolean> {
  try {
    await svc.reload(next);
    return true;
  } catch (e) {
    // A new listener that cannot bind is its field's error, with its line, as at start.
    const field = failedField(e, next);
    return failed(svc, file, field ? configErrorAt(file, field, String((e as ConfigError).details['reason'])) : e);
  }
}

function failed(svc: Service, file: string, e: unknown): false {
  const d = e instanceof ConfigError ? e.details : {};
  svc.log.error(
    { file, field: d['field'], line: d['line'], reason: d['reason'] ?? (e as Error).message },
    `config reload failed, keeping the running config: ${(e as Error).message}`,
  );
  return false;
}
