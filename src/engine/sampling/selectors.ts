/**
 * The ways a step turns processed logits into a token id. The sampler's first pass over the logits
 * (an argmax, or a top-N scan when top_k or top_logprobs need ranked tokens) is shared with them, and
 * they report the largest logit and, when they computed it, the temperature-1 softmax normalizer, so
 * that logprobs need not scan the vocabulary again.
 */
import { CandidatePool } from './candidates.ts';
import { ExpHistogram } from './exp-histogram.ts';
import { massThreshold } from './nucleus.ts';
import type { Rng } from './rng.ts';
import type { TopTokens } from './top-tokens.ts';

/** What the sampler's first pass over a step's logits found. */
export interface FirstPass {
  /**
   * Largest logit (-Infinity when every token is banned or NaN) and the lowest id holding it (-1 then).
   * Only filled in for selectors with `needsMax`.
   */
  maxLogit: number;
  argmax: number;
  /** Holds the best `ranks` tokens (and sorted, best first, if top_logprobs asked for more). */
  readonly best: TopTokens;
}

export interface TokenSelector {
  /** How many best tokens the first pass must rank for this selector; 0 for none. */
  readonly ranks: number;
  /** Whether the first pass must find the maximum. */
  readonly needsMax: boolean;
  select(logits: Float32Array, pass: FirstPass): number;
  /** Largest logit of the last `select` call. */
  readonly maxLogit: number;
  /**
   * Σ exp(logit - maxLogit) over every token within the sampler's depth of the best, when the last
   * `select` computed it on the way (temperature 1); NaN otherwise.
   */
  readonly unitMass: number;
}

/** Temperature 0 or top_k 1: the argmax, ties to the lowest id. */
export class GreedySelector implements TokenSelector {
  readonly ranks = 0;
  readonly needsMax = true;
  readonly unitMass = NaN;
  maxLogit = -Infinity;

  select(_logits: Float32Array, pass: FirstPass): number {
    this.maxLogit = pass.maxLogit;
    assertSampleable(pass.maxLogit);
    return pass.argmax;
  }
}

export interface SelectorOptions {
  vocabSize: number;
  temperature: number;
  /** 1 disables. */
  topP: number;
  /** 0 disables. */
  minP: number;
  /** Nats below the best token beyond which a token's weight is negligible. */
  depth: number;
  rng: Rng;
}

/**
 * Temperature alone, or with top-p (and min-p alongside it): the cuts that may keep much of the
 * vocabulary, so the weights are binned in one pass (see exp-histogram.ts) instead of being stored,
 * sorted or selected per token.
 *
 * Both cuts keep the tokens above some weight. In bin terms that is a cut bin C: bins before it are
 * wholly kept, bins after it wholly dropped, and only C's own tokens are compared one by one (top-p:
 * the threshold from `massThreshold` over C's members; min-p: weight ≥ min_p). The draw proposes a
 * token from bins 0..C in full; bins before C need no check, and a token from C is kept if it passes
 * the cut. If it fails, C's kept mass is now known and an exact draw from the truncated set replaces
 * the rest of the rejection loop (whose outcome, from that point on, has that same distribution). C's
 * members are thus only listed, with a second scan, when the proposal lands in C.
 */
export class HistogramSelector implements TokenSelector {
  readonly ranks = 0;
  readonly needsMax = true;
  maxLogit = -Infinity;
  unitMass = NaN;
  private readonly histogram: ExpHistogram;
  private readonly invTemperature: number;
  private readonly topP: number;
  private readonly minP: number;
  /** min-p as a tempered log-weight; -Infinity when off. */
  private readonly minLogWeight: number;
  private readonly rng: Rng;
  /** Members of the cut bin: ids, terms e^r, and positions for the quickselect. */
  private readonly memberIds: Int32Array;
  private readonly memberTerms: Float64Array;
  private readonly memberOrder: Int32Array;
  private readonly truncated: boolean;
  // The last step's cut (see locateCut): kept tokens are those of bins before `cut`, and those of `cut`
  // whose term is at least `cutTerm` (resolved only when needed).
  private cut = 0;
  private above = 0;
  private need = -1;
  private minTerm = 0;
  private cutTerm = 0;

  constructor(o: SelectorOptions) {
    this.invTemperature = 1 / o.temperature;
    this.topP = o.topP;
    this.minP = o.minP;
    this.minLogWeight = Math.log(o.minP);
    this.rng = o.rng;
    this.histogram = new ExpHistogram(o.depth);
    const truncated = o.topP < 1 || o.minP > 0;
    this.truncated = truncated;
    this.memberIds = new Int32Array(truncated ? o.vocabSize : 0);
    this.memberTerms = new Float64Array(truncated ? o.vocabSize : 0);
    this.memberOrder = new Int32Array(truncated ? o.vocabSize : 0);
  }

  select(logits: Float32Array, pass: FirstPass): number {
    const max = pass.maxLogit;
    this.maxLogit = max;
    assertSampleable(max);
    const h = this.histogram;
    const total = h.fill(logits, max, this.invTemperature);
    this.unitMass = this.invTemperature === 1 ? total : NaN;
    const rng = this.rng;
    if (!this.truncated) return this.drawFromBins(logits, rng.nextFloat() * total, h.deepest);

    this.locateCut(total);
    const { cut, above } = this;
    const target = rng.nextFloat() * (above + h.mass(cut));
    if (!this.cutsInside()) return this.drawFromBins(logits, target, cut);
    if (target < above) return this.drawFromBins(logits, target, cut - 1);

    const count = this.resolveCut(logits);
    // Only rounding brings an empty cut bin here (it has no mass to land in).
    if (count === 0) return this.drawFromBins(logits, rng.nextFloat() * above, cut - 1);
    const ids = this.memberIds;
    const terms = this.memberTerms;
    const cutTerm = this.cutTerm;
    const proposed = drawMember(terms, count, (target - above) / h.scale[cut], 0);
    if (terms[proposed] >= cutTerm) return ids[proposed];

    let kept = 0;
    for (let m = 0; m < count; m++) if (terms[m] >= cutTerm) kept += terms[m];
    const retry = rng.nextFloat() * (above + kept * h.scale[cut]);
    if (retry < above || kept === 0) return this.drawFromBins(logits, retry, cut - 1);
    return ids[drawMember(terms, count, (retry - above) / h.scale[cut], cutTerm)];
  }

  /**
   * Writes to `out`, in id order, every token a step with these logits could draw; returns how many.
   * Determines the cut exactly as `select` does, eagerly. For tests and diagnostics.
   */
  keptTokens(logits: Float32Array, maxLogit: number, out: Int32Array): number {
    assertSampleable(maxLogit);
    const h = this.histogram;
    const total = h.fill(logits, maxLogit, this.invTemperature);
    if (!this.truncated) return h.listKept(logits, h.deepest, 0, out);
    this.locateCut(total);
    let cutTerm = 0;
    if (this.cutsInside()) {
      this.resolveCut(logits);
      cutTerm = this.cutTerm;
    }
    return h.listKept(logits, this.cut, cutTerm, out);
  }

  /**
   * Sets the cut bin, the mass of the bins before it, and within it the top-p mass still needed (in
   * term units; < 0 when top-p does not cut inside it) and the min-p term threshold (0 when min-p
   * does not). Reads only the histogram.
   */
  private locateCut(total: number): void {
    const h = this.histogram;
    let cut = h.deepest;
    let above = total - h.mass(cut);
    let need = -1;
    let minTerm = 0;
    if (this.topP < 1) {
      const target = this.topP * total;
      above = 0;
      cut = 0;
      while (cut < h.deepest && above + h.mass(cut) < target) above += h.mass(cut++);
      need = (target - above) / h.scale[cut];
    }
    if (this.minP > 0) {
      const minBin = h.binOf(this.minLogWeight);
      if (minBin <= cut) {
        minTerm = this.minP / h.scale[minBin];
        if (minBin < cut) {
          cut = minBin;
          need = -1;
          above = 0;
          for (let b = 0; b < cut; b++) above += h.mass(b);
        }
      }
    }
    this.cut = cut;
    this.above = above;
    this.need = need;
    this.minTerm = minTerm;
  }

  private cutsInside(): boolean {
    return this.need >= 0 || this.minTerm > 0;
  }

  /** Lists the cut bin's members and sets `cutTerm`, the lowest term kept; returns the member count. */
  private resolveCut(logits: Float32Array): number {
    const count = this.histogram.collect(logits, this.cut, this.memberIds, this.memberTerms);
    let cutTerm = this.minTerm;
    if (this.need >= 0 && count > 0) {
      const order = this.memberOrder;
      for (let m = 0; m < count; m++) order[m] = m;
      cutTerm = Math.max(cutTerm, massThreshold(order, count, this.memberTerms, this.need));
    }
    this.cutTerm = cutTerm;
    return count;
  }

  /** The token at `target` (in [0, mass of bins 0..last)) when bins 0..last are taken whole. */
  private drawFromBins(logits: Float32Array, target: number, last: number): number {
    const h = this.histogram;
    let bin = -1;
    let lastFilled = -1;
    for (let b = 0; b <= last; b++) {
      const mass = h.mass(b);
      if (mass === 0) continue;
      lastFilled = b;
      if (target < mass) {
        bin = b;
        break;
      }
      target -= mass;
    }
    // Rounding can leave the running sum a hair short of the total; the last filled bin owns that sliver.
    if (bin < 0) bin = lastFilled;
    return h.pick(logits, bin, target / h.scale[bin]);
  }
}

/** Index of the member at `target` along the running sum of the terms that are ≥ floor. */
function drawMember(terms: Float64Array, count: number, target: number, floor: number): number {
  let acc = 0;
  let last = 0;
  for (let m = 0; m < count; m++) {
    const t = terms[m];
    if (t < floor) continue;
    acc += t;
    last = m;
    if (target < acc) return m;
  }
  return last;
}

/** Keeps `max - window` finite for any float32 max, even at absurd temperatures. */
const MAX_WINDOW = 1e30;

/**
 * top-k (then top-p and min-p within it), or min-p alone: cuts that leave few candidates, which
 * are gathered and weighed one by one, then one draw from the renormalized survivors.
 */
export class PoolSelector implements TokenSelector {
  readonly ranks: number;
  readonly needsMax = false;
  readonly unitMass = NaN;
  private readonly pool: CandidatePool;
  private readonly invTemperature: number;
  private readonly topP: number;
  /** min-p as a weight (probability relative to the best token); 0 when off. */
  private readonly minWeight: number;
  /** How far below the max, in logits, a token can be and still matter (without top-k). */
  private readonly window: number;
  private readonly rng: Rng;

  /** topK: 0 for min-p alone. */
  constructor(o: SelectorOptions & { topK: number }) {
    if (!(o.topK > 0 || (o.minP > 0 && o.topP === 1))) throw new RangeError('PoolSelector is for top-k, or min-p alone');
    this.ranks = o.topK;
    this.invTemperature = 1 / o.temperature;
    this.topP = o.topP;
    this.minWeight = o.minP;
    // Without top-k, min-p is the only cut, so tokens below it need not even be gathered.
    this.window = Math.min(o.temperature * Math.min(o.depth, -Math.log(o.minP)), MAX_WINDOW);
    this.rng = o.rng;
    this.pool = new CandidatePool(o.topK > 0 ? o.topK : o.vocabSize, o.depth);
  }

  get maxLogit(): number {
    return this.pool.maxLogit;
  }

  select(logits: Float32Array, pass: FirstPass): number {
    const pool = this.pool;
    if (this.ranks > 0) pool.gatherTop(pass.best, this.ranks);
    else pool.gatherNearMax(logits, this.window);
    assertSampleable(pool.maxLogit);
    let mass = pool.weigh(logits, this.invTemperature);
    // Both cuts keep the tokens above some weight, so one pass with the higher bar equals the two
    // applied in turn (min-p's ratio to the best token survives top-p's renormalization).
    const topPCut = this.topP < 1 ? pool.nucleusThreshold(mass, this.topP) : 0;
    const cut = Math.max(this.minWeight, topPCut);
    if (cut > 0) mass = pool.retain(cut);
    return pool.draw(this.rng.nextFloat(), mass);
  }
}

/** -Infinity means every token is banned; +Infinity or NaN means the model produced garbage. */
export function assertSampleable(maxLogit: number): void {
  if (!Number.isFinite(maxLogit)) {
    throw new RangeError(maxLogit === -Infinity ? 'every token is banned; nothing can be sampled' : `non-finite logit ${maxLogit}`);
  }
}
