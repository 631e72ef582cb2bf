/**
 * A scripted PooledConnection for simulations of the pool and the Agent: no
 * sockets, no timers of its own. Each request becomes a `FakeExchange` the
 * test answers (`respond`, `fail`), or, with `auto`, is answered at once.
 */
import { Readable } from 'node:stream';
import { OriginlinkError, type ErrorSide } from '../../src/errors.js';
import type {
  ConnEvent,
  ConnRequest,
  ConnResponse,
  ConnState,
  ConnectionFacts,
  PooledConnection,
  Protocol,
} from '../../src/http/types.js';

let ids = 0;

export interface FakeExchange {
  req: ConnRequest;
  /** Answer with a head and a small body that ends at once; the slot frees when the body has been read. */
  respond(status?: number): void;
  /** Fail with `code`; facts say whether a response byte had arrived; `close`: the connection dies with it. */
  fail(code: string, o?: FailOptions): void;
}

export interface FailOptions {
  retrySafe?: boolean;
  responseStarted?: boolean;
  close?: boolean;
  /** Whose failure it is (default 'remote'); 'local': our side gave up, e.g. the caller aborted. */
  side?: ErrorSide;
}

export interface FakeOptions {
  protocol?: Protocol;
  /** Concurrent requests (h1: 1). Default 1 for h1, 100 otherwise. */
  capacity?: number;
  /** Answer every request with 200 at once. */
  auto?: boolean;
  /** What ping() does. Default 'ok'. */
  ping?: 'ok' | 'fail';
  /** Scripted failures for the next requests (consumed in order; `null` = answer normally). */
  script?: Array<(FailOptions & { fail: string }) | null>;
  origin?: string;
}

export class FakeConnection implements PooledConnection {
  readonly id = ++ids;
  readonly protocol: Protocol;
  readonly facts: ConnectionFacts;
  readonly createdAt = performance.now();
  lastActiveAt = this.createdAt;
  served = 0;
  active = 0;
  state: ConnState = 'ready';
  readonly exchanges: FakeExchange[] = [];
  pings = 0;
  readonly origin: string;
  #cap: number;
  #opts: FakeOptions;
  #listeners: Array<(ev: ConnEvent) => void> = [];

  constructor(opts: FakeOptions = {}) {
    this.#opts = opts;
    this.origin = opts.origin ?? '';
    this.protocol = opts.protocol ?? 'h1';
    this.#cap = opts.capacity ?? (this.protocol === 'h1' ? 1 : 100);
    this.facts = {
      protocol: this.protocol,
      alpn: null,
      remoteAddress: '127.0.0.1',
      remotePort: 0,
      localAddress: '',
      localPort: 0,
      connectMs: 0,
      tlsMs: 0,
      tlsVersion: null,
      resumed: false,
      earlyData: false,
      tfo: false,
      keepAliveHintMs: null,
      peerMaxConcurrentStreams: null,
      rttMs: null,
    };
  }

  get capacity(): number {
    return this.#cap;
  }
  peerCertificate(): null {
    return null;
  }
  isUsable(): boolean {
    return this.state === 'ready';
  }
  on(l: (ev: ConnEvent) => void): void {
    this.#listeners.push(l);
  }
  emit(ev: ConnEvent): void {
    for (const l of this.#listeners) l(ev);
  }

  /** The peer's GOAWAY: no new requests; in-flight ones finish. */
  goaway(): void {
    if (this.state === 'ready') this.state = 'draining';
    this.emit({ type: 'goaway', lastStreamId: null });
  }

  async ping(): Promise<number> {
    this.pings++;
    if (this.#opts.ping === 'fail') throw new OriginlinkError('OL_PING_TIMEOUT', 'network', 'fake PING unanswered');
    return 1;
  }

  drain(): void {
    if (this.state !== 'ready') return;
    this.state = 'draining';
    if (this.active === 0) this.destroy();
  }

  destroy(error?: Error): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.emit({ type: 'close', error: error ?? null });
  }

  request(req: ConnRequest): Promise<ConnResponse> {
    const reused = this.served > 0;
    this.served++;
    this.active++;
    this.lastActiveAt = performance.now();
    return new Promise<ConnResponse>((resolve, reject) => {
      const settle = (): void => {
        this.active--;
        this.lastActiveAt = performance.now();
        if (this.state === 'draining' && this.active === 0) this.destroy();
        else this.emit({ type: 'capacity' });
      };
      const x: FakeExchange = {
        req,
        respond: (status = 200) => {
          const body = Readable.from([Buffer.from('ok')]);
          body.once('end', settle);
          resolve({ status, headers: [], body, trailers: Promise.resolve([]) });
        },
        fail: (code, o = {}) => {
          reject(
            new OriginlinkError(code, o.side ?? 'remote', `fake ${code}`, {
              retrySafe: o.retrySafe ?? false,
              facts: { reused, requestSent: true, responseStarted: o.responseStarted ?? false },
            }),
          );
          queueMicrotask(() => {
            settle();
            if (o.close) this.destroy();
          });
        },
      };
      this.exchanges.push(x);
      const scripted = this.#opts.script?.shift();
      if (scripted) x.fail(scripted.fail, scripted);
      else if (this.#opts.auto) x.respond();
    });
  }
}
