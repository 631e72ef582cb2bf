/**
 * A Prometheus histogram for the per-request hot path: a sample is counted
 * into a series found by three key strings the caller already holds, in
 * nested maps (no label object hashed per observation, as prom-client's
 * Histogram does, and no joined key string built and hashed), and the
 * exposition is built only when scraped. Registered in a prom-client
 * Registry like any metric: `get()` returns the same shape prom-client's
 * Histogram does (`_bucket` with `le`, `_sum`, `_count`), so text output and
 * the cluster's AggregatorRegistry (aggregator `sum`) treat it the same.
 */
import type { Registry } from 'prom-client';

type Labels = Record<string, string>;

interface Series {
  labels: Labels;
  counts: Float64Array;
  sum: number;
  count: number;
}

export class FastHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #buckets: readonly number[];
  readonly #series = new Map<string, Map<string, Map<string, Series>>>();

  constructor(o: { name: string; help: string; buckets: readonly number[]; registers: Registry[] }) {
    this.name = o.name;
    this.help = o.help;
    this.#buckets = [...o.buckets].sort((a, b) => a - b);
    // A Registry keeps any object with name, help, type and get() (prom-client's Metric contract).
    for (const r of o.registers) r.registerMetric(this as never);
  }

  /** Count `value` in the series keyed (k1, k2, k3); `labels` is called only the first time that key is seen. */
  observe(k1: string, k2: string, k3: string, labels: () => Labels, value: number): void {
    let m1 = this.#series.get(k1);
    if (!m1) this.#series.set(k1, (m1 = new Map()));
    let m2 = m1.get(k2);
    if (!m2) m1.set(k2, (m2 = new Map()));
    let s = m2.get(k3);
    if (!s) m2.set(k3, (s = { labels: labels(), counts: new Float64Array(this.#buckets.length), sum: 0, count: 0 }));
    const b = this.#buckets;
    for (let i = 0; i < b.length; i++) {
      if (value <= b[i]!) {
        s.counts[i]!++;
        break;
      }
    }
    s.sum += value;
    s.count++;
  }

  /** prom-client's Metric contract (Registry.resetMetrics). */
  reset(): void {
    this.#series.clear();
  }

  get(): {
    name: string;
    help: string;
    type: string;
    aggregator: string;
    values: Array<{ labels: Labels; value: number; metricName: string }>;
  } {
    const values: Array<{ labels: Labels; value: number; metricName: string }> = [];
    for (const m1 of this.#series.values())
      for (const m2 of m1.values())
        for (const s of m2.values()) {
          let acc = 0;
          for (let i = 0; i < this.#buckets.length; i++) {
            acc += s.counts[i]!;
            values.push({
              labels: { le: String(this.#buckets[i]), ...s.labels },
              value: acc,
              metricName: `${this.name}_bucket`,
            });
          }
          values.push({ labels: { le: '+Inf', ...s.labels }, value: s.count, metricName: `${this.name}_bucket` });
          values.push({ labels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
          values.push({ labels: s.labels, value: s.count, metricName: `${this.name}_count` });
        }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
