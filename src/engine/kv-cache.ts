/**
 * Per-sequence KV cache. Each sequence owns one key and one value buffer per layer. Keys are laid
 * out [1, kvHeads, capacity, headSize]; values the same, or transposed [1, kvHeads, headSize,
 * capacity] for the new-positions graph. Two ways to append a step's positions:
 * - the derived new-positions graph reads the buffers as inputs and returns only the new rows,
 *   which `writeNew` copies in (a few kilobytes per decode step);
 * - the export's own GroupQueryAttention, fed the same buffer as `past_*` and `present_*`,
 *   appends in place (its shared-buffer mode), though onnxruntime-node then copies the whole
 *   buffer out.
 * Buffers grow in chunks and are never sized to the model's full context. A long prompt allocates
 * once; the layout the graph sees still widens chunk by chunk, in place.
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

/** One sequence's backing buffers: a key and a value buffer per layer, each of `positions` positions. */
export interface KvBuffers {
  positions: number;
  keys: Float32Array[];
  values: Float32Array[];
}

/**
 * Buffers a released sequence leaves for the next one. The worker runs sequences back to back, and
 * without this a new sequence's buffers could be allocated while the last one's still sat in memory
 * waiting for garbage collection: up to +0.6 GB of peak RSS after a 2,048-token request. Holds one
 * set; the owner drops it when idle so a long request's cache is not kept forever.
 */
export class KvBufferPool {
  private spare: KvBuffers | undefined;

  /** The spare set if it holds at least `positions`; a smaller one is dropped (it would only sit there). */
  take(positions: number): KvBuffers | undefined {
    const spare = this.spare;
    this.spare = undefined;
    return spare && spare.positions >= positions ? spare : undefined;
  }

  give(buffers: KvBuffers): void {
    if (!this.spare || buffers.positions > this.spare.positions) this.spare = buffers;
  }

  /** Positions of the set held, 0 if none. */
  get sparePositions(): number {
    return this.spare?.positions ?? 0;
  }

  clear(): void {
    this.spare = undefined;
  }
}

export class SequenceKvCache {
  /** Positions already written (the past length for the next step). */
  length = 0;
  /**
   * Positions per head block: the layout's stride, and the past length the graph is fed. Attention
   * runs over all of it (rows past `length` are masked), so it grows with the sequence even when
   * the backing buffers were allocated for a whole prompt up front.
   */
  private capacity = 0;
  /** Positions the backing buffers hold; the layout widens in place up to this without allocating. */
  private allocated = 0;
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
    /** Where a fresh sequence takes its buffers from and `release` returns them. */
    private readonly pool?: KvBufferPool,
  ) {}

  get allocatedPositions(): number {
    return this.allocated;
  }

  /** Positions the graph currently sees per head (the buffers' layout stride). */
  get visiblePositions(): number {
    return this.capacity;
  }

  /** Bytes held by this sequence's buffers. */
  get bytes(): number {
    return this.allocated * this.shape.numLayers * 2 * this.shape.numKvHeads * this.shape.headSize * 4;
  }

  private roundUp(total: number): number {
    if (total > this.maxPositions) {
      throw new RangeError(`sequence of ${total} positions exceeds the context of ${this.maxPositions}`);
    }
    return Math.min(this.maxPositions, Math.ceil(total / this.growthChunk) * this.growthChunk);
  }

  /**
   * Allocates room for `total` positions, keeping what is cached, without widening the layout the
   * graph sees: a long prompt allocates once, and its first chunks still attend over a short past.
   */
  reserve(total: number): void {
    if (total <= this.allocated) return;
    this.grow(this.roundUp(total), this.capacity);
  }

  /** Makes the layout hold `total` positions (allocating if needed) before a step that reaches `total`. */
  fit(total: number): void {
    if (total <= this.capacity) return;
    const next = this.roundUp(total);
    if (next > this.allocated) {
      // One copy into the new buffers, straight into the wider layout.
      this.grow(next, next);
    } else {
      for (let layer = 0; layer < this.shape.numLayers; layer++) {
        this.widen(this.keys[layer], next, false);
        this.widen(this.values[layer], next, this.valuesTransposed);
      }
    }
    this.capacity = next;
    this.wrap();
  }

  /**
   * New buffers of at least `positions` (a pooled set may be larger), the cached rows copied in at a
   * stride of `stride` positions. Pooled buffers hold a former sequence's rows past `length`: the
   * graph masks every row past the sequence, so they are never read.
   */
  private grow(positions: number, stride: number): void {
    const { numLayers, numKvHeads, headSize } = this.shape;
    const pooled = this.allocated === 0 ? this.pool?.take(positions) : undefined;
    if (pooled) {
      this.keys = pooled.keys;
      this.values = pooled.values;
      this.allocated = pooled.positions;
      this.wrap();
      return;
    }
    for (let layer = 0; layer < numLayers; layer++) {
      const keys = new Float32Array(numKvHeads * positions * headSize);
      const values = new Float32Array(numKvHeads * positions * headSize);
      if (this.length > 0) {
        this.copyRows(this.keys[layer], keys, stride, false);
        this.copyRows(this.values[layer], values, stride, this.valuesTransposed);
      }
      this.keys[layer] = keys;
      this.values[layer] = values;
    }
    this.allocated = positions;
    this.wrap();
  }

  /**
   * Moves each row of cached positions (a head's block, or a (head, dim) row when transposed) from
   * the current stride to `next` within the buffer, last row first: a row's new place starts past
   * every earlier row's old place, so nothing is overwritten before it moves.
   */
  private widen(buffer: Float32Array, next: number, transposed: boolean): void {
    if (this.length === 0) return;
    const { rows, oldStride, newStride, used } = this.rowLayout(next, transposed);
    for (let r = rows - 1; r > 0; r--) buffer.copyWithin(r * newStride, r * oldStride, r * oldStride + used);
  }

  private copyRows(from: Float32Array, to: Float32Array, next: number, transposed: boolean): void {
    const { rows, oldStride, newStride, used } = this.rowLayout(next, transposed);
    for (let r = 0; r < rows; r++) to.set(from.subarray(r * oldStride, r * oldStride + used), r * newStride);
  }

  /** Rows of cached positions, and their strides now and at a capacity of `next`, in floats. */
  private rowLayout(next: number, transposed: boolean): { rows: number; oldStride: number; newStride: number; used: number } {
    const { numKvHeads, headSize } = this.shape;
    return transposed
      ? { rows: numKvHeads * headSize, oldStride: this.capacity, newStride: next, used: this.length }
      : { rows: numKvHeads, oldStride: this.capacity * headSize, newStride: next * headSize, used: this.length * headSize };
  }

  private wrap(): void {
    const { numLayers, numKvHeads, headSize } = this.shape;
    const capacity = this.capacity;
    const dims = [1, numKvHeads, capacity, headSize];
    const valueDims = this.valuesTransposed ? [1, numKvHeads, headSize, capacity] : dims;
    const size = numKvHeads * capacity * headSize;
    for (let layer = 0; layer < numLayers; layer++) {
      this.keyTensors[layer] = new ort.Tensor('float32', this.keys[layer].subarray(0, size), dims);
      this.valueTensors[layer] = new ort.Tensor('float32', this.values[layer].subarray(0, size), valueDims);
    }
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

  /** Ends the sequence; its buffers go back to the pool, if there is one. */
  release(): void {
    if (this.pool && this.allocated > 0) this.pool.give({ positions: this.allocated, keys: this.keys, values: this.values });
    this.keys = [];
    this.values = [];
    this.keyTensors = [];
    this.valueTensors = [];
    this.capacity = 0;
    this.allocated = 0;
    this.length = 0;
  }
}
