/** Messages between the engine facade (main thread) and the worker that owns the session. */
import type { LoadProgress } from './load-progress.ts';
import type { SessionDescription } from './model-session.ts';
import type { EngineLimits, EngineStats, GenerationEvent, GenerationRequest, GrammarSpec, ModelInfo, StepRecord } from './types.ts';

export type ToWorker =
  | {
      type: 'generate';
      id: number;
      request: GenerationRequest;
      /** Int32Array(1) over shared memory: the main thread stores 1 to abort. */
      abortFlag: SharedArrayBuffer;
    }
  /** Compiles a grammar (kept in the worker's cache) and answers whether it can be used. */
  | { type: 'checkGrammar'; id: number; grammar: GrammarSpec }
  | { type: 'shutdown' };

/** What the worker's scheduler holds, sent after every step. */
export type WorkerStats = Omit<EngineStats, 'running' | 'waiting'>;

export type FromWorker =
  | { type: 'ready'; info: ModelInfo; session: SessionDescription; limits: EngineLimits }
  | { type: 'fatal'; error: string }
  /** Long one-off work while loading (see load-progress.ts). */
  | { type: 'progress'; progress: LoadProgress }
  /** A `done` event carries the stats right after its sequence ended, so /metrics agrees with the reply. */
  | { type: 'event'; id: number; event: GenerationEvent; stats?: WorkerStats }
  | { type: 'grammarChecked'; id: number; error?: string }
  | { type: 'step'; step: StepRecord; stats: WorkerStats };
