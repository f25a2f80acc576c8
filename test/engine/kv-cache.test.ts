import assert from 'node:assert/strict';
import test from 'node:test';
import { KvBufferPool, SequenceKvCache } from '../../src/engine/kv-cache.ts';

const shape = { numLayers: 2, numKvHeads: 3, headSize: 4 };
const { numKvHeads, headSize } = shape;

/** A value no other (layer, kind, head, position, dim) shares, so a misplaced row shows. */
const cell = (layer: number, kind: number, head: number, pos: number, dim: number) => layer * 1e5 + kind * 1e4 + head * 1e3 + pos * 10 + dim + 1;

/** Rows for `count` positions from `at`, in the layout the new-positions graph returns. */
function newRows(layer: number, at: number, count: number, transposed: boolean): [Float32Array, Float32Array] {
  const keys = new Float32Array(numKvHeads * count * headSize);
  const values = new Float32Array(numKvHeads * count * headSize);
  for (let h = 0; h < numKvHeads; h++) {
    for (let i = 0; i < count; i++) {
      for (let d = 0; d < headSize; d++) {
        keys[(h * count + i) * headSize + d] = cell(layer, 0, h, at + i, d);
        values[transposed ? (h * headSize + d) * count + i : (h * count + i) * headSize + d] = cell(layer, 1, h, at + i, d);
      }
    }
  }
  return [keys, values];
}

function assertHolds(seq: SequenceKvCache, transposed: boolean): void {
  const capacity = seq.visiblePositions;
  for (let layer = 0; layer < shape.numLayers; layer++) {
    const keys = seq.keyTensor(layer);
    const values = seq.valueTensor(layer);
    assert.deepEqual(keys.dims, [1, numKvHeads, capacity, headSize]);
    assert.deepEqual(values.dims, transposed ? [1, numKvHeads, headSize, capacity] : [1, numKvHeads, capacity, headSize]);
    const k = keys.data as Float32Array;
    const v = values.data as Float32Array;
    assert.equal(k.length, numKvHeads * capacity * headSize);
    for (let h = 0; h < numKvHeads; h++) {
      for (let pos = 0; pos < seq.length; pos++) {
        for (let d = 0; d < headSize; d++) {
          assert.equal(k[(h * capacity + pos) * headSize + d], cell(layer, 0, h, pos, d), `layer ${layer} key h${h} p${pos} d${d}`);
          const at = transposed ? (h * headSize + d) * capacity + pos : (h * capacity + pos) * headSize + d;
          assert.equal(v[at], cell(layer, 1, h, pos, d), `layer ${layer} value h${h} p${pos} d${d}`);
        }
      }
    }
  }
}

/** One step of `count` positions from `at`, as the engine runs it: fit, write every layer, advance; then check all rows. */
function append(seq: SequenceKvCache, at: number, count: number, transposed: boolean): void {
  seq.fit(at + count);
  for (let layer = 0; layer < shape.numLayers; layer++) seq.writeNew(layer, ...newRows(layer, at, count, transposed), at, count);
  seq.length = at + count;
  assertHolds(seq, transposed);
}

for (const transposed of [false, true]) {
  test(`KV cache (values ${transposed ? 'transposed' : 'as keys'}): a prompt allocated up front widens the visible layout chunk by chunk, in place`, () => {
    const seq = new SequenceKvCache(shape, 4, 64, transposed);
    seq.reserve(11);
    assert.equal(seq.allocatedPositions, 12);
    assert.equal(seq.visiblePositions, 0);
    const backing = seq.bytes;
    // Prefill in chunks of 3: the layout the graph sees follows the sequence, not the allocation.
    for (const [at, count, visible] of [[0, 3, 4], [3, 3, 8], [6, 3, 12], [9, 2, 12]]) {
      append(seq, at, count, transposed);
      assert.equal(seq.visiblePositions, visible);
    }
    assert.equal(seq.bytes, backing);
    // Decoding past the allocation grows the buffers, keeping every cached row.
    for (let at = 11; at < 18; at++) append(seq, at, 1, transposed);
    assert.equal(seq.allocatedPositions, 20);
    assert.equal(seq.visiblePositions, 20);
    assert.throws(() => seq.fit(65), RangeError);
  });
}

test('KV cache: writing past the visible layout is refused', () => {
  const seq = new SequenceKvCache(shape, 4, 64, true);
  seq.reserve(16);
  seq.fit(2);
  assert.throws(() => seq.writeNew(0, ...newRows(0, 3, 2, true), 3, 2), RangeError);
});

test("KV cache: a released sequence's buffers serve the next sequence that fits in them, and only that one", () => {
  const pool = new KvBufferPool();
  const first = new SequenceKvCache(shape, 4, 64, true, pool);
  first.reserve(10);
  append(first, 0, 10, true);
  const buffer = (first.keyTensor(0).data as Float32Array).buffer;
  first.release();
  first.release();
  assert.equal(pool.sparePositions, 12);

  const second = new SequenceKvCache(shape, 4, 64, true, pool);
  second.reserve(5);
  // The spare set, larger than asked: nothing allocated.
  assert.equal(second.allocatedPositions, 12);
  assert.equal(pool.sparePositions, 0);
  append(second, 0, 5, true);
  assert.equal((second.keyTensor(0).data as Float32Array).buffer, buffer);
  // Widening in place and growing past the pooled set keep the rows, as with fresh buffers.
  for (let at = 5; at < 14; at++) append(second, at, 1, true);
  assert.equal(second.allocatedPositions, 16);
  second.release();

  // A spare set too small for the next sequence is dropped, not kept beside the new allocation.
  const third = new SequenceKvCache(shape, 4, 64, true, pool);
  third.reserve(30);
  assert.equal(third.allocatedPositions, 32);
  assert.equal(pool.sparePositions, 0);
  third.release();
  pool.clear();
  assert.equal(pool.sparePositions, 0);
});
