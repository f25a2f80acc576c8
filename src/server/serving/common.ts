/** Pieces shared by the chat and completions serving modules. */
import { randomBytes } from 'node:crypto';
import { ClientGoneError, toApiError } from '../errors.ts';
import type { Usage } from '../protocol/common.ts';
import type { ErrorResponse } from '../protocol/errors.ts';
import type { Ticket } from '../admission.ts';
import type { Endpoint, RequestTrace } from '../trace.ts';
import { newTrace } from '../trace.ts';
import { RequestAbort } from './abort.ts';
import type { ServingContext } from './context.ts';
import { admit } from './generate.ts';
import { TokenPieces } from './logprobs.ts';

/** What a route hands to the serving layer besides the validated body. */
export interface ServeOptions {
  requestId: string;
  /** Aborts when the client disconnects. */
  clientSignal?: AbortSignal;
  /** Receives the trace as soon as it exists (the route puts it on the request for hooks). */
  onTrace?: (trace: RequestTrace) => void;
  /** performance.now() when the request started waiting for its model (a load counts in its TTFT and timeout). */
  receivedAt?: number;
}

export type ServeResult<TBody, TChunk> =
  | { kind: 'json'; body: TBody }
  /** Already produced its first item, so errors before any output became HTTP errors. */
  | { kind: 'stream'; chunks: AsyncIterator<TChunk | ErrorResponse> };

export function completionId(prefix: string): string {
  return `${prefix}-${randomBytes(15).toString('base64url').replace(/[-_]/g, 'x')}`;
}

export const unixSeconds = (): number => Math.floor(Date.now() / 1000);

/** OpenAI's usage object; `prompt_tokens_details.cached_tokens` counts prompt tokens served from the prefix cache. */
export function usageOf(promptTokens: number, completionTokens: number, cachedTokens: number): Usage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: cachedTokens },
  };
}

const piecesByTokenizer = new WeakMap<object, TokenPieces>();

export function tokenPieces(ctx: ServingContext): TokenPieces {
  let p = piecesByTokenizer.get(ctx.tokenizer);
  if (!p) {
    p = new TokenPieces(ctx.tokenizer);
    piecesByTokenizer.set(ctx.tokenizer, p);
  }
  return p;
}

export function startRequest(
  ctx: ServingContext,
  endpoint: Endpoint,
  stream: boolean,
  opts: ServeOptions,
): { trace: RequestTrace; abort: RequestAbort } {
  const trace = newTrace(opts.requestId, endpoint, ctx.modelName, stream, opts.receivedAt);
  if (ctx.config.logContent) trace.completionText = [];
  opts.onTrace?.(trace);
  const budgetMs = ctx.config.requestTimeoutSec * 1000;
  const leftMs = budgetMs > 0 ? Math.max(1, budgetMs - (performance.now() - trace.receivedAt)) : 0;
  const abort = new RequestAbort(opts.clientSignal, leftMs, ctx.shutdown.signal);
  return { trace, abort };
}

/**
 * The end of an admitted request: gives its ticket back, stops the request's timers and
 * announces that its counts are final. Idempotent.
 */
export function finishRequest(ctx: ServingContext, trace: RequestTrace, ticket: Ticket, abort: RequestAbort): void {
  ticket.release();
  abort.dispose();
  if (trace.finishedAt !== undefined) return;
  trace.finishedAt = performance.now();
  ctx.events.emit('finished', trace);
}

/** The id and timestamp every body or chunk of one response carries. */
export interface ResponseMeta {
  id: string;
  created: number;
}

/** How an endpoint turns an admitted request into its JSON body or its chunk stream. */
export interface ResponseBuilders<P, TBody, TChunk> {
  json: (p: P, abort: RequestAbort, trace: RequestTrace, meta: ResponseMeta) => Promise<TBody>;
  /** Must call `done` once it has finished (or been abandoned), to give the ticket back. */
  stream: (p: P, abort: RequestAbort, trace: RequestTrace, meta: ResponseMeta, done: () => void) => AsyncGenerator<TChunk | ErrorResponse, void, undefined>;
}

/**
 * The request lifecycle both endpoints share: trace, admission, then one JSON body or a primed
 * chunk stream; the ticket is given back once the body is built or the stream ends.
 */
export async function serve<P extends { stream: boolean }, TBody, TChunk>(
  ctx: ServingContext,
  endpoint: Endpoint,
  idPrefix: string,
  prepared: P,
  opts: ServeOptions,
  build: ResponseBuilders<P, TBody, TChunk>,
): Promise<ServeResult<TBody, TChunk>> {
  const { trace, abort } = startRequest(ctx, endpoint, prepared.stream, opts);
  let ticket: Ticket;
  try {
    ticket = admit(ctx, trace);
  } catch (err) {
    abort.dispose();
    throw err;
  }
  const meta = { id: completionId(idPrefix), created: unixSeconds() };
  if (!prepared.stream) {
    try {
      return { kind: 'json', body: await build.json(prepared, abort, trace, meta) };
    } finally {
      finishRequest(ctx, trace, ticket, abort);
    }
  }
  const chunks = build.stream(prepared, abort, trace, meta, () => finishRequest(ctx, trace, ticket, abort));
  return { kind: 'stream', chunks: await primed(chunks) };
}

/**
 * Pulls the first item so that failures before any output (queue timeout, engine error at
 * prefill) still surface as HTTP errors; the returned iterator replays it.
 */
export async function primed<T>(gen: AsyncGenerator<T, void, undefined>): Promise<AsyncIterator<T>> {
  const first = await gen.next();
  let replayed = false;
  return {
    next: () => {
      if (!replayed) {
        replayed = true;
        return Promise.resolve(first);
      }
      return gen.next();
    },
    return: async () => {
      await gen.return(undefined);
      return { done: true, value: undefined };
    },
  };
}

/**
 * Turns a failure after the stream started into OpenAI's in-band error event (what vLLM and
 * OpenAI send); before anything was sent it is rethrown to become an HTTP error.
 */
export function streamError(err: unknown, started: boolean): ErrorResponse | undefined {
  if (!started) throw err;
  if (err instanceof ClientGoneError) return undefined;
  return toApiError(err instanceof Error ? err : new Error(String(err))).toJSON();
}
