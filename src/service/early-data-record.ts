/**
 * The fleet's record of 0-RTT handshakes (RFC 8446 §8: every instance that can open a ticket accepts 0-RTT for the
 * same handshake at most once; §8.2, ClientHello recording). Where the fronts' ticket keys are shared (ticket-keys.ts:
 * from a file, the stores' Redis or the `serve --workers` primary) a first flight captured at one instance opens at
 * any other, so each process's own register (quic/strike-register.ts) is not enough: a new 0-RTT ClientHello is
 * recorded in the stores' Redis with SET NX, and only the instance whose SET took it accepts the early data. The
 * entry lives as long as the local register's window (BoringSSL refuses early data on a ticket age more than 60 s
 * off, §8.3). Redis down or slow: early data refused, the handshake completes in 1-RTT (quic/endpoint.ts).
 */
import type { Logger } from 'pino';
import { STRIKE_WINDOW_MS } from '../quic/strike-register.js';
import type { RedisLink } from '../store/redis-link.js';
import type { StoresConfig } from './config.js';
import { storesRedisLink } from './stores.js';

export class EarlyDataRecord {
  readonly #link: RedisLink;

  private constructor(link: RedisLink) {
    this.#link = link;
  }

  /** A record in the Redis of `stores`, or null when it names none. */
  static open(stores: StoresConfig | null | undefined, log: Logger): EarlyDataRecord | null {
    const link = storesRedisLink(stores, (e) => log.warn({ code: e.code }, e.message));
    return link ? new EarlyDataRecord(link) : null;
  }

  /**
   * True when `key` (a 0-RTT ClientHello's digest) was recorded now, false when an instance had it, or Redis cannot
   * say (down: answered at once, without a round trip).
   */
  first = async (key: string): Promise<boolean> => {
    if (!this.#link.up) return false;
    const name = `${this.#link.prefix}0rtt:${key}`;
    return (await this.#link.read((r) => r.set(name, '1', 'PX', STRIKE_WINDOW_MS, 'NX'))) === 'OK';
  };

  close(): Promise<void> {
    return this.#link.close();
  }
}
