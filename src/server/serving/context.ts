/** What the serving layer needs from the rest of the process, gathered in one object. */
import { createHash } from 'node:crypto';
import type { ServerConfig } from '../../config.ts';
import type { SessionDescription } from '../../engine/model-session.ts';
import type { EngineLimits, EngineStats, GenerationEvent, GenerationRequest, GrammarSpec, ModelInfo, StepRecord } from '../../engine/types.ts';
import type { ChatTokenizer } from '../../tokenizer/tokenizer.ts';
import type { Admission } from '../admission.ts';
import type { ServingEvents } from '../trace.ts';

/** The engine as the server uses it (the real Engine satisfies it structurally). */
export interface GenerationBackend {
  readonly info: ModelInfo;
  readonly healthy?: boolean;
  /** How the ONNX session runs (execution provider, threads, load time); logged at startup. */
  readonly session?: SessionDescription;
  /** How the engine was sized (running sequences, token budget, KV budget, context). */
  readonly limits: EngineLimits;
  generate(req: GenerationRequest, signal?: AbortSignal): AsyncIterable<GenerationEvent>;
  /** Compiles a grammar for constrained decoding; resolves with why it cannot be used, or undefined. */
  checkGrammar(grammar: GrammarSpec): Promise<string | undefined>;
  stats(): EngineStats;
  /** Calls `listener` after every model step; returns a function that stops it. */
  onStep(listener: (step: StepRecord, stats: EngineStats) => void): () => void;
  close(): Promise<void>;
}

export type TokenizerLike = Pick<
  ChatTokenizer,
  'encode' | 'encodeAsync' | 'decode' | 'applyChatTemplate' | 'applyChatTemplateAsync' | 'eosTokenIds' | 'vocabSize' | 'tokenToId' | 'chatTemplate'
>;

export interface ServingContext {
  readonly config: ServerConfig;
  /** Name returned in responses and listed first by /v1/models. */
  readonly modelName: string;
  /** modelName followed by the aliases; any of them is accepted in `model`. */
  readonly servedNames: readonly string[];
  readonly engine: GenerationBackend;
  readonly tokenizer: TokenizerLike;
  readonly admission: Admission;
  readonly events: ServingEvents;
  /** Effective context window (engine info, already capped by --context-length). */
  readonly contextLength: number;
  /** Identifies the model + server build a response came from. */
  readonly systemFingerprint: string;
  /** Unix seconds when the model was loaded (the `created` of its model card). */
  readonly loadedAt: number;
  /** Aborted when a shutdown starts: requests still waiting in the engine's line are refused (503). */
  readonly draining: AbortController;
  /** Aborted when the shutdown grace period ends: every running request stops (cause 'shutdown'). */
  readonly shutdown: AbortController;
}

/** Stable for one model folder and shape, different when either changes. */
export function systemFingerprint(modelName: string, info: ModelInfo): string {
  const { dir: _dir, ...shape } = info;
  const h = createHash('sha256').update(JSON.stringify({ modelName, shape })).digest('hex');
  return `fp_${h.slice(0, 10)}`;
}
