/**
 * The two ways a step turns processed logits into a token id. Both report the largest logit they
 * saw, which the logprob pass needs and would otherwise have to find with another vocabulary scan.
 */
import { argmax } from './argmax.ts';
import { EXP_MIN_ARG, expNonPositive } from './fast-exp.ts';
import { CandidatePool } from './candidates.ts';
import type { Rng } from './rng.ts';
import { NucleusThreshold } from './nucleus.ts';
import { TopTokens } from './top-tokens.ts';

export interface TokenSelector {
  select(logits: Float32Array): number;
  /** Largest logit of the last `select` call. */
  readonly maxLogit: number;
}

/** Temperature 0 or top_k 1: a single argmax pass, ties to the lowest id. */
export class GreedySelector implements TokenSelector {
  maxLogit = -Infinity;

  select(logits: Float32Array): number {
    const id = argmax(logits);
    this.maxLogit = id < 0 ? -Infinity : logits[id];
    assertSampleable(this.maxLogit);
    return id;
  }
}

export interface RandomSelectorOptions {
  vocabSize: number;
  temperature: number;
  /** 0 disables. */
  topK: number;
  /** 1 disables. */
  topP: number;
  /** 0 disables. */
  minP: number;
  /** Nats below the best token beyond which a token's weight is negligible. */
  depth: number;
  rng: Rng;
}

/** Keeps `max - window` finite for any float32 max, even at absurd temperatures. */
const MAX_WINDOW = 1e30;

/** Temperature → top-k → top-p → min-p → one draw from the renormalized survivors. */
export class RandomSelector implements TokenSelector {
  private readonly pool: CandidatePool;
  private readonly topTokens?: TopTokens;
  private readonly nucleus?: NucleusThreshold;
  private readonly invTemperature: number;
  private readonly topK: number;
  private readonly topP: number;
  /** min-p as a weight (probability relative to the best token); 0 when off. */
  private readonly minWeight: number;
  /** How far below the max, in logits, a token can be and still matter. */
  private readonly window: number;
  private readonly rng: Rng;

  constructor(o: RandomSelectorOptions) {
    this.invTemperature = 1 / o.temperature;
    this.topK = o.topK;
    this.topP = o.topP;
    this.minWeight = o.minP;
    // With top-p off, min-p is the only cut, so tokens below it need not even be gathered. With
    // top-p on they must be: they count towards the mass that top-p takes its fraction of.
    const depth = o.topP < 1 || o.minP === 0 ? o.depth : Math.min(o.depth, -Math.log(o.minP));
    this.window = Math.min(o.temperature * depth, MAX_WINDOW);
    this.rng = o.rng;
    this.pool = new CandidatePool(o.vocabSize, o.depth);
    if (o.topK > 0) this.topTokens = new TopTokens(o.topK);
    if (o.topP < 1) this.nucleus = new NucleusThreshold(o.vocabSize);
  }

  get maxLogit(): number {
    return this.pool.maxLogit;
  }

  select(logits: Float32Array): number {
    const pool = this.pool;
    if (this.topTokens) {
      this.topTokens.scan(logits, this.topK);
      pool.gatherTop(this.topTokens);
    } else {
      pool.gatherNearMax(logits, this.window);
    }
    assertSampleable(pool.maxLogit);
    let mass: number;
    if (this.nucleus) {
      mass = pool.weighIntoBins(logits, this.invTemperature);
      // Both cuts keep the tokens above some weight, so one pass with the higher bar equals the two
      // applied in turn (min-p's ratio to the best token survives top-p's renormalization).
      mass = pool.retain(Math.max(this.minWeight, this.nucleus.find(pool, mass, this.topP)));
    } else {
      mass = pool.weigh(logits, this.invTemperature);
      if (this.minWeight > 0) mass = pool.retain(this.minWeight);
    }
    return pool.draw(this.rng.nextFloat(), mass);
  }
}

/** -Infinity means every token is banned; +Infinity or NaN means the model produced garbage. */
function assertSampleable(maxLogit: number): void {
  if (!Number.isFinite(maxLogit)) {
    throw new RangeError(maxLogit === -Infinity ? 'every token is banned; nothing can be sampled' : `non-finite logit ${maxLogit}`);
  }
}

/** Tokens per partial sum: the draw re-weighs one block instead of keeping 200k weights around. */
const BLOCK = 1024;

/**
 * Temperature only (no top-k, top-p or min-p), the API's default: every token stays a candidate,
 * so gathering candidates first is pure overhead. One pass finds the max, one pass sums weights
 * per block, and the draw re-weighs only the block it lands in.
 */
export class TemperatureSelector implements TokenSelector {
  maxLogit = -Infinity;
  private readonly blockMass: Float64Array;

  constructor(
    vocabSize: number,
    private readonly invTemperature: number,
    private readonly rng: Rng,
  ) {
    this.blockMass = new Float64Array(Math.ceil(vocabSize / BLOCK));
  }

  select(logits: Float32Array): number {
    const id = argmax(logits);
    const max = id < 0 ? -Infinity : logits[id];
    this.maxLogit = max;
    assertSampleable(max);
    const invT = this.invTemperature;
    const blockMass = this.blockMass;
    let total = 0;
    for (let b = 0, start = 0; start < logits.length; b++, start += BLOCK) {
      const end = Math.min(start + BLOCK, logits.length);
      let mass = 0;
      for (let i = start; i < end; i++) mass += weightOf(logits[i], max, invT);
      blockMass[b] = mass;
      total += mass;
    }
    let target = this.rng.nextFloat() * total;
    let b = 0;
    while (b < blockMass.length - 1 && target >= blockMass[b]) target -= blockMass[b++];
    const end = Math.min((b + 1) * BLOCK, logits.length);
    let last = id;
    for (let i = b * BLOCK; i < end; i++) {
      const w = weightOf(logits[i], max, invT);
      if (w === 0) continue;
      last = i;
      if (target < w) return i;
      target -= w;
    }
    // Rounding can leave the block's running sum a hair short; its last live token owns that sliver.
    return last;
  }
}

/** exp((logit - max) / T); 0 for banned (-Infinity) and NaN logits and for negligible weights. */
function weightOf(logit: number, max: number, invT: number): number {
  const x = (logit - max) * invT;
  return x > EXP_MIN_ARG ? expNonPositive(x) : 0;
}
