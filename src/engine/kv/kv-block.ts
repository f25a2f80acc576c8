/**
 * The KV rows of one or more sequences ("slots"), every layer, in the layout the graphs read:
 * keys [slots, kv_heads, stride, head_size]; values the same, or transposed
 * [slots, kv_heads, head_size, stride] for the batched graph (both attention products then stream
 * a whole buffer as their left operand). `stride` is the positions per slot the graph sees; rows
 * at or past a slot's length are masked, so they may hold anything finite.
 *
 * One block serves as the decode batch (many slots, one stride for all), as a prefilling
 * sequence's buffer (one slot whose stride widens with the prompt, so early chunks attend over a
 * short past) and as a prefix-cache entry.
 *
 * Allocation is not residency: a large typed array is mapped lazily, so only the pages a layout
 * has reached hold memory. The decode batch therefore allocates room for every sequence it may
 * ever hold and never reallocates; what counts against the KV budget is the block's footprint,
 * the largest `slots * stride` its current allocation has been laid out as.
 */
import ort from 'onnxruntime-node';

export interface KvShape {
  numLayers: number;
  numKvHeads: number;
  headSize: number;
  /** Values laid out [.., head_size, stride] (the batched graph) instead of [.., stride, head_size]. */
  valuesTransposed: boolean;
}

/** Bytes of one position of one sequence, all layers, keys and values. */
export function bytesPerPosition(shape: KvShape): number {
  return shape.numLayers * 2 * shape.numKvHeads * shape.headSize * 4;
}

/** The KV budget's accounting of resident positions. */
export interface KvFootprint {
  /** Positions a block now reaches beyond what it reached before. */
  grow(positions: number): void;
  /** Positions given back when a block's buffers are dropped. */
  shrink(positions: number): void;
}

/** Where a slot's rows start: positions per slot, and the offset of the values in a layer's buffer. */
interface Layout {
  stride: number;
  valuesAt: number;
}

/**
 * Every layer's buffer as a view of one allocation. Per layer, a block of a few hundred positions
 * is a few MB, which glibc serves from its heap and keeps resident after V8 frees it (the heap is
 * only trimmed when the engine idles); the whole block is large enough to be mapped on its own,
 * lazily, and unmapped when it is collected.
 */
function allocateLayers(count: number, floats: number): Float32Array[] {
  const buffer = new ArrayBuffer(count * floats * Float32Array.BYTES_PER_ELEMENT);
  return Array.from({ length: count }, (_, l) => new Float32Array(buffer, l * floats * Float32Array.BYTES_PER_ELEMENT, floats));
}

export class KvBlock {
  /** Positions written per slot. */
  readonly lengths: number[] = [];
  private strideValue = 0;
  /** Positions each layer's buffer holds: slots * stride never exceeds it. */
  private allocated = 0;
  /** Largest slots * stride laid out in the current buffers (what is resident). */
  private reached = 0;
  /** Per layer: keys (`allocated` positions), then values (`allocated` positions). */
  private layers: Float32Array[] = [];
  private keyTensors: ort.Tensor[] = [];
  private valueTensors: ort.Tensor[] = [];
  private readonly rowFloats: number;

  constructor(
    readonly shape: KvShape,
    private readonly footprint: KvFootprint,
  ) {
    this.rowFloats = shape.numKvHeads * shape.headSize;
  }

  get slots(): number {
    return this.lengths.length;
  }

  get stride(): number {
    return this.strideValue;
  }

  get allocatedPositions(): number {
    return this.allocated;
  }

  /** Resident positions (see the file comment). */
  get footprintPositions(): number {
    return this.reached;
  }

  /**
   * Positions the footprint would grow by if laid out as `slots` x `stride`. A reallocation frees
   * the old buffers, so it counts only the difference too (the caller collects garbage soon after).
   */
  growthFor(slots: number, stride: number): number {
    return Math.max(0, slots * stride - this.reached);
  }

  /**
   * Allocates room for `positions` in all, keeping rows and layout, unless there is already that
   * much; `resident` counts them against the budget now (a prompt that will fill them).
   */
  reserve(positions: number, resident = false): void {
    if (positions > this.allocated) this.reallocate(positions, this.slots, this.strideValue);
    if (resident) this.reach(positions);
  }

  /**
   * Lays the block out as `slots` slots of `stride` positions, keeping every kept slot's rows.
   * Reallocates (to `allocation` positions) only when the layout does not fit; otherwise rows move
   * within the buffers. New slots start empty; dropped slots are the last ones.
   */
  arrange(slots: number, stride: number, allocation = slots * stride): void {
    const kept = Math.min(slots, this.slots);
    for (let s = 0; s < kept; s++) {
      if (this.lengths[s] > stride) throw new RangeError(`slot ${s} holds ${this.lengths[s]} positions, more than a stride of ${stride}`);
    }
    if (slots * stride > this.allocated) this.reallocate(Math.max(allocation, slots * stride), kept, stride);
    else if (stride !== this.strideValue) this.restride(kept, stride);
    this.lengths.length = kept;
    while (this.lengths.length < slots) this.lengths.push(0);
    this.strideValue = stride;
    this.reach(slots * stride);
    this.wrap();
  }

  /** Gives the buffers back; the block is empty afterwards. */
  clear(): void {
    this.footprint.shrink(this.reached);
    this.reached = 0;
    this.layers = [];
    this.allocated = 0;
    this.strideValue = 0;
    this.lengths.length = 0;
    this.keyTensors = [];
    this.valueTensors = [];
  }

  private reach(positions: number): void {
    if (positions <= this.reached) return;
    this.footprint.grow(positions - this.reached);
    this.reached = positions;
  }

  private reallocate(positions: number, kept: number, stride: number): void {
    const from = this.layout();
    const to: Layout = { stride, valuesAt: positions * this.rowFloats };
    const layers = allocateLayers(this.shape.numLayers, 2 * positions * this.rowFloats);
    this.layers.forEach((src, l) => {
      for (let s = 0; s < kept; s++) this.forEachRow(s, s, 0, this.lengths[s], from, to, (a, b, n) => layers[l].set(src.subarray(a, a + n), b));
    });
    this.footprint.shrink(this.reached);
    this.reached = 0;
    this.layers = layers;
    this.allocated = positions;
    this.reach(kept * stride);
  }

  /**
   * Moves rows to a new stride within the buffers. Widening goes last row first and narrowing
   * first row first, so no row is overwritten before it has moved.
   */
  private restride(kept: number, stride: number): void {
    const from = this.layout();
    const to: Layout = { stride, valuesAt: from.valuesAt };
    const rows: [number, number, number][] = [];
    for (let s = 0; s < kept; s++) this.forEachRow(s, s, 0, this.lengths[s], from, to, (a, b, n) => rows.push([a, b, n]));
    if (stride > from.stride) rows.reverse();
    for (const buf of this.layers) {
      for (const [src, dst, n] of rows) if (n > 0 && src !== dst) buf.copyWithin(dst, src, src + n);
    }
  }

  private layout(): Layout {
    return { stride: this.strideValue, valuesAt: this.allocated * this.rowFloats };
  }

  /**
   * Calls `fn(srcOffset, dstOffset, floats)` for every row holding positions [first, first + count)
   * of slot `fromSlot` in layout `from` and of slot `toSlot` in layout `to`, within one layer's
   * buffer: keys (in address order), then values (in address order).
   */
  private forEachRow(fromSlot: number, toSlot: number, first: number, count: number, from: Layout, to: Layout, fn: (src: number, dst: number, n: number) => void): void {
    const { numKvHeads, headSize, valuesTransposed } = this.shape;
    for (let h = 0; h < numKvHeads; h++) {
      fn(((fromSlot * numKvHeads + h) * from.stride + first) * headSize, ((toSlot * numKvHeads + h) * to.stride + first) * headSize, count * headSize);
    }
    const valueRows = valuesTransposed ? numKvHeads * headSize : numKvHeads;
    const run = valuesTransposed ? 1 : headSize;
    for (let r = 0; r < valueRows; r++) {
      fn(from.valuesAt + ((fromSlot * valueRows + r) * from.stride + first) * run, to.valuesAt + ((toSlot * valueRows + r) * to.stride + first) * run, count * run);
    }
  }

  private wrap(): void {
    const { numLayers, numKvHeads, headSize, valuesTransposed } = this.shape;
    const n = this.slots;
    const stride = this.strideValue;
    const size = n * stride * this.rowFloats;
    const keyDims = [n, numKvHeads, stride, headSize];
    const valueDims = valuesTransposed ? [n, numKvHeads, headSize, stride] : keyDims;
    const valuesAt = this.allocated * this.rowFloats;
    for (let l = 0; l < numLayers; l++) {
      const buf = this.layers[l];
      this.keyTensors[l] = new ort.Tensor('float32', buf.subarray(0, size), keyDims);
      this.valueTensors[l] = new ort.Tensor('float32', buf.subarray(valuesAt, valuesAt + size), valueDims);
    }
  }

  keyTensor(layer: number): ort.Tensor {
    return this.keyTensors[layer];
  }

  valueTensor(layer: number): ort.Tensor {
    return this.valueTensors[layer];
  }

  /**
   * Writes `count` rows of a step's outputs (keys [1, kv_heads, rows, head_size], values
   * [1, kv_heads, head_size, rows]), starting at output row `first`, into `slot` at position `at`.
   * Does not move the slot's length: the caller does, once per step.
   */
  writeRows(layer: number, slot: number, at: number, keyRows: Float32Array, valueRows: Float32Array, first: number, count: number, rows: number): void {
    if (!this.shape.valuesTransposed) throw new Error('writeRows needs the transposed value layout');
    if (at + count > this.strideValue) throw new RangeError(`writing positions ${at}..${at + count} past a stride of ${this.strideValue}`);
    const { numKvHeads, headSize } = this.shape;
    const buf = this.layers[layer];
    const stride = this.strideValue;
    const run = count * headSize;
    for (let h = 0; h < numKvHeads; h++) {
      const src = (h * rows + first) * headSize;
      buf.set(keyRows.subarray(src, src + run), ((slot * numKvHeads + h) * stride + at) * headSize);
    }
    // One short run per (head, dim) row: scalar copies beat a subarray per run at decode's count of 1.
    const valuesAt = this.allocated * this.rowFloats;
    const valueRowCount = numKvHeads * headSize;
    for (let r = 0; r < valueRowCount; r++) {
      const src = r * rows + first;
      const dst = valuesAt + (slot * valueRowCount + r) * stride + at;
      for (let i = 0; i < count; i++) buf[dst + i] = valueRows[src + i];
    }
  }

  /** Copies positions [first, first + count) of `source`'s slot `sourceSlot` into this block's `slot`, same positions. */
  copyFrom(source: KvBlock, sourceSlot: number, slot: number, first: number, count: number): void {
    if (first + count > this.strideValue) throw new RangeError(`copying positions ${first}..${first + count} past a stride of ${this.strideValue}`);
    if (first + count > source.lengths[sourceSlot]) throw new RangeError(`slot ${sourceSlot} holds ${source.lengths[sourceSlot]} positions, not ${first + count}`);
    const from = source.layout();
    const to = this.layout();
    for (let l = 0; l < this.shape.numLayers; l++) {
      const src = source.layers[l];
      const dst = this.layers[l];
      this.forEachRow(sourceSlot, slot, first, count, from, to, (a, b, n) => dst.set(src.subarray(a, a + n), b));
    }
  }

  /** Moves the last slot into `slot`, whose rows are dropped, and shrinks by one slot. */
  removeSlot(slot: number): void {
    const last = this.slots - 1;
    if (slot < 0 || slot > last) throw new RangeError(`no slot ${slot}`);
    if (slot !== last) {
      this.copyFrom(this, last, slot, 0, this.lengths[last]);
      this.lengths[slot] = this.lengths[last];
    }
    this.lengths.pop();
    this.wrap();
  }
}
