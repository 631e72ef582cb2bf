/**
 * Where the fronts' ticket secret comes from (service/ticket-keys.ts), first found: `tickets.secretFile` (an operator
 * distributes it, as nginx's ssl_session_ticket_key), the stores' Redis (one secret for every process that shares it,
 * made by the first with SET NX and sealed at rest with `stores.encryptionKeyFile`; taken before any listener
 * serves), the `serve --workers` primary (one per run, for its workers), else this process's own.
 */
import type { Logger } from 'pino';
import type { RedisLink } from '../store/redis-link.js';
import { Sealer } from '../store/seal.js';
import type { ServiceConfig, StoresConfig } from './config.js';
import { storesRedisLink, storesRedisUrl } from './stores.js';
import { freshSecret, type TicketSecretSource } from './ticket-keys.js';
import { workerTicketSecret } from './worker-slot.js';
import { redact } from '../util/redact.js';

/** How long a start waits for Redis to give the secret before going on with one of its own. */
const REDIS_WAIT_MS = 2000;

export async function ticketSecret(
  config: Pick<ServiceConfig, 'tickets' | 'stores'>,
  log: Logger,
): Promise<{ secret: Buffer; source: TicketSecretSource }> {
  if (config.tickets.secret) return { secret: config.tickets.secret, source: 'file' };
  const s = config.stores;
  const url = storesRedisUrl(s);
  if (s && url) {
    if (!s.encryptionKey) {
      log.warn(
        'ticket keys not shared through Redis: stores.encryptionKeyFile is not set (the fleet secret is kept sealed with it)',
      );
    } else {
      const got = await fromRedis(s, s.encryptionKey);
      if (got) return { secret: got, source: 'redis' };
      log.warn(
        { redis: redact(url) },
        'ticket secret not taken from Redis (unreachable, or sealed under another stores key): this process seals tickets under keys of its own until it restarts',
      );
    }
  }
  const primary = workerTicketSecret();
  if (primary) return { secret: primary, source: 'primary' };
  return { secret: freshSecret(), source: 'process' };
}

async function fromRedis(s: StoresConfig, key: Buffer): Promise<Buffer | null> {
  const link = storesRedisLink(s, () => {}) as RedisLink;
  try {
    if (!(await link.ready(REDIS_WAIT_MS))) return null;
    const sealer = new Sealer(key);
    const name = `${link.prefix}fleet-secret`;
    const sealed = await link.read(async (r) => {
      // The first process makes it; every other one (and every later start) reads that one.
      await r.set(name, sealer.seal(freshSecret(), name), 'NX');
      return r.getBuffer(name);
    });
    const secret = sealed ? sealer.open(sealed, name) : null;
    return secret && secret.length === 32 ? secret : null;
  } finally {
    await link.close();
  }
}
