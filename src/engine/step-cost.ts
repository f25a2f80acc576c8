/**
 * What a model step costs on this machine, as fixed + per-token milliseconds measured at load, and
 * the size of the prompt chunk that may ride along with decoding sequences: as many tokens as keep
 * the step at `ITL_FACTOR` times a decode-only step. Weight matmuls dominate a step, and their cost
 * grows with its rows at a rate that differs a lot between CPUs, so the chunk comes from measured
 * costs, not a fixed count; and because a prompt's rows get dearer as its past grows (attention),
 * the chunk then follows the steps actually run (`RideAlong`).
 */
import { KvBlock } from './kv/kv-block.ts';
import type { KvMemory } from './kv/kv-memory.ts';
import type { StepRunner } from './runners/step-runner.ts';

export interface StepCost {
  fixedMs: number;
  perTokenMs: number;
}

/** How much slower than a decode-only step a step carrying a prompt chunk may be (aimed at). */
export const ITL_FACTOR = 2.25;

const CALIBRATION_ROWS = 8;
const CALIBRATION_RUNS = 3;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Times steps of 1 and CALIBRATION_ROWS tokens (each after a warm-up run) on an empty KV block. */
export async function calibrateStepCost(runner: StepRunner, memory: KvMemory): Promise<StepCost> {
  const time = async (rows: number): Promise<number> => {
    const samples: number[] = [];
    for (let run = 0; run <= CALIBRATION_RUNS; run++) {
      const block = new KvBlock(runner.kvShape, memory);
      block.arrange(1, rows);
      const t0 = performance.now();
      await runner.run({ prefill: { block, tokens: Array.from({ length: rows }, (_, i) => 1000 + i), logits: true } });
      if (run > 0) samples.push(performance.now() - t0);
      block.clear();
    }
    return median(samples);
  };
  const one = await time(1);
  const many = await time(CALIBRATION_ROWS);
  const perTokenMs = Math.max(0.01, (many - one) / (CALIBRATION_ROWS - 1));
  return { fixedMs: Math.max(0, one - perTokenMs), perTokenMs };
}

/** Weight of the newest observation in the running estimates. */
const SMOOTHING = 0.3;

/**
 * The prompt chunk beside decoding sequences, steered by the steps it produces: a step that came
 * out dearer than ITL_FACTOR times the decode-only step shrinks the next chunk in proportion, a
 * cheaper one grows it. The decode-only cost is the load-time model scaled by how decode-only steps
 * have compared with it lately (the host's speed drifts).
 */
export class RideAlong {
  private drift = 1;
  private chunk: number | undefined;

  constructor(private readonly cost: StepCost) {}

  private decodeOnlyMs(decoding: number): number {
    return this.drift * (this.cost.fixedMs + this.cost.perTokenMs * decoding);
  }

  /** Prompt tokens for the next step beside `decoding` one-token rows: at least one. */
  next(decoding: number): number {
    this.chunk ??= ((ITL_FACTOR - 1) * this.decodeOnlyMs(decoding)) / (this.drift * this.cost.perTokenMs);
    return Math.max(1, Math.floor(this.chunk));
  }

  /** A step ran: `decoding` one-token rows and `prompt` prompt tokens in `ms`. */
  observe(decoding: number, prompt: number, ms: number): void {
    if (decoding === 0) return;
    if (prompt === 0) {
      const modelled = this.cost.fixedMs + this.cost.perTokenMs * decoding;
      this.drift += SMOOTHING * (ms / modelled - this.drift);
      return;
    }
    // What the prompt's tokens cost in this step, per token, and the chunk that would have hit the aim.
    const decodeOnly = this.decodeOnlyMs(decoding);
    const perPromptToken = (ms - decodeOnly) / prompt;
    const aimed = perPromptToken > 0 ? ((ITL_FACTOR - 1) * decodeOnly) / perPromptToken : 2 * prompt;
    this.chunk = (this.chunk ?? aimed) + SMOOTHING * (aimed - (this.chunk ?? aimed));
  }
}
