/**
 * /v1/chat/completions logic: messages -> the model's own chat template -> generation ->
 * response or stream chunks. Knows nothing about HTTP.
 */
import type { ChatMessage } from '../../tokenizer/tokenizer.ts';
import { invalidRequest } from '../errors.ts';
import type {
  ChatCompletionChunk,
  ChatCompletionChunkChoice,
  ChatCompletionRequest,
  ChatCompletionResponse,
  ChatMessageParam,
  ChatTokenLogprob,
} from '../protocol/chat.ts';
import type { Usage, WireFinishReason } from '../protocol/common.ts';
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
import { chatLogprobs } from './logprobs.ts';
import {
  checkCommon,
  maxTokensFor,
  resolveModel,
  stopStrings,
  stopTokenIds,
  toSamplingParams,
} from './params.ts';

export type ChatResult = ServeResult<ChatCompletionResponse, ChatCompletionChunk>;

/** OpenAI's content-part arrays become one string, parts separated by newlines (as vLLM does). */
export function toTemplateMessages(messages: readonly ChatMessageParam[]): ChatMessage[] {
  return messages.map((m, i) => {
    let content: string;
    if (typeof m.content === 'string') content = m.content;
    else if (Array.isArray(m.content)) {
      content = m.content
        .map((part, j) => {
          if (typeof part.text !== 'string') {
            throw invalidRequest(`Missing text in a text content part.`, `messages[${i}].content[${j}].text`);
          }
          return part.text;
        })
        .join('\n');
    }
    else if (m.role === 'assistant') content = ''; // an assistant turn that only carried tool calls
    else throw invalidRequest(`Missing content in message ${i} (role '${m.role}').`, `messages[${i}].content`);
    // Phi-4's template has no developer role; OpenAI treats developer messages as system messages.
    const role = m.role === 'developer' ? 'system' : m.role;
    return { role, content };
  });
}

interface PreparedChat {
  plan: GenerationPlan;
  stream: boolean;
  includeUsage: boolean;
  wantLogprobs: boolean;
}

/** Every check that can fail before the request takes a place in the queue. */
async function prepare(ctx: ServingContext, body: ChatCompletionRequest): Promise<PreparedChat> {
  resolveModel(ctx, body.model);
  checkCommon(body);
  if (body.response_format && body.response_format.type !== 'text') {
    throw invalidRequest(
      `response_format '${body.response_format.type}' is not supported yet; only 'text' is.`,
      'response_format',
      'unsupported_value',
    );
  }
  const wantLogprobs = body.logprobs === true;
  if (body.top_logprobs !== undefined && body.top_logprobs !== null && !wantLogprobs) {
    throw invalidRequest("'top_logprobs' requires 'logprobs' to be true.", 'top_logprobs', 'invalid_value');
  }
  const vocab = ctx.engine.info.vocabSize;
  const sampling = toSamplingParams(body, vocab);
  const stops = stopStrings(body.stop);
  const stopIds = stopTokenIds(body.stop_token_ids, vocab);
  const { ids } = await ctx.tokenizer.applyChatTemplateAsync(toTemplateMessages(body.messages), {
    addGenerationPrompt: true,
    specialTokensInContent: ctx.config.allowSpecialTokensInContent,
  });
  const maxTokens = maxTokensFor(ctx, ids.length, body.max_completion_tokens ?? body.max_tokens, 'messages');
  return {
    plan: {
      promptIds: ids,
      maxTokens,
      sampling,
      ...(wantLogprobs ? { topLogprobs: body.top_logprobs ?? 0 } : {}),
      stops,
      stopTokenIds: stopIds,
    },
    stream: body.stream === true,
    includeUsage: body.stream_options?.include_usage === true,
    wantLogprobs,
  };
}

export async function createChatCompletion(
  ctx: ServingContext,
  body: ChatCompletionRequest,
  opts: ServeOptions,
): Promise<ChatResult> {
  return serve(ctx, 'chat.completions', 'chatcmpl', await prepare(ctx, body), opts, {
    json: (p, abort, trace, meta) => collect(ctx, p, abort, trace, meta),
    stream: (p, abort, trace, meta, done) => streamChunks(ctx, p, abort, trace, meta, done),
  });
}

async function collect(
  ctx: ServingContext,
  p: PreparedChat,
  abort: RequestAbort,
  trace: RequestTrace,
  meta: ResponseMeta,
): Promise<ChatCompletionResponse> {
  const pieces = tokenPieces(ctx);
  let content = '';
  const logprobs: ChatTokenLogprob[] = [];
  let finishReason: WireFinishReason = 'length';
  let usage: Usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
  for await (const ev of generate(ctx, p.plan, abort, trace)) {
    if (p.wantLogprobs) logprobs.push(...chatLogprobs(pieces, ev.tokens));
    if (ev.type === 'delta') content += ev.text;
    else {
      finishReason = ev.finishReason;
      usage = usageOf(ev.promptTokens, ev.completionTokens, ev.cachedTokens);
    }
  }
  return {
    id: meta.id,
    object: 'chat.completion',
    created: meta.created,
    model: ctx.modelName,
    system_fingerprint: ctx.systemFingerprint,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content, refusal: null },
        logprobs: p.wantLogprobs ? { content: logprobs, refusal: null } : null,
        finish_reason: finishReason,
      },
    ],
    usage,
  };
}

async function* streamChunks(
  ctx: ServingContext,
  p: PreparedChat,
  abort: RequestAbort,
  trace: RequestTrace,
  meta: ResponseMeta,
  cleanup: () => void,
): AsyncGenerator<ChatCompletionChunk | ErrorResponse, void, undefined> {
  const pieces = tokenPieces(ctx);
  const chunk = (choices: ChatCompletionChunkChoice[], usage?: Usage): ChatCompletionChunk => ({
    id: meta.id,
    object: 'chat.completion.chunk',
    created: meta.created,
    model: ctx.modelName,
    system_fingerprint: ctx.systemFingerprint,
    choices,
    // OpenAI sends usage: null on every chunk but the last when include_usage is on.
    ...(p.includeUsage ? { usage: usage ?? null } : {}),
  });
  let started = false;
  try {
    for await (const ev of generate(ctx, p.plan, abort, trace)) {
      if (!started) {
        started = true;
        yield chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]);
      }
      const lp = p.wantLogprobs && ev.tokens.length > 0 ? { content: chatLogprobs(pieces, ev.tokens), refusal: null } : null;
      if (ev.type === 'delta') {
        // Held-back text yields empty deltas; only send what a client can see.
        if (ev.text.length === 0 && lp === null) continue;
        yield chunk([{ index: 0, delta: { content: ev.text }, logprobs: lp, finish_reason: null }]);
      } else {
        yield chunk([{ index: 0, delta: {}, logprobs: lp, finish_reason: ev.finishReason }]);
        if (p.includeUsage) yield chunk([], usageOf(ev.promptTokens, ev.completionTokens, ev.cachedTokens));
      }
    }
  } catch (err) {
    const errorEvent = streamError(err, started);
    if (errorEvent) yield errorEvent;
  } finally {
    cleanup();
  }
}
