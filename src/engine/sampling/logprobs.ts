/**
 * Log-probabilities for the OpenAI `logprobs` / `top_logprobs` fields.
 *
 * They are the log-softmax of the logits after penalties and logit bias but before temperature and
 * truncation (top-k/top-p/min-p): what the model, as steered by the request, thinks of each token,
 * independent of how boldly we then sample. That is close to vLLM's `processed_logprobs` mode, and
 * keeps the numbers comparable across temperatures. Consequences: a sampled token can show a low
 * logprob, greedy and sampled runs report the same values, and banned tokens (bias -100) report
 * -Infinity (they never appear in `top`).
 */
import type { TokenLogprob } from '../types.ts';
import { expNonPositive } from './fast-exp.ts';
import { TopTokens } from './top-tokens.ts';

/** OpenAI's cap on top_logprobs. */
export const MAX_TOP_LOGPROBS = 20;

export interface TokenLogprobs {
  logprob: TokenLogprob;
  /** Present when alternatives were asked for; most likely first, ties by lower id. */
  top?: TokenLogprob[];
}

export class LogprobReporter {
  private readonly best = new TopTokens(MAX_TOP_LOGPROBS);

  /**
   * depth: nats below the max beyond which a token's exp() is negligible; the normalizer is at
   * least 1 (the max's own term), so skipped tokens change it by under vocab·e^-depth.
   */
  constructor(private readonly depth: number) {}

  /** maxLogit must be the largest of `logits` (the sampler has found it already). */
  report(logits: Float32Array, maxLogit: number, chosen: number, topCount: number): TokenLogprobs {
    const logNormalizer = maxLogit + Math.log(sumExpAbove(logits, maxLogit, this.depth));
    const logprob = { id: chosen, logprob: logits[chosen] - logNormalizer };
    if (topCount === 0) return { logprob };

    // A second pass rather than offering to the heap inside the exp loop: with a call in its body
    // V8 compiled that loop to code 2-3x slower than the two tight loops together.
    const best = this.best;
    best.scan(logits, topCount);
    best.sortDescending();
    const top: TokenLogprob[] = [];
    for (let i = 0; i < best.count; i++) top.push({ id: best.ids[i], logprob: best.scores[i] - logNormalizer });
    return { logprob, top };
  }
}

/** Σ exp(logit - maxLogit) over logits at most `depth` below maxLogit. */
function sumExpAbove(logits: Float32Array, maxLogit: number, depth: number): number {
  const floor = maxLogit - depth;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    // A branch rather than arithmetic masking: -Infinity (banned) and NaN logits would turn a
    // masked exp() into NaN. It costs little while most tokens fall on the same side of the floor.
    if (v >= floor) sum += expNonPositive(v - maxLogit);
  }
  return sum;
}
