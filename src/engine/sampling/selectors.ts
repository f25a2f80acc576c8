/**
 * The two ways a step turns processed logits into a token id. Both report the largest logit they
 * saw, which the logprob pass needs and would otherwise have to find with another vocabulary scan.
 */
import { argmax } from './argmax.ts';
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
