/**
 * Model steps without the scheduler, for tests that compare logits: a loaded decoder, KV blocks
 * laid out by hand, and the export's own graph recomputing a whole sequence from scratch.
 */
import ort from 'onnxruntime-node';
import { join } from 'node:path';
import { KvBlock } from '../../src/engine/kv/kv-block.ts';
import { KvMemory } from '../../src/engine/kv/kv-memory.ts';
import { loadModelConfig } from '../../src/engine/model-config.ts';
import { loadDecoder, type LoadedDecoder } from '../../src/engine/model-session.ts';
import type { EngineOptions } from '../../src/engine/types.ts';

export class Stepper {
  private constructor(
    readonly decoder: LoadedDecoder,
    readonly memory: KvMemory,
    readonly growth: number,
  ) {}

  static async open(opts: EngineOptions, growth = 256): Promise<Stepper> {
    const decoder = await loadDecoder(opts);
    return new Stepper(decoder, new KvMemory(decoder.runner.kvShape, 1024 ** 3), growth);
  }

  private round(n: number): number {
    return Math.ceil(n / this.growth) * this.growth;
  }

  block(): KvBlock {
    const block = new KvBlock(this.decoder.runner.kvShape, this.memory);
    block.arrange(1, this.growth);
    return block;
  }

  /** Appends `tokens` to a one-slot block in chunks; returns (a copy of) the last position's logits. */
  async prefill(block: KvBlock, tokens: readonly number[], chunk = 128): Promise<Float32Array> {
    let logits: Float32Array[] = [];
    for (let at = 0; at < tokens.length; at += chunk) {
      const part = tokens.slice(at, at + chunk);
      const end = block.lengths[0] + part.length;
      if (end > block.stride) block.arrange(1, this.round(end));
      logits = await this.decoder.runner.run({ prefill: { block, tokens: part, logits: at + chunk >= tokens.length } });
    }
    return Float32Array.from(logits[0]);
  }

  /** One token per slot of `block`; returns copies of each slot's logits. */
  async decode(block: KvBlock, tokens: readonly number[]): Promise<Float32Array[]> {
    const longest = Math.max(...block.lengths);
    if (longest + 1 > block.stride) block.arrange(block.slots, this.round(longest + 1));
    const logits = await this.decoder.runner.run({ decode: { block, tokens } });
    return logits.map((l) => Float32Array.from(l));
  }

  release(): Promise<void> {
    return this.decoder.runner.release();
  }
}

/** The export's own graph (model.onnx, all positions, no cache carried over). */
export class FullRecompute {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly config: ReturnType<typeof loadModelConfig>,
  ) {}

  static async open(modelDir: string): Promise<FullRecompute> {
    const config = loadModelConfig(modelDir);
    const session = await ort.InferenceSession.create(join(config.info.dir, 'model.onnx'), { intraOpNumThreads: 2 });
    return new FullRecompute(session, config);
  }

  async logits(tokens: readonly number[]): Promise<Float32Array> {
    const { io, info } = this.config;
    const n = tokens.length;
    const feeds: Record<string, ort.Tensor> = {
      [io.inputIds]: new ort.Tensor('int64', BigInt64Array.from(tokens, (t) => BigInt(t)), [1, n]),
      [io.attentionMask]: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
    };
    const empty = new ort.Tensor('float32', new Float32Array(0), [1, info.numKvHeads, 0, info.headSize]);
    for (let l = 0; l < info.numLayers; l++) {
      feeds[io.pastKey(l)] = empty;
      feeds[io.pastValue(l)] = empty;
    }
    const out = await this.session.run(feeds);
    const all = out[io.logits].data as Float32Array;
    return all.slice(all.length - info.vocabSize);
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

export function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}
