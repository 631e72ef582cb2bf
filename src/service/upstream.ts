/**
 * One named origin of the config: its Agent (pools, retries, TLS sessions)
 * and the choice among its URLs — a plain origin's URL, or its group's
 * endpoints, chosen by the Agent. An Upstream survives a reload when its
 * config is unchanged, so warm connections stay warm; a group that changed
 * hands its endpoints' state to its successor (adopt).
 */
import { Agent, type UpgradeAnswer, type UpgradeOptions } from '../agent/agent.js';
import type { RequestCommon } from '../agent/options.js';
import { lostBeforeAnswer, unreachable } from '../agent/policy.js';
import { toOriginlinkError } from '../errors.js';
import { isIdempotentMethod } from '../http/methods.js';
import { FLEET_IDLE, FLEET_MISMATCH, type Fleet, type Member } from './fleet.js';
import { createHash } from 'node:crypto';
import type { ConnRequest, HeaderList } from '../http/types.js';
import type { OriginResponse } from '../agent/response.js';
import type { SessionStore } from '../store/session-store.js';
import type { PoolStats } from '../pool/stats.js';
import { idleAfterHint } from '../pool/options.js';
import type { GroupStats } from '../group/group.js';
import { h3Connector } from '../connect/connect.js';
import type { OriginConfig } from './config.js';
import { originContext } from './metrics.js';
import { acquireStores, storesFingerprint } from './stores.js';
import type { Stores } from '../store/open-stores.js';

/** A request for an upstream: its path and options; the upstream names the origins (its URLs, in turn). */
export type UpstreamRequest = RequestCommon & { path: string };

/** Load the HTTP/3 transport (native QUIC) before the first request when some origin or listener uses h3. */
export async function ensureH3(): Promise<void> {
  await h3Connector();
}

export function fingerprint(o: OriginConfig): string {
  return JSON.stringify({
    ...o,
    // Key material never enters the fingerprint (a digest of it crosses the fleet's links): the pair's hash does.
    tls: { ...o.tls, ca: o.tls.ca?.toString('base64') ?? null, client: pemDigest(o.tls.client) },
    endpointCerts: [...o.endpointCerts].map(([url, c]) => [url, pemDigest(c)]),
    egress: o.egress
      ? { ...o.egress, tls: o.egress.tls ? { ...o.egress.tls, key: pemDigest(o.egress.tls.key ?? null) } : null }
      : null,
    stores: o.stores ? storesFingerprint(o.stores) : null,
  });
}

/** A SHA-256 of a client certificate's key and certificate: what fingerprints carry instead of the bytes. */
function pemDigest(c: { cert: Buffer; key: Buffer } | Buffer | null): string | null {
  if (c === null) return null;
  const h = createHash('sha256');
  if (Buffer.isBuffer(c)) h.update(c);
  else h.update(c.cert).update('\0').update(c.key);
  return h.digest('base64url');
}

export class Upstream {
  readonly name: string;
  readonly config: OriginConfig;
  readonly fingerprint: string;
  /** A short digest of the fingerprint: what the fleet's members compare (docs/fleet.md). */
  readonly configDigest: string;
  readonly agent: Agent;
  /** The shared `stores:` this upstream uses (the same object for every upstream naming the same section), or null. */
  readonly stores: Stores | null;
  /** Another origin of the config uses one of these URLs: diagnostics events need the origin context. */
  sharedUrls = false;
  /** Requests forwarded through this upstream and not yet finished. */
  inflight = 0;
  /** The fleet this member belongs to (docs/fleet.md), or null: every request direct. */
  fleet: Fleet | null = null;
  /** A plain origin's one URL, as the Agent's list of targets (made once: a request allocates none). */
  readonly #urls: readonly string[];
  #retired = false;
  /** The Agent's key of this origin's group, or null (a plain origin). */
  /** The name of its origin group in its Agent (AgentOptions.groups), or null for a plain origin. */
  readonly #group: string | null;
  #closing: Promise<void> | null = null;
  #onClosed: (u: Upstream) => void;

  /** `sessionStore`: the service's in-memory default, used unless `stores.sessions` names another. */
  constructor(o: OriginConfig, sessionStore: SessionStore, onClosed: (u: Upstream) => void) {
    this.name = o.name;
    this.config = o;
    this.fingerprint = fingerprint(o);
    this.configDigest = createHash('sha256').update(this.fingerprint).digest('base64url').slice(0, 22);
    const shared = o.stores ? acquireStores(o.stores) : null;
    this.stores = shared?.stores ?? null;
    this.#onClosed = (u) => {
      shared?.release();
      onClosed(u);
    };
    const tls = {
      rejectUnauthorized: o.tls.verify,
      ...(o.tls.ca ? { ca: o.tls.ca } : {}),
      ...(o.tls.servername ? { servername: o.tls.servername } : {}),
      ...(o.tls.client ? { cert: o.tls.client.cert, key: o.tls.client.key } : {}),
    };
    const dns = o.dns
      ? {
          servers: o.dns.servers,
          minTtlMs: o.dns.minTtlMs,
          maxTtlMs: o.dns.maxTtlMs,
          serveStaleMs: o.dns.serveStaleMs,
          attemptDelayMs: o.dns.attemptDelayMs,
        }
      : {};
    const originCache = shared?.stores.originCache;
    // An origin group is the Agent's named group (AgentOptions.groups): requests name it, the Agent sends them to
    // the endpoints.
    this.#group = o.group ? o.name : null;
    this.agent = new Agent({
      protocol: o.protocol,
      pool: o.pool,
      tls,
      maxRetries: o.retries,
      retryBufferBytes: o.retryBufferBytes,
      tfo: o.tfo,
      earlyData: o.earlyData,
      dns,
      ...(o.group ? { groups: { [o.name]: o.group } } : {}),
      // An endpoint's own client certificate: its TLS merges over the origin's (resolveTarget). A unix socket's origin
      // (one URL, no group): the Agent dials its socket.
      ...(o.endpointCerts.size
        ? {
            origins: Object.fromEntries(
              [...o.endpointCerts].map(([url, c]) => [url, { tls: { cert: c.cert, key: c.key } }]),
            ),
          }
        : o.socketPath !== null
          ? { origins: { [o.urls[0] as string]: { socketPath: o.socketPath } } }
          : {}),
      sessionStore: shared?.stores.sessionStore ?? sessionStore,
      ...(originCache ? { originCache } : {}),
      ...(o.egress ? { proxy: o.egress } : {}),
      ...(o.congestionControl ? { quicCongestionControl: o.congestionControl } : {}),
      ...(o.bbr ? { quicBbr: o.bbr } : {}),
      ...(o.qpack ? { quicQpack: o.qpack } : {}),
    });
    this.#urls = o.urls;
  }

  /**
   * An upgrade request for a tunnel (upgrade.ts) to this origin's URL or one of its group's endpoints, on a
   * connection of its own dialled as its requests' connections are (Agent.upgrade). A group's endpoint is picked as a
   * request's is (Agent.tunnelEndpoint: healthy, not ejected, by its balance — `urls` in turn); one that cannot be
   * reached (agent/policy.ts `unreachable`) hands over to another not tried, like a request's retry; any other
   * failure is the answer.
   */
  async upgrade(req: ConnRequest, o: UpgradeOptions & { signal: AbortSignal }): Promise<UpgradeAnswer> {
    const key = this.#group;
    const tried: string[] = [];
    let last: unknown = null;
    for (let i = 0; i < this.config.urls.length; i++) {
      const origin = key === null ? this.#urls[i] : this.agent.tunnelEndpoint(key, tried);
      if (origin == null) break;
      tried.push(origin);
      try {
        return await this.agent.upgrade(origin, req, o);
      } catch (e) {
        last = e;
        if (o.signal.aborted || !unreachable(toOriginlinkError(e))) throw e;
      }
    }
    throw last;
  }

  /**
   * Forward one request: to the origin's URL, or to its group, whose endpoint the Agent picks per attempt
   * (`urls`: the ordered failover list, starting at the next URL in turn); retries are the Agent's policy
   * (agent/policy.ts), the same as for any user of the Agent.
   */
  request(o: UpstreamRequest): Promise<OriginResponse> {
    const f = this.fleet;
    if (f !== null) {
      const to = f.routeFor(this.name, this.config.fleetRoute, this.config.pool.idleTimeoutMs);
      if (to !== null) return this.#viaOwner(f, to, o);
    }
    return this.requestDirect(o);
  }

  /**
   * To the origin's owner over the member link; when the link lost it, direct — if the owner cannot have acted on
   * it (the error proves it unsent), or it is idempotent and the link's connection was lost before its answer began
   * (agent/policy.ts lostBeforeAnswer) — else the failure is the answer. One forward at most, the origin's retries once (the owner's).
   */
  #viaOwner(f: Fleet, to: Member, o: UpstreamRequest): Promise<OriginResponse> {
    const b = o.body;
    const replayable = b === undefined || b === null || typeof b === 'string' || b instanceof Uint8Array;
    return f.forward(to, this.name, this.configDigest, o).then(
      (res) => {
        f.heard(to);
        const i = res.headers.findIndex((h) => h[0] === FLEET_IDLE);
        if (i >= 0) {
          // The owner's word, not the origin's field: it goes no further than this member.
          f.noteIdle(this.name, Number((res.headers as HeaderList).splice(i, 1)[0]?.[1]));
        }
        // The owner's config of this origin is not ours: direct, now and from now on (a body that streamed into the
        // link cannot go again: the refusal is its answer).
        const code = res.status === 421 ? res.headers.find((h) => h[0] === 'x-originlink-error')?.[1] : undefined;
        if (code === undefined || !FLEET_MISMATCH.has(code)) return res;
        f.mismatch(this.name, to, code);
        if (!replayable) return res;
        res.body.resume();
        return this.requestDirect(o);
      },
      (e: unknown) => {
        const err = toOriginlinkError(e);
        if (o.signal?.aborted || !replayable) throw e;
        // Never after a timeout: the owner answers its own origin's timeouts (504), and the link's are longer.
        if (err.retrySafe || (isIdempotentMethod(o.method ?? 'GET') && lostBeforeAnswer(err))) {
          f.lost(to, err);
          return this.requestDirect(o);
        }
        throw e;
      },
    );
  }

  /**
   * How long a connection to this origin may sit idle as the connection that carried `res` was told (the origin's
   * `Keep-Alive: timeout`, pool/options.ts idleAfterHint) or its pool saw (the origin's closes of idle connections:
   * pool.ts #observeIdleClose), or null when neither.
   */
  idleTold(res: OriginResponse): number | null {
    const hint = res.connection.keepAliveHintMs ?? res.connection.keepAliveObservedMs ?? null;
    return hint === null ? null : idleAfterHint(this.config.pool, hint);
  }

  /** To the origin itself (this member's own pools), whatever the fleet says. */
  requestDirect(o: UpstreamRequest): Promise<OriginResponse> {
    // `group` or `origin` + `path`, never a URL parsed per request: a group by its name (AgentOptions.groups), an
    // origin by its URLs (the failover list). The forwarder's object is completed, not copied (made for this call).
    const r = o as UpstreamRequest & ({ group: string } | { origin: string | readonly string[] });
    if (this.#group !== null) (r as { group: string }).group = this.#group;
    else (r as { origin: string | readonly string[] }).origin = this.#urls;
    // AsyncLocalStorage costs every promise a hook on Node 20: only pay it when events need telling apart.
    // The URL that answered is the response's `origin` (with failover, the one reached).
    return this.sharedUrls ? originContext.run(this.name, () => this.agent.request(r)) : this.agent.request(r);
  }

  /** Per-pool stats of this upstream's agent. */
  stats(): PoolStats[] {
    return this.agent.stats();
  }

  /** Its group's endpoints (standing, counters), or null for a plain origin. */
  groupStats(): GroupStats | null {
    return this.#group === null ? null : (this.agent.groupStats()[0] ?? null);
  }

  /**
   * The endpoint state of `old` (the same origin in the config before a reload) carries on here for every endpoint both
   * have.
   */
  adopt(old: Upstream): void {
    this.agent.adoptGroups(old.agent);
  }

  /** No new requests will come; close once in-flight ones are done. */
  retire(): void {
    this.#retired = true;
    this.#maybeClose();
  }

  done(): void {
    this.inflight--;
    if (this.#retired) this.#maybeClose();
  }

  #maybeClose(): void {
    if (this.inflight > 0 || this.#closing) return;
    this.#closing = this.agent.close().finally(() => this.#onClosed(this));
  }

  destroy(): void {
    this.agent.destroy();
    if (!this.#closing) {
      this.#closing = Promise.resolve();
      this.#onClosed(this);
    }
  }
}
