import { AggregatorRegistry, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { FastHistogram } from '../../src/service/fast-histogram.js';

const BUCKETS = [0.001, 0.01, 0.1];
const SAMPLES: Array<[string, number]> = [
  ['a', 0.0005],
  ['a', 0.005],
  ['a', 0.05],
  ['a', 5],
  ['b', 0.01],
];

describe('FastHistogram', () => {
  it("exposes exactly what prom-client's Histogram exposes for the same samples", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const f = new FastHistogram({ name: 'x_seconds', help: 'h', buckets: BUCKETS, registers: [ours] });
    const h = new Histogram({
      name: 'x_seconds',
      help: 'h',
      labelNames: ['origin'],
      buckets: BUCKETS,
      registers: [theirs],
    });
    for (const [o, v] of SAMPLES) {
      f.observe(o, '', '', () => ({ origin: o }), v);
      h.observe({ origin: o }, v);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });

  it('sums across cluster workers like a Histogram (AggregatorRegistry)', async () => {
    const parts = [];
    for (let w = 0; w < 2; w++) {
      const r = new Registry();
      const f = new FastHistogram({ name: 'x_seconds', help: 'h', buckets: BUCKETS, registers: [r] });
      for (const [o, v] of SAMPLES) f.observe(o, '', '', () => ({ origin: o }), v);
      parts.push(await r.getMetricsAsJSON());
    }
    const text = await AggregatorRegistry.aggregate(parts).metrics();
    expect(text).toContain('x_seconds_count{origin="a"} 8');
    expect(text).toContain('x_seconds_bucket{le="0.01",origin="a"} 4');
    expect(text).toContain('x_seconds_bucket{le="+Inf",origin="b"} 2');
  });
});
