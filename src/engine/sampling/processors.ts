/**
 * Logits processors: small units that adjust the next token's logits in place before selection.
 * Each touches only the tokens it concerns (those seen so far, or those biased), never the
 * whole vocabulary.
 */
import type { SamplingParams } from '../types.ts';
import { TokenCounts } from './token-counts.ts';

export interface LogitsProcessor {
  /** Adjusts the logits for the next token, in place. */
  apply(logits: Float32Array): void;
  /** Records the token that was appended to the sequence. */
  accept(id: number): void;
}

const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * HF / llama.cpp repetition penalty over prompt and output: dividing a positive logit and
 * multiplying a negative one both make the token less likely, whatever the logit's sign.
 */
export class RepetitionPenalty implements LogitsProcessor {
  private readonly seen: TokenCounts;

  constructor(
    vocabSize: number,
    private readonly penalty: number,
    promptIds: readonly number[],
  ) {
    if (!(penalty > 0 && Number.isFinite(penalty))) throw new RangeError(`repetition penalty must be > 0, got ${penalty}`);
    this.seen = new TokenCounts(vocabSize, promptIds);
  }

  apply(logits: Float32Array): void {
    const penalty = this.penalty;
    for (const id of this.seen.distinct) {
      const v = logits[id];
      // A penalty near 0 (or huge) would overflow float32 to ±Infinity, which no selector can
      // sample from: saturate at the largest finite float32 instead, keeping the order.
      logits[id] = Math.max(-FLOAT32_MAX, Math.min(FLOAT32_MAX, v > 0 ? v / penalty : v * penalty));
    }
  }

  accept(id: number): void {
    this.seen.add(id);
  }
}

/**
 * OpenAI presence and frequency penalties: over generated tokens only (not the prompt),
 * logit -= presence·[count > 0] + frequency·count.
 */
export class PresenceFrequencyPenalty implements LogitsProcessor {
  private readonly generated: TokenCounts;

  constructor(
    vocabSize: number,
    private readonly presence: number,
    private readonly frequency: number,
  ) {
    if (!Number.isFinite(presence)) throw new RangeError(`presence penalty must be finite, got ${presence}`);
    if (!Number.isFinite(frequency)) throw new RangeError(`frequency penalty must be finite, got ${frequency}`);
    this.generated = new TokenCounts(vocabSize);
  }

  apply(logits: Float32Array): void {
    const { presence, frequency, generated } = this;
    for (const id of generated.distinct) logits[id] -= presence + frequency * generated.count(id);
  }

  accept(id: number): void {
    this.generated.add(id);
  }
}

/**
 * Additive per-token bias. OpenAI documents -100 as a ban, but adding -100 to a logit only makes
 * a token unlikely (and a greedy step can still pick it if everything else is lower), so -100
 * becomes -Infinity, which every selection path excludes.
 */
export const BAN_BIAS = -100;

export class LogitBias implements LogitsProcessor {
  private readonly ids: Int32Array;
  private readonly biases: Float32Array;

  constructor(vocabSize: number, bias: ReadonlyMap<number, number>) {
    this.ids = new Int32Array(bias.size);
    this.biases = new Float32Array(bias.size);
    let i = 0;
    for (const [id, value] of bias) {
      if (id >>> 0 !== id || id >= vocabSize) throw new RangeError(`logit bias token id ${id} is outside the vocabulary of ${vocabSize}`);
      if (!Number.isFinite(value)) throw new RangeError(`logit bias for token ${id} must be finite, got ${value}`);
      this.ids[i] = id;
      this.biases[i] = value <= BAN_BIAS ? -Infinity : value;
      i++;
    }
  }

  apply(logits: Float32Array): void {
    const { ids, biases } = this;
    for (let i = 0; i < ids.length; i++) logits[ids[i]] += biases[i];
  }

  accept(): void {}
}

/** The processors a request enables, in application order: penalties first, then bias. */
export function createLogitsProcessors(
  vocabSize: number,
  params: SamplingParams,
  promptIds: readonly number[],
): LogitsProcessor[] {
  const processors: LogitsProcessor[] = [];
  if (params.repetitionPenalty !== 1) processors.push(new RepetitionPenalty(vocabSize, params.repetitionPenalty, promptIds));
  if (params.presencePenalty !== 0 || params.frequencyPenalty !== 0) {
    processors.push(new PresenceFrequencyPenalty(vocabSize, params.presencePenalty, params.frequencyPenalty));
  }
  if (params.logitBias && params.logitBias.size > 0) processors.push(new LogitBias(vocabSize, params.logitBias));
  return processors;
}
