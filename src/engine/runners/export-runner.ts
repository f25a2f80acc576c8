/**
 * Runs the export's own attention (GroupQueryAttention), one sequence per step: the fallback for
 * exports the batched rewrite cannot handle, and `--kv-update in-place` for comparison. The same
 * buffer is fed as `past_*` and fetched as `present.*`, so GroupQueryAttention appends in place
 * (its shared-buffer mode), though onnxruntime-node then copies the whole buffer out every step.
 */
import ort from 'onnxruntime-node';
import type { KvShape } from '../kv/kv-block.ts';
import type { DecoderIoNames } from '../model-config.ts';
import type { StepPlan, StepRunner } from './step-runner.ts';

export class ExportRunner implements StepRunner {
  readonly batched = false;
  /** A run of 1n reused as attention_mask: the mask is all ones for an unpadded sequence. */
  private ones = new BigInt64Array(0);
  private readonly feedsIds: boolean;

  constructor(
    private readonly session: ort.InferenceSession,
    private readonly io: DecoderIoNames,
    readonly kvShape: KvShape,
  ) {
    this.feedsIds = session.inputNames.includes(io.inputIds);
  }

  private onesOf(n: number): BigInt64Array {
    if (this.ones.length < n) this.ones = new BigInt64Array(Math.max(n, this.ones.length * 2, 1024)).fill(1n);
    return this.ones.subarray(0, n);
  }

  async run(plan: StepPlan): Promise<Float32Array[]> {
    const decoding = plan.decode !== undefined && plan.decode.block.slots > 0;
    if (decoding && (plan.prefill || plan.decode!.block.slots > 1)) throw new Error('the export graph runs one sequence per step');
    const target = decoding ? { block: plan.decode!.block, tokens: plan.decode!.tokens, logits: true } : plan.prefill;
    if (!target || target.tokens.length === 0) throw new RangeError('a step needs at least one token');
    const { block, tokens } = target;
    const { io } = this;
    const past = block.lengths[0];
    const total = past + tokens.length;
    const feeds: Record<string, ort.Tensor> = { [io.attentionMask]: new ort.Tensor('int64', this.onesOf(total), [1, total]) };
    if (this.feedsIds) feeds[io.inputIds] = new ort.Tensor('int64', BigInt64Array.from(tokens, (t) => BigInt(t)), [1, tokens.length]);
    if (io.positionIds) feeds[io.positionIds] = new ort.Tensor('int64', BigInt64Array.from(tokens, (_, i) => BigInt(past + i)), [1, tokens.length]);
    const fetches: Record<string, ort.Tensor | null> = { [io.logits]: null };
    for (let layer = 0; layer < this.kvShape.numLayers; layer++) {
      feeds[io.pastKey(layer)] = block.keyTensor(layer);
      feeds[io.pastValue(layer)] = block.valueTensor(layer);
      fetches[io.presentKey(layer)] = block.keyTensor(layer);
      fetches[io.presentValue(layer)] = block.valueTensor(layer);
    }
    const out = await this.session.run(feeds, fetches);
    block.lengths[0] = total;
    if (!target.logits) return [];
    // [batch, positions, vocab]: positions is 1 with the last-position graph, all new tokens otherwise.
    const result = out[io.logits];
    const logits = result.data as Float32Array;
    const vocab = result.dims[result.dims.length - 1];
    return [logits.subarray(logits.length - vocab)];
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
