/**
 * Feeds the batched graph (graphs/batched-model.ts): the step's token rows, decode slots first,
 * the decode batch's KV block and the prefilling sequence's block as inputs, and writes the new
 * rows it returns into those blocks.
 */
import ort from 'onnxruntime-node';
import { BATCHED_INPUTS, newRowsName, prefillInputName, type BatchedGraphInfo } from '../graphs/batched-model.ts';
import type { EmbeddingReader } from '../graphs/embedding-input.ts';
import type { KvShape } from '../kv/kv-block.ts';
import type { DecoderIoNames } from '../model-config.ts';
import type { StepPlan, StepRunner } from './step-runner.ts';

interface LayerNames {
  decodeKey: string;
  decodeValue: string;
  prefillKey: string;
  prefillValue: string;
  newKey: string;
  newValue: string;
}

function int64(values: ArrayLike<number>, dims: number[]): ort.Tensor {
  const data = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) data[i] = BigInt(values[i]);
  return new ort.Tensor('int64', data, dims);
}

export class BatchedRunner implements StepRunner {
  readonly batched = true;
  private readonly layers: LayerNames[];
  private readonly emptyDecode: { key: ort.Tensor; value: ort.Tensor };
  private readonly emptyPrefill: { key: ort.Tensor; value: ort.Tensor };
  private readonly logitsName: string;

  constructor(
    private readonly session: ort.InferenceSession,
    io: DecoderIoNames,
    readonly kvShape: KvShape,
    private readonly embeddings: EmbeddingReader,
    private readonly graph: BatchedGraphInfo,
    /** The same graph on the int8 GEMM, for steps of at least `minRows` rows. */
    private readonly wide?: { session: ort.InferenceSession; minRows: number },
  ) {
    this.logitsName = io.logits;
    this.layers = Array.from({ length: kvShape.numLayers }, (_, i) => ({
      decodeKey: io.pastKey(i),
      decodeValue: io.pastValue(i),
      prefillKey: prefillInputName(io.pastKey(i)),
      prefillValue: prefillInputName(io.pastValue(i)),
      newKey: newRowsName(io.presentKey(i)),
      newValue: newRowsName(io.presentValue(i)),
    }));
    const { numKvHeads: h, headSize: d } = kvShape;
    const empty = (dims: number[]) => new ort.Tensor('float32', new Float32Array(0), dims);
    this.emptyDecode = { key: empty([0, h, 0, d]), value: empty([0, h, d, 0]) };
    this.emptyPrefill = { key: empty([1, h, 0, d]), value: empty([1, h, d, 0]) };
  }

  /** The rotary table row of `position` in a sequence that holds `total` positions after this step. */
  private ropeRow(position: number, total: number): number {
    const sw = this.graph.ropeSwitch;
    return sw && total > sw.threshold ? position + sw.longOffset : position;
  }

  async run(plan: StepPlan): Promise<Float32Array[]> {
    const decode = plan.decode && plan.decode.block.slots > 0 ? plan.decode : undefined;
    const prefill = plan.prefill && plan.prefill.tokens.length > 0 ? plan.prefill : undefined;
    const slots = decode?.block.slots ?? 0;
    const chunk = prefill?.tokens.length ?? 0;
    const rows = slots + chunk;
    if (rows === 0) throw new RangeError('a step needs at least one token');
    const tokens = new Array<number>(rows);
    const positions = new Array<number>(rows);
    for (let b = 0; b < slots; b++) {
      const at = decode!.block.lengths[b];
      tokens[b] = decode!.tokens[b];
      positions[b] = this.ropeRow(at, at + 1);
    }
    const past = prefill?.block.lengths[0] ?? 0;
    for (let i = 0; i < chunk; i++) {
      tokens[slots + i] = prefill!.tokens[i];
      positions[slots + i] = this.ropeRow(past + i, past + chunk);
    }
    const logitRows = Array.from({ length: slots }, (_, b) => b);
    if (prefill?.logits) logitRows.push(rows - 1);

    const feeds: Record<string, ort.Tensor> = {
      inputs_embeds: new ort.Tensor('float32', this.embeddings.rows(tokens), [1, rows, this.embeddings.table.cols]),
      [BATCHED_INPUTS.positionIds]: int64(positions, [1, rows]),
      [BATCHED_INPUTS.decodePastLengths]: int64(decode?.block.lengths ?? [], [slots]),
      [BATCHED_INPUTS.prefillPastLength]: int64([past], [1]),
      [BATCHED_INPUTS.logitsIndices]: int64(logitRows, [logitRows.length]),
    };
    for (const [layer, names] of this.layers.entries()) {
      feeds[names.decodeKey] = decode ? decode.block.keyTensor(layer) : this.emptyDecode.key;
      feeds[names.decodeValue] = decode ? decode.block.valueTensor(layer) : this.emptyDecode.value;
      feeds[names.prefillKey] = prefill ? prefill.block.keyTensor(layer) : this.emptyPrefill.key;
      feeds[names.prefillValue] = prefill ? prefill.block.valueTensor(layer) : this.emptyPrefill.value;
    }
    const session = this.wide && rows >= this.wide.minRows ? this.wide.session : this.session;
    const out = await session.run(feeds);
    for (const [layer, names] of this.layers.entries()) {
      const keys = out[names.newKey].data as Float32Array;
      const values = out[names.newValue].data as Float32Array;
      for (let b = 0; b < slots; b++) decode!.block.writeRows(layer, b, decode!.block.lengths[b], keys, values, b, 1, rows);
      if (prefill) prefill.block.writeRows(layer, 0, past, keys, values, slots, chunk, rows);
    }
    if (decode) for (let b = 0; b < slots; b++) decode.block.lengths[b]++;
    if (prefill) prefill.block.lengths[0] += chunk;
    const result = out[this.logitsName];
    const logits = result.data as Float32Array;
    const vocab = result.dims[result.dims.length - 1];
    return logitRows.map((_, r) => logits.subarray(r * vocab, (r + 1) * vocab));
  }

  async release(): Promise<void> {
    this.embeddings.close();
    await this.session.release();
    await this.wide?.session.release();
  }
}
