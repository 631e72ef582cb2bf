/**
 * Prometheus series of origin groups' endpoints, labels `origin` (the config name) and `endpoint` (its URL),
 * read from the live upstreams' groups at scrape time. An endpoint that stays across a reload keeps its state
 * and counters (Group.adopt), so its counters never go back; one removed from the config leaves its series.
 * While a reload's old and new upstream both live they share that state: each series is taken once.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { EndpointStats } from '../group/group.js';
import type { Upstream } from './upstream.js';

const L = ['origin', 'endpoint'];

export function endpointSeries(registry: Registry, live: () => Iterable<Upstream>): void {
  const r = [registry];
  const rows = function* (): Generator<{ origin: string; e: EndpointStats }> {
    const seen = new Set<string>();
    for (const u of live()) {
      const g = u.groupStats();
      if (g === null) continue;
      for (const e of g.endpoints) {
        const k = `${u.name}|${e.url}`;
        if (seen.has(k)) continue;
        seen.add(k);
        yield { origin: u.name, e };
      }
    }
  };
  const counter = (name: string, help: string, pick: (e: EndpointStats) => number): void => {
    new Counter({
      name,
      help,
      labelNames: L,
      registers: r,
      collect() {
        this.reset();
        for (const x of rows()) this.inc({ origin: x.origin, endpoint: x.e.url }, pick(x.e));
      },
    });
  };
  const gauge = (name: string, help: string, pick: (e: EndpointStats) => number | null): void => {
    new Gauge({
      name,
      help,
      labelNames: L,
      registers: r,
      collect() {
        this.reset();
        for (const x of rows()) {
          const v = pick(x.e);
          if (v !== null) this.set({ origin: x.origin, endpoint: x.e.url }, v);
        }
      },
    });
  };
  counter(
    'originlink_endpoint_requests_total',
    'Attempts sent to the endpoint (retries and hedges included).',
    (e) => e.requests,
  );
  counter(
    'originlink_endpoint_failures_total',
    'Attempts the endpoint failed: connect errors, resets, timeouts, 502/503/504.',
    (e) => e.failures,
  );
  counter(
    'originlink_endpoint_ejections_total',
    'Times the endpoint was ejected by outlier detection.',
    (e) => e.ejections,
  );
  counter(
    'originlink_endpoint_health_checks_total',
    'Active health checks of the endpoint that said something.',
    (e) => e.checks,
  );
  counter(
    'originlink_endpoint_health_check_failures_total',
    'Active health checks the endpoint failed.',
    (e) => e.checkFailures,
  );
  counter('originlink_endpoint_hedges_sent_total', 'Hedged attempts sent to the endpoint.', (e) => e.hedgesSent);
  counter(
    'originlink_endpoint_hedges_won_total',
    'Hedged attempts to the endpoint whose head came first.',
    (e) => e.hedgesWon,
  );
  counter(
    'originlink_endpoint_retries_refused_total',
    'Retries and hedges after the endpoint failed or was slow that the retry budget refused.',
    (e) => e.retriesRefused,
  );
  counter(
    'originlink_endpoint_collapsed_total',
    'Requests that shared another request to the endpoint (collapse).',
    (e) => e.collapsed,
  );
  gauge(
    'originlink_endpoint_outstanding',
    'Requests queued or in flight on the endpoint now (h2/h3: streams).',
    (e) => e.outstanding,
  );
  gauge('originlink_endpoint_ewma_seconds', "Peak-EWMA of the endpoint's response-head latency.", (e) =>
    e.ewmaMs === null ? null : e.ewmaMs / 1000,
  );
  new Gauge({
    name: 'originlink_endpoint_state',
    help: "The endpoint's standing now (1 = current): healthy, unhealthy (active checks) or ejected (outlier detection).",
    labelNames: [...L, 'state'],
    registers: r,
    collect() {
      this.reset();
      for (const x of rows()) this.set({ origin: x.origin, endpoint: x.e.url, state: x.e.health }, 1);
    },
  });
}
