/**
 * The synthetic model's folder and graph match the onnxruntime-genai CPU int4 export of
 * Phi-4-mini at every interface, and weights are a deterministic function of the seed.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import onnxProto from 'onnx-proto';
import { buildSyntheticModel } from '../../src/synthetic/build.ts';
import { ensureSyntheticModel, stampSyntheticModel } from '../../src/synthetic/ensure.ts';
import { FIXTURES } from '../setup/model-paths.ts';

const { onnx } = onnxProto;
const tmp = mkdtempSync(join(tmpdir(), 'synthetic-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const small = { vocabSize: 2048, contextLength: 8192, originalContextLength: 4096 };

type Graph = onnxProto.onnx.IGraphProto;
const attr = (node: onnxProto.onnx.INodeProto, name: string) => node.attribute?.find((a) => a.name === name);
const dims = (vi: onnxProto.onnx.IValueInfoProto | undefined) =>
  vi?.type?.tensorType?.shape?.dim?.map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue))) ?? [];

function loadGraph(dir: string): { model: onnxProto.onnx.ModelProto; graph: Graph } {
  const model = onnx.ModelProto.decode(readFileSync(join(dir, 'model.onnx')));
  return { model, graph: model.graph! };
}

test('the tiny fixture has the export\'s folder layout', () => {
  const files = readdirSync(FIXTURES.tiny);
  for (const f of ['model.onnx', 'model.onnx.data', 'genai_config.json', 'config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
    assert.ok(files.includes(f), `${f} missing`);
  }
  const genai = JSON.parse(readFileSync(join(FIXTURES.tiny, 'genai_config.json'), 'utf8'));
  assert.deepEqual(genai.model.eos_token_id, [200020, 199999]);
  assert.equal(genai.model.decoder.inputs.past_key_names, 'past_key_values.%d.key');
  assert.equal(genai.model.decoder.outputs.present_value_names, 'present.%d.value');
  assert.equal(genai.search.past_present_share_buffer, true);
  const tc = JSON.parse(readFileSync(join(FIXTURES.tiny, 'tokenizer_config.json'), 'utf8'));
  assert.match(tc.chat_template, /<\|assistant\|>/);
});

test('the graph is the genai builder\'s, node for node', () => {
  const { model, graph } = loadGraph(FIXTURES.tiny);
  assert.equal(Number(model.irVersion), 10);
  assert.deepEqual(model.opsetImport.map((o) => [o.domain, Number(o.version)]), [['', 21], ['com.microsoft', 1]]);

  const inputs = graph.input!.map((i) => i.name);
  assert.deepEqual(inputs.slice(0, 2), ['input_ids', 'attention_mask']);
  assert.deepEqual(inputs.slice(2), ['past_key_values.0.key', 'past_key_values.0.value', 'past_key_values.1.key', 'past_key_values.1.value']);
  assert.deepEqual(dims(graph.input![0]), ['batch_size', 'sequence_length']);
  assert.deepEqual(dims(graph.input![1]), ['batch_size', 'total_sequence_length']);
  assert.deepEqual(dims(graph.input![2]), ['batch_size', 2, 'past_sequence_length', 64]);
  assert.deepEqual(graph.output!.map((o) => o.name), ['logits', 'present.0.key', 'present.0.value', 'present.1.key', 'present.1.value']);
  assert.deepEqual(dims(graph.output![0]), ['batch_size', 'sequence_length', 200064]);
  assert.deepEqual(dims(graph.output![1]), ['batch_size', 2, 'total_sequence_length', 64]);

  const ops = graph.node!.map((n) => `${n.domain || 'ai.onnx'}:${n.opType}`);
  const count = (op: string) => ops.filter((o) => o === op).length;
  assert.equal(count('ai.onnx:Gather'), 2); // embedding + total_sequence_length
  assert.equal(count('ai.onnx:SimplifiedLayerNormalization'), 1); // layer 0 input norm
  assert.equal(count('com.microsoft:SkipSimplifiedLayerNormalization'), 4); // 2 post-attn, 1 input (layer 1), 1 final
  assert.equal(count('com.microsoft:MatMulNBits'), 2 * 5 + 1); // qkv, o, gate, up, down per layer + lm_head
  assert.equal(count('com.microsoft:GroupQueryAttention'), 2);
  assert.equal(count('ai.onnx:If'), 1);
  assert.equal(count('ai.onnx:Sigmoid'), 2);

  const gqa = graph.node!.find((n) => n.opType === 'GroupQueryAttention')!;
  assert.deepEqual(gqa.input, ['/model/layers.0/attn/qkv_proj/MatMul/output_0', '', '', 'past_key_values.0.key', 'past_key_values.0.value',
    '/model/attn_mask_reformat/attn_mask_subgraph/Sub/Cast/output_0', '/model/attn_mask_reformat/attn_mask_subgraph/Gather/Cast/output_0', 'cos_cache', 'sin_cache']);
  assert.deepEqual(gqa.output!.slice(1), ['present.0.key', 'present.0.value']);
  assert.equal(Number(attr(gqa, 'num_heads')?.i), 4);
  assert.equal(Number(attr(gqa, 'kv_num_heads')?.i), 2);
  assert.equal(Number(attr(gqa, 'do_rotary')?.i), 1);
  assert.equal(Number(attr(gqa, 'local_window_size')?.i), -1);

  const qkv = graph.node!.find((n) => n.name === '/model/layers.0/attn/qkv_proj/MatMul')!;
  assert.equal(Number(attr(qkv, 'K')?.i), 64);
  assert.equal(Number(attr(qkv, 'N')?.i), (4 + 2 * 2) * 64);
  assert.equal(Number(attr(qkv, 'bits')?.i), 4);
  assert.equal(Number(attr(qkv, 'block_size')?.i), 32);
  assert.equal(Number(attr(qkv, 'accuracy_level')?.i), 4);
  const lmHead = graph.node!.find((n) => n.output?.includes('logits'))!;
  assert.equal(lmHead.opType, 'MatMulNBits');
  assert.equal(Number(attr(lmHead, 'N')?.i), 200064);

  // LongRoPE: If(total_len > 4096) picks the 131072-row long cache, else the 4096-row short cache.
  const ifNode = graph.node!.find((n) => n.opType === 'If')!;
  const branchRows = (name: string) => Number(attr(ifNode, name)!.g!.output![0].type!.tensorType!.shape!.dim![0].dimValue);
  assert.equal(branchRows('then_branch'), 131072);
  assert.equal(branchRows('else_branch'), 4096);
  // Partial rotary 0.75 of head 64: cos/sin caches are 24 wide.
  assert.equal(Number(attr(ifNode, 'then_branch')!.g!.output![0].type!.tensorType!.shape!.dim![1].dimValue), 24);

  // Weights live in external data, as in the export.
  const embed = graph.initializer!.find((t) => t.name === 'model.embed_tokens.weight')!;
  assert.equal(embed.dataLocation, onnx.TensorProto.DataLocation.EXTERNAL);
  assert.deepEqual(embed.dims!.map(Number), [200064, 64]);
});

test('tiny-exact differs only in accuracy_level 0', () => {
  const { graph } = loadGraph(FIXTURES['tiny-exact']);
  for (const n of graph.node!.filter((x) => x.opType === 'MatMulNBits')) assert.equal(Number(attr(n, 'accuracy_level')?.i), 0);
});

test('weights are deterministic from the seed', async () => {
  const a = join(tmp, 'a');
  const b = join(tmp, 'b');
  const c = join(tmp, 'c');
  await buildSyntheticModel({ preset: 'tiny', outDir: a, overrides: { ...small, seed: 7 } });
  await buildSyntheticModel({ preset: 'tiny', outDir: b, overrides: { ...small, seed: 7 } });
  await buildSyntheticModel({ preset: 'tiny', outDir: c, overrides: { ...small, seed: 8 } });
  assert.equal(sha(join(a, 'model.onnx.data')), sha(join(b, 'model.onnx.data')));
  assert.equal(sha(join(a, 'model.onnx')), sha(join(b, 'model.onnx')));
  assert.notEqual(sha(join(a, 'model.onnx.data')), sha(join(c, 'model.onnx.data')));
});

test('a folder built by `npm run model:build` is reused where the preset is ensured; a seeded one is not', async () => {
  const dir = join(tmp, 'cli');
  await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/synthetic/cli.ts', '--preset', 'tiny', '--out', dir]);
  const builtAt = statSync(join(dir, 'model.onnx.data')).mtimeMs;
  assert.deepEqual(await ensureSyntheticModel('tiny', dir), { built: false });
  assert.equal(statSync(join(dir, 'model.onnx.data')).mtimeMs, builtAt);
  stampSyntheticModel('tiny', dir, 9); // what the CLI writes after --seed 9
  assert.deepEqual(await ensureSyntheticModel('tiny', dir), { built: true });
  assert.equal(JSON.parse(readFileSync(join(dir, 'synthetic-model.json'), 'utf8')).seed, undefined);
});
