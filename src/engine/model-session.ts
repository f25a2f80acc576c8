/**
 * Loads a model folder into one ONNX Runtime session and the step runner that feeds it: the
 * derived batched graph by default, the export's own graph (one sequence per step) when asked or
 * when the rewrite cannot handle the export. Blocking: run it off the main thread.
 */
import { readFileSync } from 'node:fs';
import onnxProto from 'onnx-proto';
import ort from 'onnxruntime-node';
import { BATCHED_INPUTS, BATCHED_METADATA_KEY, batchedDerivation, newRowsName, prefillInputName, type BatchedGraphInfo, type BatchedIo } from './graphs/batched-model.ts';
import { ensureDerivedModel, type DerivedModel } from './graphs/derived-model.ts';
import { int8Derivation, int8WeightBytes } from './graphs/int8-model.ts';
import { EMBEDDING_METADATA_KEY, EmbeddingReader, INPUTS_EMBEDS, type EmbeddingTable } from './graphs/embedding-input.ts';
import { lastPositionDerivation } from './graphs/last-position-model.ts';
import { integerWeightsFor } from './cpu-features.ts';
import { calibrateInt8, type Int8Calibration } from './int8-calibration.ts';
import type { LoadProgress } from './load-progress.ts';
import type { KvShape } from './kv/kv-block.ts';
import { availableMemory } from './limits.ts';
import { ModelConfigError, loadModelConfig, type LoadedModelConfig } from './model-config.ts';
import { defaultThreads } from './threads.ts';
import { BatchedRunner } from './runners/batched-runner.ts';
import { ExportRunner } from './runners/export-runner.ts';
import type { StepRunner } from './runners/step-runner.ts';
import type { EngineOptions, KvUpdate, ModelInfo } from './types.ts';

export interface SessionDescription {
  modelFile: string;
  /** 'last-position' when a derived graph runs; otherwise why not. */
  logits: 'last-position' | 'all-positions';
  logitsNote?: string;
  /** 'batched': many sequences per step; 'in-place': the export's attention, one sequence per step. */
  kvUpdate: KvUpdate;
  /** Why the batched graph is not in use, when it was wanted. */
  kvNote?: string;
  executionProvider: 'cpu' | 'cuda';
  /** Why the requested device is not the one in use, when it is not. */
  deviceNote?: string;
  threads: number;
  graphOptimizationLevel: string;
  loadMs: number;
  /** The int8 path for steps of many rows. */
  int8: Int8Description;
}

export interface Int8Description {
  enabled: boolean;
  /** Steps of at least this many rows take it. */
  minRows?: number;
  /** Why it is off, or how the threshold was chosen. */
  note?: string;
  weightBytes?: number;
  calibration?: Int8Calibration;
}

export interface LoadedDecoder {
  info: ModelInfo;
  description: SessionDescription;
  runner: StepRunner;
}

/** What the batched derivations read from the folder's config besides the graph. */
function batchedIo(config: LoadedModelConfig): BatchedIo {
  return { inputIds: config.io.inputIds, logits: config.io.logits, contextLength: config.info.contextLength };
}

/** The batched graph by default; the export's attention (with last-position logits) when asked or when the rewrite fails. */
function deriveModel(config: LoadedModelConfig, opts: EngineOptions): { derived: DerivedModel; kvUpdate: KvUpdate; kvNote?: string } {
  const lastPosition = () => ensureDerivedModel(config.modelPath, lastPositionDerivation(config.io.logits));
  if (opts.kvUpdate === 'in-place') return { derived: lastPosition(), kvUpdate: 'in-place' };
  const derived = ensureDerivedModel(config.modelPath, batchedDerivation(batchedIo(config)));
  if (derived.fallbackReason === undefined) return { derived, kvUpdate: 'batched' };
  return { derived: lastPosition(), kvUpdate: 'in-place', kvNote: derived.fallbackReason };
}

function sessionOptions(opts: EngineOptions, threads: number, providers: ('cpu' | 'cuda')[] = ['cpu']): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: providers,
    intraOpNumThreads: threads,
    // One graph at a time: parallelism lives inside each op, not across ops.
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: opts.graphOptimizationLevel ?? 'all',
    // ORT's arena keeps the largest scratch a step ever needed (a long prompt's attention) for
    // good; without it that memory goes back after the step, at no measurable cost per step.
    enableCpuMemArena: false,
  };
}

async function createSession(modelFile: string, opts: EngineOptions, threads: number): Promise<{ session: ort.InferenceSession; executionProvider: 'cpu' | 'cuda'; deviceNote?: string }> {
  const options = (providers: ('cpu' | 'cuda')[]) => sessionOptions(opts, threads, providers);
  if (opts.device === 'cuda') {
    try {
      return { session: await ort.InferenceSession.create(modelFile, options(['cuda', 'cpu'])), executionProvider: 'cuda' };
    } catch (err) {
      const deviceNote = `CUDA execution provider unavailable (${(err as Error).message.split('\n')[0]}); running on CPU`;
      return { session: await ort.InferenceSession.create(modelFile, options(['cpu'])), executionProvider: 'cpu', deviceNote };
    }
  }
  return { session: await ort.InferenceSession.create(modelFile, options(['cpu'])), executionProvider: 'cpu' };
}

function requireNames(have: readonly string[], names: string[], kind: string, file: string): void {
  const set = new Set(have);
  for (const name of names) if (!set.has(name)) throw new ModelConfigError(`model ${kind} "${name}" is not in ${file}`);
}

/** Refuses exports the engine cannot feed: missing inputs, unknown extra inputs, non-fp32 KV. */
function checkSession(session: ort.InferenceSession, config: LoadedModelConfig, description: SessionDescription): void {
  const { io, info } = config;
  const layers = Array.from({ length: info.numLayers }, (_, i) => i);
  const required = layers.flatMap((i) => [io.pastKey(i), io.pastValue(i)]);
  if (description.kvUpdate === 'batched') {
    required.push(INPUTS_EMBEDS, ...Object.values(BATCHED_INPUTS), ...layers.flatMap((i) => [prefillInputName(io.pastKey(i)), prefillInputName(io.pastValue(i))]));
    requireNames(session.outputNames, layers.flatMap((i) => [newRowsName(io.presentKey(i)), newRowsName(io.presentValue(i))]), 'output', description.modelFile);
  } else {
    required.push(io.inputIds, io.attentionMask);
  }
  requireNames(session.inputNames, required, 'input', description.modelFile);
  const known = new Set([...required, ...(io.positionIds ? [io.positionIds] : [])]);
  const unsupported = session.inputNames.filter((n) => !known.has(n));
  if (unsupported.length > 0) throw new ModelConfigError(`unsupported model input(s): ${unsupported.join(', ')}`);
  const pastType = session.inputMetadata.find((m) => m.name === io.pastKey(0));
  if (pastType?.isTensor && pastType.type !== 'float32') {
    throw new ModelConfigError(`unsupported KV cache type ${pastType.type} in ${config.modelPath}: this engine runs fp32-KV exports (the CPU variant)`);
  }
  requireNames(session.outputNames, [io.logits], 'output', description.modelFile);
}

const GiB = 1024 ** 3;
const { onnx } = onnxProto;

/**
 * The int8 session for steps of many rows, when wanted, derivable, worth it here (measured) and
 * affordable: `auto` needs room for its weights beside the KV budget (or 2 GiB of KV) plus 0.5 GiB.
 */
async function loadInt8(config: LoadedModelConfig, opts: EngineOptions, threads: number, hooks: LoadHooks): Promise<{ session?: ort.InferenceSession; description: Int8Description }> {
  const mode = opts.int8Steps ?? 'auto';
  if (mode === 'off') return { description: { enabled: false, note: 'off (--int8-steps off)' } };
  // Before deriving anything: the int8 weights are written to disk once, only if they may be used.
  const weightBytes = int8WeightBytes(onnx.ModelProto.decode(readFileSync(config.modelPath)), new Set([config.io.logits]));
  const needed = weightBytes + (opts.kvCacheBytes ?? 2 * GiB) + GiB / 2;
  const available = availableMemory();
  if (mode === 'auto' && available < needed) {
    return { description: { enabled: false, weightBytes, note: `its ${(weightBytes / GiB).toFixed(1)} GiB of weights do not fit beside the KV budget (${(available / GiB).toFixed(1)} GiB available)` } };
  }
  const progress = hooks.progress;
  const weightType = integerWeightsFor();
  const derived = ensureDerivedModel(
    config.modelPath,
    int8Derivation(batchedIo(config), weightType),
    progress && ((done, total) => progress({ task: 'writing int8 weights (once)', done, total, unit: 'bytes' })),
  );
  if (derived.fallbackReason !== undefined) return { description: { enabled: false, note: `the int8 graph cannot be derived: ${derived.fallbackReason}` } };
  const options = sessionOptions(opts, threads);
  let calibration: Int8Calibration | undefined;
  let minRows = opts.int8MinRows;
  if (minRows === undefined) {
    calibration = await calibrateInt8(config.modelPath, options, weightType);
    minRows = calibration.minRows;
    if (minRows === undefined && mode === 'auto') return { description: { enabled: false, weightBytes, calibration, note: 'int8 measured no faster than int4 here at any step size' } };
  }
  const session = await ort.InferenceSession.create(derived.path, options);
  const chosen = opts.int8MinRows !== undefined ? '--int8-min-rows' : minRows === undefined ? 'on (--int8-steps on) although it measured no faster' : 'measured at load';
  const note = weightType === 'u8' ? `${chosen}; u8 weights (no VNNI on this CPU)` : chosen;
  return { session, description: { enabled: true, minRows: minRows ?? 1, weightBytes, calibration, note } };
}

/** Callbacks of a load (plain functions: loadDecoder runs in the engine's worker). */
export interface LoadHooks {
  /** Long one-off work (the first int8 weights write), reported as it goes. */
  progress?: (progress: LoadProgress) => void;
}

export async function loadDecoder(opts: EngineOptions, hooks: LoadHooks = {}): Promise<LoadedDecoder> {
  const config = loadModelConfig(opts.modelDir);
  const threads = opts.threads && opts.threads > 0 ? opts.threads : defaultThreads();
  const t0 = performance.now();
  const { derived, kvUpdate, kvNote } = deriveModel(config, opts);
  const modelFile = derived.path;
  const { session, executionProvider, deviceNote } = await createSession(modelFile, opts, threads);
  const description: SessionDescription = {
    modelFile,
    logits: modelFile === config.modelPath ? 'all-positions' : 'last-position',
    logitsNote: derived.fallbackReason,
    kvUpdate,
    kvNote,
    executionProvider,
    deviceNote,
    threads,
    graphOptimizationLevel: opts.graphOptimizationLevel ?? 'all',
    loadMs: performance.now() - t0,
    int8: { enabled: false, note: 'the int8 path needs the batched graph' },
  };
  try {
    checkSession(session, config, description);
  } catch (err) {
    await session.release();
    throw err;
  }
  const { numLayers, numKvHeads, headSize } = config.info;
  const shape: KvShape = { numLayers, numKvHeads, headSize, valuesTransposed: kvUpdate === 'batched' };
  const contextLength = Math.min(config.info.contextLength, opts.contextLength ?? Infinity);
  const info: ModelInfo = { ...config.info, contextLength };
  if (kvUpdate !== 'batched') return { info, description, runner: new ExportRunner(session, config.io, shape) };
  const table = JSON.parse(derived.metadata[EMBEDDING_METADATA_KEY] ?? 'null') as EmbeddingTable | null;
  if (!table) {
    await session.release();
    throw new ModelConfigError(`${modelFile} records no embedding table`);
  }
  const graph = JSON.parse(derived.metadata[BATCHED_METADATA_KEY] ?? '{}') as BatchedGraphInfo;
  const int8 = await loadInt8(config, opts, threads, hooks);
  description.int8 = int8.description;
  description.loadMs = performance.now() - t0;
  const wide = int8.session ? { session: int8.session, minRows: int8.description.minRows ?? 1 } : undefined;
  return { info, description, runner: new BatchedRunner(session, config.io, shape, new EmbeddingReader(modelFile, table), graph, wide) };
}
