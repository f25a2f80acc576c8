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
  | { type: 'token'; id: number; logprob?: TokenLogprob; top?: TokenLogprob[] }
  | {
      type: 'done';
      finishReason: FinishReason;
      promptTokens: number;
      completionTokens: number;
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
  padTokenId?: number;
}

export interface EngineOptions {
  modelDir: string;
  /** intra-op threads; 0 lets ORT decide. */
  threads?: number;
  /** 'cuda' uses the CUDA execution provider when this build has it, and falls back to CPU. */
  device?: 'cpu' | 'cuda';
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Caps the context below the model's own context length. */
  contextLength?: number;
  /** KV buffers grow by this many positions at a time. */
  kvGrowthChunk?: number;
  /** Prompts longer than this are prefilled in chunks of this many tokens (bounds peak memory). */
  prefillChunk?: number;
  /**
   * Run a derived graph whose lm_head sees only the last position (default true). The export's
   * own graph computes logits for every prompt position.
   */
  lastPositionLogits?: boolean;
  /**
   * 'new-positions' (default): a derived graph reads the KV buffers as inputs and returns only the
   * new rows. 'in-place': the export's GroupQueryAttention updates the buffers in place, and
   * onnxruntime-node copies them out whole after every step.
   */
  kvUpdate?: KvUpdate;
}

export type KvUpdate = 'new-positions' | 'in-place';

export interface EngineStats {
  /** Sequences currently being generated. */
  running: number;
  /** Positions held in KV buffers across running sequences. */
  kvTokensInUse: number;
}
