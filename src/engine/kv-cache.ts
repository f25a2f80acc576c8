/**
 * Per-sequence KV cache. Each sequence owns one key and one value buffer per layer. Keys are laid
 * out [1, kvHeads, capacity, headSize]; values the same, or transposed [1, kvHeads, headSize,
 * capacity] for the new-positions graph. Two ways to append a step's positions:
 * - the derived new-positions graph reads the buffers as inputs and returns only the new rows,
 *   which `writeNew` copies in (a few kilobytes per decode step);
 * - the export's own GroupQueryAttention, fed the same buffer as `past_*` and `present_*`,
 *   appends in place (its shared-buffer mode), though onnxruntime-node then copies the whole
 *   buffer out.
 * Capacity grows in chunks and is never sized to the model's full context.
 *
 * Keeping this per sequence (not per session) is what continuous batching and prefix reuse
 * build on: a scheduler can hold many of these, fork one, or truncate one to a shared prefix.
 */
import ort from 'onnxruntime-node';

export interface KvShape {
  numLayers: number;
  numKvHeads: number;
  headSize: number;
}

export class SequenceKvCache {
  /** Positions already written (the past length for the next step). */
  length = 0;
  private capacity = 0;
  private keys: Float32Array[] = [];
  private values: Float32Array[] = [];
  private keyTensors: ort.Tensor[] = [];
  private valueTensors: ort.Tensor[] = [];

  constructor(
    readonly shape: KvShape,
    private readonly growthChunk: number,
    private readonly maxPositions: number,
    /** Values laid out [1, kvHeads, headSize, capacity] (the new-positions graph's layout). */
    readonly valuesTransposed = false,
  ) {}

  get allocatedPositions(): number {
    return this.capacity;
  }

  /** Bytes held by this sequence's buffers. */
  get bytes(): number {
    return this.capacity * this.shape.numLayers * 2 * this.shape.numKvHeads * this.shape.headSize * 4;
  }

  /** Makes room for `total` positions, keeping what is cached. */
  reserve(total: number): void {
    if (total <= this.capacity) return;
    if (total > this.maxPositions) {
      throw new RangeError(`sequence of ${total} positions exceeds the context of ${this.maxPositions}`);
    }
    const chunk = this.growthChunk;
    const next = Math.min(this.maxPositions, Math.ceil(total / chunk) * chunk);
    const { numLayers, numKvHeads, headSize } = this.shape;
    const dims = [1, numKvHeads, next, headSize];
    const valueDims = this.valuesTransposed ? [1, numKvHeads, headSize, next] : dims;
    for (let layer = 0; layer < numLayers; layer++) {
      this.keys[layer] = this.regrow(this.keys[layer], next, false);
      this.values[layer] = this.regrow(this.values[layer], next, this.valuesTransposed);
      this.keyTensors[layer] = new ort.Tensor('float32', this.keys[layer], dims);
      this.valueTensors[layer] = new ort.Tensor('float32', this.values[layer], valueDims);
    }
    this.capacity = next;
  }

  private regrow(old: Float32Array | undefined, next: number, transposed: boolean): Float32Array {
    const { numKvHeads, headSize } = this.shape;
    const grown = new Float32Array(numKvHeads * next * headSize);
    if (old && this.length > 0) {
      // Rows of `length` positions (transposed) or blocks of `length` rows (not), one per head.
      const rows = transposed ? numKvHeads * headSize : numKvHeads;
      const oldStride = transposed ? this.capacity : this.capacity * headSize;
      const newStride = transposed ? next : next * headSize;
      const used = transposed ? this.length : this.length * headSize;
      for (let r = 0; r < rows; r++) {
        grown.set(old.subarray(r * oldStride, r * oldStride + used), r * newStride);
      }
    }
    return grown;
  }

  keyTensor(layer: number): ort.Tensor {
    return this.keyTensors[layer];
  }

  valueTensor(layer: number): ort.Tensor {
    return this.valueTensors[layer];
  }

  /**
   * Writes `count` new positions starting at `at`, given in the buffers' own layouts with `count`
   * positions (the new-positions graph's outputs). Does not move `length`: the caller does, once
   * per step.
   */
  writeNew(layer: number, keyRows: Float32Array, valueRows: Float32Array, at: number, count: number): void {
    if (at + count > this.capacity) throw new RangeError(`writing positions ${at}..${at + count} past capacity ${this.capacity}`);
    const { numKvHeads, headSize } = this.shape;
    const block = count * headSize;
    const stride = this.capacity * headSize;
    const keys = this.keys[layer];
    for (let h = 0; h < numKvHeads; h++) keys.set(keyRows.subarray(h * block, (h + 1) * block), h * stride + at * headSize);
    const values = this.values[layer];
    if (!this.valuesTransposed) {
      for (let h = 0; h < numKvHeads; h++) values.set(valueRows.subarray(h * block, (h + 1) * block), h * stride + at * headSize);
      return;
    }
    // One short run per (head, dim) row: scalar copies beat a subarray per run at decode's count of 1.
    const rows = numKvHeads * headSize;
    const capacity = this.capacity;
    for (let r = 0; r < rows; r++) {
      const src = r * count;
      const dst = r * capacity + at;
      for (let i = 0; i < count; i++) values[dst + i] = valueRows[src + i];
    }
  }

  /** Forgets positions from `length` on (prefix reuse keeps the shared head of a prompt). */
  truncate(length: number): void {
    this.length = Math.min(this.length, Math.max(0, length));
  }

  release(): void {
    this.keys = [];
    this.values = [];
    this.keyTensors = [];
    this.valueTensors = [];
    this.capacity = 0;
    this.length = 0;
  }
}
