/**
 * Index of the largest logit, the lowest index among ties; -1 when no logit is above -Infinity
 * (everything banned, or NaN). One predictable-branch pass: the greedy path's whole cost.
 *
 * Four logits per test: the combined test is almost always false, so the loop costs one well-predicted
 * branch per four tokens instead of one per token, about half the time. Within a group the logits are
 * still compared in order with a strict `>`, which keeps the lowest index among ties.
 */
export function argmax(logits: Float32Array): number {
  let best = -1;
  let bestScore = -Infinity;
  const n = logits.length;
  const unrolled = n - (n & 3);
  for (let i = 0; i < unrolled; i += 4) {
    const v0 = logits[i];
    const v1 = logits[i + 1];
    const v2 = logits[i + 2];
    const v3 = logits[i + 3];
    if (v0 > bestScore || v1 > bestScore || v2 > bestScore || v3 > bestScore) {
      if (v0 > bestScore) {
        bestScore = v0;
        best = i;
      }
      if (v1 > bestScore) {
        bestScore = v1;
        best = i + 1;
      }
      if (v2 > bestScore) {
        bestScore = v2;
        best = i + 2;
      }
      if (v3 > bestScore) {
        bestScore = v3;
        best = i + 3;
      }
    }
  }
  for (let i = unrolled; i < n; i++) {
    const v = logits[i];
    if (v > bestScore) {
      bestScore = v;
      best = i;
    }
  }
  return best;
}
