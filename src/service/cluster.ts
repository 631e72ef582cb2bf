/**
 * `originlink serve --workers N|auto`: the primary of a node:cluster
 * connector. It serves no traffic itself. It forks N workers
 * (cluster-worker.ts: each a whole Service with its own pools), restarts a
 * worker that exits unexpectedly (logged; backoff when one keeps dying
 * young), fans SIGHUP (reload) and SIGTERM/SIGINT (drain) out to every
 * worker over IPC, and owns the admin listener: /metrics is the sum of the
 * workers' registries (prom-client's AggregatorRegistry.aggregate over the
 * JSON each worker sends back) plus the primary's own series; /stats lists
 * each worker's pool stats. See docs/workers.md for the h3 front decision.
 *
 * Invariants: a slot has at most one live worker; nothing is restarted once
 * stopping; every wait is bounded (start, IPC answers, drain).
 */
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
export { workerSlot, WORKER_SLOT_ENV } from './worker-slot.js';
import { availableParallelism } from 'node:os';
import { pino, type Logger } from 'pino';
import { logDestination } from './log-destination.js';
import { makeRunDir } from '../util/run-dir.js';
import { FLEET_DIR_ENV, H3_STEER_ENV, TICKET_SECRET_ENV, WORKER_SLOT_ENV } from './worker-slot.js';
import { setUpSteering } from './h3-steering.js';
import { StrikeRegister } from '../quic/strike-register.js';
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import { ErrorCode, OriginlinkError } from '../errors.js';
import { moveAdmin, startAdmin } from './admin.js';
import { ConfigError, loadConfigFile, type ServiceConfig } from './config.js';
import type { Member, MemberTable } from './fleet.js';

/** Primary → worker. */
export type ToWorker =
  /** The config the primary read (node:cluster's advanced serialization carries its Maps and Buffers). */
  | { ol: 'reload'; config: ServiceConfig }
  /** The answer to `config?`: the config the primary runs now. */
  | { ol: 'config'; config: ServiceConfig }
  | { ol: 'reload-failed' }
  | { ol: 'drain' }
  | { ol: 'req'; id: number; what: 'metrics' | 'stats' }
  | { ol: 'altsvc'; value: string | null }
  | { ol: 'fleet'; table: MemberTable }
  | { ol: 'strike'; id: number; first: boolean };
/** Worker → primary. */
export type FromWorker =
  /** A starting worker asks for the config the primary runs (the file may have changed since, unreloaded). */
  | { ol: 'config?' }
  /** `member`: its member listener's unix socket (null: a member of `fleet.members`, which the table does not use). */
  | { ol: 'ready'; addresses: Record<string, number>; member: string | null }
  | { ol: 'res'; id: number; body: unknown; error?: string }
  | { ol: 'altsvc'; value: string | null }
  | { ol: 'strike'; id: number; key: string };

const MAX_WORKERS = 256;
/** A worker that exits within this of its start counts as dying young: restarts back off. */
const YOUNG_MS = 5000;
const BACKOFF_BASE_MS = 100;
const BACKOFF_MAX_MS = 10_000;
/** How long the first workers may take to start, and an IPC answer to come back. */
const START_TIMEOUT_MS = 30_000;
const ASK_TIMEOUT_MS = 2000;
/** Beyond shutdown.graceMs, how long workers get to exit before they are killed. */
const EXIT_MARGIN_MS = 5000;

/** `--workers N|auto`: auto = the cores this process may use. */
export function parseWorkers(v: string): number {
  const n = v === 'auto' ? availableParallelism() : Number(v);
  if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS)
    throw new OriginlinkError(
      ErrorCode.INVALID_ARGUMENT,
      'local',
      `--workers must be auto or a whole number from 1 to ${MAX_WORKERS} (got ${JSON.stringify(v)})`,
    );
  return n;
}

interface Slot {
  n: number;
  worker: Worker | null;
  startedAt: number;
  ready: boolean;
  backoffMs: number;
  timer: NodeJS.Timeout | null;
  /** The Alt-Svc its own h3 listeners give (worker 1's, unsteered), while it runs. */
  altSvc: string | null;
  /** Its member listener's unix socket (docs/fleet.md), while it runs and is ready. */
  member: string | null;
}

export async function runCluster(file: string, first: ServiceConfig, workers: number): Promise<number> {
  let config = first;
  const log: Logger = pino(
    { level: config.logging.level, base: { svc: 'originlink', role: 'primary', pid: process.pid } },
    logDestination(),
  );
  const own = new Registry();
  const restarts = new Counter({
    name: 'originlink_worker_restarts_total',
    help: 'Workers restarted after an unexpected exit, by slot.',
    labelNames: ['worker'],
    registers: [own],
  });
  const slots: Slot[] = Array.from({ length: workers }, (_, i) => ({
    n: i + 1,
    worker: null,
    startedAt: 0,
    ready: false,
    backoffMs: 0,
    timer: null,
    altSvc: null,
    member: null,
  }));
  new Gauge({
    name: 'originlink_workers',
    help: 'Worker slots by state (ready: serving; down: starting or restarting).',
    labelNames: ['state'],
    registers: [own],
    collect() {
      const up = slots.filter((s) => s.ready).length;
      this.set({ state: 'ready' }, up);
      this.set({ state: 'down' }, slots.length - up);
    },
  });
  let stopping = false;
  let asks = 0;
  const pending = new Map<number, (body: unknown) => void>();
  let onAllExited: (() => void) | null = null;
  let starting: { ready: () => void; failed: (why: string) => void } | null = null;

  /**
   * Every message to a worker goes through here: a send to a worker whose channel just closed (it is
   * exiting) fails with EPIPE as an 'error' event, which without a callback would end the primary.
   * Seen in the suite: the primary died with an uncaught `write EPIPE` right after a reload.
   */
  const tell = (w: Worker | null, m: ToWorker, failed?: () => void): void => {
    if (!w?.isConnected()) {
      failed?.();
      return;
    }
    w.send(m, undefined, undefined, (e: Error | null) => {
      if (!e) return;
      log.warn({ workerPid: w.process.pid, message: m.ol, err: e.message }, 'message to a worker failed');
      failed?.();
    });
  };

  // Where the h3 front runs in worker 1 only (no steering), every worker's https fronts advertise it (Alt-Svc) while it
  // runs; steered, every worker binds it and advertises its own.
  let advertised: string | null = null;
  const shareAltSvc = (): void => {
    const now =
      slots
        .map((x) => x.altSvc)
        .filter((v): v is string => v !== null)
        .join(', ') || null;
    if (now === advertised) return;
    advertised = now;
    for (const x of slots) tell(x.worker, { ol: 'altsvc', value: now });
  };

  // The fleet of this machine's workers (docs/fleet.md): every ready worker with its member socket, and the run's
  // token, which only this process makes and only IPC carries. Told to every worker whenever it changes: a worker
  // that exits is out of every other's hash at once.
  const token = randomBytes(32).toString('base64url');
  // The workers' member sockets, `w<slot>.sock` in a directory of this run, mode 0700 (mkdtemp's): only this user
  // reaches them, and a link still proves itself with the token. Removed when this process exits, or by the next
  // primary of this host when this one was killed first (util/run-dir.ts).
  const memberDir = makeRunDir('originlink-fleet');
  // The workers' ticket secret when no file or Redis gives one (service/ticket-keys.ts): one per run, in their
  // environment (readable by this user only, as their memory is).
  const ticketSecret = randomBytes(32).toString('hex');
  let shared = '';
  const shareMembers = (): void => {
    const members: Member[] = slots
      .filter((x) => x.ready && x.member !== null)
      .map((x) => ({
        name: `w${x.n}`,
        url: `http://w${x.n}.fleet.invalid`,
        weight: 1,
        socketPath: x.member as string,
      }));
    const key = JSON.stringify(members);
    if (key === shared) return;
    shared = key;
    for (const x of slots) if (x.ready) tell(x.worker, { ol: 'fleet', table: { members, token } });
  };

  // The h3 front on every worker, steered by connection ID, where the kernel allows it (h3-steering.ts).
  const steer = await setUpSteering(config, workers);
  // Advanced serialization: a reload hands the workers the config as read here (Maps, Buffers), not the file again.
  cluster.setupPrimary({
    serialization: 'advanced',
    ...(typeof steer !== 'string' ? { stdio: [0, 1, 2, 'ipc', ...steer.fds] } : {}),
  });
  if (typeof steer !== 'string') {
    log.info({ listeners: steer.steering }, 'h3 listeners served by every worker, packets steered by connection ID');
  } else if (steer !== 'nothing to steer')
    log.warn({ why: steer }, 'h3 listeners served by worker 1 only: packets cannot be steered by connection ID here');
  const steerEnv = typeof steer === 'string' ? {} : { [H3_STEER_ENV]: JSON.stringify(steer.steering) };
  // Every worker's h3 front opens the others' tickets, and a copy of a first flight may reach any of them (new
  // connections go by the 4-tuple's hash): their 0-RTT ClientHellos are recorded here, once for all of them.
  const strikes = new StrikeRegister();

  const fork = (s: Slot): void => {
    s.timer = null;
    if (stopping) return;
    s.ready = false;
    s.startedAt = Date.now();
    const w = cluster.fork({
      [WORKER_SLOT_ENV]: String(s.n),
      [TICKET_SECRET_ENV]: ticketSecret,
      [FLEET_DIR_ENV]: memberDir,
      ...steerEnv,
    });
    s.worker = w;
    log.info({ worker: s.n, workerPid: w.process.pid }, 'worker starting');
    // Any other error of the worker's channel is told, never thrown: its 'exit' handler restarts it.
    w.on('error', (e: Error) =>
      log.warn({ worker: s.n, workerPid: w.process.pid, err: e.message }, 'worker channel error'),
    );
    w.on('message', (m: FromWorker) => {
      if (typeof m !== 'object' || m === null) return;
      if (m.ol === 'res') {
        pending.get(m.id)?.(m.error === undefined ? m.body : null);
        pending.delete(m.id);
      } else if (m.ol === 'ready') {
        s.ready = true;
        s.member = m.member;
        shared = ''; // the new worker needs the table too
        shareMembers();
        if (starting) {
          if (slots.every((x) => x.ready)) starting.ready();
        } else log.info({ worker: s.n, workerPid: w.process.pid, listeners: m.addresses }, 'worker restarted');
        if (stopping) tell(w, { ol: 'drain' });
        else if (advertised !== null) tell(w, { ol: 'altsvc', value: advertised });
      } else if (m.ol === 'altsvc') {
        s.altSvc = m.value;
        shareAltSvc();
      } else if (m.ol === 'config?') {
        tell(w, { ol: 'config', config });
      } else if (m.ol === 'strike') {
        // The workers' one record of 0-RTT ClientHellos (steered h3 fronts share the ticket keys: RFC 8446 §8).
        tell(w, { ol: 'strike', id: m.id, first: strikes.first(String(m.key), performance.now()) });
      }
    });
    w.on('exit', (code, signal) => {
      if (s.worker !== w) return;
      s.worker = null;
      s.ready = false;
      s.altSvc = null;
      s.member = null;
      shareAltSvc();
      shareMembers();
      if (stopping) {
        log.info({ worker: s.n, workerPid: w.process.pid, code, signal }, 'worker stopped');
        if (slots.every((x) => x.worker === null)) onAllExited?.();
        return;
      }
      if (starting) {
        log.warn({ worker: s.n, workerPid: w.process.pid, code, signal }, 'worker exited during start');
        starting.failed(`worker ${s.n} exited during start (code ${code}, signal ${signal})`);
        return;
      }
      const young = Date.now() - s.startedAt < YOUNG_MS;
      s.backoffMs = young ? Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_BASE_MS, s.backoffMs * 2)) : 0;
      restarts.inc({ worker: String(s.n) });
      log.warn(
        { worker: s.n, workerPid: w.process.pid, code, signal, restartInMs: s.backoffMs },
        'worker exited unexpectedly; restarting',
      );
      s.timer = setTimeout(() => fork(s), s.backoffMs);
    });
  };

  /** One IPC question to every ready worker; a worker that does not answer in time is left out. */
  const askAll = (
    what: 'metrics' | 'stats',
  ): Promise<Array<{ worker: number; pid: number | undefined; body: unknown }>> =>
    Promise.all(
      slots
        .filter((s) => s.ready && s.worker?.isConnected())
        .map(
          (s) =>
            new Promise<{ worker: number; pid: number | undefined; body: unknown }>((resolve) => {
              const pid = s.worker?.process.pid;
              const id = ++asks;
              const t = setTimeout(() => {
                pending.delete(id);
                resolve({ worker: s.n, pid, body: null });
              }, ASK_TIMEOUT_MS);
              pending.set(id, (body) => {
                clearTimeout(t);
                resolve({ worker: s.n, pid, body });
              });
              tell(s.worker, { ol: 'req', id, what }, () => {
                clearTimeout(t);
                pending.delete(id);
                resolve({ worker: s.n, pid, body: null });
              });
            }),
        ),
    );

  const aggregate = {
    contentType: own.contentType,
    async metrics(): Promise<string> {
      const parts = (await askAll('metrics'))
        .map((a) => a.body)
        .filter((b): b is Parameters<typeof AggregatorRegistry.aggregate>[0][number] => Array.isArray(b));
      return AggregatorRegistry.aggregate([...parts, await own.getMetricsAsJSON()]).metrics();
    },
  };

  let admin: { port: number; close(): Promise<void> } | null = null;
  const startAdminAt = (host: string, port: number): Promise<{ port: number; close(): Promise<void> }> =>
    startAdmin(host, port, {
      metrics: { registry: aggregate },
      healthy: () => !stopping && slots.some((s) => s.ready),
      stats: async () => ({ workers: await askAll('stats') }),
      names: () => config.admin?.hosts ?? [],
    });

  const kill = (): void => {
    for (const s of slots) s.worker?.process.kill('SIGKILL');
  };

  // Start every worker; one dying before all are up fails the start (a bad port, say).
  const started = await new Promise<string | null>((resolve) => {
    const t = setTimeout(() => resolve(`workers not ready within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    starting = {
      ready: () => {
        clearTimeout(t);
        resolve(null);
      },
      failed: (why) => {
        clearTimeout(t);
        resolve(why);
      },
    };
    for (const s of slots) fork(s);
  });
  starting = null;
  if (started !== null) {
    stopping = true;
    log.error({ reason: started }, 'cluster failed to start');
    kill();
    log.flush?.();
    return 1;
  }
  try {
    admin = config.admin ? await startAdminAt(config.admin.host, config.admin.port) : null;
  } catch (e) {
    stopping = true;
    log.error({ err: (e as Error).message }, 'admin listener failed to start');
    kill();
    return 1;
  }
  log.info(
    { file, workers, workerPids: slots.map((s) => s.worker?.process.pid), admin: admin?.port ?? null },
    'originlink serving',
  );
  if (workers > 1 && typeof steer === 'string' && config.listeners.every((l) => l.kind === 'h3'))
    log.warn({ workers }, 'only h3 listeners: worker 1 serves them all, the other workers have nothing to accept');

  return new Promise<number>((resolve) => {
    const broadcast = (m: ToWorker): void => {
      for (const s of slots) tell(s.worker, m);
    };
    const stop = (sig: NodeJS.Signals): void => {
      if (stopping) {
        log.warn({ signal: sig }, 'second signal: killing workers now');
        kill();
        resolve(1);
        return;
      }
      stopping = true;
      for (const s of slots)
        if (s.timer) {
          clearTimeout(s.timer);
          s.timer = null;
        }
      log.info({ signal: sig, graceMs: config.shutdown.graceMs, workers }, 'shutting down');
      const deadline = setTimeout(() => {
        log.warn('workers did not exit in time: killing them');
        kill();
      }, config.shutdown.graceMs + EXIT_MARGIN_MS);
      onAllExited = () => {
        clearTimeout(deadline);
        void (admin?.close() ?? Promise.resolve()).then(() => {
          log.info('originlink stopped');
          log.flush?.();
          resolve(0);
        });
      };
      broadcast({ ol: 'drain' });
      if (slots.every((s) => s.worker === null)) onAllExited();
    };
    let reloading = Promise.resolve();
    const hup = (): void => {
      reloading = reloading.then(async () => {
        if (stopping) return;
        let next: ServiceConfig;
        try {
          next = loadConfigFile(file);
        } catch (e) {
          // Checked once here: the workers keep their config; each counts a failed reload (the series /metrics sums).
          const d = e instanceof ConfigError ? e.details : {};
          log.error(
            { file, field: d['field'], line: d['line'], reason: d['reason'] ?? (e as Error).message },
            `config reload failed, keeping the running config: ${(e as Error).message}`,
          );
          broadcast({ ol: 'reload-failed' });
          return;
        }
        const was = config.admin;
        config = next;
        log.level = next.logging.level;
        if (was?.host !== next.admin?.host || was?.port !== next.admin?.port) {
          admin = await moveAdmin(
            admin,
            was,
            next.admin,
            (at) => startAdminAt(at.host, at.port),
            (e) => log.error({ err: e.message, admin: next.admin }, 'admin listener failed to start after reload'),
          );
        }
        broadcast({ ol: 'reload', config: next });
        log.info({ workers: slots.filter((s) => s.worker).length }, 'reload sent to workers');
      });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.on('SIGHUP', hup);
  });
}
