/**
 * SIGHUP's work, shared by the single-process `serve` and each cluster
 * worker: read the config file again and swap it in; a broken file (or a
 * reload the service refuses) is logged and the running config stays.
 */
import { ConfigError, configErrorAt, failedField, loadConfigFile, type ServiceConfig } from './config.js';
import type { Service } from './service.js';

/** `shape`: what this process runs of the file (a cluster worker drops the admin listener, maybe h3). */
export async function reloadFromFile(
  svc: Service,
  file: string,
  shape: (c: ServiceConfig) => ServiceConfig = (c) => c,
): Promise<boolean> {
  try {
    let next: ServiceConfig;
    try {
      next = shape(loadConfigFile(file));
    } catch (e) {
      svc.metrics.front.reloads.inc({ result: 'failed' }); // a file that does not parse is a failed reload too (reload() counts its own)
      throw e;
    }
    try {
      await svc.reload(next);
    } catch (e) {
      // A new listener that cannot bind is its field's error, with its line, as at start.
      const field = failedField(e, next);
      throw field ? configErrorAt(file, field, String((e as ConfigError).details['reason'])) : e;
    }
    return true;
  } catch (e) {
    const d = e instanceof ConfigError ? e.details : {};
    svc.log.error(
      { file, field: d['field'], line: d['line'], reason: d['reason'] ?? (e as Error).message },
      `config reload failed, keeping the running config: ${(e as Error).message}`,
    );
    return false;
  }
}
