/**
 * The engine boundary: everything the HTTP layer may know about generation.
 * Nothing here mentions HTTP, and nothing here is Phi-4 specific.
 */

/** Per-request sampling settings. Neutral values disable a processor. */
export interface SamplingParams {
  /** 0 means greedy (argmax). */
  temperature: number;
  /** 0 disables top-k. */
  topK: number;
  /** 1 disables top-p. */
  topP: number;
  /** 0 disables min-p. */
  minP: number;
  /** 1 disables the multiplicative repetition penalty (HF/llama.cpp style). */
  repetitionPenalty: number;
  /** 0 disables; OpenAI semantics (subtract once if the token was generated). */
  presencePenalty: number;
  /** 0 disables; OpenAI semantics (subtract count times penalty). */
  frequencyPenalty: number;
  /** Token id -> additive bias, clamped to [-100, 100] by callers. */
  logitBias?: ReadonlyMap<number, number>;
  /** Same seed + same request = same tokens. Undefined picks a random seed. */
  seed?: number;
}

export const DEFAULT_SAMPLING: Readonly<SamplingParams> = Object.freeze({
  temperature: 1,
  topK: 0,
  topP: 1,
  minP: 0,
  repetitionPenalty: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
});

export interface GenerationRequest {
  promptIds: readonly number[];
  maxTokens: number;
  sampling: SamplingParams;
  /**
   * Undefined: no logprobs. 0: logprob of the chosen token only.
   * N > 0: chosen token plus the N most likely alternatives.
   */
  topLogprobs?: number;
  /** Token ids that end generation in addition to the model's eos ids. */
  extraStopTokenIds?: readonly number[];
  /** What the output may be: a grammar, forced or banned tokens (see ConstraintSpec). */
  constraint?: ConstraintSpec;
}

/** A grammar xgrammar compiles: JSON text of a JSON schema, or any JSON object. */
export type GrammarSpec = { type: 'json_schema'; schema: string } | { type: 'json_object' };

/** A grammar and the token ids that end it (after its text is complete, only these are allowed). */
export interface GrammarPhase {
  grammar: GrammarSpec;
  endIds: readonly number[];
}

/**
 * Constrained decoding, in order: the `prefix` tokens are forced, then `grammar` (if any) holds
 * until one of its end ids; after that (or from the start) the output is free text in which
 * `trigger.id` opens `trigger` (e.g. a strict tool call). `banned` ids are never sampled.
 */
export interface ConstraintSpec {
  prefix?: readonly number[];
  grammar?: GrammarPhase;
  trigger?: GrammarPhase & { id: number };
  banned?: readonly number[];
}

export interface TokenLogprob {
  id: number;
  logprob: number;
}

export type FinishReason = 'stop' | 'length' | 'abort' | 'error';

export interface GenerationTimings {
  /** Time from the engine picking the request up to the first sampled token. */
  prefillMs: number;
  /** Time spent in decode steps after the first token. */
  decodeMs: number;
  /**
   * Time outside the model steps per decode step (sampling, handing the token out, bookkeeping),
   * averaged over the steps after the first token; 0 when there were none.
   */
  overheadMsPerToken: number;
}

export type GenerationEvent =
  /** The engine took the request from its waiting line; `cachedTokens` prompt tokens came from the prefix cache. */
  | { type: 'started'; queuedMs: number; cachedTokens: number }
  | { type: 'token'; id: number; logprob?: TokenLogprob; top?: TokenLogprob[] }
  | {
      type: 'done';
      finishReason: FinishReason;
      promptTokens: number;
      completionTokens: number;
      /** Prompt tokens whose KV rows were reused from the prefix cache. */
      cachedTokens: number;
      timings: GenerationTimings;
      /** Set when finishReason is 'error'. */
      error?: string;
    };

/** What the engine learned from the model folder. */
export interface ModelInfo {
  dir: string;
  modelType: string;
  contextLength: number;
  vocabSize: number;
  numLayers: number;
  numKvHeads: number;
  headSize: number;
  hiddenSize: number;
  eosTokenIds: number[];
  bosTokenId?: number;
}

export interface EngineOptions {
  modelDir: string;
  /** intra-op threads; 0 or unset: every core the process may use. */
  threads?: number;
  /** 'cuda' uses the CUDA execution provider when this build has it, and falls back to CPU. */
  device?: 'cpu' | 'cuda';
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Caps the context below the model's own context length (and below what the KV budget holds). */
  contextLength?: number;
  /** KV layouts grow by this many positions at a time. */
  kvGrowthChunk?: number;
  /** Prompt tokens per step when no other sequence is decoding. */
  prefillChunk?: number;
  /** Sequences prefilling or decoding at once; more wait in the engine's line. */
  maxRunningSeqs?: number;
  /**
   * A fixed token budget per step while sequences decode (one per decoding sequence, the rest for a
   * prompt chunk). Unset: a prompt chunk keeps the step within a few times a decode-only step's
   * cost, as measured at load (see step-cost.ts).
   */
  maxBatchTokens?: number;
  /** Bytes all KV buffers (running, waiting and cached sequences) may hold. */
  kvCacheBytes?: number;
  /** Reuse KV rows of earlier requests that share a prompt prefix (default true). */
  prefixCache?: boolean;
  /** Cached prefixes unused for this long are dropped, so an idle server gives the memory back. */
  prefixCacheIdleMs?: number;
  /**
   * 'batched' (default): the derived batched graph (many sequences per step, KV buffers as inputs,
   * only new rows out). 'in-place': the export's own attention, one sequence at a time (for
   * comparison, and the fallback when the batched rewrite cannot handle an export).
   */
  kvUpdate?: KvUpdate;
  /**
   * Steps with many rows (prompt chunks, large batches) on onnxruntime's int8 GEMM: 'auto' (default)
   * when it measures faster here and its weights fit in memory, 'on', 'off'.
   */
  int8Steps?: Int8Steps;
  /** Rows from which a step takes the int8 path (default: measured at load). */
  int8MinRows?: number;
}

export type KvUpdate = 'batched' | 'in-place';
export type Int8Steps = 'auto' | 'on' | 'off';

export interface EngineStats {
  /** Sequences prefilling or decoding. */
  running: number;
  /** Sequences in the engine's waiting line. */
  waiting: number;
  kvUsedBytes: number;
  kvBudgetBytes: number;
  /** Positions held by the prefix cache. */
  prefixCachedTokens: number;
  /** Since load: prompt tokens looked up in the prefix cache, and those found. */
  prefixQueriedTokens: number;
  prefixHitTokens: number;
  /** Since load: running sequences put back in line because the KV budget was full. */
  preemptions: number;
}

/** How the engine was sized at load (flags, or defaults from the machine and the model). */
export interface EngineLimits {
  maxRunningSeqs: number;
  /** Unset: prompt chunks beside decoding sequences are sized from `stepCost`. */
  maxBatchTokens?: number;
  /** A model step's cost on this machine, measured at load: fixed + per-token milliseconds. */
  stepCost: { fixedMs: number; perTokenMs: number };
  prefillChunk: number;
  kvBudgetBytes: number;
  /** The context the engine serves: the model's, capped by --context-length and by what the KV budget holds. */
  contextLength: number;
  prefixCache: boolean;
}

/** One model step, as the metrics see it. */
export interface StepRecord {
  /** Tokens run through the model (one per decoding sequence, plus a prompt chunk). */
  tokens: number;
  sequences: number;
  runMs: number;
}
