/**
 * Percentiles and summaries for the benchmarks.
 *
 * Percentiles use linear interpolation between closest ranks (Hyndman & Fan type 7, the default
 * of numpy, R and Excel's PERCENTILE.INC): p(q) = x[floor(h)] + (h - floor(h)) * (x[floor(h)+1] - x[floor(h)])
 * with h = (n - 1) * q / 100 over the sorted sample. With few samples the high percentiles are
 * interpolations toward the maximum, not observations; the reports print n next to them.
 */

export interface Summary {
  n: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Percentile q (0..100) of an ascending-sorted sample; NaN for an empty one. */
export function percentileSorted(sorted: readonly number[], q: number): number {
  if (!(q >= 0 && q <= 100)) throw new RangeError(`percentile ${q} outside 0..100`);
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  if (n === 1) return sorted[0];
  const h = ((n - 1) * q) / 100;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

export function percentile(values: readonly number[], q: number): number {
  return percentileSorted(sortedCopy(values), q);
}

function sortedCopy(values: readonly number[]): number[] {
  for (const v of values) if (!Number.isFinite(v)) throw new RangeError(`non-finite sample ${v}`);
  return [...values].sort((a, b) => a - b);
}

/** n, min, mean, p50/p90/p99 and max; every statistic is NaN when the sample is empty. */
export function summarize(values: readonly number[]): Summary {
  const s = sortedCopy(values);
  const n = s.length;
  if (n === 0) return { n: 0, min: NaN, mean: NaN, p50: NaN, p90: NaN, p99: NaN, max: NaN };
  let sum = 0;
  for (const v of s) sum += v;
  return {
    n,
    min: s[0],
    mean: sum / n,
    p50: percentileSorted(s, 50),
    p90: percentileSorted(s, 90),
    p99: percentileSorted(s, 99),
    max: s[n - 1],
  };
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Rounds for JSON output (keeps files readable); NaN and infinities become null. */
export function round(value: number, digits = 3): number | null {
  if (!Number.isFinite(value)) return null;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export function roundSummary(s: Summary, digits = 3): Record<keyof Summary, number | null> {
  return {
    n: s.n,
    min: round(s.min, digits),
    mean: round(s.mean, digits),
    p50: round(s.p50, digits),
    p90: round(s.p90, digits),
    p99: round(s.p99, digits),
    max: round(s.max, digits),
  };
}
