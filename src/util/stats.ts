/** Latency summaries shared by the CLI, the service table and the benchmarks. */
export interface Percentiles {
  n: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export function percentiles(samples: number[]): Percentiles {
  const n = samples.length;
  if (n === 0) return { n: 0, min: 0, p50: 0, p90: 0, p99: 0, max: 0, mean: 0 };
  const s = [...samples].sort((a, b) => a - b);
  // Nearest-rank percentile.
  const at = (p: number): number => s[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))] as number;
  const r = (x: number): number => Math.round(x * 1000) / 1000;
  return {
    n,
    min: r(s[0] as number),
    p50: r(at(50)),
    p90: r(at(90)),
    p99: r(at(99)),
    max: r(s[n - 1] as number),
    mean: r(s.reduce((a, b) => a + b, 0) / n),
  };
}
