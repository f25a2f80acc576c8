/**
 * What a model step costs on this machine, as fixed + per-token milliseconds, measured at load.
 * Weight matmuls dominate a step, and their cost grows with its rows at a rate that differs a lot
 * between CPUs (int4 kernels are compute-bound on some, bandwidth-bound on others), so the size of
 * a prompt chunk that may ride along with decoding sequences is decided from this model rather
 * than from a fixed token count: the step may cost at most `ITL_FACTOR` times the decode-only step.
 */
import { KvBlock } from './kv/kv-block.ts';
import type { KvMemory } from './kv/kv-memory.ts';
import type { StepRunner } from './runners/step-runner.ts';

export interface StepCost {
  fixedMs: number;
  perTokenMs: number;
}

/** How much slower than a decode-only step a step carrying a prompt chunk may be. */
export const ITL_FACTOR = 2.5;

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

/**
 * Prompt tokens a step may carry beside `decoding` one-token rows: as many as keep the step within
 * ITL_FACTOR times the decode-only step, at least one.
 */
export function rideAlongTokens(cost: StepCost, decoding: number): number {
  const decodeOnly = cost.fixedMs + cost.perTokenMs * decoding;
  return Math.max(1, Math.floor(((ITL_FACTOR - 1) * decodeOnly) / cost.perTokenMs));
}
