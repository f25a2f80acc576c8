/**
 * KV blocks keep every written row in the place the graphs read it while their layout changes:
 * widened or narrowed in place, reallocated, slots added, copied between blocks and removed. The
 * footprint counts what a layout has reached.
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import { KvBlock, type KvFootprint, type KvShape } from '../../src/engine/kv/kv-block.ts';

const base = { numLayers: 2, numKvHeads: 3, headSize: 4 };
const { numKvHeads, headSize } = base;

/** A value no other (sequence, layer, kind, head, position, dim) shares, so a misplaced row shows. */
const cell = (seq: number, layer: number, kind: number, head: number, pos: number, dim: number) =>
  seq * 1e6 + layer * 1e5 + kind * 1e4 + head * 1e3 + pos * 10 + dim + 1;

class Counter implements KvFootprint {
  positions = 0;
  grow(n: number): void {
    this.positions += n;
  }
  shrink(n: number): void {
    this.positions -= n;
  }
}

/** Step outputs for `count` positions from `at`: keys [1, heads, count, dim], values [1, heads, dim, count]. */
function stepRows(seq: number, layer: number, at: number, count: number): [Float32Array, Float32Array] {
  const keys = new Float32Array(numKvHeads * count * headSize);
  const values = new Float32Array(numKvHeads * count * headSize);
  for (let h = 0; h < numKvHeads; h++) {
    for (let i = 0; i < count; i++) {
      for (let d = 0; d < headSize; d++) {
        keys[(h * count + i) * headSize + d] = cell(seq, layer, 0, h, at + i, d);
        values[(h * headSize + d) * count + i] = cell(seq, layer, 1, h, at + i, d);
      }
    }
  }
  return [keys, values];
}

/** Appends positions to a slot as a step would: rows of every layer, then the length. */
function append(block: KvBlock, slot: number, seq: number, count: number): void {
  const at = block.lengths[slot];
  for (let layer = 0; layer < base.numLayers; layer++) block.writeRows(layer, slot, at, ...stepRows(seq, layer, at, count), 0, count, count);
  block.lengths[slot] = at + count;
}

/** Asserts slot `slot` holds sequence `seq`'s rows where the graph reads them. */
function assertHolds(block: KvBlock, slot: number, seq: number): void {
  const stride = block.stride;
  for (let layer = 0; layer < base.numLayers; layer++) {
    const k = block.keyTensor(layer);
    const v = block.valueTensor(layer);
    assert.deepEqual(k.dims, [block.slots, numKvHeads, stride, headSize]);
    assert.deepEqual(v.dims, [block.slots, numKvHeads, headSize, stride]);
    const keys = k.data as Float32Array;
    const values = v.data as Float32Array;
    for (let h = 0; h < numKvHeads; h++) {
      for (let pos = 0; pos < block.lengths[slot]; pos++) {
        for (let d = 0; d < headSize; d++) {
          assert.equal(keys[((slot * numKvHeads + h) * stride + pos) * headSize + d], cell(seq, layer, 0, h, pos, d), `slot ${slot} layer ${layer} key h${h} p${pos} d${d}`);
          assert.equal(values[((slot * numKvHeads + h) * headSize + d) * stride + pos], cell(seq, layer, 1, h, pos, d), `slot ${slot} layer ${layer} value h${h} p${pos} d${d}`);
        }
      }
    }
  }
}

const shape: KvShape = { ...base, valuesTransposed: true };

test('a prompt reserved up front widens its layout chunk by chunk in place, then grows past its allocation', () => {
  const footprint = new Counter();
  const block = new KvBlock(shape, footprint);
  block.reserve(12, true);
  assert.equal(footprint.positions, 12);
  block.arrange(1, 4);
  for (const [count, stride] of [[3, 4], [3, 8], [3, 12], [2, 12]]) {
    if (block.lengths[0] + count > block.stride) block.arrange(1, stride);
    append(block, 0, 1, count);
    assertHolds(block, 0, 1);
    assert.equal(block.allocatedPositions, 12);
  }
  // Past the allocation: one reallocation, every row kept.
  block.arrange(1, 20);
  append(block, 0, 1, 5);
  assertHolds(block, 0, 1);
  assert.equal(block.allocatedPositions, 20);
  assert.equal(footprint.positions, 20);
  block.clear();
  assert.equal(footprint.positions, 0);
});

test('slots of one stride: widening, narrowing, copying in from another block and removing keep every row', () => {
  const footprint = new Counter();
  const batch = new KvBlock(shape, footprint);
  batch.reserve(64);
  assert.equal(footprint.positions, 0, 'an allocation is not resident until laid out');
  batch.arrange(2, 4);
  append(batch, 0, 10, 3);
  append(batch, 1, 11, 2);
  assert.equal(footprint.positions, 8);
  batch.arrange(3, 8);
  append(batch, 2, 12, 7);
  for (const [slot, seq] of [[0, 10], [1, 11], [2, 12]]) assertHolds(batch, slot, seq);
  assert.equal(footprint.positions, 24);

  // A sequence prefilled in its own block joins as a fourth slot.
  const own = new KvBlock(shape, footprint);
  own.arrange(1, 8);
  append(own, 0, 13, 6);
  batch.arrange(4, 8);
  batch.copyFrom(own, 0, 3, 0, 6);
  batch.lengths[3] = 6;
  assertHolds(batch, 3, 13);

  // Slot 1 leaves: the last slot moves into its place.
  batch.removeSlot(1);
  assert.deepEqual(batch.lengths, [3, 6, 7]);
  assertHolds(batch, 0, 10);
  assertHolds(batch, 1, 13);
  assertHolds(batch, 2, 12);

  // The longest leaves, and the stride narrows in place; what was reached stays counted.
  batch.removeSlot(2);
  const reached = footprint.positions;
  batch.arrange(2, 6);
  assertHolds(batch, 0, 10);
  assertHolds(batch, 1, 13);
  assert.equal(footprint.positions, reached);
  assert.equal(batch.growthFor(2, 8), 0);
  assert.equal(batch.growthFor(10, 8), 80 - batch.footprintPositions);
});

test('writing or copying past the stride, or laying a slot out narrower than its rows, is refused', () => {
  const block = new KvBlock(shape, new Counter());
  block.arrange(1, 4);
  append(block, 0, 1, 3);
  assert.throws(() => block.writeRows(0, 0, 3, ...stepRows(1, 0, 3, 2), 0, 2, 2), RangeError);
  assert.throws(() => block.arrange(1, 2), RangeError);
  const other = new KvBlock(shape, new Counter());
  other.arrange(1, 2);
  assert.throws(() => other.copyFrom(block, 0, 0, 0, 3), RangeError);
});
