/**
 * Which worker slot this process is (a module of its own: the stores and the CLI ask, cluster.ts forks). Each answer
 * reads its environment variable first and asks `node:cluster` only when it is set: a process that is no worker never
 * loads that module (with `child_process` and `dgram` behind it: bench/RESULTS.md `startup`; it is loaded at its first
 * use, scripts/lazy-builtins.mjs).
 */
import cluster from 'node:cluster';

/** The environment variable that tells a forked process its worker slot (1..N). */
export const WORKER_SLOT_ENV = 'OL_WORKER_SLOT';

/** This process is a worker forked by runCluster: its slot, else null. */
export function workerSlot(): number | null {
  const s = Number(process.env[WORKER_SLOT_ENV]);
  return Number.isInteger(s) && s > 0 && cluster.isWorker ? s : null;
}

/**
 * The environment variable that gives a forked worker the primary's ticket secret (service/ticket-keys.ts): the
 * workers of one `serve --workers` seal tickets under the same keys when no file or Redis gives them one.
 */
export const TICKET_SECRET_ENV = 'OL_TICKET_SECRET';

/** The ticket secret the primary gave this worker, else null. */
export function workerTicketSecret(): Buffer | null {
  const hex = process.env[TICKET_SECRET_ENV];
  return hex && /^[0-9a-f]{64}$/.test(hex) && cluster.isWorker ? Buffer.from(hex, 'hex') : null;
}

/**
 * The environment variable that tells a worker its h3 listeners are served by every worker, steered by connection
 * ID (docs/workers.md): JSON `{ "LISTENER": { "fd": N, "port": P } }` — per h3 listener, its steering map's file
 * descriptor (the primary's, inherited: one map per port) and its port as the primary resolved it (port 0 made one
 * port for all).
 */
export const H3_STEER_ENV = 'OL_H3_STEER';

/** Per h3 listener, the steering the primary set up for this worker: its map's fd and its port. */
export type H3Steering = Record<string, { fd: number; port: number }>;

/** The steering the primary set up for this worker's h3 listeners, else null (worker 1 serves them alone). */
export function workerH3Steer(): H3Steering | null {
  const raw = process.env[H3_STEER_ENV];
  if (!raw || !cluster.isWorker) return null;
  try {
    const v = JSON.parse(raw) as H3Steering;
    const ok = Object.values(v).every((x) => Number.isInteger(x?.fd) && Number.isInteger(x?.port));
    return ok ? v : null;
  } catch {
    return null;
  }
}

/**
 * The environment variable that gives a worker the directory of the workers' member sockets (docs/fleet.md): made by
 * the primary, mode 0700, one socket `w<slot>.sock` per worker in it.
 */
export const FLEET_DIR_ENV = 'OL_FLEET_DIR';

/** This worker's member socket (`<dir>/w<slot>.sock`), else null (not a worker, or no directory given). */
export function workerMemberSocket(): string | null {
  const dir = process.env[FLEET_DIR_ENV];
  const slot = workerSlot();
  return dir && slot !== null ? `${dir}/w${slot}.sock` : null;
}
