/**
 * Per-request timing and token accounting, filled in by the serving layer and announced on
 * `ServingEvents`. This is the hook point for metrics and the per-request summary log line:
 * subscribers see counts and times; text only in `completionText`, which exists only when the
 * operator turned on --log-content.
 */
import { EventEmitter } from 'node:events';
import type { GenerationTimings } from '../engine/types.ts';

/** The API a request came through (the `endpoint` label of the request metrics). */
export type Endpoint = 'chat.completions' | 'completions' | 'messages' | 'responses';

/**
 * How a generation ended: stop/length as sent to the client; 'abort' = the client went away;
 * 'timeout' = --request-timeout; 'shutdown' = cut at the end of the shutdown grace period (or the
 * engine closed under it); 'error' = the engine failed.
 */
export type TraceOutcome = 'stop' | 'length' | 'abort' | 'timeout' | 'shutdown' | 'error';

export interface RequestTrace {
  /** The request id (x-request-id). */
  readonly requestId: string;
  readonly endpoint: Endpoint;
  readonly model: string;
  readonly stream: boolean;
  /** performance.now() when the request reached the serving layer. */
  readonly receivedAt: number;
  /** ms spent waiting for an engine slot (undefined until granted). */
  queueMs?: number;
  /** Prompt tokens the engine found in the prefix cache (known once it picked the request up). */
  cachedTokens?: number;
  /** performance.now() when the engine slot was granted. */
  startedAt?: number;
  firstTokenAt?: number;
  lastTokenAt?: number;
  /** performance.now() when the engine slot was given back (the `finished` event). */
  finishedAt?: number;
  promptTokens: number;
  completionTokens: number;
  /** How the (last) generation ended; undefined if it never ran. */
  outcome?: TraceOutcome;
  /** Engine-side timings of the last generation. */
  engineTimings?: GenerationTimings;
  /** The text sent to the client, one entry per generation: only with --log-content. */
  completionText?: string[];
}

export interface ServingEventMap {
  /** Slot granted; generation is about to start. */
  started: [RequestTrace];
  /** One completion token sampled (arg 2: performance.now()). */
  token: [RequestTrace, number];
  /** A generation ended (once per prompt for multi-prompt completions). */
  generationDone: [RequestTrace];
  /**
   * The request gave its engine slot back: every generation of it has ended and its counts are
   * final. Once per request that was `started`.
   */
  finished: [RequestTrace];
}

export class ServingEvents extends EventEmitter<ServingEventMap> {}

export function newTrace(requestId: string, endpoint: Endpoint, model: string, stream: boolean, receivedAt = performance.now()): RequestTrace {
  return { requestId, endpoint, model, stream, receivedAt, promptTokens: 0, completionTokens: 0 };
}
