/**
 * The fleet (docs/fleet.md): the members that share their origins' connections, and for each origin its owner —
 * the member whose pool holds the fleet's connections to it — by weighted rendezvous hashing over the live members
 * (a member that joins or leaves moves only its own share). A member sends an origin's requests to its owner over
 * a member link (HTTP/2, one multiplexed connection per member) or direct, by the origin's `fleet.route`:
 * `direct`, `owner`, or `auto` (owner until this member's own requests keep a pool of its own warm: `autoDirect`).
 *
 * Members are the workers of one `serve --workers` (cluster.ts hands each worker the member table: each worker is
 * reachable as itself on a unix socket of its own in the run's directory of mode 0700, and a member link proves
 * itself with the run's token, made by the primary and passed over IPC only), or every member `fleet.members` names,
 * across instances (each process on a port of its own; links are HTTP/2 over TLS with mutual certificates, which are
 * the proof). One forward at most: a forwarded request is served direct by its owner.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Agent } from '../agent/agent.js';
import type { OriginResponse } from '../agent/response.js';
import { ErrorCode, OriginlinkError } from '../errors.js';
import { isClean, markClean } from '../http/fields.js';
import type { HeaderList } from '../http/types.js';
import type { FleetRoute } from './config.js';
import type { UpstreamRequest } from './upstream.js';

/** One member as the primary announces it. */
export interface Member {
  /** Its name in the fleet (a worker: `w<slot>`). */
  name: string;
  /** Its member listener's URL: `https://HOST:PORT` between instances, `http://w<slot>.fleet.invalid` for a worker. */
  url: string;
  weight: number;
  /** A worker of this machine: the unix socket its member listener is on (the URL's host is then only a name). */
  socketPath?: string;
}

/**
 * The members, and how a link proves itself: the run's token the primary tells every worker (cluster.ts), or null
 * for `fleet.members` — a member's certificate, which the member listener verifies in its TLS handshake.
 */
export interface MemberTable {
  members: Member[];
  token: string | null;
}

/** A link's TLS between instances: the CA every member's certificate chains to, and this member's certificate. */
export interface LinkTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** Fields a forwarded request carries on the member link (never past the owner). */
export const FLEET_TOKEN = 'originlink-fleet-token';
export const FLEET_ORIGIN = 'originlink-fleet-origin';
export const FLEET_AUTHORITY = 'originlink-fleet-authority';
export const FLEET_FROM = 'originlink-fleet-from';
/** A digest of the sender's config of the origin: an owner whose own differs does not serve it (421). */
export const FLEET_CONFIG = 'originlink-fleet-config';
/** A heartbeat on the member link (Fleet's beats): answered 204 by a trusting member, no origin involved. */
export const FLEET_BEAT = 'originlink-fleet-beat';
/** A heartbeat's answer: the answering member's weight (`fleet.member.weight`), which the others hash it with. */
export const FLEET_WEIGHT = 'originlink-fleet-weight';
/**
 * On an owner's answer: how long a connection to the origin may sit idle, ms, as the origin's `Keep-Alive: timeout`
 * hint sets it, or its closes of idle connections (pool.ts #observeIdleClose) when it hints none (pool/options.ts
 * idleAfterHint) — the T of `auto`'s rule at the member that forwarded it.
 */
export const FLEET_IDLE = 'originlink-fleet-idle';
/** The owner's refusals that send the request direct: its config has no such origin, or another one. */
export const FLEET_MISMATCH = new Set(['fleet_unknown_origin', 'fleet_config_mismatch']);

/**
 * `auto` goes direct once this member's own requests to an origin come at least AUTO_DIRECT times per idle timeout
 * T (the origin's as it hinted it or the owner's pool observed it, Fleet.noteIdle; else `pool.idleTimeoutMs`), and back to the owner below
 * AUTO_OWNER. Why: on the owner route each request costs one hop; direct costs a
 * connection of this member's own — a TLS handshake for both ends, then a connection the origin holds — which lasts
 * at least one idle period. A handshake costs the two ends about 30 proxied hops in CPU (bench/RESULTS.md:
 * handshake, proxy), so direct pays off once a connection's first idle period carries more than ~30 requests:
 * r·T ≥ 32. Below that the hops cost less than the extra connections (and the origin holds fewer).
 */
export const AUTO_DIRECT = 32;
export const AUTO_OWNER = 16;
/**
 * The member link's head and body deadlines, ms: above an origin's own (30 s by default); an origin configured
 * longer than this meets the link's first, and that timeout is the request's answer (never a replay).
 */
const LINK_TIMEOUT_MS = 3_600_000 + 60_000;
/**
 * Heartbeats (docs/fleet.md, "Liveness"): every BEAT_TICK_MS each link that carried no answer for BEAT_IDLE_MS gets a
 * heartbeat; a member whose heartbeat fails (refused, reset) is out of this member's hash at once, one whose
 * heartbeat is unanswered for BEAT_TIMEOUT_MS too (a hung process): so a member that dies or hangs is out within
 * ~1 s whether or not requests go to it, and back as soon as a heartbeat is answered. A heartbeat is given up after
 * BEAT_ABANDON_MS (a connection lost without a close), so the next can go. A heartbeat is a PING on the link's
 * connection while the member is up and its last request heartbeat (its weight, its answer to our proof) is younger
 * than BEAT_REFRESH_MS; else a request (a down link's dials).
 */
const BEAT_TICK_MS = 150;
const BEAT_IDLE_MS = 300;
const BEAT_TIMEOUT_MS = 400;
const BEAT_ABANDON_MS = 5000;
/** A busy link (its answers prove it alive) still gets a heartbeat this often: its RTT and its member's weight. */
const BEAT_REFRESH_MS = 5000;
/**
 * Requests counted over windows of this length, ms; the rate is an EWMA over them whose half-life is the origin's idle
 * period T (at least one window, at most RATE_HALF_LIFE_MAX_MS): `auto` weighs r·T, the requests one idle period of a
 * connection carries, so the rate is read over about that long. Over a few windows only, the rates of the origins
 * near the rule's bounds (a dozen requests a window) cross them back and forth with the counts' own noise, each change
 * to direct a connection where the member's last one had idled out (bench/RESULTS.md `fleet-reuse`, routeChanges).
 */
const RATE_WINDOW_MS = 5000;
/** The longest half-life of that EWMA, ms: a load that moves is seen within a minute or two whatever T is. */
const RATE_HALF_LIFE_MAX_MS = 60_000;

/** Per origin at this member: its request rate and the route `auto` took last. */
class OriginRate {
  count = 0;
  windowAt: number;
  /** The origin's first request at this member, and the requests since (that one included). */
  readonly startedAt: number;
  seen = 0;
  /** Requests per ms, smoothed. */
  rate = 0;
  direct = false;
  /** How many times `auto` changed this origin's route (to direct or back to the owner): /stats `routeChanges`. */
  changes = 0;
  /** The origin's idle period as its Keep-Alive hint sets it (noteIdle), ms; null: none told, the config's. */
  idleMs: number | null = null;

  constructor(now: number) {
    this.windowAt = now;
    this.startedAt = now;
  }

  /**
   * One request now; r·T after it, the requests one idle period `idleMs` of a connection carries at this member's
   * rate. Over the first idle period after the origin's first request here it is the requests counted so far: `auto`
   * goes direct once a period has carried AUTO_DIRECT, none extrapolated — the first 5-s window's count extrapolated
   * over T sent origins whose rate lies inside the bounds direct on its noise, and the hysteresis kept them there, a
   * connection each (bench/RESULTS.md `fleet-reuse`, 500 origins). After it, the smoothed rate × T: per closed window
   * the window's rate, the older estimate halved for every half-life (T, clamped) that passed; over the first
   * half-life the estimate is the mean rate since the first request.
   */
  perIdle(now: number, idleMs: number): number {
    this.count++;
    this.seen++;
    const elapsed = now - this.windowAt;
    if (elapsed >= RATE_WINDOW_MS) {
      const halfLife = Math.min(RATE_HALF_LIFE_MAX_MS, Math.max(RATE_WINDOW_MS, idleMs));
      const since = now - this.startedAt;
      if (since < halfLife || this.rate === 0) {
        // The arrivals after the first, over the time since it.
        this.rate = (this.seen - 1) / since;
      } else {
        const keep = 0.5 ** (elapsed / halfLife);
        this.rate = this.rate * keep + (this.count / elapsed) * (1 - keep);
      }
      this.count = 0;
      this.windowAt = now;
    }
    return now - this.startedAt < idleMs ? this.seen : this.rate * idleMs;
  }
}

/** What this member knows of its link to another member. */
export interface LinkState {
  /** Up: in this member's hash; down: out of it until a heartbeat is answered. */
  up: boolean;
  /** Why it is down (the last failure), or null. */
  reason: string | null;
  /** The last answered heartbeat's round trip on the link, ms (null before the first). */
  rttMs: number | null;
  /** When the link last carried an answer (a heartbeat's or a forwarded request's), performance.now(). */
  heardAt: number;
  /** When its last heartbeat was answered, performance.now(). */
  beatOkAt: number;
  /** The member's weight as its heartbeats tell it (1 until the first). */
  weight: number;
  /** A heartbeat out since (performance.now()), or 0. */
  beatAt: number;
  /** Times it went down. */
  downs: number;
  /** Heartbeats sent as requests, and as PINGs on the link's connection. */
  beats: number;
  pings: number;
}

export class Fleet {
  readonly self: string;
  #table: MemberTable;
  /** The links' Agent options; each member's link is an Agent of its own (its socket, one connection). */
  #linkOptions: ConstructorParameters<typeof Agent>[0];
  #agents = new Map<string, { agent: Agent; url: string; socketPath: string | undefined }>();
  /** Owner per origin name under the current table (cleared when it changes). */
  #owners = new Map<string, Member | null>();
  #rates = new Map<string, OriginRate>();
  /** The route each origin asked with last (its `fleet.route`): /stats. */
  #routes = new Map<string, FleetRoute>();
  /** Each other member's link (its heartbeats): a member whose link is down is out of this member's hash. */
  #links = new Map<string, LinkState>();
  #beats: NodeJS.Timeout;
  /** Aborts the heartbeats under way at close(). */
  #stop = new AbortController();
  /** `origin\0member` pairs whose configs disagree: that origin goes direct instead of to that member. */
  #mismatched = new Set<string>();
  /** Told once per pair when configs disagree (the service logs it). */
  onMismatch: ((origin: string, member: string, why: string) => void) | null = null;
  /** Requests sent to an owner, and received as owner, per origin: /stats. */
  readonly forwarded = new Map<string, number>();
  readonly received = new Map<string, number>();

  /** This member's own weight (`fleet.member.weight`), told to the others in its heartbeats' answers. */
  #weight: number;
  /** The live members with the weights they told, for the hash (null: to be made again). */
  #live: Member[] | null = null;

  constructor(self: string, table: MemberTable, tls: LinkTls | null = null, weight = 1) {
    this.self = self;
    this.#weight = weight;
    this.#table = table;
    // One HTTP/2 connection per member (prior knowledge; cleartext on a worker's unix socket), no retries of its own:
    // a request the link lost goes direct (Upstream) or fails as a lost origin connection does.
    // Its deadlines are longer than any origin's: the owner enforces the origin's own and answers a timeout (504); a
    // link timing out first would send a slow origin's request again, direct. A link to a hung member goes by its
    // PINGs (pool.pingIntervalMs), its streams lost with it.
    this.#linkOptions = {
      protocol: 'h2',
      maxRetries: 0,
      tfo: false,
      pool: { maxConnections: 1, headersTimeoutMs: LINK_TIMEOUT_MS, bodyTimeoutMs: LINK_TIMEOUT_MS },
      // Between instances: the member's certificate is verified (by its host:port's IP or name) and ours shown.
      ...(tls ? { tls: { ca: tls.ca, cert: tls.cert, key: tls.key } } : {}),
    };
    this.#syncLinks();
    this.#beats = setInterval(() => this.#beat(), BEAT_TICK_MS);
    this.#beats.unref();
    this.#beat();
  }

  get members(): readonly Member[] {
    return this.#table.members;
  }

  /**
   * A new member table (a worker came or went): the links of members that stay keep their state; a new member is up
   * until its first heartbeat (sent now) says otherwise.
   */
  update(table: MemberTable): void {
    this.#table = table;
    this.#syncLinks();
    this.#mismatched.clear();
    this.#rehash();
    this.#beat();
  }

  /** This member's weight: the others learn it from its next heartbeat answer (within BEAT_REFRESH_MS). */
  get weight(): number {
    return this.#weight;
  }

  set weight(w: number) {
    if (w === this.#weight) return;
    this.#weight = w;
    this.#rehash();
  }

  /** Owners are computed again (members came, went, went down or up, or told another weight). */
  #rehash(): void {
    this.#owners.clear();
    this.#live = null;
  }

  /** The members in the hash now: up, each with its weight (this member's own; the others' as they told it). */
  #liveMembers(): Member[] {
    if (this.#live !== null) return this.#live;
    const out: Member[] = [];
    for (const m of this.#table.members) {
      if (m.name === this.self) {
        out.push(m.weight === this.#weight ? m : { ...m, weight: this.#weight });
        continue;
      }
      const l = this.#links.get(m.name);
      if (l !== undefined && !l.up) continue;
      const w = l?.weight ?? m.weight;
      out.push(m.weight === w ? m : { ...m, weight: w });
    }
    this.#live = out;
    return out;
  }

  /** The link to `m`: its Agent, made at first use (again if the member's address changed). */
  #link(m: Member): Agent {
    const have = this.#agents.get(m.name);
    if (have !== undefined && have.url === m.url && have.socketPath === m.socketPath) return have.agent;
    if (have !== undefined) void have.agent.close();
    const agent = new Agent({
      ...this.#linkOptions,
      ...(m.socketPath !== undefined ? { origins: { [m.url]: { socketPath: m.socketPath } } } : {}),
    });
    this.#agents.set(m.name, { agent, url: m.url, socketPath: m.socketPath });
    return agent;
  }

  #syncLinks(): void {
    const names = new Set(this.#table.members.map((m) => m.name));
    for (const name of this.#links.keys()) if (!names.has(name)) this.#links.delete(name);
    // A member that left: its link's requests finish, then its connection goes.
    for (const [name, a] of this.#agents)
      if (!names.has(name)) {
        this.#agents.delete(name);
        void a.agent.close();
      }
    for (const m of this.#table.members)
      if (m.name !== this.self && !this.#links.has(m.name))
        this.#links.set(m.name, {
          up: true,
          reason: null,
          rttMs: null,
          heardAt: 0,
          beatAt: 0,
          beatOkAt: 0,
          weight: m.weight,
          downs: 0,
          beats: 0,
          pings: 0,
        });
  }

  /** The links to the other members (heartbeat state): /stats and /metrics. */
  get links(): ReadonlyMap<string, Readonly<LinkState>> {
    return this.#links;
  }

  /**
   * The run's token, compared in constant time; between instances (no token) the member listener let in only a
   * member's certificate.
   */
  trusts(token: string | undefined): boolean {
    if (this.#table.token === null) return true;
    if (token === undefined) return false;
    const a = Buffer.from(token);
    const b = Buffer.from(this.#table.token);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /** The owner of `origin` among the live members (weighted rendezvous), or null when there is none. */
  owner(origin: string): Member | null {
    let o = this.#owners.get(origin);
    if (o === undefined) {
      o = rendezvous(origin, this.#liveMembers());
      this.#owners.set(origin, o);
    }
    return o;
  }

  /**
   * A link to `m` lost a request (it refused, reset or closed): out of this member's hash until a heartbeat is
   * answered, so its origins move to the next member in rendezvous order at once (the primary's table drops a
   * worker that exited; heartbeats find a member that dies with nothing sent to it).
   */
  lost(m: Member, err: OriginlinkError): void {
    const l = this.#links.get(m.name);
    if (l !== undefined) this.#setUp(l, false, err.message.split('\n')[0] ?? err.code);
  }

  /** The link to `m` carried an answer: alive now (no heartbeat needed for a while). */
  heard(m: Member): void {
    const l = this.#links.get(m.name);
    if (l !== undefined) l.heardAt = performance.now();
  }

  #setUp(l: LinkState, up: boolean, reason: string | null): void {
    l.reason = reason;
    if (l.up === up) return;
    l.up = up;
    if (!up) l.downs++;
    this.#rehash();
  }

  /**
   * One heartbeat tick: a link quiet for BEAT_IDLE_MS gets a heartbeat (a down one every tick, so it is back as soon
   * as its member answers); one unanswered for BEAT_TIMEOUT_MS is down.
   */
  #beat(): void {
    const now = performance.now();
    for (const m of this.#table.members) {
      const l = this.#links.get(m.name);
      if (l === undefined) continue;
      if (l.beatAt !== 0) {
        if (l.up && now - l.beatAt >= BEAT_TIMEOUT_MS)
          this.#setUp(l, false, `no heartbeat answer in ${BEAT_TIMEOUT_MS} ms`);
        continue;
      }
      const fresh = l.up && now - l.beatOkAt < BEAT_REFRESH_MS;
      if (fresh && now - l.heardAt < BEAT_IDLE_MS) continue;
      l.beatAt = now;
      // Up and recently proven: a PING (no stream, no routing on either side) says the member's process answers.
      const ping = fresh ? this.#link(m).ping(m.url, BEAT_ABANDON_MS) : null;
      const answered = ping !== null ? this.#pinged(l, ping) : this.#asked(m, l);
      answered
        .catch((e: unknown) => {
          this.#setUp(l, false, (e as Error).message.split('\n')[0] ?? 'heartbeat failed');
        })
        .finally(() => {
          l.beatAt = 0;
        });
    }
  }

  /** A PING heartbeat: its answer proves the member's process alive (its round trip the link's RTT). */
  #pinged(l: LinkState, ping: Promise<number>): Promise<void> {
    l.pings++;
    return ping.then((ms) => {
      l.rttMs = ms;
      l.heardAt = performance.now();
    });
  }

  /** A request heartbeat: a 204 also proves the member trusts us, and tells its weight. */
  #asked(m: Member, l: LinkState): Promise<void> {
    l.beats++;
    const headers: HeaderList = [
      [FLEET_BEAT, '1'],
      [FLEET_FROM, this.self],
    ];
    if (this.#table.token !== null) headers.push([FLEET_TOKEN, this.#table.token]);
    // Agent.check: on the link's connection, outside the request path (not counted as a request, no events), and
    // it dials even while the link's connects back off, so a member that comes back is found within a tick.
    return this.#link(m)
      .check(m.url, '/', headers, AbortSignal.any([this.#stop.signal, AbortSignal.timeout(BEAT_ABANDON_MS)]))
      .then((res) => {
        if (res.status !== 204) throw new Error(`heartbeat answered ${res.status}`);
        const at = performance.now();
        l.rttMs = at - l.beatAt;
        l.heardAt = at;
        l.beatOkAt = at;
        const w = Number(res.headers.find((h) => h[0] === FLEET_WEIGHT)?.[1] ?? 1);
        if (w !== l.weight && Number.isFinite(w) && w > 0) {
          l.weight = w;
          this.#rehash();
        }
        this.#setUp(l, true, null);
      });
  }

  /**
   * Where this request for `origin` goes: the owner's member (another member), or null for direct — `route`, the
   * origin's idle timeout for `auto`.
   */
  routeFor(origin: string, route: FleetRoute, idleTimeoutMs: number): Member | null {
    if (this.#routes.get(origin) !== route) this.#routes.set(origin, route);
    if (route === 'direct') return null;
    const owner = this.owner(origin);
    if (owner === null || owner.name === this.self) return null;
    if (this.#mismatched.size > 0 && this.#mismatched.has(`${origin}\0${owner.name}`)) return null;
    if (route === 'owner') return owner;
    const now = performance.now();
    let r = this.#rates.get(origin);
    if (r === undefined) this.#rates.set(origin, (r = new OriginRate(now)));
    const idle = r.idleMs ?? idleTimeoutMs;
    const perIdle = r.perIdle(now, idle);
    const direct = r.direct ? perIdle >= AUTO_OWNER : perIdle >= AUTO_DIRECT;
    if (direct !== r.direct) {
      r.direct = direct;
      r.changes++;
    }
    return direct ? null : owner;
  }

  /**
   * How long a connection to `origin` may sit idle, ms, as the owner's last answer told (the origin's Keep-Alive hint
   * less the pool's margin: FLEET_IDLE): `auto`'s T from then on.
   */
  noteIdle(origin: string, idleMs: number): void {
    if (!(idleMs > 0)) return;
    const r = this.#rates.get(origin);
    if (r !== undefined) r.idleMs = idleMs;
  }

  /**
   * `to` does not serve `origin` as this member would (no such origin in its config, or a different one): this
   * member sends it direct from now on (until the member table changes, as a reload that reaches both does).
   */
  mismatch(origin: string, to: Member, why: string): void {
    const k = `${origin}\0${to.name}`;
    if (this.#mismatched.has(k)) return;
    this.#mismatched.add(k);
    this.onMismatch?.(origin, to.name, why);
  }

  /** The request sent to `to` for `origin` (its config's digest: `config`) over the member link. */
  forward(to: Member, origin: string, config: string, o: UpstreamRequest): Promise<OriginResponse> {
    this.forwarded.set(origin, (this.forwarded.get(origin) ?? 0) + 1);
    const headers: HeaderList = [
      ...(o.headers as HeaderList),
      ...(this.#table.token === null ? [] : [[FLEET_TOKEN, this.#table.token] as [string, string]]),
      [FLEET_ORIGIN, origin],
      [FLEET_FROM, this.self],
      [FLEET_CONFIG, config],
    ];
    if (o.authority !== undefined) headers.push([FLEET_AUTHORITY, o.authority]);
    // Clean when the forwarder's were (our own names, values of tokens, names and a checked authority): sent without
    // another copy and check.
    const req: Parameters<Agent['request']>[0] = {
      origin: to.url,
      path: o.path,
      headers: isClean(o.headers as HeaderList) ? markClean(headers) : headers,
    };
    if (o.method !== undefined) req.method = o.method;
    if (o.body !== undefined) req.body = o.body;
    if (o.signal !== undefined) req.signal = o.signal;
    if (o.onInformational !== undefined) req.onInformational = o.onInformational;
    if (o.responseBufferBytes !== undefined) req.responseBufferBytes = o.responseBufferBytes;
    return this.#link(to).request(req);
  }

  /** One request received as owner. */
  noteReceived(origin: string): void {
    this.received.set(origin, (this.received.get(origin) ?? 0) + 1);
  }

  stats(): Record<string, unknown> {
    const origins: Record<string, unknown> = {};
    for (const name of this.origins())
      origins[name] = {
        owner: this.owner(name)?.name ?? null,
        forwarded: this.forwarded.get(name) ?? 0,
        received: this.received.get(name) ?? 0,
        route: this.routeNow(name),
        routeChanges: this.#rates.get(name)?.changes ?? 0,
      };
    return {
      self: this.self,
      members: this.#table.members.map((m) => ({
        name: m.name,
        url: m.url,
        ...(m.socketPath !== undefined ? { socketPath: m.socketPath } : {}),
        weight: m.name === this.self ? this.#weight : (this.#links.get(m.name)?.weight ?? m.weight),
      })),
      origins,
      links: Object.fromEntries(
        [...this.#links].map(([name, l]) => [
          name,
          {
            up: l.up,
            reason: l.reason,
            rttMs: l.rttMs,
            downs: l.downs,
            streams: this.streams(name),
            beats: l.beats,
            pings: l.pings,
          },
        ]),
      ),
      linkPools: [...this.#agents.values()].flatMap((a) => a.agent.stats()),
    };
  }

  /** The origins this member has routed, forwarded or served as owner. */
  origins(): Set<string> {
    return new Set([...this.forwarded.keys(), ...this.received.keys(), ...this.#routes.keys()]);
  }

  /** The route this member takes for `origin` now: `self` when it is its owner, `owner`, or `direct`. */
  routeNow(origin: string): 'self' | 'owner' | 'direct' {
    const o = this.owner(origin);
    if (this.#routes.get(origin) === 'direct') return 'direct';
    if (o === null || o.name === this.self) return 'self';
    return this.#rates.get(origin)?.direct || this.#mismatched.has(`${origin}\0${o.name}`) ? 'direct' : 'owner';
  }

  /** Requests under way on the link to the member `name`. */
  streams(name: string): number {
    let n = 0;
    for (const p of this.#agents.get(name)?.agent.stats() ?? []) n += p.activeRequests;
    return n;
  }

  async close(): Promise<void> {
    clearInterval(this.#beats);
    this.#stop.abort();
    await Promise.all([...this.#agents.values()].map((a) => a.agent.close()));
  }
}

/**
 * Weighted rendezvous hashing: each member scores −w / ln(u), u ∈ (0, 1) a hash of (origin, member); the highest
 * wins (Schindelhauer and Schomaker's weighted form). A member's leaving moves only the origins it owned.
 */
export function rendezvous(origin: string, members: readonly Member[]): Member | null {
  let best: Member | null = null;
  let bestScore = -Infinity;
  for (const m of members) {
    const h = createHash('sha256').update(origin).update('\0').update(m.name).digest();
    // 52 bits of the hash as a fraction strictly between 0 and 1.
    const u = (Number(h.readBigUInt64BE(0) >> 12n) + 0.5) / 2 ** 52;
    const score = -m.weight / Math.log(u);
    if (score > bestScore || (score === bestScore && best !== null && m.name < best.name)) {
      best = m;
      bestScore = score;
    }
  }
  return best;
}

/** A request on the member port without the run's token: refused (the member port is no open proxy). */
export function untrusted(): OriginlinkError {
  return new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', 'not a member of this fleet');
}
