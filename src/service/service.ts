/**
 * The connector service: listeners -> router -> upstreams, with metrics,
 * logs, reload and graceful shutdown.
 *
 * Reload swaps the generation (config, router, upstreams) atomically: a
 * request keeps the generation it started with. Upstreams whose config did
 * not change are carried over (their warm connections with them); the
 * others retire and close once their in-flight requests are done.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import { logDestination } from './log-destination.js';
import { RequestLog } from './request-log.js';
import { MemorySessionStore } from '../store/session-store.js';
import { moveAdmin, startAdmin } from './admin.js';
import type { OriginConfig, ServiceConfig } from './config.js';
import { isMemberAddress } from './config-sections.js';
import { forward, type ForwardHooks, type FrontInfo, type Generation } from './forward.js';
import type { ServerRequest, ServerResponse } from '../server/request.js';
import { rebindKey, TcpListener, type Listener, type ListenerHooks } from './listeners.js';
import { Metrics, type OriginSummary } from './metrics.js';
import { Router } from './router.js';
import { ensureH3, fingerprint, Upstream } from './upstream.js';
import { buildRootStore } from '../net/tls-context.js';
import { warnUnsolicited } from './upstream-warnings.js';
import { logEndpointEvents } from './endpoint-events.js';
import { Spool, TempFileBudget } from '../util/spool.js';
import { IntervalGate } from '../util/interval-gate.js';
import { FdGuard } from './fd-guard.js';
import { Fleet, type MemberTable } from './fleet.js';
import { startMemberListener } from './fleet-member.js';
import type { H2Server } from '../server/h2.js';
import { createHash } from 'node:crypto';
import { EarlyDataRecord } from './early-data-record.js';
import { storesFingerprint, storesRedisLink } from './stores.js';
import { freshSecret, TicketKeys } from './ticket-keys.js';
import { ticketSecret } from './ticket-secret.js';
import { workerSlot } from './worker-slot.js';
import { Resolver } from '../net/resolver.js';
import type { RedisLink } from '../store/redis-link.js';
import { ErrorCode, OriginlinkError } from '../errors.js';

export interface ServiceOptions {
  /** Where JSON log lines go. Default stdout. */
  logDestination?: DestinationStream;
  logger?: Logger;
  /**
   * This process is the fleet member of this name (a worker of `serve --workers`: docs/fleet.md): it binds a member
   * listener on the unix socket `socketPath`, and takes part once given the member table (setFleet).
   */
  fleetMember?: { name: string; socketPath: string };
  /**
   * The record of 0-RTT ClientHellos this process shares with others that hold its ticket keys, when the stores name
   * no Redis (the `serve --workers` primary's, for steered h3 fronts): true when one is new (ServerRole.fleetStrikes).
   */
  earlyDataRecord?: (key: string) => Promise<boolean>;
}

interface Bound {
  listener: Listener;
  rebind: string;
  limits: ServiceConfig['limits'];
}

export class Service {
  #gen!: Generation;
  readonly log: Logger;
  readonly metrics: Metrics;
  #live = new Set<Upstream>();
  #listeners = new Map<string, Bound>();
  #admin: { port: number; close(): Promise<void> } | null = null;
  #sessions = new MemorySessionStore();
  #draining = false;
  /** Set once start() finished: a start that failed logs why, not that the service stopped. */
  #served = false;
  #hooks: ListenerHooks;
  #stopWarnings: () => void;
  /** Every temporary file of this process's spools (proxy.tempFileTotalBytes). */
  readonly #tempFiles: TempFileBudget;
  /** File descriptors running short (fd-guard.ts). */
  readonly #fds: FdGuard;
  /** The fleet (docs/fleet.md) once a member table came, and this member's listener. */
  #fleet: Fleet | null = null;
  #member: H2Server | null = null;
  /** The fronts' session-ticket keys (ticket-keys.ts). */
  readonly #tickets: TicketKeys;

  private constructor(config: ServiceConfig, o: ServiceOptions) {
    this.log =
      o.logger ??
      pino({ level: config.logging.level, base: { svc: 'originlink' } }, o.logDestination ?? logDestination());
    this.metrics = new Metrics(() => this.#live);
    const stopUnsolicited = warnUnsolicited(this.log);
    const stopEndpoints = logEndpointEvents(this.log);
    this.#stopWarnings = () => {
      stopUnsolicited();
      stopEndpoints();
    };
    this.#tempFiles = new TempFileBudget(config.proxy.tempFileTotalBytes);
    const diskGate = new IntervalGate(60_000);
    this.metrics.tempFiles(this.#tempFiles);
    this.#fds = new FdGuard(this.log);
    this.#tempFiles.onError = (err) => {
      this.#fds.exhausted(err, 'temporary file');
      const pass = diskGate.pass(err.code ?? 'error');
      if (pass)
        this.log.warn(
          { code: err.code, since: pass.since, err: err.message, dir: this.#gen.config.proxy.tempDir },
          'temporary file failed: bodies stay in memory and are paced to their readers (more of these within a minute are counted, not logged)',
        );
    };
    // A secret of this process's own until start() has looked for the shared one (ticket-secret.ts).
    this.#tickets = new TicketKeys(freshSecret(), config.tickets.rotateMs, 'process');
    this.#hooks = {
      handle: (req, info) => this.#handle(req, info),
      log: this.log,
      metrics: this.metrics,
      fds: this.#fds,
      tickets: this.#tickets,
      earlyData: (key) => this.#earlyRecord?.first(key) ?? o.earlyDataRecord?.(key) ?? null,
    };
  }

  static async start(config: ServiceConfig, o: ServiceOptions = {}): Promise<Service> {
    const s = new Service(config, o);
    try {
      s.#gen = await s.#buildGeneration(config, null);
      await s.#takeTicketSecret(config);
      await s.#applyListeners(config);
      if (config.fleet.members !== null) await s.#joinInstances(config);
      else if (o.fleetMember !== undefined) {
        s.#fleetName = o.fleetMember.name;
        s.metrics.fleet = () => s.#fleet;
        s.#member = await startMemberListener(
          { fleet: () => s.#fleet, upstream: (name) => s.#gen.upstreams.get(name) },
          { path: o.fleetMember.socketPath },
        );
        s.#memberSocket = o.fleetMember.socketPath;
      }
      if (config.admin)
        s.#admin = await startAdmin(config.admin.host, config.admin.port, {
          metrics: s.metrics,
          healthy: () => !s.#draining,
          stats: () => s.stats(),
          names: () => s.config.admin?.hosts ?? [],
        });
    } catch (e) {
      // What was set up is taken down quietly: the reason is the record of this start, not a shutdown it never had.
      s.log.error({ file: config.file, err: (e as Error).message }, 'originlink could not start');
      await s.shutdown(0);
      throw e;
    }
    s.#served = true;
    s.log.info(
      { file: config.file, listeners: s.addresses(), admin: s.adminPort, ticketKeys: s.#tickets.source },
      'originlink serving',
    );
    return s;
  }

  /** The ticket secret `config` names (a reload may name another): the keys follow it before any listener serves. */
  async #takeTicketSecret(config: ServiceConfig): Promise<void> {
    const { secret, source } = await ticketSecret(config, this.log);
    this.#tickets.reconfigure(secret, config.tickets.rotateMs, source);
    // Keys other processes hold too: their 0-RTT handshakes recorded where every one of them looks (the stores' Redis).
    const was = this.#earlyRecord;
    this.#earlyRecord = source === 'process' ? null : EarlyDataRecord.open(config.stores, this.log);
    await was?.close();
    if (source === 'file' && this.#earlyRecord === null && config.listeners.some((l) => l.kind === 'h3'))
      this.log.warn(
        'h3 0-RTT with ticket keys from tickets.secretFile and no stores Redis: each instance records 0-RTT handshakes alone, so a captured first flight can be replayed once at each other instance (safe methods only; docs/security.md)',
      );
  }

  /** The fleet's record of 0-RTT handshakes while the ticket keys are shared and the stores name a Redis. */
  #earlyRecord: EarlyDataRecord | null = null;

  get config(): ServiceConfig {
    return this.#gen.config;
  }
  get draining(): boolean {
    return this.#draining;
  }
  get adminPort(): number | null {
    return this.#admin?.port ?? null;
  }

  #fleetName = '';

  /** The unix socket of this worker's member listener (docs/fleet.md), or null (no such member: not a worker). */
  get memberSocket(): string | null {
    return this.#memberSocket;
  }

  #memberSocket: string | null = null;

  /**
   * A fleet of instances (`fleet.members`): this process's member listener (TLS, mutual certificates) on the member
   * port of its worker slot, and the fleet of every member named. The primary's loopback table is not used then.
   */
  async #joinInstances(config: ServiceConfig): Promise<void> {
    const m = config.fleet.member as NonNullable<ServiceConfig['fleet']['member']>;
    const port = m.port + (workerSlot() ?? 1) - 1;
    const self = `${m.advertise}:${port}`;
    if (config.fleet.dns === null && !config.fleet.redis && !config.fleet.members?.includes(self))
      throw new OriginlinkError(
        ErrorCode.INVALID_CONFIG,
        'local',
        `fleet.members does not name this member (${self}: fleet.member's advertise and port${workerSlot() ? ` + worker slot ${workerSlot()} - 1` : ''})`,
      );
    this.#static = true;
    this.#fleetName = self;
    this.metrics.fleet = () => this.#fleet;
    this.#member = await startMemberListener(
      { fleet: () => this.#fleet, upstream: (name) => this.#gen.upstreams.get(name) },
      { host: m.host, port, cert: m.cert, key: m.key, ca: m.ca },
    );
    const dns = config.fleet.dns;
    const members = dns
      ? await this.#membersByDns(config, self)
      : config.fleet.redis
        ? await this.#membersByRedis(config, self)
        : (config.fleet.members ?? []);
    this.#fleet = new Fleet(self, tableOf(members), { ca: m.ca, cert: m.cert, key: m.key }, m.weight);
    this.#fleet.onMismatch = (origin, member, why) =>
      this.log.warn({ origin, member, why }, 'fleet: a member serves this origin otherwise; its requests go direct');
    for (const u of this.#gen.upstreams.values()) u.fleet = this.#fleet;
  }

  /** The registration link of `fleet.members: redis`, and its heartbeat. */
  #registry: { link: RedisLink; timer: NodeJS.Timeout | null; key: string; self: string } | null = null;

  /**
   * `fleet.members: redis`: this member registers itself in the stores' Redis — a sorted set of members by the time
   * their registration expires, `PREFIX fleet:members` — every REGISTER_MS, for REGISTER_TTL_MS, and reads the
   * members whose registration has not expired. A member that stops beating (it died, or lost Redis) is out of every
   * table within REGISTER_TTL_MS plus a beat; one whose link fails is out of a sender's hash at once for 1 s (as
   * ever). Redis down: the members stay as they were.
   */
  async #membersByRedis(config: ServiceConfig, self: string): Promise<string[]> {
    const link = storesRedisLink(config.stores, (e) => this.log.warn({ code: e.code }, e.message)) as RedisLink;
    const key = `${link.prefix}fleet:members`;
    this.#registry = { link, timer: null, key, self };
    let last: string[] = [self];
    const refused = new Set<string>();
    const beat = async (): Promise<void> => {
      const now = Date.now();
      link.write((p) => p.zadd(key, now + REGISTER_TTL_MS, self).zremrangebyscore(key, '-inf', now), key);
      const got = await link.read((r) => r.zrangebyscore(key, now, '+inf'));
      if (got === undefined) return;
      // What others wrote there is input: an entry that is not host:port is left out, said once.
      const valid = got.filter((m) => {
        if (isMemberAddress(m)) return true;
        if (!refused.has(m)) {
          refused.add(m);
          this.log.warn(
            { member: String(m).slice(0, 100), key },
            'fleet: a member in Redis is not host:port; left out',
          );
        }
        return false;
      });
      const next = [...new Set([...valid.map((m) => m.toLowerCase()), self])].sort();
      if (next.join() === last.join()) return;
      if (this.#fleet !== null) this.log.info({ members: next, was: last }, 'fleet: the members in Redis changed');
      last = next;
      this.#fleet?.update(tableOf(next));
    };
    await link.ready(2000);
    await beat();
    const again = (): void => {
      if (this.#draining || this.#registry === null) return;
      this.#registry.timer = setTimeout(() => void beat().then(again), REGISTER_MS);
      this.#registry.timer.unref();
    };
    again();
    return last;
  }

  /** Re-resolves `fleet.members.dns` (its answer's TTL, clamped by `dns:`), while the fleet is by DNS. */
  #dnsTimer: NodeJS.Timeout | null = null;

  /**
   * The members a DNS name gives now: `slots` member ports of every address it has (this member among them even when
   * its own address is not in DNS yet: it then owns what it computes it owns and serves that direct, while the others
   * do not send it anything). Looked up again when the answer expires; a change is a new member table — origins move
   * only to or from the members that came or went. A failed lookup keeps the members as they were (serve-stale).
   */
  async #membersByDns(config: ServiceConfig, self: string): Promise<string[]> {
    const d = config.fleet.dns as NonNullable<ServiceConfig['fleet']['dns']>;
    const port = (config.fleet.member as NonNullable<ServiceConfig['fleet']['member']>).port;
    const resolver = new Resolver({
      servers: config.dns.servers,
      minTtlMs: config.dns.minTtlMs,
      maxTtlMs: config.dns.maxTtlMs,
      serveStaleMs: config.dns.serveStaleMs,
      systemFallback: true,
    });
    let last: string[] = [self];
    const lookup = async (): Promise<number> => {
      try {
        const r = await resolver.resolve(d.name);
        const found = r.addresses.flatMap((a) =>
          Array.from({ length: d.slots }, (_, s) => `${a.family === 6 ? `[${a.address}]` : a.address}:${port + s}`),
        );
        const next = [...new Set([...found, self])].sort();
        if (next.join() !== last.join()) {
          if (this.#fleet !== null) this.log.info({ members: next, was: last }, 'fleet: the members by DNS changed');
          last = next;
          this.#fleet?.update(tableOf(next));
        }
        return Math.max(1000, r.expiresAt - Date.now());
      } catch (e) {
        this.log.warn({ name: d.name, err: (e as Error).message }, 'fleet: members not resolved; kept as they were');
        return 5000;
      }
    };
    const again = (ms: number): void => {
      if (this.#draining) return;
      this.#dnsTimer = setTimeout(() => void lookup().then(again), ms);
      this.#dnsTimer.unref();
    };
    again(await lookup());
    return last;
  }

  /**
   * A reload's `fleet.members`: the new list from now on (links and pools of members that stay are kept; origins move
   * only to or from the members that came or went). The member listener's own address and certificate are bound at
   * start: a change to them is said, and waits for a restart.
   */
  #refleet(was: ServiceConfig, now: ServiceConfig): void {
    // This member's weight: the others learn a new one from its next heartbeat answers.
    if (this.#fleet !== null && now.fleet.member !== null) this.#fleet.weight = now.fleet.member.weight;
    if (JSON.stringify(was.fleet.members) === JSON.stringify(now.fleet.members) && sameMember(was, now)) return;
    if (!this.#static || now.fleet.members === null || !sameMember(was, now)) {
      this.log.warn(
        'fleet: a reload changed whether this process is a member of instances, or its member listener; that takes a restart (the members stay as they were)',
      );
      return;
    }
    if (now.fleet.dns === null) this.#fleet?.update(tableOf(now.fleet.members ?? []));
  }

  /** `fleet.members` named: the members come from the config, never from the primary. */
  #static = false;

  /** The fleet's members now (from the primary): every upstream routes by it from now on. */
  setFleet(table: MemberTable): void {
    if (this.#member === null || this.#draining || this.#static) return;
    if (this.#fleet === null) {
      this.#fleet = new Fleet(this.#fleetName, table);
      // Once per origin and member until the table changes: the requests go direct meanwhile.
      this.#fleet.onMismatch = (origin, member, why) =>
        this.log.warn({ origin, member, why }, 'fleet: a member serves this origin otherwise; its requests go direct');
    } else this.#fleet.update(table);
    for (const u of this.#gen.upstreams.values()) u.fleet = this.#fleet;
  }

  /** What the fleet did here, or null when not a member. */
  fleetStats(): Record<string, unknown> | null {
    return this.#fleet?.stats() ?? null;
  }

  /** The Alt-Svc value this process's own h3 listeners give (null: none bound, or `proxy.altSvcMaxAge: 0`). */
  get altSvc(): string | null {
    return this.#altSvc;
  }

  /**
   * Advertise h3 listeners that another process of the same connector binds
   * on this host (serve --workers: only worker 1 owns the UDP port, the
   * others' https fronts advertise it too). Used while this process binds
   * none itself; null when that listener is down (RFC 7838 §2: an alternative
   * is only advertised while it serves).
   */
  advertiseAltSvc(value: string | null): void {
    this.#sharedAltSvc = value;
  }

  /** Listener name -> bound port. */
  /** The h3 fronts' QUIC counters, summed over this process's h3 listeners. */
  h3Front(): { accepted: number; strayShort: number; resetsSent: number } {
    const out = { accepted: 0, strayShort: 0, resetsSent: 0 };
    for (const { listener } of this.#listeners.values()) {
      const s = listener.quicStats?.() ?? null;
      if (!s) continue;
      out.accepted += s.accepted;
      out.strayShort += s.strayShort;
      out.resetsSent += s.resetsSent;
    }
    return out;
  }

  addresses(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const { listener } of this.#listeners.values()) out[listener.config.name] = listener.port;
    return out;
  }

  stats(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [name, u] of this.#gen.upstreams) {
      // A group's origin: its endpoints (docs/config.md `/stats`) beside its pools.
      const g = u.groupStats();
      out[name] =
        g === null ? u.stats() : { balance: g.balance, panic: g.panic, endpoints: g.endpoints, pools: u.stats() };
    }
    // A member of a fleet: its members, each origin's owner and route, requests forwarded and received, its links.
    // Under a key no origin name can take (names are letters, digits, "_", "." and "-").
    if (this.#fleet !== null) out['(fleet)'] = this.#fleet.stats();
    return out;
  }

  summary(): OriginSummary[] {
    return this.metrics.summary(this.#gen.upstreams.keys());
  }

  /** Made once: the forward path allocates nothing per request for its hooks. */
  #forwardHooks: ForwardHooks | null = null;
  /** Alt-Svc for the https fronts: the h3 listeners now bound (set with the listeners). */
  #altSvc: string | null = null;
  /** Alt-Svc of h3 listeners bound by another process of this connector (`serve --workers`: worker 1's). */
  #sharedAltSvc: string | null = null;

  #handle(req: ServerRequest, info: FrontInfo): ServerResponse | Promise<ServerResponse> {
    const hooks = (this.#forwardHooks ??= {
      log: this.log,
      requestLog: new RequestLog(this.log),
      metrics: this.metrics,
      draining: () => this.#draining,
      altSvc: () => this.#altSvc ?? this.#sharedAltSvc,
      spool: (memoryBytes, fileBytes) =>
        new Spool({ memoryBytes, fileBytes, budget: this.#tempFiles, dir: this.#gen.config.proxy.tempDir }),
      exhausted: (err, where) => this.#fds.exhausted(err, where),
    });
    return forward(this.#gen, info, hooks, req);
  }

  async #buildGeneration(config: ServiceConfig, prev: Generation | null): Promise<Generation> {
    const origins = [...config.origins.values()];
    if (origins.some((o) => o.protocol === 'h3') || config.listeners.some((l) => l.kind === 'h3')) await ensureH3();
    // TLS over TCP to some origin: Node's root store now, not in the first such request (net/tls-context.ts).
    if (origins.some((o) => o.protocol !== 'h3' && o.urls.some((u) => u.startsWith('https:')))) buildRootStore();
    const upstreams = new Map<string, Upstream>();
    for (const [name, oc] of config.origins) {
      const old = prev?.upstreams.get(name);
      const fresh = old && old.fingerprint === fingerprint(oc) ? null : oc;
      const u = fresh ? this.#newUpstream(fresh) : (old as Upstream);
      u.fleet = this.#fleet;
      upstreams.set(name, u);
      for (const url of oc.urls) this.metrics.name(url, name);
    }
    this.#warnShares(config);
    const users = new Map<string, number>();
    for (const oc of config.origins.values()) for (const url of oc.urls) users.set(url, (users.get(url) ?? 0) + 1);
    for (const u of upstreams.values()) u.sharedUrls = u.config.urls.some((url) => (users.get(url) ?? 0) > 1);
    return { config, router: new Router(config.routes), upstreams };
  }

  /**
   * An origin whose connections one client connection may all hold (limits.maxUpstreamPerClient ≥ its pool's
   * maxConnections, over HTTP/1.1: a request a connection): a client with that many requests in flight leaves
   * the others queued behind its own (a probe saw 23.6 s for a GET behind one h2 client's 100 streams). Said at
   * start and at each reload; HTTP/2 and HTTP/3 origins carry many requests a connection and are not concerned.
   */
  #warnShares(config: ServiceConfig): void {
    const perClient = config.limits.maxUpstreamPerClient;
    for (const [name, oc] of config.origins) {
      if (oc.protocol === 'h2' || oc.protocol === 'h3') continue;
      const max = oc.pool.maxConnections;
      if (perClient === 0 || perClient >= max)
        this.log.warn(
          { origin: name, maxConnections: max, maxUpstreamPerClient: perClient },
          `origins.${name}: one client connection may hold all ${max} of its connections over HTTP/1.1 (limits.maxUpstreamPerClient ${perClient === 0 ? 'is off' : `${perClient} ≥ pool.maxConnections`}): others wait behind its requests; lower the limit below ${max} or raise maxConnections`,
        );
    }
  }

  #newUpstream(oc: OriginConfig): Upstream {
    const u = new Upstream(oc, this.#sessions, (closed) => {
      // Same tick: fold into the baseline, then stop reading it live.
      this.metrics.retire(closed);
      this.#live.delete(closed);
    });
    this.#live.add(u);
    return u;
  }

  /**
   * Make the listeners `config` names. All or nothing: new sockets are opened first, a listener this config
   * replaces on the same port (another kind, host or ALPN list) is closed just before its successor binds, and on
   * any failure those come back as they were and nothing else changed — before, a failed reload could leave the
   * service with fewer listeners than it had (and its log saying the old config still ran). Kept listeners take
   * the new certificates, timeouts and limits only once everything is bound.
   */
  async #applyListeners(config: ServiceConfig): Promise<void> {
    // Port 0 (any free port) twice on one host and kind is two listeners, told apart by name; they were one.
    const want = new Map(
      config.listeners.map((l) => [`${l.kind}|${l.host}|${l.port}${l.port === 0 ? `|${l.name}` : ''}`, l]),
    );
    const started: string[] = [];
    const replaced: Array<[string, Bound]> = [];
    try {
      for (const [addr, lc] of want) {
        const key = rebindKey(lc);
        const have = this.#listeners.get(addr);
        // Unchanged keeps its socket, port 0 included: the port it was given is its port until it changes.
        if (have && have.rebind === key) continue;
        // The port may be held by the listener this one replaces: the same address, or one the new config drops
        // on the same port and transport. It lets the port go first (its connections drain meanwhile).
        const udp = lc.kind === 'h3';
        for (const [a, b] of [...this.#listeners]) {
          const c = b.listener.config;
          if (a !== addr && (want.has(a) || lc.port === 0 || c.port !== lc.port || (c.kind === 'h3') !== udp)) continue;
          this.#listeners.delete(a);
          replaced.push([a, b]);
          // TCP lets the port go as it stops listening (its connections drain meanwhile); a UDP socket carries its
          // QUIC connections until they end, so an h3 listener that gives up its port does it now.
          if (c.kind === 'h3') await b.listener.close(0);
          else void b.listener.close(config.shutdown.graceMs);
        }
        const l = await this.#makeListener(lc, config.limits);
        await l.start();
        this.#listeners.set(addr, { listener: l, rebind: key, limits: config.limits });
        started.push(addr);
      }
    } catch (e) {
      for (const addr of started) {
        void this.#listeners.get(addr)?.listener.close(0);
        this.#listeners.delete(addr);
      }
      for (const [addr, b] of replaced) {
        try {
          const l = await this.#makeListener(b.listener.config, b.limits);
          await l.start();
          this.#listeners.set(addr, { listener: l, rebind: b.rebind, limits: b.limits });
        } catch (again) {
          this.log.error(
            { listener: b.listener.config.name, err: (again as Error).message },
            'listener could not be restored after a failed reload',
          );
        }
      }
      this.#updateAltSvc(this.#gen.config); // the running config's (the one refused changed nothing)
      throw e;
    }
    for (const [addr, lc] of want) {
      const b = this.#listeners.get(addr);
      if (b && !started.includes(addr)) {
        b.listener.update(lc, config.limits);
        b.limits = config.limits;
      }
    }
    for (const [addr, b] of this.#listeners) {
      if (!want.has(addr)) {
        this.#listeners.delete(addr);
        void b.listener.close(config.shutdown.graceMs);
      }
    }
    this.#updateAltSvc(config);
  }

  /** RFC 7838 §3: each h3 listener that is up, on the same host as the front (an empty alt-authority host). */
  #updateAltSvc(config: ServiceConfig): void {
    const ma = config.proxy.altSvcMaxAge;
    const h3 = [...this.#listeners.values()]
      .filter((b) => b.listener.config.kind === 'h3' && b.listener.port > 0)
      .map((b) => `h3=":${b.listener.port}"; ma=${ma}`);
    this.#altSvc = ma > 0 && h3.length ? h3.join(', ') : null;
  }

  async #makeListener(lc: ServiceConfig['listeners'][number], limits: ServiceConfig['limits']): Promise<Listener> {
    if (lc.kind === 'h3') {
      const { H3Listener } = await import('./h3-listener.js');
      return new H3Listener(lc, limits, this.#hooks);
    }
    return new TcpListener(lc, limits, this.#hooks);
  }

  /**
   * Swap in a new config. On any failure the running config stays and the
   * error is thrown (the caller logs it). In-flight requests are not touched.
   */
  async reload(config: ServiceConfig): Promise<void> {
    if (this.#draining) throw new Error('shutting down');
    const prev = this.#gen;
    const gen = await this.#buildGeneration(config, prev);
    // Another secret file, period or stores: the keys follow (the same ones keep their keys: a secret of this
    // process's own is not made again).
    if (ticketSource(config) !== ticketSource(prev.config)) await this.#takeTicketSecret(config);
    try {
      await this.#applyListeners(config);
    } catch (e) {
      for (const u of gen.upstreams.values()) if (![...prev.upstreams.values()].includes(u)) u.destroy();
      this.metrics.front.reloads.inc({ result: 'failed' });
      throw e;
    }
    this.#gen = gen;
    this.#refleet(prev.config, config);
    // A group that changed keeps its endpoints' health, ejections, EWMA and counters where an endpoint stays
    // (only once the reload holds: a refused one leaves the running groups checking).
    for (const [name, u] of gen.upstreams) {
      const old = prev.upstreams.get(name);
      if (old && old !== u) u.adopt(old);
    }
    this.#tempFiles.limit = config.proxy.tempFileTotalBytes;
    this.log.level = config.logging.level;
    const was = prev.config.admin;
    const now = config.admin;
    if (was?.host !== now?.host || was?.port !== now?.port) {
      this.#admin = await moveAdmin(
        this.#admin,
        was,
        now,
        (at) =>
          startAdmin(at.host, at.port, {
            metrics: this.metrics,
            healthy: () => !this.#draining,
            stats: () => this.stats(),
            names: () => this.config.admin?.hosts ?? [],
          }),
        (e) => this.log.error({ err: e.message, admin: now }, 'admin listener failed to start after reload'),
      );
    }
    const kept = new Set(gen.upstreams.values());
    for (const u of prev.upstreams.values()) if (!kept.has(u)) u.retire();
    this.metrics.front.reloads.inc({ result: 'ok' });
    this.log.info(
      { file: config.file, origins: [...config.origins.keys()], listeners: this.addresses() },
      'config reloaded',
    );
  }

  /** Stop accepting, finish in-flight requests within `graceMs`, then close everything. */
  async shutdown(graceMs = this.#gen?.config.shutdown.graceMs ?? 0): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    const t0 = Date.now();
    const reg = this.#registry;
    if (reg) {
      // Out of every member's table at their next beat (they read every second), not after the registration's TTL:
      // the others stop sending here while this member drains.
      if (reg.timer) clearTimeout(reg.timer);
      reg.link.write((p) => p.zrem(reg.key, reg.self), reg.key);
    }
    // Members stop sending here as soon as the primary's table drops this worker; what they sent still finishes.
    await Promise.all([
      ...[...this.#listeners.values()].map((b) => b.listener.close(graceMs)),
      this.#member?.close(graceMs),
    ]);
    this.#listeners.clear();
    for (const u of this.#live) u.fleet = null;
    await this.#fleet?.close();
    this.log.debug({ tookMs: Date.now() - t0 }, 'listeners closed');
    const left = Math.max(0, graceMs - (Date.now() - t0));
    // Ref'd timers on purpose: once the listeners are closed nothing else keeps the process alive.
    let graceTimer: NodeJS.Timeout | undefined;
    const closing = [...this.#live].map(
      (u) =>
        new Promise<void>((r) => {
          u.retire();
          const check = (): void => {
            if (!this.#live.has(u)) r();
            else setTimeout(check, 20);
          };
          check();
        }),
    );
    const timedOut = await Promise.race([
      Promise.all(closing).then(() => false),
      new Promise<boolean>((r) => {
        graceTimer = setTimeout(() => r(true), left);
      }),
    ]);
    clearTimeout(graceTimer);
    if (timedOut) for (const u of [...this.#live]) u.destroy();
    this.log.debug({ tookMs: Date.now() - t0, forced: timedOut }, 'upstreams closed');
    await this.#admin?.close();
    this.metrics.close();
    this.#stopWarnings();
    this.#tickets.stop();
    await this.#earlyRecord?.close();
    this.#earlyRecord = null;
    if (this.#dnsTimer) clearTimeout(this.#dnsTimer);
    await this.#registry?.link.close();
    this.#registry = null;
    this.#fds.close();
    this.#forwardHooks?.requestLog.flush();
    if (this.#served) this.log.info({ graceMs, tookMs: Date.now() - t0, forced: timedOut }, 'originlink stopped');
    this.log.flush?.();
  }
}

/** What the ticket keys of `c` derive from: equal for configs that give the same keys. */
function ticketSource(c: ServiceConfig): string {
  const t = c.tickets;
  const digest = t.secret ? createHash('sha256').update(t.secret).digest('base64url') : null;
  return JSON.stringify([t.rotateMs, digest, c.stores ? storesFingerprint(c.stores) : null]);
}

/** `fleet.members: redis`: how often a member renews its registration, and how long one lasts, ms. */
const REGISTER_MS = 1000;
const REGISTER_TTL_MS = 3000;

/** Members by `host:port`, each reached at https://host:port (its member listener); their certificate the proof. */
function tableOf(members: readonly string[]): MemberTable {
  return { members: members.map((h) => ({ name: h, url: `https://${h}`, weight: 1 })), token: null };
}

/** The same member listener in both configs (address, port, certificate, CA). */
function sameMember(a: ServiceConfig, b: ServiceConfig): boolean {
  const x = a.fleet.member;
  const y = b.fleet.member;
  if (x === null || y === null) return x === y;
  return (
    x.host === y.host &&
    x.port === y.port &&
    x.advertise === y.advertise &&
    x.cert.equals(y.cert) &&
    x.key.equals(y.key) &&
    x.ca.equals(y.ca)
  );
}
