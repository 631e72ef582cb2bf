/**
 * A Prometheus histogram for the per-request hot path: a sample is counted
 * into a series found by a string key the caller builds (no label object
 * hashed per observation, as prom-client's Histogram does), and the
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
  readonly #series = new Map<string, Series>();

  constructor(o: { name: string; help: string; buckets: readonly number[]; registers: Registry[] }) {
    this.name = o.name;
    this.help = o.help;
    this.#buckets = [...o.buckets].sort((a, b) => a - b);
    // A Registry keeps any object with name, help, type and get() (prom-client's Metric contract).
    for (const r of o.registers) r.registerMetric(this as never);
  }

  /** Count `value` in the series `key`; `labels` is called only the first time a key is seen. */
  observe(key: string, labels: () => Labels, value: number): void {
    let s = this.#series.get(key);
    if (!s) this.#series.set(key, (s = { labels: labels(), counts: new Float64Array(this.#buckets.length), sum: 0, count: 0 }));
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

  get(): { name: string; help: string; type: string; aggregator: string; values: Array<{ labels: Labels; value: number; metricName: string }> } {
    const values: Array<{ labels: Labels; value: number; metricName: string }> = [];
    for (const s of this.#series.values()) {
      let acc = 0;
      for (let i = 0; i < this.#buckets.length; i++) {
        acc += s.counts[i]!;
        values.push({ labels: { le: String(this.#buckets[i]), ...s.labels }, value: acc, metricName: `${this.name}_bucket` });
      }
      values.push({ labels: { le: '+Inf', ...s.labels }, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: s.labels, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
