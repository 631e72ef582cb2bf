/**
 * One worker of `originlink serve --workers N` (a node:cluster worker): a
 * whole Service with its own upstream pools. Its TCP listeners are shared
 * through the primary (node:cluster hands out accepted connections
 * round-robin); every worker runs the h3 listeners, packets steered to the
 * worker of their connection by the primary's eBPF map (docs/workers.md), or
 * only worker 1 where that cannot be set up; no worker runs the admin listener (the primary
 * does, aggregating the workers' metrics over IPC).
 *
 * Commands from the primary (IPC) and signals sent to the worker itself do
 * the same things: drain (idempotent: a terminal's Ctrl-C reaches every
 * process of the group and the primary's drain follows it) and reload.
 * A worker whose primary is gone exits at once: node:cluster does that on
 * an unexpected IPC disconnect (the shared listening sockets were the
 * primary's anyway).
 */
import diagnostics from 'node:diagnostics_channel';
import { pino } from 'pino';
import { logDestination } from './log-destination.js';
import { Counter, Gauge, Registry } from 'prom-client';
import { channels } from '../pool/diagnostics.js';
import type { FromWorker, ToWorker } from './cluster.js';
import { loadConfigFile, type ServiceConfig } from './config.js';
import { reloadConfig, reloadFromFile } from './reload.js';
import { Service } from './service.js';
import { workerH3Steer, workerMemberSocket } from './worker-slot.js';

/**
 * What worker `slot` runs of the config file: no admin; the h3 listeners everywhere when the primary steers them
 * (each at the port it resolved), else in worker 1 only.
 */
export function workerConfig(c: ServiceConfig, slot: number, steer = workerH3Steer()): ServiceConfig {
  if (steer === null)
    return { ...c, admin: null, listeners: slot === 1 ? c.listeners : c.listeners.filter((l) => l.kind !== 'h3') };
  const listeners = c.listeners.flatMap((l) => {
    if (l.kind !== 'h3') return [l];
    const at = steer[l.name];
    // An h3 listener the primary did not set up (a reload added it) stays with worker 1.
    if (at === undefined) return slot === 1 ? [l] : [];
    return [{ ...l, port: at.port }];
  });
  return { ...c, admin: null, listeners };
}

/** Per-worker series (labelled by slot), next to the Service's own registry. */
function workerRegistry(svc: Service, slot: number): { registry: Registry; close(): void } {
  const registry = new Registry();
  const worker = String(slot);
  const info = new Gauge({
    name: 'originlink_worker_info',
    help: 'One per running worker: its slot and process id.',
    labelNames: ['worker', 'pid'],
    registers: [registry],
  });
  info.set({ worker, pid: String(process.pid) }, 1);
  new Gauge({
    name: 'originlink_worker_inflight',
    help: 'Requests being forwarded now, per worker.',
    labelNames: ['worker'],
    registers: [registry],
    collect() {
      this.set({ worker }, svc.metrics.inflight);
    },
  });
  // The h3 front's share of this worker (docs/workers.md): connections it accepted, short-header packets that reached
  // it for a connection it does not hold (0 while steering by connection ID works), stateless resets it sent.
  for (const [name, help, pick] of [
    ['originlink_worker_h3_accepted_total', 'QUIC connections the h3 front accepted, per worker.', 'accepted'],
    [
      'originlink_worker_h3_stray_packets_total',
      'Short-header QUIC packets for a connection this worker does not hold, per worker.',
      'strayShort',
    ],
    ['originlink_worker_h3_stateless_resets_total', 'Stateless resets sent, per worker.', 'resetsSent'],
  ] as const)
    new Counter({
      name,
      help,
      labelNames: ['worker'],
      registers: [registry],
      collect() {
        this.reset();
        this.inc({ worker }, svc.h3Front()[pick]);
      },
    });
  const served = new Counter({
    name: 'originlink_worker_upstream_requests_total',
    help: 'Upstream requests completed (any outcome), per worker.',
    labelNames: ['worker'],
    registers: [registry],
  });
  served.inc({ worker }, 0);
  const onEnd = (): void => {
    served.inc({ worker });
  };
  diagnostics.subscribe(channels.requestEnd.name, onEnd);
  return { registry, close: () => diagnostics.unsubscribe(channels.requestEnd.name, onEnd) };
}

function send(m: FromWorker): void {
  // A callback, so a channel closing under the message (the primary going away) is not an uncaught EPIPE.
  if (process.connected) process.send?.(m, undefined, undefined, () => {});
}

/** How long a starting worker waits for its primary's config before it reads the file itself. */
const CONFIG_WAIT_MS = 10_000;

/**
 * The config the primary runs: a worker that starts (or restarts after a crash) runs what the other workers run,
 * not the file as it is now (edited, not yet reloaded), and parses nothing (one parse per machine, as for reloads).
 * The file only when the primary does not answer (no IPC channel, or it went away).
 */
function primaryConfig(file: string): Promise<ServiceConfig> {
  if (!process.connected) return Promise.resolve(loadConfigFile(file));
  return new Promise((resolve, reject) => {
    const done = (c: ServiceConfig | null): void => {
      clearTimeout(timer);
      process.off('message', onMessage);
      try {
        resolve(c ?? loadConfigFile(file));
      } catch (e) {
        reject(e);
      }
    };
    const onMessage = (m: ToWorker): void => {
      if (typeof m === 'object' && m !== null && m.ol === 'config') done(m.config);
    };
    const timer = setTimeout(() => done(null), CONFIG_WAIT_MS);
    process.on('message', onMessage);
    send({ ol: 'config?' });
  });
}

export async function runWorker(file: string, slot: number): Promise<number> {
  const shape = (c: ServiceConfig): ServiceConfig => workerConfig(c, slot);
  const memberSocket = workerMemberSocket();
  if (memberSocket === null)
    throw new Error('a worker needs its member socket directory from the primary (OL_FLEET_DIR)');
  const raw = await primaryConfig(file);
  const config = shape(raw);
  const log = pino(
    { level: config.logging.level, base: { svc: 'originlink', worker: slot, pid: process.pid } },
    logDestination(),
  );
  // Steered h3 fronts (every worker's) record their 0-RTT ClientHellos at the primary, one record for all.
  const strikeAnswers = new Map<number, (first: boolean) => void>();
  let strikeId = 0;
  const askPrimary = (key: string): Promise<boolean> =>
    new Promise((resolve) => {
      const id = ++strikeId;
      strikeAnswers.set(id, (first) => {
        strikeAnswers.delete(id);
        resolve(first);
      });
      send({ ol: 'strike', id, key });
      // The endpoint stops waiting at 100 ms (no early data then); the entry goes a little after.
      setTimeout(() => {
        if (strikeAnswers.delete(id)) resolve(false);
      }, 200).unref();
    });
  const svc = await Service.start(config, {
    logger: log,
    fleetMember: { name: `w${slot}`, socketPath: memberSocket },
    ...(workerH3Steer() ? { earlyDataRecord: askPrimary } : {}),
  });
  const own = workerRegistry(svc, slot);
  return new Promise<number>((resolve) => {
    let stopping = false;
    let reloading = Promise.resolve();
    const drain = (why: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ why, graceMs: svc.config.shutdown.graceMs }, 'shutting down');
      svc.shutdown().then(
        () => {
          own.close();
          resolve(0);
        },
        (e: unknown) => {
          log.error({ err: e }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    // The primary's reload carries the config it read (one parse per machine); a SIGHUP sent to this worker alone
    // reads the file here.
    const reload = (next: ServiceConfig | null = null): void => {
      reloading = reloading.then(async () => {
        if (!stopping) await (next ? reloadConfig(svc, file, shape(next)) : reloadFromFile(svc, file, shape));
        if (!stopping) send({ ol: 'altsvc', value: svc.altSvc });
      });
    };
    const answer = async (id: number, what: 'metrics' | 'stats'): Promise<void> => {
      try {
        // The primary was scraped: this worker's process series start with the first such ask (Metrics.prepare).
        if (what === 'metrics') await svc.metrics.prepare();
        const body =
          what === 'metrics'
            ? [...(await svc.metrics.registry.getMetricsAsJSON()), ...(await own.registry.getMetricsAsJSON())]
            : svc.stats();
        send({ ol: 'res', id, body });
      } catch (e) {
        send({ ol: 'res', id, body: null, error: (e as Error).message });
      }
    };
    process.on('message', (m: ToWorker) => {
      if (typeof m !== 'object' || m === null) return;
      if (m.ol === 'drain') drain('primary');
      else if (m.ol === 'reload') reload(m.config);
      else if (m.ol === 'reload-failed') svc.metrics.front.reloads.inc({ result: 'failed' });
      else if (m.ol === 'req') void answer(m.id, m.what);
      else if (m.ol === 'altsvc') svc.advertiseAltSvc(m.value);
      else if (m.ol === 'fleet') svc.setFleet(m.table);
      else if (m.ol === 'strike') strikeAnswers.get(m.id)?.(m.first);
    });
    process.on('SIGTERM', () => drain('SIGTERM'));
    process.on('SIGINT', () => drain('SIGINT'));
    process.on('SIGHUP', () => reload());
    // Alt-Svc first: the primary passes it on to the other workers before it counts this one ready and says
    // it is serving (one ordered IPC channel per worker also carries the connections handed to it).
    if (svc.altSvc !== null) send({ ol: 'altsvc', value: svc.altSvc });
    send({ ol: 'ready', addresses: svc.addresses(), member: svc.memberSocket });
  });
}
