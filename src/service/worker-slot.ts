/** Which worker slot this process is (a module of its own: the stores and the CLI ask, cluster.ts forks). */
import cluster from 'node:cluster';

/** The environment variable that tells a forked process its worker slot (1..N). */
export const WORKER_SLOT_ENV = 'OL_WORKER_SLOT';

/** This process is a worker forked by runCluster: its slot, else null. */
export function workerSlot(): number | null {
  const s = Number(process.env[WORKER_SLOT_ENV]);
  return cluster.isWorker && Number.isInteger(s) && s > 0 ? s : null;
}
