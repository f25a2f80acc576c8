/** Messages between the engine facade (main thread) and the worker that owns the session. */
import type { SessionDescription } from './decoder-session.ts';
import type { GenerationEvent, GenerationRequest, ModelInfo } from './types.ts';

export type ToWorker =
  | {
      type: 'generate';
      id: number;
      request: GenerationRequest;
      /** Int32Array(1) over shared memory: the main thread stores 1 to abort. */
      abortFlag: SharedArrayBuffer;
    }
  | { type: 'shutdown' };

export type FromWorker =
  | { type: 'ready'; info: ModelInfo; session: SessionDescription }
  | { type: 'fatal'; error: string }
  | { type: 'event'; id: number; event: GenerationEvent };
