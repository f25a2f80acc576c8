/** What the serving layer needs from the rest of the process, gathered in one object. */
import { createHash } from 'node:crypto';
import type { ServerConfig } from '../../config.ts';
import type { SessionDescription } from '../../engine/decoder-session.ts';
import type { EngineStats, GenerationEvent, GenerationRequest, ModelInfo } from '../../engine/types.ts';
import type { ChatTokenizer } from '../../tokenizer/tokenizer.ts';
import type { RequestQueue } from '../queue.ts';
import type { ServingEvents } from '../trace.ts';

/** The engine as the server uses it (the real Engine satisfies it structurally). */
export interface GenerationBackend {
  readonly info: ModelInfo;
  readonly healthy?: boolean;
  /** How the ONNX session runs (execution provider, threads, load time); logged at startup. */
  readonly session?: SessionDescription;
  generate(req: GenerationRequest, signal?: AbortSignal): AsyncIterable<GenerationEvent>;
  stats(): EngineStats;
  close(): Promise<void>;
}

export type TokenizerLike = Pick<
  ChatTokenizer,
  'encode' | 'encodeAsync' | 'decode' | 'applyChatTemplate' | 'applyChatTemplateAsync' | 'eosTokenIds' | 'vocabSize'
>;

export interface ServingContext {
  readonly config: ServerConfig;
  /** Name returned in responses and listed first by /v1/models. */
  readonly modelName: string;
  /** modelName followed by the aliases; any of them is accepted in `model`. */
  readonly servedNames: readonly string[];
  readonly engine: GenerationBackend;
  readonly tokenizer: TokenizerLike;
  readonly queue: RequestQueue;
  readonly events: ServingEvents;
  /** Effective context window (engine info, already capped by --context-length). */
  readonly contextLength: number;
  /** Identifies the model + server build a response came from. */
  readonly systemFingerprint: string;
  /** Unix seconds when the model was loaded (the `created` of its model card). */
  readonly loadedAt: number;
  /** Aborted when the shutdown grace period ends: every running request stops (cause 'shutdown'). */
  readonly shutdown: AbortController;
}

/** Stable for one model folder and shape, different when either changes. */
export function systemFingerprint(modelName: string, info: ModelInfo): string {
  const { dir: _dir, ...shape } = info;
  const h = createHash('sha256').update(JSON.stringify({ modelName, shape })).digest('hex');
  return `fp_${h.slice(0, 10)}`;
}
