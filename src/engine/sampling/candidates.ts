/**
 * The tokens a sampled (non-greedy) step may still pick, with their unnormalized probabilities.
 * All buffers are vocabulary-sized and allocated once per Sampler; a step only rewrites prefixes.
 */
import { expBin, expBinCount, expInBin } from './fast-exp.ts';
import type { TopTokens } from './top-tokens.ts';

/**
 * Finite floor for the first token scanned: -Infinity (banned) and NaN logits fail `>=` against it,
 * so they are never gathered.
 */
const LOWEST_FINITE = -Number.MAX_VALUE;

export class CandidatePool {
  readonly ids: Int32Array;
  /** exp((logit - maxLogit) / T): 1 for the best token. */
  readonly weights: Float32Array;
  /** Logarithmic bucket of each weight (see fast-exp.ts); only `weighIntoBins` fills it. */
  readonly bins: Uint16Array;
  /** Sum of weights per bucket; only `weighIntoBins` fills it. */
  readonly binMass: Float64Array;
  size = 0;
  maxLogit = -Infinity;

  /** depth: how many nats below the best token a weight may be before it is treated as negligible. */
  constructor(
    vocabSize: number,
    private readonly depth: number,
  ) {
    this.ids = new Int32Array(vocabSize);
    this.weights = new Float32Array(vocabSize);
    this.bins = new Uint16Array(vocabSize);
    this.binMass = new Float64Array(expBinCount(depth));
  }

  /**
   * Gathers every token within `window` logits of the maximum, finding the maximum in the same
   * pass.
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

  /** Takes the entries of a top-k heap as the candidates. */
  gatherTop(top: TopTokens): void {
    let max = -Infinity;
    let n = 0;
    for (let slot = 0; slot < top.size; slot++) {
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

  /**
   * `weigh`, also recording each token's bucket and the mass per bucket for top-p.
   * A separate loop because bucketing costs ~50% more and only top-p needs it; a flag tested
   * inside one loop costs nearly as much as the bucketing itself.
   */
  weighIntoBins(logits: Float32Array, invTemperature: number): number {
    const { ids, weights, bins, binMass, maxLogit, depth, size } = this;
    binMass.fill(0);
    let mass = 0;
    for (let c = 0; c < size; c++) {
      const x = Math.max((logits[ids[c]] - maxLogit) * invTemperature, -depth);
      const bin = expBin(x);
      const w = expInBin(x, bin);
      weights[c] = w;
      bins[c] = bin;
      binMass[bin] += w;
      mass += w;
    }
    return mass;
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
