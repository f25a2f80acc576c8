/**
 * Top-p as a threshold search, never a sort of the candidates.
 *
 * The nucleus is the smallest set of most likely tokens whose mass reaches p. Since it is a prefix
 * of the tokens ordered by weight, it is fully described by the lowest weight inside it:
 * 1. `CandidatePool.weighIntoBins` already summed the weights into logarithmic buckets ~0.011 nats
 *    wide. Walking buckets from the top finds the one bucket where the running mass crosses p; every
 *    bucket above it is wholly inside, every bucket below wholly outside.
 * 2. Only the tokens of that boundary bucket need ordering, and only partially: a quickselect that
 *    partitions by weight and recurses on the side where the remaining mass lands finds the exact
 *    lowest weight in O(members) expected time.
 * Ties with the threshold weight are kept (as with a sort-and-cumsum implementation that keeps
 * every token scoring at least the last one it needs).
 */
import type { CandidatePool } from './candidates.ts';

export class NucleusThreshold {
  /** Pool positions of the boundary bucket's members; vocabulary-sized for degenerate flat logits. */
  private readonly members: Int32Array;

  constructor(vocabSize: number) {
    this.members = new Int32Array(vocabSize);
  }

  /** The lowest weight a candidate may have and stay in the top-p nucleus; mass is the pool's total. */
  find(pool: CandidatePool, mass: number, topP: number): number {
    const { binMass, bins } = pool;
    const need = topP * mass;
    let bin = 0;
    let above = 0;
    while (bin < binMass.length - 1 && above + binMass[bin] < need) above += binMass[bin++];

    const members = this.members;
    let count = 0;
    for (let c = 0; c < pool.size; c++) {
      members[count] = c;
      count += +(bins[c] === bin);
    }
    return massThreshold(members, count, pool.weights, need - above);
  }
}

/**
 * Largest weight t such that members with weight ≥ t carry at least `need` mass.
 * Reorders `order[0..count)`; three-way partitioning keeps runs of equal weights in one step.
 */
export function massThreshold(order: Int32Array, count: number, weights: Float32Array, need: number): number {
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
