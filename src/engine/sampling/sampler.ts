/**
 * Picks the next token from a step's logits. Runs once per generated token on a vocabulary of
 * ~200k, so after construction a step allocates nothing proportional to the vocabulary and never
 * sorts it: selection is an argmax, a bounded heap (top-k), a trailing-floor gather and a bucketed
 * threshold search (top-p; see nucleus.ts).
 *
 * Order: penalties → logit bias → greedy argmax if temperature is 0 or top_k is 1; otherwise
 * temperature → top-k → top-p → min-p → draw from the renormalized survivors.
 */
import type { SamplingParams, TokenLogprob } from '../types.ts';
import { EXP_MIN_ARG } from './fast-exp.ts';
import { LogprobReporter, MAX_TOP_LOGPROBS } from './logprobs.ts';
import { createLogitsProcessors, type LogitsProcessor } from './processors.ts';
import { randomSeed, Sfc32 } from './rng.ts';
import { GreedySelector, RandomSelector, TemperatureSelector, type TokenSelector } from './selectors.ts';

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
 * skipped without evaluating exp().
 */
const NEGLIGIBLE_MASS = 1e-7;

export class Sampler {
  /** The seed in use, given or drawn, so a run can be reproduced. */
  readonly seed: number;
  private readonly processors: LogitsProcessor[];
  private readonly selector: TokenSelector;
  private readonly depth: number;
  private logprobs?: LogprobReporter;

  constructor(
    private readonly vocabSize: number,
    params: SamplingParams,
    promptIds: readonly number[],
  ) {
    if (!(Number.isInteger(vocabSize) && vocabSize > 0)) throw new RangeError(`vocabSize must be a positive integer, got ${vocabSize}`);
    checkSelectionParams(params);
    this.processors = createLogitsProcessors(vocabSize, params, promptIds);
    this.seed = params.seed ?? randomSeed();
    this.depth = Math.min(Math.log(vocabSize / NEGLIGIBLE_MASS), -EXP_MIN_ARG);

    const topK = params.topK < vocabSize ? params.topK : 0;
    // Below ~1e-308 the reciprocal overflows; such a temperature is greedy in all but name.
    const greedy = params.temperature === 0 || topK === 1 || !Number.isFinite(1 / params.temperature);
    const truncated = topK > 0 || params.topP < 1 || params.minP > 0;
    this.selector = greedy
      ? new GreedySelector()
      : !truncated
        ? new TemperatureSelector(vocabSize, 1 / params.temperature, new Sfc32(this.seed))
        : new RandomSelector({
          vocabSize,
          temperature: params.temperature,
          topK,
          topP: params.topP,
          minP: params.minP,
          depth: this.depth,
          rng: new Sfc32(this.seed),
        });
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
    const id = this.selector.select(logits);
    for (const p of this.processors) p.accept(id);
    if (topCount === undefined) return { id };

    this.logprobs ??= new LogprobReporter(this.depth);
    const { logprob, top } = this.logprobs.report(logits, this.selector.maxLogit, id, topCount);
    return top ? { id, logprob, top } : { id, logprob };
  }
}

function checkSelectionParams(p: SamplingParams): void {
  if (!(p.temperature >= 0 && p.temperature < Infinity)) throw new RangeError(`temperature must be finite and ≥ 0, got ${p.temperature}`);
  if (!(Number.isInteger(p.topK) && p.topK >= 0)) throw new RangeError(`topK must be an integer ≥ 0, got ${p.topK}`);
  if (!(p.topP >= 0 && p.topP <= 1)) throw new RangeError(`topP must be in [0, 1], got ${p.topP}`);
  if (!(p.minP >= 0 && p.minP <= 1)) throw new RangeError(`minP must be in [0, 1], got ${p.minP}`);
}
