/**
 * The tokens a top-k or min-p step may still pick, with their unnormalized probabilities: the path for
 * truncations that leave few candidates, so that weighing them one by one is cheaper than binning the
 * whole vocabulary (exp-histogram.ts).
 * Buffers are sized for the most candidates a step can gather and allocated once per Sampler; a step
 * only rewrites prefixes.
 */
import { expBin, expInBin } from './fast-exp.ts';
import { massThreshold } from './nucleus.ts';
import type { TopTokens } from './top-tokens.ts';

/**
 * Finite floor for the first token scanned: -Infinity (banned) and NaN logits fail `>=` against it,
 * so they are never gathered.
 */
const LOWEST_FINITE = -Number.MAX_VALUE;

export class CandidatePool {
  readonly ids: Int32Array;
  /** exp((logit - maxLogit) / T): 1 for the best token. */
  readonly weights: Float64Array;
  /** Scratch for the top-p quickselect, which reorders candidate positions rather than candidates. */
  private order?: Int32Array;
  size = 0;
  maxLogit = -Infinity;

  /**
   * capacity: most candidates a step can gather (the vocabulary size, or k for top-k).
   * depth: how many nats below the best token a weight may be before it is treated as negligible.
   */
  constructor(
    capacity: number,
    private readonly depth: number,
  ) {
    this.ids = new Int32Array(capacity);
    this.weights = new Float64Array(capacity);
  }

  /**
   * Gathers every token within `window` logits of the maximum, finding the maximum in the same
   * pass. Needs a pool whose capacity is the vocabulary size.
   *
   * Whether a token is gathered depends on the data and is often unpredictable, so instead of
   * branching on it the loops always write and advance the cursor by 0 or 1: a mispredicted
   * branch per token cost three times the rest of the loop.
   */
  gatherNearMax(logits: Float32Array, window: number): void {
    const ids = this.ids;
    let max = -Infinity;
    let floor = LOWEST_FINITE;
    let n = 0;
    for (let i = 0; i < logits.length; i++) {
      const v = logits[i];
      if (v > max) {
        max = v;
        floor = v - window;
      }
      ids[n] = i;
      n += +(v >= floor);
    }
    // The floor trailed the running maximum. On LM logits the few top tokens can come late, leaving
    // half the vocabulary gathered below the final floor; dropping it here is cheaper than weighing it.
    floor = max - window;
    let kept = 0;
    for (let c = 0; c < n; c++) {
      const id = ids[c];
      ids[kept] = id;
      kept += +(logits[id] >= floor);
    }
    this.size = kept;
    this.maxLogit = max;
  }

  /**
   * Takes the first k entries of `top` as the candidates: all of them when it holds k, the best k when
   * it holds more (it is then sorted).
   */
  gatherTop(top: TopTokens, k: number): void {
    let max = -Infinity;
    let n = 0;
    const slots = Math.min(k, top.size);
    for (let slot = 0; slot < slots; slot++) {
      const id = top.ids[slot];
      if (id < 0) continue;
      this.ids[n++] = id;
      if (top.scores[slot] > max) max = top.scores[slot];
    }
    this.size = n;
    this.maxLogit = max;
  }

  /**
   * Computes weights at temperature 1/invTemperature and returns their sum. A top-k candidate can
   * sit more than `depth` nats below the best; it is weighted as if exactly `depth` below, which
   * keeps exp() in range and is negligible by the choice of depth.
   */
  weigh(logits: Float32Array, invTemperature: number): number {
    const { ids, weights, maxLogit, depth, size } = this;
    let mass = 0;
    for (let c = 0; c < size; c++) {
      // Gathered logits are finite, so Math.max sees no NaN.
      const x = Math.max((logits[ids[c]] - maxLogit) * invTemperature, -depth);
      const w = expInBin(x, expBin(x));
      weights[c] = w;
      mass += w;
    }
    return mass;
  }

  /** The lowest weight inside the top-p nucleus of the candidates; mass is their weights' total. */
  nucleusThreshold(mass: number, topP: number): number {
    const size = this.size;
    const order = (this.order ??= new Int32Array(this.ids.length));
    for (let c = 0; c < size; c++) order[c] = c;
    return massThreshold(order, size, this.weights, topP * mass);
  }

  /** Drops candidates whose weight is below `minWeight`; returns the weight left. */
  retain(minWeight: number): number {
    const { ids, weights, size } = this;
    let n = 0;
    let mass = 0;
    for (let c = 0; c < size; c++) {
      const w = weights[c];
      // A branch, unlike in the gather: on real logits few candidates survive, so it predicts well.
      if (w >= minWeight) {
        ids[n] = ids[c];
        weights[n++] = w;
        mass += w;
      }
    }
    this.size = n;
    return mass;
  }

  /** Picks a candidate with probability weight/mass; u is uniform in [0, 1), mass the weights' sum. */
  draw(u: number, mass: number): number {
    const { ids, weights, size } = this;
    const target = u * mass;
    let acc = 0;
    for (let c = 0; c < size; c++) {
      acc += weights[c];
      if (target < acc) return ids[c];
    }
    // Rounding can leave the running sum a hair short of `mass`; the last candidate owns that sliver.
    return ids[size - 1];
  }
}
