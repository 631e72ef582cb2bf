/**
 * Prometheus metrics. Upstream numbers come from two sources only, each
 * counted once by the library: `agent.stats()` snapshots (read at scrape
 * time) and the diagnostics_channel events (handshakes by kind, TTFB).
 * Front-side counters (requests received, rejections) are the service's own.
 *
 * Counters survive reloads: when an Upstream closes, its final snapshot is
 * folded into a baseline, so a retired agent's counts never go backwards
 * and are never added twice.
 */
import type { Fleet } from './fleet.js';
import { AsyncLocalStorage } from 'node:async_hooks';
import diagnostics from 'node:diagnostics_channel';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { FastHistogram } from './fast-histogram.js';
import type { OriginReport } from '../agent/agent.js';
import type { PoolStats } from '../pool/stats.js';
import type { ConnectionFacts } from '../http/types.js';
import { percentiles } from '../util/stats.js';
import type { Upstream } from './upstream.js';
import type { StoreLinkStats, Stores } from '../store/open-stores.js';
import type { TempFileBudget } from '../util/spool.js';
import { endpointSeries } from './endpoint-metrics.js';

type Totals = Pick<
  PoolStats,
  | 'requests'
  | 'requestsOnReusedConnections'
  | 'connectionsOpened'
  | 'connectionsClosed'
  | 'connectFailures'
  | 'retries'
  | 'resumedHandshakes'
  | 'earlyDataHandshakes'
  | 'tfoHandshakes'
> & { errors: Record<string, number> };
const TOTAL_KEYS = [
  'requests',
  'requestsOnReusedConnections',
  'connectionsOpened',
  'connectionsClosed',
  'connectFailures',
  'retries',
  'resumedHandshakes',
  'earlyDataHandshakes',
  'tfoHandshakes',
] as const;

interface Row {
  origin: string;
  upstream: string;
  totals: Totals;
  live: PoolStats | null;
}

export interface OriginSummary {
  origin: string;
  protocol: string;
  requests: number;
  reuseRate: number;
  open: number;
  opened: number;
  p50Ms: number | null;
  errors: number;
}

/**
 * The origin name of the request being forwarded, for the handshake counts: a
 * connection's `originlink:connection:open` message is published synchronously
 * inside the Agent's call chain, so the subscriber reads the name here; the URL
 * map is the fallback (warm-up dials), needed when two named origins share a URL.
 */
export const originContext = new AsyncLocalStorage<string>();

const RECENT = 512;

const emptyTotals = (): Totals => ({
  requests: 0,
  requestsOnReusedConnections: 0,
  connectionsOpened: 0,
  connectionsClosed: 0,
  connectFailures: 0,
  retries: 0,
  resumedHandshakes: 0,
  earlyDataHandshakes: 0,
  tfoHandshakes: 0,
  errors: {},
});

function add(into: Totals, s: Totals): void {
  for (const k of TOTAL_KEYS) into[k] += s[k];
  for (const [c, n] of Object.entries(s.errors)) into.errors[c] = (into.errors[c] ?? 0) + n;
}

interface FrontCount {
  listener: string;
  protocol: string;
  status: string;
  n: number;
}

/**
 * How long the first scrape waits after starting the process series: prom-client's event-loop monitor samples every
 * 10 ms, and with no sample yet its histogram reads a minimum of 2^63 ns and a mean of NaN.
 */
const FIRST_SAMPLES_MS = 50;

export class Metrics {
  readonly registry = new Registry();
  #live: () => Iterable<Upstream>;
  #baseline = new Map<string, Totals>();
  /** Upstream URL origin -> origin name, for diagnostics events. */
  #names = new Map<string, string>();
  /** Origin names of this service (another Service in the same process publishes on the same channels). */
  #known = new Set<string>();
  /** Last RECENT time-to-first-byte samples per origin (ring), for the demo table's p50. */
  #ttfbRecent = new Map<string, { at: number; samples: number[] }>();
  #lastFacts = new Map<string, ConnectionFacts>();
  #subs: Array<[diagnostics.Channel, (m: unknown) => void]> = [];
  readonly front: {
    requests: Counter<string>;
    rejected: Counter<string>;
    connections: Gauge<string>;
    refusedConnections: Counter<string>;
    tlsRefused: Counter<string>;
    inflight: Gauge<string>;
    reloads: Counter<string>;
  };
  /** Requests being forwarded now (read by the `originlink_front_inflight` gauge at scrape time). */
  inflight = 0;
  /** This worker's fleet, once it has one (docs/fleet.md): the `originlink_fleet_*` series read it at scrape time. */
  fleet: (() => Fleet | null) | null = null;
  /**
   * Front requests by listener, then `protocol` (`1.1`/`2`/`3`), then status: nested so that counting one builds no key
   * string.
   */
  #frontCounts = new Map<string, Map<string, Map<number, FrontCount>>>();
  readonly #handshakes: Counter<string>;
  readonly #ttfb: FastHistogram;

  #processSeries: Promise<void> | null = null;

  /**
   * The process's own series (prom-client's defaults): CPU, RSS, heap, event-loop lag, open fds, active
   * handles — what a soak or an operator watches for leaks. Started by the first scrape (of the admin listener's
   * /metrics, or a cluster primary's asking a worker), not before: they keep an event-loop-delay timer waking the
   * process every 10 ms and a callback per garbage collection, which a service nobody scrapes should not pay — and
   * the admin listener is there by default. Resolves once the timer has taken a few samples (FIRST_SAMPLES_MS), so
   * the first scrape's `nodejs_eventloop_lag_*` describe something; at once after that. They stay once started.
   */
  prepare(): Promise<void> {
    if (this.#processSeries === null) {
      collectDefaultMetrics({ register: this.registry });
      this.#processSeries = new Promise((resolve) => setTimeout(resolve, FIRST_SAMPLES_MS));
    }
    return this.#processSeries;
  }

  get processSeries(): boolean {
    return this.#processSeries !== null;
  }

  constructor(live: () => Iterable<Upstream>) {
    this.#live = live;
    const r = [this.registry];
    const L = ['origin', 'upstream'];
    const self = this;
    const counterFrom = (name: string, help: string, pick: (t: Totals) => number): void => {
      new Counter({
        name,
        help,
        labelNames: L,
        registers: r,
        collect() {
          this.reset();
          for (const row of self.#rows()) this.inc({ origin: row.origin, upstream: row.upstream }, pick(row.totals));
        },
      });
    };
    const gaugeFrom = (name: string, help: string, pick: (s: PoolStats) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: L,
        registers: r,
        collect() {
          this.reset();
          for (const row of self.#rows())
            if (row.live) this.set({ origin: row.origin, upstream: row.upstream }, pick(row.live));
        },
      });
    };
    endpointSeries(this.registry, live);
    counterFrom(
      'originlink_upstream_requests_total',
      'Requests handed to an upstream connection (agent stats).',
      (t) => t.requests,
    );
    counterFrom(
      'originlink_upstream_reused_requests_total',
      'Requests on a connection that had served one before.',
      (t) => t.requestsOnReusedConnections,
    );
    counterFrom(
      'originlink_upstream_connections_opened_total',
      'Upstream connections established.',
      (t) => t.connectionsOpened,
    );
    counterFrom(
      'originlink_upstream_connections_closed_total',
      'Upstream connections closed.',
      (t) => t.connectionsClosed,
    );
    counterFrom('originlink_upstream_connect_failures_total', 'Failed connection attempts.', (t) => t.connectFailures);
    counterFrom('originlink_upstream_retries_total', 'Requests sent again by the retry policy.', (t) => t.retries);
    new Gauge({
      name: 'originlink_upstream_reuse_ratio',
      help: '1 - connections opened / requests.',
      labelNames: L,
      registers: r,
      aggregator: 'average',
      collect() {
        this.reset();
        for (const row of self.#rows())
          this.set(
            { origin: row.origin, upstream: row.upstream },
            row.totals.requests ? Math.max(0, 1 - row.totals.connectionsOpened / row.totals.requests) : 0,
          );
      },
    });
    gaugeFrom('originlink_upstream_connections_open', 'Open upstream connections.', (s) => s.open);
    gaugeFrom('originlink_upstream_connections_idle', 'Idle upstream connections.', (s) => s.idle);
    gaugeFrom('originlink_upstream_connections_dialing', 'Upstream connections being established.', (s) => s.dialing);
    gaugeFrom(
      'originlink_upstream_requests_active',
      'Requests running on upstream connections.',
      (s) => s.activeRequests,
    );
    gaugeFrom('originlink_upstream_requests_pending', 'Requests waiting for an upstream connection.', (s) => s.pending);
    new Counter({
      name: 'originlink_upstream_errors_total',
      help: 'Upstream errors by code (agent stats).',
      labelNames: [...L, 'code'],
      registers: r,
      collect() {
        this.reset();
        for (const row of self.#rows())
          for (const [code, n] of Object.entries(row.totals.errors))
            this.inc({ origin: row.origin, upstream: row.upstream, code }, n);
      },
    });
    // The fleet of the workers (docs/fleet.md): summed over the workers by the primary's /metrics.
    new Counter({
      name: 'originlink_fleet_requests_total',
      help: "Requests of an origin sent to its owner among the workers (direction forwarded) and served as that origin's owner for another worker (received).",
      labelNames: ['origin', 'direction'],
      registers: r,
      collect() {
        this.reset();
        const f = self.fleet?.() ?? null;
        if (f === null) return;
        for (const [origin, n] of f.forwarded) this.inc({ origin, direction: 'forwarded' }, n);
        for (const [origin, n] of f.received) this.inc({ origin, direction: 'received' }, n);
      },
    });
    new Gauge({
      name: 'originlink_fleet_members',
      help: 'Members of the fleet this worker knows (the workers of serve --workers that are ready).',
      registers: r,
      collect() {
        this.set(self.fleet?.()?.members.length ?? 0);
      },
    });
    // Each member's links to the others (heartbeats, docs/fleet.md): labelled by the member that reports, so the
    // primary's sum over its workers keeps them apart.
    type LinkLabels = { member: string; peer: string };
    type Link = NonNullable<ReturnType<Fleet['links']['get']>>;
    const linkSeries = <M extends { reset(): void }>(set: (m: M, k: LinkLabels, l: Link, f: Fleet) => void) =>
      function (this: M) {
        this.reset();
        const f = self.fleet?.() ?? null;
        if (f !== null) for (const [peer, l] of f.links) set(this, { member: f.self, peer }, l, f);
      };
    new Gauge({
      name: 'originlink_fleet_link_up',
      help: 'The link from member to peer: 1 while its heartbeats are answered (peer in the member’s hash), 0 while down.',
      labelNames: ['member', 'peer'],
      registers: r,
      collect: linkSeries<Gauge>((m, k, l) => m.set(k, l.up ? 1 : 0)),
    });
    new Gauge({
      name: 'originlink_fleet_link_rtt_seconds',
      help: 'Round trip of the last answered heartbeat on the link from member to peer.',
      labelNames: ['member', 'peer'],
      registers: r,
      collect: linkSeries<Gauge>((m, k, l) => {
        if (l.rttMs !== null) m.set(k, l.rttMs / 1000);
      }),
    });
    new Gauge({
      name: 'originlink_fleet_link_streams',
      help: 'Forwarded requests under way on the link from member to peer.',
      labelNames: ['member', 'peer'],
      registers: r,
      collect: linkSeries<Gauge>((m, k, _l, f) => m.set(k, f.streams(k.peer))),
    });
    new Counter({
      name: 'originlink_fleet_link_downs_total',
      help: 'Times the link from member to peer went down (a failed or unanswered heartbeat, a lost forwarded request).',
      labelNames: ['member', 'peer'],
      registers: r,
      collect: linkSeries<Counter>((m, k, l) => m.inc(k, l.downs)),
    });
    new Gauge({
      name: 'originlink_fleet_origin_route',
      help: 'Per origin this member has served: its owner and the route this member takes now (self: it is the owner; owner; direct).',
      labelNames: ['member', 'origin', 'owner', 'route'],
      registers: r,
      collect() {
        this.reset();
        const f = self.fleet?.() ?? null;
        if (f === null) return;
        for (const origin of f.origins())
          this.set({ member: f.self, origin, owner: f.owner(origin)?.name ?? '', route: f.routeNow(origin) }, 1);
      },
    });
    new Gauge({
      name: 'originlink_upstream_protocol',
      help: 'Protocol chosen for the upstream (1 = in use).',
      labelNames: [...L, 'protocol'],
      registers: r,
      collect() {
        this.reset();
        for (const row of self.#rows())
          if (row.live?.protocol)
            this.set({ origin: row.origin, upstream: row.upstream, protocol: row.live.protocol }, 1);
      },
    });
    new Gauge({
      name: 'originlink_upstream_connection_info',
      help: 'Facts of the latest upstream connection (ALPN, TLS version, peer stream limit as value).',
      labelNames: [...L, 'protocol', 'alpn', 'tls_version', 'resumed', 'early_data', 'tfo'],
      registers: r,
      collect() {
        this.reset();
        for (const [key, f] of self.#lastFacts) {
          const [origin, upstream] = key.split('|') as [string, string];
          this.set(
            {
              origin,
              upstream,
              protocol: f.protocol,
              alpn: f.alpn ?? '',
              tls_version: f.tlsVersion ?? '',
              resumed: String(f.resumed),
              early_data: String(f.earlyData),
              tfo: String(f.tfo),
            },
            f.peerMaxConcurrentStreams ?? 1,
          );
        }
      },
    });
    // Probe and selection facts (Agent.origin(): ALPN, Alt-Svc h3, RTT, h3 backoff, the current choice).
    const reports = function* (): Generator<{ origin: string; upstream: string; policy: string; r: OriginReport }> {
      for (const u of self.#live())
        for (const url of u.config.urls)
          yield { origin: u.name, upstream: url, policy: u.config.protocol, r: u.agent.origin(url) };
    };
    new Gauge({
      name: 'originlink_upstream_choice',
      help: 'Protocol selection for the upstream now (1 = current choice; reason as label).',
      labelNames: [...L, 'transport', 'protocol', 'reason'],
      registers: r,
      collect() {
        this.reset();
        for (const x of reports()) {
          const pinned = x.policy === 'auto' ? null : x.policy;
          this.set(
            pinned
              ? {
                  origin: x.origin,
                  upstream: x.upstream,
                  transport: pinned === 'h3' ? 'quic' : 'tcp',
                  protocol: pinned,
                  reason: 'configured',
                }
              : {
                  origin: x.origin,
                  upstream: x.upstream,
                  transport: x.r.choice.transport,
                  protocol: x.r.choice.protocol ?? 'alpn',
                  reason: x.r.choice.reason,
                },
            1,
          );
        }
      },
    });
    new Gauge({
      name: 'originlink_upstream_facts_info',
      help: 'Learned facts: last ALPN, h3 advertised by Alt-Svc (1 = in use).',
      labelNames: [...L, 'alpn', 'h3_advertised'],
      registers: r,
      collect() {
        this.reset();
        for (const x of reports())
          this.set(
            {
              origin: x.origin,
              upstream: x.upstream,
              alpn: x.r.facts.alpn ?? '',
              h3_advertised: String(x.r.facts.h3 !== null),
            },
            1,
          );
      },
    });
    new Gauge({
      name: 'originlink_upstream_rtt_seconds',
      help: 'Smoothed RTT learned for the upstream.',
      labelNames: L,
      registers: r,
      aggregator: 'average',
      collect() {
        this.reset();
        for (const x of reports())
          if (x.r.facts.rttMs !== null) this.set({ origin: x.origin, upstream: x.upstream }, x.r.facts.rttMs / 1000);
      },
    });
    new Gauge({
      name: 'originlink_upstream_h3_broken',
      help: '1 while HTTP/3 is in backoff for the upstream.',
      labelNames: L,
      registers: r,
      aggregator: 'max',
      collect() {
        this.reset();
        const now = Date.now();
        for (const x of reports())
          this.set({ origin: x.origin, upstream: x.upstream }, x.r.facts.brokenUntil > now ? 1 : 0);
      },
    });
    new Gauge({
      name: 'originlink_upstream_selection_events',
      help: 'Selection events of the live agent (races, QUIC attempts/failures/wins, TCP wins, h3 upgrades, 0-RTT early starts, TCP fallbacks); restarts when an origin is reconfigured.',
      labelNames: [...L, 'event'],
      registers: r,
      collect() {
        this.reset();
        for (const x of reports())
          for (const [event, n] of Object.entries(x.r.counters))
            this.set({ origin: x.origin, upstream: x.upstream, event }, n as number);
      },
    });
    // Fleet stores (Redis): one series per connection of the live config's `stores:` (issue 16: Redis down is
    // one warning and a metric, never a failed request).
    const links = function* (): Generator<StoreLinkStats> {
      const seen = new Set<Stores>();
      for (const u of self.#live())
        if (u.stores && !seen.has(u.stores)) {
          seen.add(u.stores);
          yield* u.stores.links();
        }
    };
    const SL = ['url', 'stores'];
    new Gauge({
      name: 'originlink_store_up',
      help: 'Fleet store connection ready (1) or down (0): while down, the local tier serves alone.',
      labelNames: SL,
      registers: r,
      aggregator: 'min',
      collect() {
        this.reset();
        for (const l of links()) this.set({ url: l.url, stores: l.stores }, l.up ? 1 : 0);
      },
    });
    const storeCounter = (name: string, help: string, pick: (l: StoreLinkStats) => number): void => {
      new Counter({
        name,
        help,
        labelNames: SL,
        registers: r,
        collect() {
          this.reset();
          for (const l of links()) this.inc({ url: l.url, stores: l.stores }, pick(l));
        },
      });
    };
    storeCounter(
      'originlink_store_outages_total',
      'Times the fleet store went away (each told by one warning).',
      (l) => l.outages,
    );
    storeCounter('originlink_store_writes_total', 'Writes sent to the fleet store (pipelined).', (l) => l.writes);
    storeCounter(
      'originlink_store_dropped_writes_total',
      'Writes dropped: store down, queue full or a failed pipeline.',
      (l) => l.droppedWrites,
    );
    storeCounter('originlink_store_reads_total', 'Background reads from the fleet store.', (l) => l.reads);
    storeCounter(
      'originlink_store_failed_reads_total',
      'Background reads that failed or found the store down.',
      (l) => l.failedReads,
    );
    storeCounter(
      'originlink_store_messages_total',
      'Pub/sub messages from other processes (e.g. broken-h3 marks).',
      (l) => l.messages,
    );
    this.#handshakes = new Counter({
      name: 'originlink_upstream_handshakes_total',
      help: 'Upstream handshakes by protocol and kind (diagnostics_channel).',
      labelNames: [...L, 'protocol', 'resumed', 'early_data', 'tfo'],
      registers: r,
    });
    this.#ttfb = new FastHistogram({
      name: 'originlink_upstream_ttfb_seconds',
      help: 'Time from request to response head, retries included.',
      registers: r,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    });
    this.front = {
      requests: new Counter({
        name: 'originlink_front_requests_total',
        help: 'Requests received at the front, by listener, client protocol and status sent.',
        labelNames: ['listener', 'protocol', 'status'],
        registers: r,
        collect() {
          this.reset();
          for (const byProtocol of self.#frontCounts.values()) {
            for (const byStatus of byProtocol.values())
              for (const c of byStatus.values())
                this.inc({ listener: c.listener, protocol: c.protocol, status: c.status }, c.n);
          }
        },
      }),
      rejected: new Counter({
        name: 'originlink_front_rejected_total',
        help: 'Requests refused before forwarding, by reason.',
        labelNames: ['listener', 'reason'],
        registers: r,
      }),
      connections: new Gauge({
        name: 'originlink_front_connections',
        help: 'Open client connections (h2: sessions; h3: QUIC connections).',
        labelNames: ['listener'],
        registers: r,
      }),
      refusedConnections: new Counter({
        name: 'originlink_front_refused_connections_total',
        help: 'Client connections closed as they were accepted: the listener at limits.maxClientConnections (max_connections), file descriptors nearly exhausted (descriptors), or an h3 listener past limits.h3MemoryBytes (memory_budget: refused with CONNECTION_REFUSED).',
        labelNames: ['listener', 'reason'],
        registers: r,
      }),
      tlsRefused: new Counter({
        name: 'originlink_front_tls_refused_total',
        help: 'Client TLS handshakes that failed on an https or h3 listener: client_cert (a client certificate required and not shown, or not verified against tls.clientCa) or handshake (anything else: no shared version or cipher, a stray byte stream, a timeout).',
        labelNames: ['listener', 'reason'],
        registers: r,
      }),
      inflight: new Gauge({
        name: 'originlink_front_inflight',
        help: 'Requests being forwarded now.',
        registers: r,
        collect() {
          this.set(self.inflight);
        },
      }),
      reloads: new Counter({
        name: 'originlink_config_reloads_total',
        help: 'Config reloads by result.',
        labelNames: ['result'],
        registers: r,
      }),
    };
    this.#subscribe('originlink:connection:open', (m) => {
      const { origin, protocol, facts } = m as { origin: string; protocol: string; facts: ConnectionFacts };
      const name = originContext.getStore() ?? this.#names.get(origin);
      if (!name || !this.#known.has(name)) return;
      this.#handshakes.inc({
        origin: name,
        upstream: origin,
        protocol,
        resumed: String(facts.resumed),
        early_data: String(facts.earlyData),
        tfo: String(facts.tfo),
      });
      this.#lastFacts.set(`${name}|${origin}`, facts);
    });
  }

  /** The series of the spools' temporary files (proxy.maxTempFileBytes, maxRequestTempFileBytes). */
  tempFiles(b: TempFileBudget): void {
    const r = [this.registry];
    new Gauge({
      name: 'originlink_temp_file_bytes',
      help: 'Bytes held in temporary files by bodies spooled now.',
      registers: r,
      collect() {
        this.set(b.used);
      },
    });
    new Counter({
      name: 'originlink_temp_files_total',
      help: 'Temporary files opened for bodies (responses ahead of slow clients, request bodies read whole).',
      registers: r,
      collect() {
        this.reset();
        this.inc(b.files);
      },
    });
    new Counter({
      name: 'originlink_temp_file_fallbacks_total',
      help: 'Times a body could put nothing more in its temporary file and was paced to its reader: its own bound (limit), the process budget (budget), a disk error (error).',
      labelNames: ['reason'],
      registers: r,
      collect() {
        this.reset();
        for (const [reason, n] of Object.entries(b.fallbacks)) this.inc({ reason }, n);
      },
    });
  }

  #subscribe(name: string, fn: (m: unknown) => void): void {
    const ch = diagnostics.channel(name);
    ch.subscribe(fn);
    this.#subs.push([ch, fn]);
  }

  /**
   * One origin response's time to its head, retries included, told by the forwarder that asked origin `name`
   * (`upstream`: the URL that answered). Not from the Agent's `originlink:request:end` channel: a subscriber there
   * made every request build and publish a message and find its origin's name again (an AsyncLocalStorage context
   * when URLs are shared), where the forwarder knows it.
   */
  upstreamTtfb(name: string, upstream: string, protocol: string, ttfbMs: number): void {
    if (!this.#known.has(name)) return;
    this.#ttfb.observe(name, upstream, protocol, () => ({ origin: name, upstream, protocol }), ttfbMs / 1000);
    let ring = this.#ttfbRecent.get(name);
    if (!ring) this.#ttfbRecent.set(name, (ring = { at: 0, samples: [] }));
    if (ring.samples.length < RECENT) ring.samples.push(ttfbMs);
    else ring.samples[ring.at] = ttfbMs;
    ring.at = (ring.at + 1) % RECENT;
  }

  /** Count one answered front request. */
  frontRequest(listener: string, protocol: string, status: number): void {
    let byProtocol = this.#frontCounts.get(listener);
    if (!byProtocol) this.#frontCounts.set(listener, (byProtocol = new Map()));
    let byStatus = byProtocol.get(protocol);
    if (!byStatus) byProtocol.set(protocol, (byStatus = new Map()));
    const c = byStatus.get(status);
    if (c) c.n++;
    else byStatus.set(status, { listener, protocol, status: String(status), n: 1 });
  }

  /** Declare which upstream URLs belong to which origin name (call on every config load). */
  name(url: string, origin: string): void {
    if (!this.#names.has(url)) this.#names.set(url, origin);
    this.#known.add(origin);
  }

  /** Fold a closed upstream's final counts into the baseline. */
  retire(u: Upstream): void {
    for (const s of u.stats()) {
      const key = `${u.name}|${s.origin}`;
      let t = this.#baseline.get(key);
      if (!t) this.#baseline.set(key, (t = emptyTotals()));
      add(t, s);
    }
  }

  #rows(): Row[] {
    const rows = new Map<string, Row>();
    for (const [key, t] of this.#baseline) {
      const [origin, upstream] = key.split('|') as [string, string];
      const totals = emptyTotals();
      add(totals, t);
      rows.set(key, { origin, upstream, totals, live: null });
    }
    for (const u of this.#live()) {
      for (const s of u.stats()) {
        const key = `${u.name}|${s.origin}`;
        let row = rows.get(key);
        if (!row) rows.set(key, (row = { origin: u.name, upstream: s.origin, totals: emptyTotals(), live: null }));
        add(row.totals, s);
        row.live = row.live ? mergeLive(row.live, s) : s;
      }
    }
    return [...rows.values()];
  }

  /** Per origin name: what the demo table shows. */
  summary(names: Iterable<string>): OriginSummary[] {
    const rows = this.#rows();
    return [...names].map((origin) => {
      const mine = rows.filter((r) => r.origin === origin);
      const t = emptyTotals();
      for (const r of mine) add(t, r.totals);
      const protos = [...new Set(mine.map((r) => r.live?.protocol).filter(Boolean))];
      const recent = this.#ttfbRecent.get(origin)?.samples ?? [];
      return {
        origin,
        protocol: protos.join('+') || '-',
        requests: t.requests,
        reuseRate: t.requests ? Math.max(0, 1 - t.connectionsOpened / t.requests) : 0,
        open: mine.reduce((a, r) => a + (r.live?.open ?? 0), 0),
        opened: t.connectionsOpened,
        p50Ms: recent.length ? percentiles(recent).p50 : null,
        errors: Object.values(t.errors).reduce((a, b) => a + b, 0),
      };
    });
  }

  close(): void {
    for (const [ch, fn] of this.#subs) ch.unsubscribe(fn);
    this.#subs = [];
  }
}

function mergeLive(a: PoolStats, b: PoolStats): PoolStats {
  return {
    ...a,
    protocol: a.protocol ?? b.protocol,
    open: a.open + b.open,
    idle: a.idle + b.idle,
    busy: a.busy + b.busy,
    activeRequests: a.activeRequests + b.activeRequests,
    dialing: a.dialing + b.dialing,
    pending: a.pending + b.pending,
  };
}
