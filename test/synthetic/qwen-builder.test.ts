/**
 * The second family's synthetic folder matches the onnxruntime-genai CPU int4 export of
 * Qwen2.5-Instruct: Qwen2's configs, and the builder's graph with its one difference from Phi's,
 * the packed q/k/v bias Add after the packed MatMulNBits; plain RoPE caches of theta 1e6.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import onnxProto from 'onnx-proto';
import { expectedWeightBytes } from '../../src/synthetic/build.ts';
import { PRESETS } from '../../src/synthetic/presets.ts';
import { FIXTURES } from '../setup/model-paths.ts';

const { onnx } = onnxProto;
const DIR = FIXTURES['tiny-qwen'];
const readJson = (name: string) => JSON.parse(readFileSync(join(DIR, name), 'utf8'));
const graph = () => onnx.ModelProto.decode(readFileSync(join(DIR, 'model.onnx'))).graph!;
const attr = (node: onnxProto.onnx.INodeProto, name: string) => node.attribute?.find((a) => a.name === name);

test('the folder has the export\'s files and Qwen2.5-Instruct\'s configs', () => {
  const files = readdirSync(DIR);
  for (const f of ['model.onnx', 'model.onnx.data', 'genai_config.json', 'config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json']) {
    assert.ok(files.includes(f), `${f} missing`);
  }
  const genai = readJson('genai_config.json');
  assert.equal(genai.model.type, 'qwen2');
  assert.equal(genai.model.bos_token_id, 151643);
  assert.deepEqual(genai.model.eos_token_id, [151645, 151643]);
  assert.equal(genai.model.pad_token_id, 151643);
  assert.equal(genai.model.vocab_size, 151936);
  assert.equal(genai.model.context_length, 32768);
  assert.deepEqual([genai.model.decoder.head_size, genai.model.decoder.num_attention_heads, genai.model.decoder.num_key_value_heads], [32, 14, 2]);
  assert.deepEqual([genai.search.do_sample, genai.search.temperature, genai.search.top_k, genai.search.top_p], [true, 0.7, 20, 0.8]);
  const hf = readJson('config.json');
  assert.deepEqual(hf.architectures, ['Qwen2ForCausalLM']);
  assert.equal(hf.model_type, 'qwen2');
  assert.equal(hf.rope_theta, 1000000);
  assert.equal(hf.rope_scaling, null);
  assert.equal(hf.tie_word_embeddings, true);
  assert.equal(hf.use_sliding_window, false);
  assert.match(readJson('tokenizer_config.json').chat_template, /<\|im_start\|>/);
});

test('each layer\'s packed QKV MatMulNBits feeds a packed bias Add, which feeds GroupQueryAttention', () => {
  const g = graph();
  const nodes = g.node!;
  const count = (op: string) => nodes.filter((n) => n.opType === op).length;
  assert.equal(count('MatMulNBits'), 3 * 5 + 1);
  assert.equal(count('GroupQueryAttention'), 3);
  assert.equal(count('If'), 0);
  assert.equal(count('Add'), 3);
  const qkvSize = (14 + 2 * 2) * 32;
  for (let layer = 0; layer < 3; layer++) {
    const add = nodes.find((n) => n.name === `/model/layers.${layer}/attn/qkv_proj/Add`)!;
    const bias = `model.layers.${layer}.attn.qkv_proj.Add.bias`;
    assert.deepEqual(add.input, [`/model/layers.${layer}/attn/qkv_proj/MatMul/output_0`, bias]);
    const tensor = g.initializer!.find((t) => t.name === bias)!;
    assert.deepEqual(tensor.dims!.map(Number), [qkvSize]);
    assert.equal(tensor.dataLocation, onnx.TensorProto.DataLocation.EXTERNAL);
    const gqa = nodes.find((n) => n.name === `/model/layers.${layer}/attn/GroupQueryAttention`)!;
    assert.equal(gqa.input![0], add.output![0]);
    assert.deepEqual(gqa.input!.slice(7), ['cos_cache', 'sin_cache']);
    assert.deepEqual(['num_heads', 'kv_num_heads', 'do_rotary'].map((a) => Number(attr(gqa, a)!.i)), [14, 2, 1]);
  }
  for (const n of nodes.filter((x) => x.opType === 'MatMulNBits')) assert.equal(Number(attr(n, 'accuracy_level')!.i), 0);
});

test('plain RoPE: one cos/sin cache over the whole head, theta 1e6, in the external data file', () => {
  const g = graph();
  const cos = g.initializer!.find((t) => t.name === 'cos_cache')!;
  assert.deepEqual(cos.dims!.map(Number), [32768, 16]);
  assert.equal(cos.dataLocation, onnx.TensorProto.DataLocation.EXTERNAL);
  const ext = (key: string) => Number(cos.externalData!.find((e) => e.key === key)!.value);
  const data = readFileSync(join(DIR, 'model.onnx.data')).subarray(ext('offset'), ext('offset') + ext('length'));
  const values = new Float32Array(Uint8Array.from(data).buffer);
  for (const [position, i] of [[1, 0], [1, 15], [1000, 1], [32767, 8]]) {
    const expected = Math.cos(position / Math.pow(1000000, (2 * i) / 32));
    assert.ok(Math.abs(values[position * 16 + i] - expected) < 1e-6, `cos[${position}, ${i}]`);
  }
});

test('the expected weight bytes (for progress) are what the build writes', () => {
  const data = readFileSync(join(DIR, 'model.onnx.data'));
  // The data file pads every tensor to 4 KiB; the weights fill all but that padding.
  const expected = expectedWeightBytes(PRESETS['tiny-qwen']);
  assert.ok(data.length >= expected && data.length - expected < 4096 * 64, `${data.length} vs ${expected}`);
});
