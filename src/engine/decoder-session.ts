/**
 * One ONNX Runtime session over an onnxruntime-genai decoder export, and the forward step
 * that feeds a sequence's KV cache in and out of it. Blocking: run it off the main thread.
 */
import ort from 'onnxruntime-node';
import { ensureDerivedModel, type DerivedModel } from './derived-model.ts';
import { EMBEDDING_METADATA_KEY, EmbeddingReader, INPUTS_EMBEDS, type EmbeddingTable } from './embedding-input.ts';
import { KvBufferPool, SequenceKvCache } from './kv-cache.ts';
import { lastPositionDerivation } from './last-position-model.ts';
import { ModelConfigError, loadModelConfig, type LoadedModelConfig } from './model-config.ts';
import { newPositionsDerivation, newPositionsName } from './new-positions-model.ts';
import { defaultThreads } from './threads.ts';
import type { EngineOptions, KvUpdate, ModelInfo } from './types.ts';

export interface SessionDescription {
  modelFile: string;
  /** 'last-position' when the derived graph runs; otherwise why not. */
  logits: 'last-position' | 'all-positions';
  logitsNote?: string;
  /** How a step's keys and values reach the sequence's buffers (see kv-cache.ts). */
  kvUpdate: KvUpdate;
  /** Why the new-positions graph is not in use, when it was wanted. */
  kvNote?: string;
  executionProvider: 'cpu' | 'cuda';
  /** Why the requested device is not the one in use, when it is not. */
  deviceNote?: string;
  threads: number;
  graphOptimizationLevel: string;
  loadMs: number;
}

/**
 * Picks the graph to run: the new-positions graph by default, else the last-position graph with
 * the export's own attention, else the export itself. Each step down says why.
 */
function deriveModel(config: LoadedModelConfig, opts: EngineOptions): { derived?: DerivedModel; kvUpdate: KvUpdate; kvNote?: string } {
  if (opts.lastPositionLogits === false) {
    return { kvUpdate: 'in-place', kvNote: opts.kvUpdate === 'in-place' ? undefined : 'the new-positions graph needs last-position logits' };
  }
  const lastPosition = () => ensureDerivedModel(config.modelPath, lastPositionDerivation(config.io.logits));
  if (opts.kvUpdate === 'in-place') return { derived: lastPosition(), kvUpdate: 'in-place' };
  const { io } = config;
  const derived = ensureDerivedModel(config.modelPath, newPositionsDerivation({ inputIds: io.inputIds, attentionMask: io.attentionMask, logits: io.logits }));
  if (derived.fallbackReason === undefined) return { derived, kvUpdate: 'new-positions' };
  return { derived: lastPosition(), kvUpdate: 'in-place', kvNote: derived.fallbackReason };
}

interface LayerNames {
  pastKey: string;
  pastValue: string;
  presentKey: string;
  presentValue: string;
  /** The new-positions graph's outputs. */
  newKey: string;
  newValue: string;
}

export class DecoderSession {
  readonly info: ModelInfo;
  /** A run of 1n reused as attention_mask: the mask is all ones for an unpadded sequence. */
  private ones = new BigInt64Array(0);
  private readonly kvGrowthChunk: number;
  private readonly prefillChunk: number;
  private readonly contextLength: number;
  /** Reads token embeddings for graphs that take them as input (see embedding-input.ts). */
  private readonly embeddings: EmbeddingReader | undefined;
  private readonly feedsIds: boolean;
  /** Per-layer KV input and output names, formatted once rather than on every step. */
  private readonly layerNames: LayerNames[];
  private readonly kvPool = new KvBufferPool();

  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly config: LoadedModelConfig,
    readonly description: SessionDescription,
    opts: EngineOptions,
    embeddingTable: EmbeddingTable | undefined,
  ) {
    this.embeddings = embeddingTable && session.inputNames.includes(INPUTS_EMBEDS) ? new EmbeddingReader(description.modelFile, embeddingTable) : undefined;
    this.feedsIds = session.inputNames.includes(config.io.inputIds);
    const { io } = config;
    this.layerNames = Array.from({ length: config.info.numLayers }, (_, i) => ({
      pastKey: io.pastKey(i),
      pastValue: io.pastValue(i),
      presentKey: io.presentKey(i),
      presentValue: io.presentValue(i),
      newKey: newPositionsName(io.presentKey(i)),
      newValue: newPositionsName(io.presentValue(i)),
    }));
    this.contextLength = Math.min(config.info.contextLength, opts.contextLength ?? Infinity);
    this.info = { ...config.info, contextLength: this.contextLength };
    this.kvGrowthChunk = opts.kvGrowthChunk ?? 256;
    // 128: the attention scratch of a chunk against a 2k-position cache stays well under 0.1 GB (512
    // added ~0.4 GB of peak RSS); prefill ran no slower than with 256 or 512 here.
    this.prefillChunk = Math.max(1, opts.prefillChunk ?? 128);
    try {
      this.checkInputs();
    } catch (err) {
      this.embeddings?.close();
      throw err;
    }
  }

  static async create(opts: EngineOptions): Promise<DecoderSession> {
    const config = loadModelConfig(opts.modelDir);
    const threads = opts.threads && opts.threads > 0 ? opts.threads : defaultThreads();
    const graphOptimizationLevel = opts.graphOptimizationLevel ?? 'all';
    const t0 = performance.now();
    const { derived, kvUpdate, kvNote } = deriveModel(config, opts);
    const modelFile = derived?.path ?? config.modelPath;
    const sessionOptions = (providers: ('cpu' | 'cuda')[]): ort.InferenceSession.SessionOptions => ({
      executionProviders: providers,
      intraOpNumThreads: threads,
      // One graph, one sequence at a time: parallelism lives inside each op, not across ops.
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel,
    });
    let executionProvider: 'cpu' | 'cuda' = 'cpu';
    let deviceNote: string | undefined;
    let session: ort.InferenceSession | undefined;
    if (opts.device === 'cuda') {
      try {
        session = await ort.InferenceSession.create(modelFile, sessionOptions(['cuda', 'cpu']));
        executionProvider = 'cuda';
      } catch (err) {
        deviceNote = `CUDA execution provider unavailable (${(err as Error).message.split('\n')[0]}); running on CPU`;
      }
    }
    session ??= await ort.InferenceSession.create(modelFile, sessionOptions(['cpu']));
    const loadMs = performance.now() - t0;
    const logits = modelFile === config.modelPath ? 'all-positions' : 'last-position';
    const description: SessionDescription = {
      modelFile,
      logits,
      logitsNote: derived?.fallbackReason,
      kvUpdate,
      kvNote,
      executionProvider,
      deviceNote,
      threads,
      graphOptimizationLevel,
      loadMs,
    };
    const table = derived?.metadata[EMBEDDING_METADATA_KEY];
    return new DecoderSession(session, config, description, opts, table ? (JSON.parse(table) as EmbeddingTable) : undefined);
  }

  private checkInputs(): void {
    const { io } = this.config;
    const required = [this.embeddings ? INPUTS_EMBEDS : io.inputIds, io.attentionMask];
    for (const names of this.layerNames) required.push(names.pastKey, names.pastValue);
    const names = new Set(this.session.inputNames);
    for (const name of required) {
      if (!names.has(name)) throw new ModelConfigError(`model input "${name}" named by genai_config.json is not in ${this.config.modelPath}`);
    }
    const known = new Set([...required, ...(io.positionIds ? [io.positionIds] : [])]);
    const unsupported = this.session.inputNames.filter((n) => !known.has(n));
    if (unsupported.length > 0) {
      throw new ModelConfigError(`unsupported model input(s): ${unsupported.join(', ')}`);
    }
    if (this.description.kvUpdate === 'new-positions') {
      for (const { newKey, newValue } of this.layerNames) {
        for (const name of [newKey, newValue]) {
          if (!this.session.outputNames.includes(name)) throw new ModelConfigError(`derived output "${name}" is missing from ${this.description.modelFile}`);
        }
      }
    }
    const pastType = this.session.inputMetadata.find((m) => m.name === io.pastKey(0));
    if (pastType?.isTensor && pastType.type !== 'float32') {
      throw new ModelConfigError(`unsupported KV cache type ${pastType.type} in ${this.config.modelPath}: this engine runs fp32-KV exports (the CPU variant)`);
    }
    if (!this.session.outputNames.includes(io.logits)) {
      throw new ModelConfigError(`model output "${io.logits}" is not in ${this.config.modelPath}`);
    }
  }

  newSequence(): SequenceKvCache {
    const { numLayers, numKvHeads, headSize } = this.info;
    const valuesTransposed = this.description.kvUpdate === 'new-positions';
    return new SequenceKvCache({ numLayers, numKvHeads, headSize }, this.kvGrowthChunk, this.contextLength, valuesTransposed, this.kvPool);
  }

  /** Drops the KV buffers kept from the last released sequence (call when idle). */
  dropSpareKv(): void {
    this.kvPool.clear();
  }

  private onesOf(n: number): BigInt64Array {
    if (this.ones.length < n) this.ones = new BigInt64Array(Math.max(n, this.ones.length * 2, 1024)).fill(1n);
    return this.ones.subarray(0, n);
  }

  /**
   * Appends `tokens` to the sequence and returns the logits of its last position
   * (a view into ORT's output, valid until the next call). Long inputs run in chunks so
   * activations and attention scratch stay bounded whatever the prompt length.
   */
  async forward(seq: SequenceKvCache, tokens: readonly number[]): Promise<Float32Array> {
    if (tokens.length === 0) throw new RangeError('forward needs at least one token');
    // Allocating once up front avoids regrowing the KV buffers chunk after chunk; the position after
    // the input is included, so that the first decode step does not reallocate a just-filled cache.
    seq.reserve(Math.min(seq.length + tokens.length + 1, this.contextLength));
    let start = 0;
    while (tokens.length - start > this.prefillChunk) {
      await this.step(seq, tokens.slice(start, start + this.prefillChunk));
      start += this.prefillChunk;
    }
    return this.step(seq, start === 0 ? tokens : tokens.slice(start));
  }

  private async step(seq: SequenceKvCache, tokens: readonly number[]): Promise<Float32Array> {
    const { io } = this.config;
    const past = seq.length;
    const total = past + tokens.length;
    seq.fit(total);

    const feeds: Record<string, ort.Tensor> = {
      [io.attentionMask]: new ort.Tensor('int64', this.onesOf(total), [1, total]),
    };
    if (this.feedsIds) {
      const ids = new BigInt64Array(tokens.length);
      for (let i = 0; i < tokens.length; i++) ids[i] = BigInt(tokens[i]);
      feeds[io.inputIds] = new ort.Tensor('int64', ids, [1, tokens.length]);
    }
    if (this.embeddings) {
      feeds[INPUTS_EMBEDS] = new ort.Tensor('float32', this.embeddings.rows(tokens), [1, tokens.length, this.embeddings.table.cols]);
    }
    if (io.positionIds) {
      const pos = new BigInt64Array(tokens.length);
      for (let i = 0; i < tokens.length; i++) pos[i] = BigInt(past + i);
      feeds[io.positionIds] = new ort.Tensor('int64', pos, [1, tokens.length]);
    }
    const newPositions = this.description.kvUpdate === 'new-positions';
    const fetches: Record<string, ort.Tensor | null> = { [io.logits]: null };
    for (const [layer, names] of this.layerNames.entries()) {
      feeds[names.pastKey] = seq.keyTensor(layer);
      feeds[names.pastValue] = seq.valueTensor(layer);
      if (newPositions) {
        fetches[names.newKey] = null;
        fetches[names.newValue] = null;
      } else {
        fetches[names.presentKey] = seq.keyTensor(layer);
        fetches[names.presentValue] = seq.valueTensor(layer);
      }
    }
    const out = await this.session.run(feeds, fetches);
    if (newPositions) {
      for (const [layer, names] of this.layerNames.entries()) {
        seq.writeNew(layer, out[names.newKey].data as Float32Array, out[names.newValue].data as Float32Array, past, tokens.length);
      }
    }
    seq.length = total;
    const result = out[io.logits];
    const logits = result.data as Float32Array;
    // [batch, positions, vocab]: positions is 1 with the last-position graph, all new tokens otherwise.
    const vocab = result.dims[result.dims.length - 1];
    return logits.subarray(logits.length - vocab);
  }

  async release(): Promise<void> {
    this.embeddings?.close();
    await this.session.release();
  }
}
