/**
 * The derived batched graph: written beside the export (which it leaves alone), it reads KV blocks
 * as inputs and returns only the step's new rows; LongRoPE's switch to its long cache happens per
 * sequence as in the export; Qwen2's QKV bias and single full-width cache carry over; and a graph it
 * does not reproduce keeps the export's attention.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import onnxProto from 'onnx-proto';
import { Engine } from '../../src/engine/engine.ts';
import { BATCHED_INPUTS, BATCHED_METADATA_KEY, newRowsName, prefillInputName } from '../../src/engine/graphs/batched-model.ts';
import { derivedModelPath } from '../../src/engine/graphs/derived-model.ts';
import { Stepper, maxAbsDiff } from '../helpers/decoder.ts';
import { FIXTURES } from '../setup/model-paths.ts';

const { onnx } = onnxProto;

test('the batched graph sits beside the export, reads KV blocks as inputs and returns only new rows', async () => {
  const original = join(FIXTURES['tiny-exact'], 'model.onnx');
  const before = statSync(original);
  const stepper = await Stepper.open({ modelDir: FIXTURES['tiny-exact'], threads: 1 });
  try {
    assert.equal(stepper.decoder.description.kvUpdate, 'batched');
    assert.equal(stepper.decoder.description.kvNote, undefined);
    assert.equal(stepper.decoder.description.modelFile, derivedModelPath(original, 'batched'));
  } finally {
    await stepper.release();
  }
  const graph = onnx.ModelProto.decode(readFileSync(derivedModelPath(original, 'batched'))).graph!;
  assert.equal(graph.node!.filter((n) => n.opType === 'GroupQueryAttention').length, 0);
  assert.deepEqual(graph.output!.map((o) => o.name), ['logits', ...[0, 1].flatMap((i) => [newRowsName(`present.${i}.key`), newRowsName(`present.${i}.value`)])]);
  const dims = (name: string, list = graph.input!) => list.find((v) => v.name === name)!.type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue));
  // New rows of the whole step: [1, kv_heads, rows, head_size] and values transposed.
  assert.deepEqual(dims(newRowsName('present.0.key'), graph.output!), [1, 2, 'step_rows', 64]);
  assert.deepEqual(dims(newRowsName('present.0.value'), graph.output!), [1, 2, 64, 'step_rows']);
  // The decode batch's block and the prefilling sequence's block.
  assert.deepEqual(dims('past_key_values.0.key'), ['decode_slots', 2, 'decode_capacity', 64]);
  assert.deepEqual(dims(prefillInputName('past_key_values.0.value')), [1, 2, 64, 'prefill_capacity']);
  const inputs = graph.input!.map((i) => i.name);
  for (const name of [...Object.values(BATCHED_INPUTS), 'inputs_embeds']) assert.ok(inputs.includes(name), name);
  // Embeddings come in as an input (the engine reads the rows itself); the mask the export derived lengths from is gone.
  for (const gone of ['input_ids', 'attention_mask']) assert.ok(!inputs.includes(gone), gone);
  assert.ok(!graph.initializer!.some((t) => t.name === 'model.embed_tokens.weight'));
  const after = statSync(original);
  assert.equal(after.mtimeMs, before.mtimeMs);
  // The weights stay in the export's external data file.
  assert.ok(statSync(derivedModelPath(original, 'batched')).size < before.size + 64 * 1024);
});

test("LongRoPE: a sequence past 4,096 positions switches to the long cache as the export's attention does, beside one that does not", async () => {
  const dir = FIXTURES['tiny-exact'];
  const batched = await Stepper.open({ modelDir: dir, threads: 2 }, 256);
  const inPlace = await Stepper.open({ modelDir: dir, threads: 2, kvUpdate: 'in-place' }, 256);
  try {
    const long = Array.from({ length: 4090 }, (_, i) => 1000 + ((i * 7919) % 150000));
    const short = [5, 6, 7, 8];
    const [a, b] = [batched.block(), inPlace.block()];
    const diffs = [maxAbsDiff(await batched.prefill(a, long, 1000), await inPlace.prefill(b, long, 1000))];
    // The short sequence decodes in the same steps, in the slot after the long one.
    const batch = batched.block();
    batch.arrange(2, 4352);
    batch.copyFrom(a, 0, 0, 0, long.length);
    batch.lengths[0] = long.length;
    const shortAlone = batched.block();
    await batched.prefill(shortAlone, short);
    batch.copyFrom(shortAlone, 0, 1, 0, short.length);
    batch.lengths[1] = short.length;
    const shortRef = batched.block();
    await batched.prefill(shortRef, short);
    for (let step = 0; step < 12; step++) {
      const [la, ls] = await batched.decode(batch, [300 + step, 400 + step]);
      const [lb] = await inPlace.decode(b, [300 + step]);
      const [lr] = await batched.decode(shortRef, [400 + step]);
      diffs.push(maxAbsDiff(la, lb), maxAbsDiff(ls, lr));
    }
    assert.equal(batch.lengths[0], 4102);
    for (const [i, d] of diffs.entries()) assert.ok(d <= 1e-4, `comparison ${i}: max abs diff ${d}`);
  } finally {
    await batched.release();
    await inPlace.release();
  }
});

test('a graph the rewrite does not reproduce (sliding window) keeps the export attention, one sequence at a time, and says why', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sliding-window-'));
  try {
    const model = onnx.ModelProto.decode(readFileSync(join(FIXTURES['tiny-alt'], 'model.onnx')));
    for (const node of model.graph!.node!) {
      if (node.opType !== 'GroupQueryAttention') continue;
      // A real window: narrower than tiny-alt's 4,096-position context (a wider one never slides).
      node.attribute!.find((a) => a.name === 'local_window_size')!.i = 1024;
    }
    writeFileSync(join(dir, 'model.onnx'), onnx.ModelProto.encode(model).finish());
    // A copy, not a symlink: ORT refuses external data that resolves outside the model folder.
    for (const f of ['model.onnx.data', 'genai_config.json']) copyFileSync(join(FIXTURES['tiny-alt'], f), join(dir, f));
    const engine = await Engine.load({ modelDir: dir, threads: 1 });
    try {
      assert.equal(engine.session.kvUpdate, 'in-place');
      assert.match(engine.session.kvNote ?? '', /sliding-window attention is not supported/);
      assert.equal(engine.session.logits, 'last-position');
    } finally {
      await engine.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tiny-qwen: the batched graph keeps the QKV bias Adds before its Split and rotates by the one full-width cache', async () => {
  const original = join(FIXTURES['tiny-qwen'], 'model.onnx');
  const stepper = await Stepper.open({ modelDir: FIXTURES['tiny-qwen'], threads: 1 });
  try {
    assert.equal(stepper.decoder.description.kvUpdate, 'batched');
    assert.equal(stepper.decoder.description.kvNote, undefined);
  } finally {
    await stepper.release();
  }
  const model = onnx.ModelProto.decode(readFileSync(derivedModelPath(original, 'batched')));
  const graph = model.graph!;
  const nodes = graph.node!;
  for (let layer = 0; layer < 3; layer++) {
    const add = nodes.find((n) => n.name === `/model/layers.${layer}/attn/qkv_proj/Add`);
    assert.ok(add, `layer ${layer}: bias Add missing`);
    assert.deepEqual(add.input, [`/model/layers.${layer}/attn/qkv_proj/MatMul/output_0`, `model.layers.${layer}.attn.qkv_proj.Add.bias`]);
    const split = nodes.find((n) => n.name === `/model/layers.${layer}/attn/GroupQueryAttention/batched/Split`)!;
    assert.equal(split.input![0], add.output![0]);
  }
  // No If, no rope switch: every rotation reads the export's own cos_cache/sin_cache, over the whole head (32).
  const rotary = nodes.filter((n) => n.opType === 'RotaryEmbedding');
  assert.equal(rotary.length, 2 * 3);
  for (const n of rotary) {
    assert.deepEqual(n.input!.slice(2), ['cos_cache', 'sin_cache']);
    assert.equal(Number(n.attribute!.find((a) => a.name === 'rotary_embedding_dim')!.i), 32);
  }
  const cache = graph.initializer!.find((t) => t.name === 'cos_cache')!;
  assert.deepEqual(cache.dims!.map(Number), [32768, 16]);
  assert.equal(cache.dataLocation, onnx.TensorProto.DataLocation.EXTERNAL);
  assert.equal(model.metadataProps.find((p) => p.key === BATCHED_METADATA_KEY)?.value, '{}');
});

test("a window as wide as the context (what the builder writes from an older transformers' Qwen2 config) keeps the batched graph, with the same logits", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'full-window-'));
  const source = FIXTURES['tiny-qwen'];
  try {
    const model = onnx.ModelProto.decode(readFileSync(join(source, 'model.onnx')));
    for (const node of model.graph!.node!) {
      if (node.opType === 'GroupQueryAttention') node.attribute!.find((a) => a.name === 'local_window_size')!.i = 32768;
    }
    writeFileSync(join(dir, 'model.onnx'), onnx.ModelProto.encode(model).finish());
    for (const f of ['model.onnx.data', 'genai_config.json']) copyFileSync(join(source, f), join(dir, f));
    const prompt = Array.from({ length: 21 }, (_, i) => 500 + i * 613);
    const logits: Float32Array[] = [];
    for (const modelDir of [dir, source]) {
      const stepper = await Stepper.open({ modelDir, threads: 1 });
      try {
        assert.equal(stepper.decoder.description.kvUpdate, 'batched');
        logits.push(await stepper.prefill(stepper.block(), prompt));
      } finally {
        await stepper.release();
      }
    }
    assert.equal(maxAbsDiff(logits[0], logits[1]), 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
