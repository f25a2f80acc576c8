/**
 * The derived new-positions graph: the export's attention rewritten to read the KV buffers as
 * inputs and return only the new rows. It must give the export's logits, leave the original
 * file alone, and fall back to the export's attention when the graph uses something it does not
 * reproduce.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import onnxProto from 'onnx-proto';
import { DecoderSession } from '../../src/engine/decoder-session.ts';
import { derivedModelPath } from '../../src/engine/derived-model.ts';
import { Engine } from '../../src/engine/engine.ts';
import { newPositionsName } from '../../src/engine/new-positions-model.ts';
import { FIXTURES } from '../setup/model-paths.ts';

const { onnx } = onnxProto;

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

test('the derived graph sits beside the export, reads KV as inputs and returns only new rows', async () => {
  const original = join(FIXTURES['tiny-exact'], 'model.onnx');
  const before = statSync(original);
  const session = await DecoderSession.create({ modelDir: FIXTURES['tiny-exact'], threads: 1 });
  try {
    assert.equal(session.description.kvUpdate, 'new-positions');
    assert.equal(session.description.kvNote, undefined);
    assert.equal(session.description.logits, 'last-position');
    assert.equal(session.description.modelFile, derivedModelPath(original, 'new-positions'));
    await assert.rejects(session.forward(session.newSequence(), [5, 200064]), /token id 200064 is outside the vocabulary of 200064/);
  } finally {
    await session.release();
  }
  const derived = onnx.ModelProto.decode(readFileSync(derivedModelPath(original, 'new-positions')));
  const graph = derived.graph!;
  assert.equal(graph.node!.filter((n) => n.opType === 'GroupQueryAttention').length, 0);
  const outputs = graph.output!.map((o) => o.name);
  assert.deepEqual(outputs, ['logits', ...[0, 1].flatMap((i) => [newPositionsName(`present.${i}.key`), newPositionsName(`present.${i}.value`)])]);
  // [batch, kv_heads, new positions, head_size]: the rows of this step only.
  const dims = graph.output![1].type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue));
  assert.deepEqual(dims, ['batch_size', 2, 'sequence_length', 64]);
  // Token embeddings come in as an input (the engine reads the rows itself), not from a Gather
  // over the mapped table.
  const inputs = graph.input!.map((i) => i.name);
  assert.ok(inputs.includes('inputs_embeds'));
  assert.ok(!inputs.includes('input_ids'));
  assert.ok(!graph.initializer!.some((t) => t.name === 'model.embed_tokens.weight'));
  const after = statSync(original);
  assert.equal(after.mtimeMs, before.mtimeMs);
  // The weights stay in the export's external data file.
  assert.ok(statSync(derivedModelPath(original, 'new-positions')).size < before.size + 64 * 1024);
});

test('chunked prefill with a past, and LongRoPE switching to its long cache, match the export attention', async () => {
  // tiny-exact has Phi-4's LongRoPE: past 4,096 positions the long rotary cache applies to new positions.
  const dir = FIXTURES['tiny-exact'];
  const fresh = await DecoderSession.create({ modelDir: dir, threads: 2, prefillChunk: 1000, kvGrowthChunk: 100 });
  const inPlace = await DecoderSession.create({ modelDir: dir, threads: 2, prefillChunk: 1000, kvGrowthChunk: 100, kvUpdate: 'in-place' });
  try {
    const prompt = Array.from({ length: 4090 }, (_, i) => 1000 + ((i * 7919) % 150000));
    const a = fresh.newSequence();
    const b = inPlace.newSequence();
    let la = Float32Array.from(await fresh.forward(a, prompt));
    let lb = await inPlace.forward(b, prompt);
    const diffs = [maxAbsDiff(la, lb)];
    for (let step = 0; step < 12; step++) {
      la = Float32Array.from(await fresh.forward(a, [300 + step]));
      lb = await inPlace.forward(b, [300 + step]);
      diffs.push(maxAbsDiff(la, lb));
    }
    assert.equal(a.length, 4102);
    for (const [step, d] of diffs.entries()) assert.ok(d <= 1e-4, `step ${step}: max abs diff ${d}`);
  } finally {
    await fresh.release();
    await inPlace.release();
  }
});

test('a graph the rewrite does not reproduce (sliding window) keeps the export attention and says why', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sliding-window-'));
  try {
    const model = onnx.ModelProto.decode(readFileSync(join(FIXTURES['tiny-alt'], 'model.onnx')));
    for (const node of model.graph!.node!) {
      if (node.opType !== 'GroupQueryAttention') continue;
      const window = node.attribute!.find((a) => a.name === 'local_window_size')!;
      window.i = 1_000_000;
    }
    writeFileSync(join(dir, 'model.onnx'), onnx.ModelProto.encode(model).finish());
    // A copy, not a symlink: ORT refuses external data that resolves outside the model folder.
    for (const f of ['model.onnx.data', 'genai_config.json']) {
      copyFileSync(join(FIXTURES['tiny-alt'], f), join(dir, f));
    }
    const engine = await Engine.load({ modelDir: dir, threads: 1 });
    try {
      const session = engine.session;
      assert.equal(session.kvUpdate, 'in-place');
      assert.match(session.kvNote ?? '', /sliding-window attention is not supported/);
      assert.equal(session.logits, 'last-position');
    } finally {
      await engine.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
