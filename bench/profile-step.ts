/**
 * npx tsx bench/profile-step.ts [-- --model-dir models/phi4-mini-shape --threads 2 --context 128]
 *
 * onnxruntime's own profiler over batched-graph steps: a one-token decode step, eight decode slots,
 * and two decode slots with a 16-token prompt chunk riding along. Prints ms per step by operator
 * type (the mean over the profiled steps) so the cost of each part of a step is visible.
 */
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { batchedDerivation } from '../src/engine/graphs/batched-model.ts';
import { ensureDerivedModel } from '../src/engine/graphs/derived-model.ts';
import { EMBEDDING_METADATA_KEY, EmbeddingReader } from '../src/engine/graphs/embedding-input.ts';
import { KvBlock } from '../src/engine/kv/kv-block.ts';
import { KvMemory } from '../src/engine/kv/kv-memory.ts';
import { loadModelConfig } from '../src/engine/model-config.ts';
import { BatchedRunner } from '../src/engine/runners/batched-runner.ts';

const { values } = parseArgs({
  options: {
    'model-dir': { type: 'string', default: 'models/phi4-mini-shape' },
    threads: { type: 'string', default: '2' },
    context: { type: 'string', default: '128' },
    steps: { type: 'string', default: '4' },
  },
});
const config = loadModelConfig(values['model-dir']);
const context = Number(values.context);
const steps = Number(values.steps);
const derived = ensureDerivedModel(config.modelPath, batchedDerivation({ inputIds: config.io.inputIds, logits: config.io.logits }));
if (derived.fallbackReason) throw new Error(derived.fallbackReason);

interface ProfileEvent {
  cat: string;
  name: string;
  dur: number;
  args?: { op_name?: string };
}

async function profile(label: string, decode: number, prefill: number): Promise<void> {
  const prefix = `/tmp/phi4-step-${process.pid}-${decode}-${prefill}`;
  const session = await ort.InferenceSession.create(derived.path, {
    intraOpNumThreads: Number(values.threads),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    enableCpuMemArena: false,
    enableProfiling: true,
    profileFilePrefix: prefix,
  });
  const { numLayers, numKvHeads, headSize } = config.info;
  const shape = { numLayers, numKvHeads, headSize, valuesTransposed: true };
  const table = JSON.parse(derived.metadata[EMBEDDING_METADATA_KEY]);
  const runner = new BatchedRunner(session, config.io, shape, new EmbeddingReader(derived.path, table), JSON.parse(derived.metadata['phi4_server.batched'] ?? '{}'));
  const memory = new KvMemory(shape, 64 * 1024 ** 3);
  const batch = new KvBlock(shape, memory);
  const chunk = new KvBlock(shape, memory);
  const stride = Math.ceil((context + prefill + 1) / 256) * 256;
  if (decode > 0) batch.arrange(decode, stride);
  if (prefill > 0) chunk.arrange(1, stride);
  for (let i = 0; i <= steps; i++) {
    batch.lengths.fill(context);
    chunk.lengths.fill(context);
    await runner.run({
      ...(decode > 0 ? { decode: { block: batch, tokens: Array.from({ length: decode }, (_, j) => 1000 + j) } } : {}),
      ...(prefill > 0 ? { prefill: { block: chunk, tokens: Array.from({ length: prefill }, (_, j) => 2000 + j), logits: true } } : {}),
    });
  }
  session.endProfiling();
  // onnxruntime writes <prefix>_<timestamp>.json and does not say which.
  const name = readdirSync('/tmp').find((f) => f.startsWith(prefix.slice('/tmp/'.length)) && f.endsWith('.json'));
  if (!name) throw new Error('onnxruntime wrote no profile');
  const file = join('/tmp', name);
  const events = JSON.parse(readFileSync(file, 'utf8')) as ProfileEvent[];
  rmSync(file, { force: true });
  await runner.release();
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run');
  // The first run warms up; the rest are profiled.
  const from = runs.length > 1 ? runs[1] : undefined;
  const byOp = new Map<string, number>();
  let total = 0;
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || !e.args?.op_name) continue;
    if (from && (e as unknown as { ts: number }).ts < (from as unknown as { ts: number }).ts) continue;
    byOp.set(e.args.op_name, (byOp.get(e.args.op_name) ?? 0) + e.dur);
    total += e.dur;
  }
  const perStep = (us: number) => us / 1000 / steps;
  const stepMs = runs.slice(1).reduce((a, r) => a + r.dur, 0) / 1000 / Math.max(1, runs.length - 1);
  console.log(`\n${label}: ${stepMs.toFixed(1)} ms per step (model_run), ${perStep(total).toFixed(1)} ms in kernels`);
  for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1])) {
    if (perStep(us) >= 0.1) console.log(`  ${op.padEnd(36)} ${perStep(us).toFixed(2).padStart(8)} ms  ${((100 * us) / total).toFixed(1).padStart(5)}%`);
  }
}

await profile(`1 decoding sequence at ${context} context`, 1, 0);
await profile(`8 decoding sequences at ${context} context`, 8, 0);
await profile(`2 decoding sequences + a 16-token prompt chunk at ${context} context`, 2, 16);
