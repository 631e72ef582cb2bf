/**
 * What the Redis tiers of the stores share (TLS sessions and QUIC tickets, origin facts): their link — the one they
 * are given, or one opened from a URL and then theirs to close — and their keyspace: an entry per name under
 * `PREFIX TAG:NAME`, and an index of the names (a sorted set, `PREFIX TAG:index`) a fresh process warms from.
 */
import { ErrorCode, OriginlinkError } from '../errors.js';
import type { ChainableCommander } from 'ioredis';
import { RedisLink, type RedisLinkOptions } from './redis-link.js';

export class RedisTier {
  readonly link: RedisLink;
  /** The link was opened here (from a URL): it closes with the store. */
  readonly ownsLink: boolean;
  /** The sorted set of names. */
  readonly index: string;
  readonly #base: string;

  /** `what`: the store's name, for the error when neither a link nor a URL is given. */
  constructor(o: { link?: RedisLink | undefined; url?: string | undefined }, tag: string, what: string) {
    if (o.link) this.link = o.link;
    else if (o.url) this.link = new RedisLink(o as RedisLinkOptions);
    else throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', `${what} needs a url or a link`);
    this.ownsLink = !o.link;
    this.#base = `${this.link.prefix}${tag}:`;
    this.index = `${this.#base}index`;
  }

  /** The Redis key of `name`'s entry. */
  key(name: string): string {
    return this.#base + name;
  }

  /**
   * Queue a write of the index. Apart from the entry's own: the index is one key in one Cluster slot, the entries are
   * spread over all of them (a pipeline holds the keys of one node only).
   */
  indexWrite(op: (p: ChainableCommander, index: string) => void): void {
    const index = this.index;
    this.link.write((p) => op(p, index), index);
  }

  /** Forget `name` in Redis: its entry and its place in the index (queued with the link's next pipeline). */
  forget(name: string): void {
    const k = this.key(name);
    this.link.write((p) => p.del(k), k);
    this.indexWrite((p, index) => p.zrem(index, name));
  }

  /** Close the link if it is the store's own. */
  async release(): Promise<void> {
    if (this.ownsLink) await this.link.close();
  }
}
