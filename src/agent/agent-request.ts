/** One request's state across its attempts (Agent.request): its target or group, its body, its attempts. */
import type { Endpoint } from '../group/endpoint.js';
import type { Group } from '../group/group.js';
import type { ConnRequest, HeaderList, RequestBody } from '../http/types.js';
import type { ProxyNode } from '../net/proxy.js';
import type { SignalLike } from '../util/leg-signal.js';
import type { CollapsibleRequest } from './collapse.js';
import type { HedgedRequest } from './hedge.js';
import type { RequestOptions } from './options.js';
import type { PoolInfo } from './registry.js';
import type { ReplayBody } from './replay-body.js';
import type { startRequestSpan } from './tracing.js';

export class AgentRequest implements HedgedRequest, CollapsibleRequest {
  /**
   * The target tried now (an index into a failover list, or the endpoint's in its group) and the attempt's number (1:
   * the first).
   */
  at = 0;
  attempt = 1;
  /** Times it went back to its queue after a refused stream (policy.ts MAX_REQUEUES). */
  requeues = 0;
  /** Targets tried so far (failover moves forward only: the first `tried` of the list; a group: distinct endpoints). */
  tried = 1;
  /** How many targets: 1, the failover list's length, or the group's endpoints. */
  readonly count: number;
  /** A group's request: the endpoint of the current attempt, and (after a retry or hedge) every endpoint tried. */
  ep: Endpoint | null = null;
  triedEps: Endpoint[] | null = null;
  /** The signal its attempts go out with: the caller's, or a collapsed flight's own (collapse.ts). */
  signal: SignalLike | undefined;
  /**
   * When the current attempt began (the turn's clock, util/clock.ts): a group's latency sample. Set for groups only.
   */
  attemptAt = 0;
  /** A hedge was sent for it (hedge.ts). */
  hedged = false;
  /** The pool's info of the attempt last started. */
  info: PoolInfo | null = null;
  /** The proxy node of each target, picked on its first attempt (made only when the agent has proxies). */
  #nodes: Array<ProxyNode | null | undefined> | null = null;

  constructor(
    readonly o: RequestOptions,
    readonly t0: number,
    /** The origin named, the failover list, or a group's endpoint origins. */
    readonly names: string | readonly string[],
    /** The first target's URL. */
    readonly url0: URL,
    /** The URLs are the Agent's cached ones (never a caller's object, which could change). */
    readonly ownedUrls: boolean,
    readonly path: string,
    readonly method: string,
    readonly span: ReturnType<typeof startRequestSpan>,
    readonly headers: HeaderList,
    readonly body: RequestBody | null,
    readonly replay: ReplayBody | null,
    readonly replayable: boolean,
    readonly idempotent: boolean,
    /** Its origin group, or null (a plain origin, a failover list). */
    readonly group: Group | null,
  ) {
    this.count = typeof names === 'string' ? 1 : names.length;
    this.signal = o.signal;
  }

  get callerSignal(): SignalLike | undefined {
    return this.o.signal;
  }

  get authority(): string | undefined {
    return this.o.authority;
  }

  /** The origin of the current target, as the request named it (a group's: the endpoint's). */
  name(): string {
    return typeof this.names === 'string' ? this.names : (this.names[this.at] as string);
  }

  node(url: URL, pick: (u: URL) => ProxyNode | null): ProxyNode | null {
    const nodes = (this.#nodes ??= []);
    let n = nodes[this.at];
    if (n === undefined) n = nodes[this.at] = pick(url);
    return n;
  }
}

/**
 * A request for a connection, every field present and in this order: the service's requests and the health checks
 * beside them are then objects of one shape, and the property reads along the connections' path (the h1 request
 * head, the exchange, the pool) see one map where two made them polymorphic (V8's `--log-ic`, RESULTS.md groups).
 */
export function connRequest(
  method: string,
  path: string,
  authority: string,
  scheme: ConnRequest['scheme'],
  headers: HeaderList,
  body: ConnRequest['body'],
  signal: SignalLike | undefined,
  allowEarlyData: boolean,
  responseBufferBytes: number | undefined,
  onInformational: ConnRequest['onInformational'],
): ConnRequest {
  return {
    method,
    path,
    authority,
    scheme,
    headers,
    body,
    signal,
    allowEarlyData,
    responseBufferBytes,
    onInformational,
  };
}
