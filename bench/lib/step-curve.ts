/**
 * The cost of one model step against the tokens it carries, on the batched graph directly (no
 * scheduler): decode steps of B sequences at a given context, and steps carrying a prompt chunk
 * beside decodes. Its shape decides what batching can win: where a step over B tokens costs far
 * less than B steps over one, sharing steps multiplies throughput.
 */
import { KvBlock } from '../../src/engine/kv/kv-block.ts';
import { KvMemory } from '../../src/engine/kv/kv-memory.ts';
import { loadDecoder, type LoadedDecoder } from '../../src/engine/model-session.ts';
import type { Int8Steps } from '../../src/engine/types.ts';
import { median } from './stats.ts';

export interface CurvePoint {
  /** Decoding sequences in the step. */
  decode: number;
  /** Prompt tokens riding along. */
  prefill: number;
  ms: number;
  /** Tokens per second if every step were like this one. */
  tokS: number;
}

const tokens = (n: number, from: number) => Array.from({ length: n }, (_, i) => from + i);

/** Median ms of `runs` steps (after a warm-up) of `decode` sequences at `context` positions plus a `prefill`-token chunk. */
async function timeStep(d: LoadedDecoder, memory: KvMemory, decode: number, prefill: number, context: number, runs: number): Promise<number> {
  const stride = Math.ceil((context + 1) / 256) * 256;
  const batch = new KvBlock(d.runner.kvShape, memory);
  const chunk = new KvBlock(d.runner.kvShape, memory);
  try {
    if (decode > 0) batch.arrange(decode, stride);
    if (prefill > 0) chunk.arrange(1, Math.ceil((context + prefill) / 256) * 256);
    const samples: number[] = [];
    for (let run = 0; run <= runs; run++) {
      batch.lengths.fill(context);
      chunk.lengths.fill(context);
      const t0 = performance.now();
      await d.runner.run({
        ...(decode > 0 ? { decode: { block: batch, tokens: tokens(decode, 1000) } } : {}),
        ...(prefill > 0 ? { prefill: { block: chunk, tokens: tokens(prefill, 2000), logits: true } } : {}),
      });
      if (run > 0) samples.push(performance.now() - t0);
    }
    return median(samples);
  } finally {
    batch.clear();
    chunk.clear();
  }
}

/** A decoder loaded in this process, timing model steps on demand. */
export class StepTimer {
  private constructor(
    private readonly d: LoadedDecoder,
    private readonly memory: KvMemory,
  ) {}

  static async open(modelDir: string, threads: number, int8Steps?: Int8Steps): Promise<StepTimer> {
    const d = await loadDecoder({ modelDir, threads, int8Steps });
    if (!d.runner.batched) throw new Error(`the batched graph is not in use: ${d.description.kvNote ?? ''}`);
    return new StepTimer(d, new KvMemory(d.runner.kvShape, 64 * 1024 ** 3));
  }

  async time(p: { decode: number; prefill: number }, context: number, runs = 5): Promise<CurvePoint> {
    const ms = await timeStep(this.d, this.memory, p.decode, p.prefill, context, runs);
    return { ...p, ms, tokS: ((p.decode + p.prefill) * 1000) / ms };
  }

  close(): Promise<void> {
    return this.d.runner.release();
  }
}

export async function stepCurve(modelDir: string, threads: number, points: { decode: number; prefill: number }[], context: number, int8Steps?: Int8Steps, runs = 5): Promise<CurvePoint[]> {
  const timer = await StepTimer.open(modelDir, threads, int8Steps);
  try {
    const out: CurvePoint[] = [];
    for (const p of points) out.push(await timer.time(p, context, runs));
    return out;
  } finally {
    await timer.close();
  }
}
