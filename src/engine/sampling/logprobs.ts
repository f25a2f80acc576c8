/**
 * Log-probabilities for the OpenAI `logprobs` / `top_logprobs` fields.
 *
 * They are the log-softmax of the logits after penalties and logit bias but before temperature and
 * truncation (top-k/top-p/min-p): what the model, as steered by the request, thinks of each token,
 * independent of how boldly we then sample. That is close to vLLM's `processed_logprobs` mode, and
 * keeps the numbers comparable across temperatures. Consequences: a sampled token can show a low
 * logprob, greedy and sampled runs report the same values, and banned tokens (bias -100) report
 * -Infinity (they never appear in `top`).
 *
 * Accuracy: logprob = logit - (max + ln Σ exp(logit - max)). The sum comes from an ExpHistogram at
 * temperature 1 (relative error < 3e-8 per term) and leaves out tokens more than `depth` nats below the
 * max (< 1e-7 of the mass by the sampler's choice of depth), so a reported value is within ~2e-7 of the
 * exact float64 log-softmax of the float32 logits.
 */
import type { TokenLogprob } from '../types.ts';
import { ExpHistogram } from './exp-histogram.ts';
import type { TopTokens } from './top-tokens.ts';

/** OpenAI's cap on top_logprobs. */
export const MAX_TOP_LOGPROBS = 20;

export interface TokenLogprobs {
  logprob: TokenLogprob;
  /** Present when alternatives were asked for; most likely first, ties by lower id. */
  top?: TokenLogprob[];
}

export class LogprobReporter {
  private readonly histogram: ExpHistogram;

  /** depth: nats below the max beyond which a token's exp() is negligible. */
  constructor(depth: number) {
    this.histogram = new ExpHistogram(depth);
  }

  /**
   * maxLogit must be the largest of `logits`; unitMass Σ exp(logit - maxLogit) if the selector has
   * computed it already (NaN if not); `best` holds at least the topCount best tokens, sorted, when
   * topCount > 0.
   */
  report(logits: Float32Array, maxLogit: number, unitMass: number, chosen: number, topCount: number, best: TopTokens): TokenLogprobs {
    const mass = Number.isNaN(unitMass) ? this.histogram.fill(logits, maxLogit, 1) : unitMass;
    const logNormalizer = maxLogit + Math.log(mass);
    const logprob = { id: chosen, logprob: logits[chosen] - logNormalizer };
    if (topCount === 0) return { logprob };
    const top: TokenLogprob[] = [];
    const n = Math.min(topCount, best.count);
    for (let i = 0; i < n; i++) top.push({ id: best.ids[i], logprob: best.scores[i] - logNormalizer });
    return { logprob, top };
  }
}
