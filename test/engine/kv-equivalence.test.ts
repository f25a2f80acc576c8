/**
 * KV-cached generation must give the logits of a full recomputation, in both ways of updating
 * the KV buffers. tiny-exact and tiny-alt use accuracy_level 0 (fp32 MatMulNBits) so the
 * comparison can be tight; tiny uses the CPU export's accuracy_level 4 (int8 activations), where
 * only the argmax must agree.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DecoderSession } from '../../src/engine/decoder-session.ts';
import type { KvUpdate } from '../../src/engine/types.ts';
import { FIXTURES } from '../setup/model-paths.ts';

function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

interface StepComparison {
  diffs: number[];
  argmaxAgree: boolean[];
}

/**
 * Prefill 10 tokens, then 20 decode steps; each step is checked against a full pass of the
 * export's own graph (all positions, its GroupQueryAttention, no cache carried over).
 */
async function compareCachedWithFull(modelDir: string, kvGrowthChunk: number, kvUpdate: KvUpdate): Promise<StepComparison> {
  const session = await DecoderSession.create({ modelDir, threads: 2, kvGrowthChunk, kvUpdate });
  const reference = await DecoderSession.create({ modelDir, threads: 2, lastPositionLogits: false });
  try {
    assert.equal(session.description.kvUpdate, kvUpdate);
    assert.equal(reference.description.logits, 'all-positions');
    const prompt = [200022, 1234, 5678, 91011, 1213, 200020, 200021, 42, 4242, 200019];
    const seq = session.newSequence();
    const tokens = [...prompt];
    let cached = Float32Array.from(await session.forward(seq, prompt));
    const result: StepComparison = { diffs: [], argmaxAgree: [] };
    // Alternate greedy picks with fixed tokens so the sequence does not collapse into one repeated id.
    for (let step = 0; step < 20; step++) {
      const next = step % 3 === 2 ? 1000 + step * 7919 : argmax(cached);
      tokens.push(next);
      cached = Float32Array.from(await session.forward(seq, [next]));
      const full = await reference.forward(reference.newSequence(), tokens);
      result.diffs.push(maxAbsDiff(cached, full));
      result.argmaxAgree.push(argmax(cached) === argmax(full));
    }
    assert.equal(seq.length, prompt.length + 20);
    return result;
  } finally {
    await session.release();
    await reference.release();
  }
}

for (const kvUpdate of ['new-positions', 'in-place'] as const) {
  for (const fixture of ['tiny-exact', 'tiny-alt'] as const) {
    test(`${fixture}, ${kvUpdate} KV: cached logits equal the export's full recomputation within 1e-4 at every step`, async () => {
      // A growth chunk of 8 forces the KV buffers to be regrown (and copied) several times.
      const { diffs } = await compareCachedWithFull(FIXTURES[fixture], 8, kvUpdate);
      assert.equal(diffs.length, 20);
      for (const [step, d] of diffs.entries()) assert.ok(d <= 1e-4, `step ${step}: max abs diff ${d}`);
    });
  }
  test(`tiny (accuracy_level 4), ${kvUpdate} KV: cached argmax equals full recomputation at every step`, async () => {
    const { argmaxAgree } = await compareCachedWithFull(FIXTURES.tiny, 256, kvUpdate);
    assert.deepEqual(argmaxAgree, new Array(20).fill(true));
  });
}

for (const kvUpdate of ['new-positions', 'in-place'] as const) {
  test(`tiny-exact, ${kvUpdate} KV: a sequence on a released sequence's buffers gives the logits of one on fresh buffers`, async () => {
    const session = await DecoderSession.create({ modelDir: FIXTURES['tiny-exact'], threads: 1, kvGrowthChunk: 8, prefillChunk: 8, kvUpdate });
    try {
      const run = async (seq: ReturnType<typeof session.newSequence>, prompt: number[]) => {
        const out = [Float32Array.from(await session.forward(seq, prompt))];
        for (let i = 0; i < 6; i++) out.push(Float32Array.from(await session.forward(seq, [argmax(out[out.length - 1])])));
        return out;
      };
      // A longer first sequence, so the second one's buffers hold its rows past the second's length.
      const first = session.newSequence();
      await run(first, Array.from({ length: 37 }, (_, i) => 900 + i * 13));
      const used = first.allocatedPositions;
      first.release();
      const prompt = Array.from({ length: 11 }, (_, i) => 4000 + i * 17);
      const reused = session.newSequence();
      const onReused = await run(reused, prompt);
      assert.equal(reused.allocatedPositions, used);
      reused.release();
      session.dropSpareKv();
      const fresh = session.newSequence();
      const onFresh = await run(fresh, prompt);
      assert.ok(fresh.allocatedPositions < used);
      for (const [i, logits] of onFresh.entries()) assert.ok(maxAbsDiff(onReused[i], logits) <= 1e-6, `step ${i}: ${maxAbsDiff(onReused[i], logits)}`);
    } finally {
      await session.release();
    }
  });
}

test('the KV buffer grows with the sequence, never to the model context', async () => {
  const session = await DecoderSession.create({ modelDir: FIXTURES.tiny, threads: 1, kvGrowthChunk: 16 });
  try {
    assert.equal(session.info.contextLength, 131072);
    const seq = session.newSequence();
    await session.forward(seq, Array.from({ length: 20 }, (_, i) => 500 + i));
    assert.equal(seq.allocatedPositions, 32);
    for (let i = 0; i < 13; i++) await session.forward(seq, [7 + i]);
    assert.equal(seq.length, 33);
    assert.equal(seq.allocatedPositions, 48);
  } finally {
    await session.release();
  }
});

test('a sequence fills the context exactly, and not one position more', async () => {
  const session = await DecoderSession.create({ modelDir: FIXTURES.tiny, threads: 1, kvGrowthChunk: 16, prefillChunk: 16, contextLength: 40 });
  try {
    const seq = session.newSequence();
    await session.forward(seq, Array.from({ length: 39 }, (_, i) => 500 + i));
    await session.forward(seq, [7]);
    assert.equal(seq.length, 40);
    assert.equal(seq.allocatedPositions, 40);
    await assert.rejects(session.forward(seq, [8]), RangeError);
    await assert.rejects(session.forward(session.newSequence(), Array.from({ length: 41 }, (_, i) => 500 + i)), RangeError);
  } finally {
    await session.release();
  }
});

test('chunked prefill gives the logits of a single-pass prefill', async () => {
  const single = await DecoderSession.create({ modelDir: FIXTURES['tiny-exact'], threads: 1, prefillChunk: 4096 });
  const chunked = await DecoderSession.create({ modelDir: FIXTURES['tiny-exact'], threads: 1, prefillChunk: 16, kvGrowthChunk: 8 });
  try {
    const prompt = Array.from({ length: 45 }, (_, i) => 300 + i * 11);
    const a = Float32Array.from(await single.forward(single.newSequence(), prompt));
    const seq = chunked.newSequence();
    const b = await chunked.forward(seq, prompt);
    assert.equal(seq.length, 45);
    assert.ok(maxAbsDiff(a, b) <= 1e-4, `max abs diff ${maxAbsDiff(a, b)}`);
  } finally {
    await single.release();
    await chunked.release();
  }
});
