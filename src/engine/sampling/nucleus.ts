/**
 * The exact top-p cut inside a set of weights, without sorting it.
 *
 * The nucleus is the smallest set of most likely tokens whose mass reaches p, so it is fully described
 * by the lowest weight inside it. The samplers never run this over the whole vocabulary: the
 * histogram path (exp-histogram.ts) first finds the one logarithmic bin where the cumulative mass
 * crosses p and runs it over that bin's members only; the top-k path runs it over its k candidates.
 *
 * Ties with the threshold weight are kept (as with a sort-and-cumsum implementation that keeps every
 * token scoring at least the last one it needs), so the result does not depend on token order.
 */

/**
 * Largest weight t such that the members with weight ≥ t carry at least `need` mass (the lowest
 * weight when they never do). Members are weights[order[0..count)]. A quickselect that partitions by
 * weight and recurses on the side where the remaining mass lands: O(count) expected time.
 * Reorders `order[0..count)`; three-way partitioning keeps runs of equal weights in one step.
 */
export function massThreshold(order: Int32Array, count: number, weights: Float64Array, need: number): number {
  if (count === 0) return 0;
  let lo = 0;
  let hi = count;
  for (;;) {
    const pivot = median3(weights[order[lo]], weights[order[(lo + hi) >>> 1]], weights[order[hi - 1]]);
    // Partition [lo, hi) into [lo, gt) > pivot, [gt, lt) == pivot, [lt, hi) < pivot.
    let gt = lo;
    let lt = hi;
    let i = lo;
    let massAbove = 0;
    let massEqual = 0;
    while (i < lt) {
      const c = order[i];
      const w = weights[c];
      if (w > pivot) {
        massAbove += w;
        order[i++] = order[gt];
        order[gt++] = c;
      } else if (w < pivot) {
        order[i] = order[--lt];
        order[lt] = c;
      } else {
        massEqual += w;
        i++;
      }
    }
    if (gt > lo && massAbove >= need) {
      hi = gt;
    } else if (massAbove + massEqual >= need || lt === hi) {
      return pivot;
    } else {
      need -= massAbove + massEqual;
      lo = lt;
    }
  }
}

function median3(a: number, b: number, c: number): number {
  if (a < b) return b < c ? b : a < c ? c : a;
  return a < c ? a : b < c ? c : b;
}
