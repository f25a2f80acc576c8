/**
 * The k best-scoring tokens of a vocabulary in one pass, for top-k and top logprobs.
 * A bounded min-heap keeps the worst survivor at the root, so most tokens are rejected by a
 * single comparison and the pass costs O(vocab + k·log k·log(vocab/k)) instead of a full sort.
 */

export class TopTokens {
  /** After `sortDescending`, ids[0..count) best first; before it, heap order. */
  readonly ids: Int32Array;
  readonly scores: Float32Array;
  /** Slots in use since the last reset; real entries plus (-Infinity, -1) placeholders. */
  size = 0;
  /** Real entries among the slots. */
  count = 0;

  constructor(maxCapacity: number) {
    this.ids = new Int32Array(maxCapacity);
    this.scores = new Float32Array(maxCapacity);
  }

  /**
   * Empties the heap and sizes it for k entries. Returns the score a token must beat to enter.
   * Placeholders score -Infinity, so -Infinity (banned) and NaN tokens can never enter.
   */
  reset(k: number): number {
    if (k > this.ids.length) throw new RangeError(`TopTokens holds at most ${this.ids.length}, asked for ${k}`);
    this.size = k;
    this.count = 0;
    this.scores.fill(-Infinity, 0, k);
    this.ids.fill(-1, 0, k);
    return k > 0 ? -Infinity : Infinity;
  }

  /**
   * Replaces the worst entry. Only call when score beats the current bar (the value returned by
   * the previous reset/offer), which keeps the per-token cost of a scan to one comparison.
   * Returns the new bar.
   */
  offer(id: number, score: number): number {
    if (this.count < this.size) this.count++;
    this.siftDown(0, id, score, this.size);
    return this.scores[0];
  }

  /**
   * Fills the heap with the k highest logits; ties go to the lower token id. Tests four logits at a
   * time against the bar, as argmax does (one rarely-taken branch per four tokens), then offers them
   * in id order.
   */
  scan(logits: Float32Array, k: number): void {
    let bar = this.reset(k);
    const n = logits.length;
    const unrolled = n - (n & 3);
    for (let i = 0; i < unrolled; i += 4) {
      const v0 = logits[i];
      const v1 = logits[i + 1];
      const v2 = logits[i + 2];
      const v3 = logits[i + 3];
      if (v0 > bar || v1 > bar || v2 > bar || v3 > bar) {
        if (v0 > bar) bar = this.offer(i, v0);
        if (v1 > bar) bar = this.offer(i + 1, v1);
        if (v2 > bar) bar = this.offer(i + 2, v2);
        if (v3 > bar) bar = this.offer(i + 3, v3);
      }
    }
    for (let i = unrolled; i < n; i++) {
      const v = logits[i];
      if (v > bar) bar = this.offer(i, v);
    }
  }

  /** Heapsort in place: repeatedly moving the worst entry to the back leaves the best first. */
  sortDescending(): void {
    for (let end = this.size - 1; end > 0; end--) {
      const id = this.ids[end];
      const score = this.scores[end];
      this.ids[end] = this.ids[0];
      this.scores[end] = this.scores[0];
      this.siftDown(0, id, score, end);
    }
  }

  /** Places (id, score) at `hole` or below it, keeping the worse child above. */
  private siftDown(hole: number, id: number, score: number, size: number): void {
    const ids = this.ids;
    const scores = this.scores;
    for (;;) {
      let child = 2 * hole + 1;
      if (child >= size) break;
      const right = child + 1;
      if (right < size && isWorse(scores[right], ids[right], scores[child], ids[child])) child = right;
      if (!isWorse(scores[child], ids[child], score, id)) break;
      ids[hole] = ids[child];
      scores[hole] = scores[child];
      hole = child;
    }
    ids[hole] = id;
    scores[hole] = score;
  }
}

/** Lower score is worse; among equal scores the higher id is worse, so greedy ties match argmax. */
function isWorse(scoreA: number, idA: number, scoreB: number, idB: number): boolean {
  return scoreA < scoreB || (scoreA === scoreB && idA > idB);
}
