// Order statistics for samples (nearest-rank on the sorted array).

/** q in [0, 1]; NaN for an empty array. */
export function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

/** { n, min, p50, p90, p99, max, mean } of a list of numbers. */
export function summarize(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const mean = s.length ? s.reduce((a, b) => a + b, 0) / s.length : NaN;
  return {
    n: s.length,
    min: s[0] ?? NaN,
    p50: quantile(s, 0.5),
    p90: quantile(s, 0.9),
    p99: quantile(s, 0.99),
    max: s.at(-1) ?? NaN,
    mean,
  };
}

export const fmt = (x, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '-');
export const pct = (x, digits = 1) => (Number.isFinite(x) ? `${(x * 100).toFixed(digits)}%` : '-');
