/**
 * What a model step costs on this machine, as fixed + per-token milliseconds measured at load, and
 * the size of the prompt chunk that may ride along with decoding sequences: as many tokens as keep
 * the step at `ITL_FACTOR` times a decode-only step. Weight matmuls dominate a step, and their cost
 * grows with its rows at a rate that differs a lot between CPUs, so the chunk comes from measured
 * costs, not a fixed count; and because a step carrying a prompt gets dearer as the prompt's past
 * grows (attention reads it), the chunk then follows the steps actually run (`RideAlong`).
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

/** Bounds of the prompt chunk when nothing decodes. */
export const PREFILL_CHUNK_MIN = 32;
export const PREFILL_CHUNK_MAX = 128;
/** Share of a prompt chunk's step its fixed cost may take. */
const FIXED_SHARE = 0.1;

/**
 * Prompt tokens per step when nothing decodes: the fewest (in steps of 16) that keep the step's
 * fixed cost within FIXED_SHARE of it. A larger chunk reads the prompt barely faster, but its
 * activations (attention scores grow with rows x past) are freed into the C heap, which keeps
 * them resident while a step runs (measured in docs/engine.md, Memory).
 */
export function prefillChunkFor(cost: StepCost): number {
  const rows = Math.ceil(cost.fixedMs / (FIXED_SHARE * cost.perTokenMs) / 16) * 16;
  return Math.min(PREFILL_CHUNK_MAX, Math.max(PREFILL_CHUNK_MIN, rows));
}

/** Weight of the newest observation in the running estimates. */
const SMOOTHING = 0.3;

/**
 * The prompt chunk beside decoding sequences, steered by the steps it produces toward ITL_FACTOR
 * times a decode-only step. Near any chunk a step costs about `perTokenMs` more per prompt token
 * (the weight matmuls) on top of what reading the prompt's past costs (attention streams it once a
 * step, and it grows with the prompt); so each step's shortfall or excess against the aim, in
 * tokens, moves the chunk, whatever that past costs. Time a step spends moving rows (a layout that
 * widens, a prompt joining the batch) is not the chunk's doing: it is taken off the chunk of the
 * step that pays it and left out of what is learnt. The decode-only cost is the load-time model
 * scaled by how decode-only steps have compared with it lately (the host's speed drifts).
 */
export class RideAlong {
  private drift = 1;
  private chunk: number | undefined;

  constructor(private readonly cost: StepCost) {}

  private decodeOnlyMs(decoding: number): number {
    return this.drift * (this.cost.fixedMs + this.cost.perTokenMs * decoding);
  }

  private get perTokenMs(): number {
    return this.drift * this.cost.perTokenMs;
  }

  /** Prompt tokens for the next step beside `decoding` one-token rows, `spentMs` of it already spent moving rows: at least one. */
  next(decoding: number, spentMs = 0): number {
    this.chunk ??= ((ITL_FACTOR - 1) * this.decodeOnlyMs(decoding)) / this.perTokenMs;
    return Math.max(1, Math.floor(this.chunk - spentMs / this.perTokenMs));
  }

  /** A step ran: `decoding` one-token rows and `prompt` prompt tokens in `ms`, time spent moving rows left out. */
  observe(decoding: number, prompt: number, ms: number): void {
    if (decoding === 0) return;
    if (prompt === 0) {
      const modelled = this.cost.fixedMs + this.cost.perTokenMs * decoding;
      this.drift += SMOOTHING * (ms / modelled - this.drift);
      return;
    }
    // The chunk that would have hit the aim, from this step (the cost is about linear in the chunk near it).
    const aimed = Math.max(1, prompt + (ITL_FACTOR * this.decodeOnlyMs(decoding) - ms) / this.perTokenMs);
    this.chunk = (this.chunk ?? aimed) + SMOOTHING * (aimed - (this.chunk ?? aimed));
  }
}
