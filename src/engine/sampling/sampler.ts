/**
 * Picks the next token from a step's logits. Runs once per generated token on a vocabulary of
 * ~200k, so after construction a step allocates nothing proportional to the vocabulary and never
 * sorts it. A step is a few linear passes: a first pass finds the max (an argmax, or a bounded heap
 * when top_k or top_logprobs need the best tokens ranked), then either a histogram of the weights
 * (temperature, top-p: see exp-histogram.ts) or a gather of the few top-k / min-p candidates, then
 * the draw. Logprobs reuse the first pass and, at temperature 1, the histogram's total.
 *
 * Order: penalties → logit bias → greedy argmax if temperature is 0 or top_k is 1; otherwise
 * temperature → top-k → top-p → min-p → draw from the renormalized survivors.
 */
import type { SamplingParams, TokenLogprob } from '../types.ts';
import { argmax } from './argmax.ts';
import { BINS_PER_NAT } from './exp-histogram.ts';
import { EXP_MIN_ARG } from './fast-exp.ts';
import { LogprobReporter, MAX_TOP_LOGPROBS } from './logprobs.ts';
import { createLogitsProcessors, type LogitsProcessor } from './processors.ts';
import { randomSeed, Sfc32 } from './rng.ts';
import { GreedySelector, HistogramSelector, PoolSelector, type FirstPass, type TokenSelector } from './selectors.ts';
import { TopTokens } from './top-tokens.ts';

export interface SampleOptions {
  /** Undefined: no logprobs. 0: the chosen token's only. N (≤ 20): also the N most likely tokens. */
  topLogprobs?: number;
}

export interface SampledToken {
  id: number;
  logprob?: TokenLogprob;
  top?: TokenLogprob[];
}

/**
 * Relative probability mass we are willing to ignore. Tokens further below the best than
 * ln(vocab / NEGLIGIBLE_MASS) nats (28 at 200k tokens) carry less than this together, so they are
 * left out of the weights, which bounds the histogram's size and keeps exp() in its fast range.
 */
const NEGLIGIBLE_MASS = 1e-7;

export class Sampler {
  /** The seed in use, given or drawn, so a run can be reproduced. */
  readonly seed: number;
  private readonly processors: LogitsProcessor[];
  private readonly selector: TokenSelector;
  private readonly depth: number;
  private readonly pass: FirstPass;
  private logprobs?: LogprobReporter;

  constructor(
    private readonly vocabSize: number,
    params: SamplingParams,
    promptIds: readonly number[],
    /** Applied after penalties and bias (e.g. a grammar's mask). */
    extraProcessors: readonly LogitsProcessor[] = [],
  ) {
    if (!(Number.isInteger(vocabSize) && vocabSize > 0)) throw new RangeError(`vocabSize must be a positive integer, got ${vocabSize}`);
    checkSelectionParams(params);
    this.processors = [...createLogitsProcessors(vocabSize, params, promptIds), ...extraProcessors];
    this.seed = params.seed ?? randomSeed();
    this.depth = Math.min(Math.log(vocabSize / NEGLIGIBLE_MASS), -EXP_MIN_ARG);

    const topK = params.topK < vocabSize ? params.topK : 0;
    // A temperature so small that logit differences overflow once scaled is greedy in all but name.
    const greedy = params.temperature === 0 || topK === 1 || !Number.isFinite(BINS_PER_NAT / params.temperature);
    const options = {
      vocabSize,
      temperature: params.temperature,
      topP: params.topP,
      minP: params.minP,
      depth: this.depth,
      rng: new Sfc32(this.seed),
    };
    this.selector = greedy
      ? new GreedySelector()
      : topK > 0 || (params.minP > 0 && params.topP === 1)
        ? new PoolSelector({ ...options, topK })
        : new HistogramSelector(options);
    this.pass = { maxLogit: -Infinity, argmax: -1, best: new TopTokens(Math.max(this.selector.ranks, MAX_TOP_LOGPROBS)) };
  }

  /**
   * Chooses the next token and records it for the penalties. `logits` is consumed: penalties and
   * bias are applied to it in place (it is the model's scratch output, and copying 200k floats per
   * token would be waste).
   */
  sample(logits: Float32Array, opts: SampleOptions = {}): SampledToken {
    if (logits.length !== this.vocabSize) throw new RangeError(`expected ${this.vocabSize} logits, got ${logits.length}`);
    const topCount = opts.topLogprobs;
    if (topCount !== undefined && !(Number.isInteger(topCount) && topCount >= 0 && topCount <= MAX_TOP_LOGPROBS)) {
      throw new RangeError(`topLogprobs must be an integer in 0..${MAX_TOP_LOGPROBS}, got ${topCount}`);
    }
    for (const p of this.processors) p.apply(logits);
    const selector = this.selector;
    this.firstPass(logits, selector, topCount ?? 0);
    const id = selector.select(logits, this.pass);
    for (const p of this.processors) p.accept(id);
    if (topCount === undefined) return { id };

    this.logprobs ??= new LogprobReporter(this.depth);
    const { logprob, top } = this.logprobs.report(logits, selector.maxLogit, selector.unitMass, id, topCount, this.pass.best);
    return top ? { id, logprob, top } : { id, logprob };
  }

  /**
   * One scan for what both the selector and the logprobs need: the best max(top_k, top_logprobs)
   * tokens when either asks for ranked tokens (the heap's bar test costs what argmax's comparison
   * does, so the max comes free), else the argmax if the selector needs it.
   */
  private firstPass(logits: Float32Array, selector: TokenSelector, topCount: number): void {
    const pass = this.pass;
    const ranks = Math.max(selector.ranks, topCount);
    let maxKnown = false;
    if (ranks > 0) {
      pass.best.scan(logits, ranks);
      // Sorted only for logprobs: they list the best first, and top-k then takes the first k of a
      // longer list. Top-k alone reads the heap in any order.
      if (topCount > 0) {
        pass.best.sortDescending();
        maxKnown = true;
        pass.argmax = pass.best.count > 0 ? pass.best.ids[0] : -1;
        pass.maxLogit = pass.best.count > 0 ? pass.best.scores[0] : -Infinity;
      }
    }
    if (selector.needsMax && !maxKnown) {
      const id = argmax(logits);
      pass.argmax = id;
      pass.maxLogit = id < 0 ? -Infinity : logits[id];
    }
  }
}

function checkSelectionParams(p: SamplingParams): void {
  if (!(p.temperature >= 0 && p.temperature < Infinity)) throw new RangeError(`temperature must be finite and ≥ 0, got ${p.temperature}`);
  if (!(Number.isInteger(p.topK) && p.topK >= 0)) throw new RangeError(`topK must be an integer ≥ 0, got ${p.topK}`);
  if (!(p.topP >= 0 && p.topP <= 1)) throw new RangeError(`topP must be in [0, 1], got ${p.topP}`);
  if (!(p.minP >= 0 && p.minP <= 1)) throw new RangeError(`minP must be in [0, 1], got ${p.minP}`);
}
