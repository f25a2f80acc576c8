/**
 * /v1/completions logic (the legacy text API). A batch of prompts is served one after another
 * under a single queue slot; choice `index` is the prompt's position. `echo` prepends the
 * prompt text; prompt logprobs are not computed, so `echo` together with `logprobs` is refused.
 */
import { invalidRequest } from '../errors.ts';
import type { Usage, WireFinishReason } from '../protocol/common.ts';
import type {
  CompletionChoice,
  CompletionChunk,
  CompletionLogprobs,
  CompletionPrompt,
  CompletionRequest,
  CompletionResponse,
} from '../protocol/completions.ts';
import type { ErrorResponse } from '../protocol/errors.ts';
import type { RequestTrace } from '../trace.ts';
import type { RequestAbort } from './abort.ts';
import {
  serve,
  streamError,
  tokenPieces,
  usageOf,
  type ResponseMeta,
  type ServeOptions,
  type ServeResult,
} from './common.ts';
import type { ServingContext } from './context.ts';
import { generate, type GenerationPlan } from './generate.ts';
import { appendCompletionLogprobs, completionLogprobs, emptyCompletionLogprobs } from './logprobs.ts';
import {
  checkCommon,
  maxTokensFor,
  resolveModel,
  stopStrings,
  stopTokenIds,
  toSamplingParams,
} from './params.ts';

export type CompletionResult = ServeResult<CompletionResponse, CompletionChunk>;

/** OpenAI's documented default for this endpoint (chat defaults to the rest of the context). */
export const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

interface PreparedPrompt {
  plan: GenerationPlan;
  /** Prompt text for `echo`. */
  echoText: string;
}

interface PreparedCompletion {
  prompts: PreparedPrompt[];
  stream: boolean;
  includeUsage: boolean;
  wantLogprobs: boolean;
}

function isTokenArray(p: unknown): p is number[] {
  return Array.isArray(p) && p.length > 0 && typeof p[0] === 'number';
}

/** Normalizes the four prompt shapes into token-id lists. */
async function promptIdLists(ctx: ServingContext, prompt: CompletionPrompt): Promise<number[][]> {
  const vocab = ctx.engine.info.vocabSize;
  let lists: number[][];
  if (typeof prompt === 'string') lists = [await ctx.tokenizer.encodeAsync(prompt)];
  else if (isTokenArray(prompt)) lists = [prompt];
  else {
    const prompts = prompt as (string | number[])[];
    lists = await Promise.all(prompts.map((p) => (typeof p === 'string' ? ctx.tokenizer.encodeAsync(p) : p)));
  }
  return lists.map((ids, i) => {
    for (const id of ids) {
      if (id >= vocab) throw invalidRequest(`Token id ${id} in prompt ${i} is outside the vocabulary.`, 'prompt');
    }
    if (ids.length > 0) return ids;
    // An empty prompt starts from the beginning-of-text token, as OpenAI's models do.
    const bos = ctx.engine.info.bosTokenId;
    if (bos === undefined) throw invalidRequest(`Prompt ${i} is empty.`, 'prompt');
    return [bos];
  });
}

async function prepare(ctx: ServingContext, body: CompletionRequest): Promise<PreparedCompletion> {
  resolveModel(ctx, body.model);
  checkCommon(body);
  if (body.best_of !== undefined && body.best_of !== null && body.best_of !== 1) {
    throw invalidRequest(`Only best_of=1 is supported; got ${body.best_of}.`, 'best_of', 'unsupported_value');
  }
  if (body.suffix) throw invalidRequest("'suffix' is not supported by this model.", 'suffix', 'unsupported_value');
  const wantLogprobs = body.logprobs !== undefined && body.logprobs !== null;
  if (body.echo === true && wantLogprobs) {
    throw invalidRequest(
      "'echo' together with 'logprobs' is not supported (prompt logprobs are not computed).",
      'echo',
      'unsupported_value',
    );
  }
  const vocab = ctx.engine.info.vocabSize;
  const sampling = toSamplingParams(body, vocab);
  const stops = stopStrings(body.stop);
  const stopIds = stopTokenIds(body.stop_token_ids, vocab);
  const prompts = (await promptIdLists(ctx, body.prompt)).map((ids): PreparedPrompt => ({
    plan: {
      promptIds: ids,
      maxTokens: maxTokensFor(ctx, ids.length, body.max_tokens, 'prompt', COMPLETIONS_DEFAULT_MAX_TOKENS),
      sampling,
      ...(wantLogprobs ? { topLogprobs: body.logprobs ?? 0 } : {}),
      stops,
      stopTokenIds: stopIds,
    },
    echoText: body.echo === true ? ctx.tokenizer.decode(ids, { skipSpecialTokens: false }) : '',
  }));
  return {
    prompts,
    stream: body.stream === true,
    includeUsage: body.stream_options?.include_usage === true,
    wantLogprobs,
  };
}

export async function createCompletion(
  ctx: ServingContext,
  body: CompletionRequest,
  opts: ServeOptions,
): Promise<CompletionResult> {
  return serve(ctx, 'completions', 'cmpl', await prepare(ctx, body), opts, {
    json: (p, abort, trace, meta) => collect(ctx, p, abort, trace, meta),
    stream: (p, abort, trace, meta, done) => streamChunks(ctx, p, abort, trace, meta, done),
  });
}

function envelope(ctx: ServingContext, meta: ResponseMeta, choices: CompletionChoice[]): CompletionResponse {
  return {
    id: meta.id,
    object: 'text_completion',
    created: meta.created,
    model: ctx.modelName,
    system_fingerprint: ctx.systemFingerprint,
    choices,
  };
}

async function collect(
  ctx: ServingContext,
  p: PreparedCompletion,
  abort: RequestAbort,
  trace: RequestTrace,
  meta: ResponseMeta,
): Promise<CompletionResponse> {
  const pieces = tokenPieces(ctx);
  const choices: CompletionChoice[] = [];
  let promptTokens = 0;
  let completionTokens = 0;
  let cachedTokens = 0;
  for (const [index, prompt] of p.prompts.entries()) {
    let text = prompt.echoText;
    const logprobs: CompletionLogprobs = emptyCompletionLogprobs();
    let finishReason: WireFinishReason = 'length';
    for await (const ev of generate(ctx, prompt.plan, abort, trace)) {
      if (p.wantLogprobs) appendCompletionLogprobs(logprobs, completionLogprobs(pieces, ev.tokens, 0));
      if (ev.type === 'delta') text += ev.text;
      else {
        finishReason = ev.finishReason;
        promptTokens += ev.promptTokens;
        completionTokens += ev.completionTokens;
        cachedTokens += ev.cachedTokens;
      }
    }
    choices.push({ index, text, logprobs: p.wantLogprobs ? logprobs : null, finish_reason: finishReason });
  }
  return { ...envelope(ctx, meta, choices), usage: usageOf(promptTokens, completionTokens, cachedTokens) };
}

async function* streamChunks(
  ctx: ServingContext,
  p: PreparedCompletion,
  abort: RequestAbort,
  trace: RequestTrace,
  meta: ResponseMeta,
  cleanup: () => void,
): AsyncGenerator<CompletionChunk | ErrorResponse, void, undefined> {
  const pieces = tokenPieces(ctx);
  const chunk = (choices: CompletionChoice[], usage?: Usage): CompletionChunk => ({
    ...envelope(ctx, meta, choices),
    ...(p.includeUsage ? { usage: usage ?? null } : {}),
  });
  let started = false;
  let promptTokens = 0;
  let completionTokens = 0;
  let cachedTokens = 0;
  try {
    for (const [index, prompt] of p.prompts.entries()) {
      let echoed = prompt.echoText.length === 0;
      for await (const ev of generate(ctx, prompt.plan, abort, trace)) {
        started = true;
        if (!echoed) {
          echoed = true;
          yield chunk([{ index, text: prompt.echoText, logprobs: null, finish_reason: null }]);
        }
        const lp = p.wantLogprobs && ev.tokens.length > 0 ? completionLogprobs(pieces, ev.tokens, 0) : null;
        if (ev.type === 'delta') {
          if (ev.text.length === 0 && lp === null) continue;
          yield chunk([{ index, text: ev.text, logprobs: lp, finish_reason: null }]);
        } else {
          promptTokens += ev.promptTokens;
          completionTokens += ev.completionTokens;
          cachedTokens += ev.cachedTokens;
          yield chunk([{ index, text: '', logprobs: lp, finish_reason: ev.finishReason }]);
        }
      }
    }
    if (p.includeUsage) yield chunk([], usageOf(promptTokens, completionTokens, cachedTokens));
  } catch (err) {
    const errorEvent = streamError(err, started);
    if (errorEvent) yield errorEvent;
  } finally {
    cleanup();
  }
}
