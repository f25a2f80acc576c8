/**
 * Index of the largest logit, the lowest index among ties; -1 when no logit is above -Infinity
 * (everything banned, or NaN). One predictable-branch pass: the greedy path's whole cost.
 */
export function argmax(logits: Float32Array): number {
  let best = -1;
  let bestScore = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (v > bestScore) {
      bestScore = v;
      best = i;
    }
  }
  return best;
}
