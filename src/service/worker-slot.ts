/** Which worker slot this process is (a module of its own: the stores and the CLI ask, cluster.ts forks). */
import cluster from 'node:cluster';

/** The environment variable that tells a forked process its worker slot (1..N). */
export const WORKER_SLOT_ENV = 'OL_WORKER_SLOT';

/** This process is a worker forked by runCluster: its slot, else null. */
export function workerSlot(): number | null {
  const s = Number(process.env[WORKER_SLOT_ENV]);
  return cluster.isWorker && Number.isInteger(s) && s > 0 ? s : null;
}

/**
 * The environment variable that gives a forked worker the primary's ticket secret (service/ticket-keys.ts): the
 * workers of one `serve --workers` seal tickets under the same keys when no file or Redis gives them one.
 */
export const TICKET_SECRET_ENV = 'OL_TICKET_SECRET';

/** The ticket secret the primary gave this worker, else null. */
export function workerTicketSecret(): Buffer | null {
  const hex = process.env[TICKET_SECRET_ENV];
  return cluster.isWorker && hex && /^[0-9a-f]{64}$/.test(hex) ? Buffer.from(hex, 'hex') : null;
}
