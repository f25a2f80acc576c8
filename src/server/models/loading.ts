/**
 * Loading one model (engine worker and tokenizer) into a serving context, and the memory
 * arithmetic the registry decides with: a model's footprint is its weights on disk plus its KV
 * budget. With several models and no --kv-cache-gib, each gets an equal share of the memory
 * budget (less its weights) for KV.
 */
import { totalmem } from 'node:os';
import type { ServerConfig } from '../../config.ts';
import { Engine } from '../../engine/engine.ts';
import type { Int8Calibration } from '../../engine/int8-calibration.ts';
import type { EngineOptions } from '../../engine/types.ts';
import { ChatTokenizer } from '../../tokenizer/tokenizer.ts';
import { Admission } from '../admission.ts';
import { systemFingerprint, type GenerationBackend, type ServingContext, type TokenizerLike } from '../serving/context.ts';
import { ServingEvents } from '../trace.ts';
import type { ModelSource } from './catalog.ts';

export interface LoadedModel {
  engine: GenerationBackend;
  tokenizer: TokenizerLike & { close?(): Promise<void> };
  /** Wall time of loadModel (engine + tokenizer), when known. */
  loadSeconds?: number;
}

const GIB = 1024 ** 3;
const MIN_KV_SHARE = 256 * 1024 ** 2;

export async function loadModel(config: ServerConfig, dir = config.modelDir, kvCacheBytes?: number): Promise<LoadedModel> {
  const t0 = performance.now();
  const [engine, tokenizer] = await Promise.all([Engine.load(engineOptions(config, dir, kvCacheBytes)), ChatTokenizer.load(dir)]);
  return { engine, tokenizer, loadSeconds: (performance.now() - t0) / 1000 };
}

export function engineOptions(config: ServerConfig, dir = config.modelDir, kvCacheBytes?: number): EngineOptions {
  return {
    modelDir: dir,
    threads: config.threads,
    contextLength: config.contextLength,
    device: config.device,
    kvUpdate: config.kvUpdate,
    int8Steps: config.int8Steps,
    int8MinRows: config.int8MinRows,
    prefillChunk: config.prefillChunk,
    maxRunningSeqs: config.maxRunningSeqs,
    maxBatchTokens: config.maxBatchTokens,
    kvCacheBytes: kvCacheBytes ?? (config.kvCacheGib !== undefined ? Math.floor(config.kvCacheGib * GIB) : undefined),
    prefixCache: config.prefixCache,
    prefixCacheIdleMs: config.prefixCacheIdleSec !== undefined ? config.prefixCacheIdleSec * 1000 : undefined,
  };
}

/** Memory the loaded models may take: --models-memory-gib, else 80% of the machine's (or the container's). */
export function modelsMemoryBudget(config: ServerConfig): number {
  if (config.modelsMemoryGib !== undefined) return Math.floor(config.modelsMemoryGib * GIB);
  const limit = process.constrainedMemory?.() ?? 0;
  const total = limit > 0 && limit < Number.MAX_SAFE_INTEGER ? Math.min(limit, totalmem()) : totalmem();
  return Math.floor(total * 0.8);
}

/**
 * The KV budget a model gets: --kv-cache-gib; with several models and none given, an equal share
 * of the memory budget less the weights; with one model, undefined (the engine's own default).
 */
export function kvBudgetFor(config: ServerConfig, source: ModelSource): number | undefined {
  if (config.kvCacheGib !== undefined) return Math.floor(config.kvCacheGib * GIB);
  if (!config.modelsDir) return undefined;
  const share = Math.floor(modelsMemoryBudget(config) / config.maxLoadedModels) - source.weightBytes;
  return Math.max(MIN_KV_SHARE, share);
}

/** What a loaded model is estimated to take: its weights and its KV budget. */
export function footprint(config: ServerConfig, source: ModelSource): number {
  return source.weightBytes + (kvBudgetFor(config, source) ?? 0);
}

export function createServingContext(config: ServerConfig, model: LoadedModel, source: Pick<ModelSource, 'name' | 'aliases'>): ServingContext {
  const info = model.engine.info;
  return {
    config,
    modelName: source.name,
    servedNames: [source.name, ...source.aliases.filter((a) => a !== source.name)],
    engine: model.engine,
    tokenizer: model.tokenizer,
    admission: new Admission({ maxRunning: model.engine.limits.maxRunningSeqs, maxQueue: config.maxQueue }),
    events: new ServingEvents(),
    contextLength: Math.min(info.contextLength, config.contextLength ?? Number.POSITIVE_INFINITY),
    systemFingerprint: systemFingerprint(source.name, info),
    loadedAt: Math.floor(Date.now() / 1000),
    draining: new AbortController(),
    shutdown: new AbortController(),
  };
}

/** What the log says about a loaded model and how it runs (no secrets, no paths beyond the folder). */
export function describeModel(ctx: ServingContext, loadSeconds: number | undefined): Record<string, unknown> {
  const info = ctx.engine.info;
  const session = ctx.engine.session;
  const limits = ctx.engine.limits;
  return {
    model: ctx.modelName,
    aliases: ctx.servedNames.slice(1),
    modelDir: info.dir,
    modelType: info.modelType,
    shape: {
      layers: info.numLayers,
      hiddenSize: info.hiddenSize,
      kvHeads: info.numKvHeads,
      headSize: info.headSize,
      vocabSize: info.vocabSize,
      contextLength: ctx.contextLength,
    },
    ...(session
      ? {
          executionProvider: session.executionProvider,
          threads: session.threads,
          graphOptimizationLevel: session.graphOptimizationLevel,
          logits: session.logits,
          ...(session.logitsNote ? { logitsNote: session.logitsNote } : {}),
          kvUpdate: session.kvUpdate,
          ...(session.kvNote ? { kvNote: session.kvNote } : {}),
          ...(session.deviceNote ? { deviceNote: session.deviceNote } : {}),
          int8Steps: session.int8.enabled ? { minRows: session.int8.minRows, how: session.int8.note } : { off: session.int8.note },
          ...(session.int8.calibration ? { int8Calibration: describeCalibration(session.int8.calibration) } : {}),
          sessionLoadSeconds: +(session.loadMs / 1000).toFixed(2),
        }
      : {}),
    scheduling: {
      maxRunningSeqs: limits.maxRunningSeqs,
      maxBatchTokens: limits.maxBatchTokens ?? 'auto',
      stepCostMs: { fixed: +limits.stepCost.fixedMs.toFixed(1), perToken: +limits.stepCost.perTokenMs.toFixed(2) },
      prefillChunk: limits.prefillChunk,
      kvCacheGib: +(limits.kvBudgetBytes / GIB).toFixed(2),
      prefixCache: limits.prefixCache,
    },
    ...(loadSeconds !== undefined ? { loadSeconds: +loadSeconds.toFixed(2) } : {}),
  };
}

/** "rows: int4 ms / int8 ms" for the log. */
function describeCalibration(c: Int8Calibration): Record<string, string> {
  return Object.fromEntries(c.rows.map((rows, i) => [String(rows), `${c.int4Ms[i].toFixed(2)} / ${c.int8Ms[i].toFixed(2)} ms`]));
}
