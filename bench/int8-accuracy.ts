/**
 * npx tsx bench/int8-accuracy.ts [-- --presets tiny-exact,tiny-rtn,tiny-outliers,phi4-mini-shape --prompt 64 --steps 64]
 *
 * What the int8 path costs in accuracy, against the int4 path it replaces for large steps, and
 * (on presets whose int4 weights are quantized from known fp32 ones) against fp32 weights, to set
 * it beside what the int4 quantization itself costs. For each preset, one sequence: a prompt read
 * in 16-token chunks, then `--steps` decode steps teacher-forced with the int4 path's greedy
 * tokens; every step's logits are compared: max and mean absolute difference, KL divergence of
 * the next-token distributions (float64), and whether the argmax agrees.
 * Writes bench/results/int8-accuracy.md and .json.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import onnxProto from 'onnx-proto';
import ort from 'onnxruntime-node';
import { BATCHED_METADATA_KEY, batchedDerivation } from '../src/engine/graphs/batched-model.ts';
import { derivedModelPath, ensureDerivedModel } from '../src/engine/graphs/derived-model.ts';
import { EMBEDDING_METADATA_KEY, EmbeddingReader } from '../src/engine/graphs/embedding-input.ts';
import { intAttribute, pruneDeadNodes } from '../src/engine/graphs/graph-edit.ts';
import { KvBlock } from '../src/engine/kv/kv-block.ts';
import { KvMemory } from '../src/engine/kv/kv-memory.ts';
import { loadModelConfig } from '../src/engine/model-config.ts';
import { loadDecoder } from '../src/engine/model-session.ts';
import { BatchedRunner } from '../src/engine/runners/batched-runner.ts';
import type { StepRunner } from '../src/engine/runners/step-runner.ts';
import { rtnFp32Weight } from '../src/synthetic/decoder-graph.ts';
import { ensureSyntheticModel } from '../src/synthetic/ensure.ts';
import { PRESETS, isPresetName, type ModelShape } from '../src/synthetic/presets.ts';

const { onnx } = onnxProto;
const { values } = parseArgs({
  options: {
    presets: { type: 'string', default: 'tiny-exact,tiny-rtn,tiny-outliers,phi4-mini-shape' },
    prompt: { type: 'string', default: '64' },
    steps: { type: 'string', default: '64' },
    threads: { type: 'string', default: '2' },
  },
});
const promptLength = Number(values.prompt);
const steps = Number(values.steps);
const threads = Number(values.threads);

/**
 * The batched graph with every int4 projection replaced by MatMul on the fp32 weights it quantizes;
 * lm_head stays int4 (the int8 graph keeps it int4 too, so both comparisons cover the same layers).
 */
function fp32Reference(modelDir: string, shape: ModelShape): string {
  const batched = ensureDerivedModel(join(modelDir, 'model.onnx'), batchedDerivation({ inputIds: 'input_ids', logits: 'logits' }));
  const model = onnx.ModelProto.decode(readFileSync(batched.path));
  const graph = model.graph!;
  for (const node of graph.node ?? []) {
    if (node.opType !== 'MatMulNBits' || node.output?.[0] === 'logits') continue;
    const [input, blob] = node.input ?? [];
    const name = (blob ?? '').replace(/\.weight_Q4$/, '');
    const k = intAttribute(node, 'K', 0);
    const n = intAttribute(node, 'N', 0);
    const w = rtnFp32Weight(shape, name, k, n);
    const wt = new Float32Array(k * n);
    for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) wt[c * n + r] = w[r * k + c];
    const weight = `${name}.fp32_reference`;
    graph.initializer!.push({ name: weight, dataType: onnx.TensorProto.DataType.FLOAT, dims: [k, n], rawData: new Uint8Array(wt.buffer) });
    Object.assign(node, { opType: 'MatMul', domain: '', input: [input, weight], attribute: [] });
  }
  pruneDeadNodes(graph);
  const path = derivedModelPath(join(modelDir, 'model.onnx'), 'fp32-reference');
  writeFileSync(path, onnx.ModelProto.encode(model).finish());
  return path;
}

async function referenceRunner(modelDir: string, path: string, shape: ModelShape): Promise<StepRunner> {
  const config = loadModelConfig(modelDir);
  const meta = ensureDerivedModel(config.modelPath, batchedDerivation({ inputIds: config.io.inputIds, logits: config.io.logits })).metadata;
  const session = await ort.InferenceSession.create(path, { intraOpNumThreads: threads, executionMode: 'sequential', graphOptimizationLevel: 'all' });
  const kvShape = { numLayers: shape.numLayers, numKvHeads: shape.numKvHeads, headSize: shape.headSize, valuesTransposed: true };
  return new BatchedRunner(session, config.io, kvShape, new EmbeddingReader(path, JSON.parse(meta[EMBEDDING_METADATA_KEY])), JSON.parse(meta[BATCHED_METADATA_KEY] ?? '{}'));
}

interface Comparison {
  maxAbs: number;
  meanAbs: number;
  klMean: number;
  klMax: number;
  argmaxAgreement: number;
}

function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

/** KL(p || q) of the softmaxes of two logit rows, in float64. */
function kl(p: Float32Array, q: Float32Array): number {
  const logZ = (x: Float32Array) => {
    let m = -Infinity;
    for (const v of x) m = Math.max(m, v);
    let s = 0;
    for (const v of x) s += Math.exp(v - m);
    return m + Math.log(s);
  };
  const zp = logZ(p);
  const zq = logZ(q);
  let d = 0;
  for (let i = 0; i < p.length; i++) {
    const lp = p[i] - zp;
    d += Math.exp(lp) * (lp - (q[i] - zq));
  }
  return Math.max(0, d);
}

function compare(a: Float32Array[], b: Float32Array[]): Comparison {
  let maxAbs = 0;
  let sumAbs = 0;
  let count = 0;
  const kls = a.map((row, i) => kl(row, b[i]));
  let agree = 0;
  a.forEach((row, i) => {
    for (let j = 0; j < row.length; j++) {
      const d = Math.abs(row[j] - b[i][j]);
      maxAbs = Math.max(maxAbs, d);
      sumAbs += d;
      count++;
    }
    if (argmax(row) === argmax(b[i])) agree++;
  });
  return { maxAbs, meanAbs: sumAbs / count, klMean: kls.reduce((x, y) => x + y, 0) / kls.length, klMax: Math.max(...kls), argmaxAgreement: agree / a.length };
}

/**
 * Logits of every step: the prompt's last position, then each decode step on `tokens` past the
 * prompt; tokens not given yet are chosen greedily from this runner's own logits.
 */
async function trace(runner: StepRunner, tokens: number[]): Promise<Float32Array[]> {
  const memory = new KvMemory(runner.kvShape, 64 * 1024 ** 3);
  const block = new KvBlock(runner.kvShape, memory);
  const stride = Math.ceil((promptLength + steps + 1) / 256) * 256;
  block.arrange(1, stride);
  const out: Float32Array[] = [];
  for (let at = 0; at < promptLength; at += 16) {
    const chunk = tokens.slice(at, Math.min(promptLength, at + 16));
    const rows = await runner.run({ prefill: { block, tokens: chunk, logits: at + 16 >= promptLength } });
    if (rows.length > 0) out.push(Float32Array.from(rows[0]));
  }
  for (let i = promptLength; i < promptLength + steps; i++) {
    if (i === tokens.length) tokens.push(argmax(out.at(-1)!));
    const [row] = await runner.run({ decode: { block, tokens: [tokens[i]] } });
    out.push(Float32Array.from(row));
  }
  block.clear();
  return out;
}

const results: Record<string, Record<string, Comparison>> = {};
for (const preset of values.presets.split(',')) {
  if (!isPresetName(preset)) throw new Error(`unknown preset ${preset}`);
  const dir = join('models', preset);
  await ensureSyntheticModel(preset, dir);
  const shape = PRESETS[preset] as ModelShape;
  const int4 = (await loadDecoder({ modelDir: dir, threads, int8Steps: 'off' })).runner;
  const int8 = (await loadDecoder({ modelDir: dir, threads, int8Steps: 'on', int8MinRows: 1 })).runner;
  // Teacher forcing: the int4 path's greedy continuation of a fixed prompt is every path's input.
  const tokens = Array.from({ length: promptLength }, (_, i) => 1000 + ((i * 7919) % 150000));
  const a = await trace(int4, tokens);
  const b = await trace(int8, tokens);
  results[preset] = { 'int8 vs int4': compare(a, b) };
  if (shape.rtnWeights) {
    const refPath = fp32Reference(dir, shape);
    const fp32 = await referenceRunner(dir, refPath, shape);
    const r = await trace(fp32, tokens);
    results[preset]['int4 vs fp32'] = compare(r, a);
    results[preset]['int8 vs fp32'] = compare(r, b);
    await fp32.release();
    rmSync(refPath, { force: true });
  }
  await int4.release();
  await int8.release();
  for (const [what, c] of Object.entries(results[preset])) {
    console.log(`${preset}, ${what}: max |d| ${c.maxAbs.toExponential(2)}, mean |d| ${c.meanAbs.toExponential(2)}, KL mean ${c.klMean.toExponential(2)} max ${c.klMax.toExponential(2)}, argmax agrees ${(100 * c.argmaxAgreement).toFixed(1)}%`);
  }
}

const lines = [
  `## int8 path accuracy, ${new Date().toISOString().slice(0, 10)}`,
  '',
  `One sequence per model: a ${promptLength}-token prompt in 16-token chunks, then ${steps} decode steps teacher-forced with the int4 path's greedy tokens (${steps + 1} logit rows compared).`,
  '',
  '| model | comparison | max abs logit diff | mean abs logit diff | KL mean | KL max | argmax agrees |',
  '|---|---|---|---|---|---|---|',
];
for (const [preset, comps] of Object.entries(results)) {
  for (const [what, c] of Object.entries(comps)) {
    lines.push(`| ${preset} | ${what} | ${c.maxAbs.toExponential(2)} | ${c.meanAbs.toExponential(2)} | ${c.klMean.toExponential(2)} | ${c.klMax.toExponential(2)} | ${(100 * c.argmaxAgreement).toFixed(1)}% |`);
  }
}
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/int8-accuracy.md', lines.join('\n') + '\n');
writeFileSync('bench/results/int8-accuracy.json', JSON.stringify({ promptLength, steps, results }, null, 2) + '\n');
console.log(`\n${lines.join('\n')}`);
