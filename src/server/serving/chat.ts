/**
 * /v1/chat/completions logic: messages -> the model's own chat template -> generation ->
 * response or stream chunks. Knows nothing about HTTP.
 */
import { ChatTemplateError, pythonJsonDumps, type ChatMessage } from '../../tokenizer/tokenizer.ts';
import { invalidRequest } from '../errors.ts';
import type {
  ChatCompletionChunk,
  ChatCompletionChunkChoice,
  ChatFinishReason,
  ChatCompletionRequest,
  ChatCompletionResponse,
  ChatMessageParam,
  ChatTokenLogprob,
  ToolCall,
} from '../protocol/chat.ts';
import type { Usage } from '../protocol/common.ts';
import { planOutput } from '../structured/output-plan.ts';
import { toolDialect, type HistoryCall, type ToolDialect } from '../tools/dialects.ts';
import type { ToolCallSyntax } from '../tools/tool-call-parser.ts';
import type { ErrorResponse } from '../protocol/errors.ts';
import type { RequestTrace } from '../trace.ts';
import type { RequestAbort } from './abort.ts';
import { ChatOutput } from './chat-output.ts';
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

/**
 * OpenAI's content-part arrays become one string, parts separated by newlines (as vLLM does). An
 * assistant turn's calls are rendered as the model family's template reads them (`dialect`; without
 * one, Phi-4's JSON text).
 */
export function toTemplateMessages(messages: readonly ChatMessageParam[], dialect?: ToolDialect): ChatMessage[] {
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
    if (m.role !== 'assistant' || !m.tool_calls?.length) return { role, content };
    const calls = historyCalls(m.tool_calls, i);
    return { role, content, toolCalls: dialect ? dialect.historyCalls(calls) : pythonJsonDumps(calls) };
  });
}

/** An assistant turn's calls with their arguments parsed (the template renders them as the model writes them). */
function historyCalls(calls: readonly ToolCall[], message: number): HistoryCall[] {
  return calls.map((c, j) => {
    let args: unknown;
    try {
      args = JSON.parse(c.function.arguments);
    } catch {
      throw invalidRequest('Tool call arguments must be JSON text.', `messages[${message}].tool_calls[${j}].function.arguments`);
    }
    return { name: c.function.name, arguments: args };
  });
}

/** The tool-call dialect of the model and the template in use (--chat-template's, else the model's). */
function dialectOf(ctx: ServingContext): ToolDialect | undefined {
  return toolDialect(ctx.tokenizer, ctx.config.chatTemplate ?? ctx.tokenizer.chatTemplate);
}

/** A chat request checked and tokenized, ready to queue (the Messages and Responses APIs translate into it). */
export interface PreparedChat {
  plan: GenerationPlan;
  stream: boolean;
  includeUsage: boolean;
  wantLogprobs: boolean;
  /** Parse tool calls from the output, in this syntax (undefined: the output is all content). */
  toolCalls: ToolCallSyntax | undefined;
}

/** Every check that can fail before the request takes a place in the queue. */
export async function prepareChat(ctx: ServingContext, body: ChatCompletionRequest): Promise<PreparedChat> {
  resolveModel(ctx, body.model);
  checkCommon(body);
  const dialect = dialectOf(ctx);
  const output = planOutput(body, dialect, ctx.engine.info.eosTokenIds);
  const wantLogprobs = body.logprobs === true;
  if (body.top_logprobs !== undefined && body.top_logprobs !== null && !wantLogprobs) {
    throw invalidRequest("'top_logprobs' requires 'logprobs' to be true.", 'top_logprobs', 'invalid_value');
  }
  const vocab = ctx.engine.info.vocabSize;
  const sampling = toSamplingParams(body, vocab);
  const stops = stopStrings(body.stop);
  const stopIds = stopTokenIds(body.stop_token_ids, vocab);
  const { ids } = await renderPrompt(ctx, toTemplateMessages(body.messages, dialect), {
    addGenerationPrompt: true,
    specialTokensInContent: ctx.config.allowSpecialTokensInContent,
    ...output.promptTools,
    ...(ctx.config.chatTemplate !== undefined ? { chatTemplate: ctx.config.chatTemplate } : {}),
  });
  for (const { grammar, param } of output.grammars) {
    const error = await ctx.engine.checkGrammar(grammar);
    if (error !== undefined) throw invalidRequest(`This schema cannot be used for generation: ${error}.`, param);
  }
  const maxTokens = maxTokensFor(ctx, ids.length, body.max_completion_tokens ?? body.max_tokens, 'messages');
  return {
    plan: {
      promptIds: ids,
      maxTokens,
      sampling,
      ...(wantLogprobs ? { topLogprobs: body.top_logprobs ?? 0 } : {}),
      stops,
      stopTokenIds: [...stopIds, ...output.extraStopIds],
      ...(output.constraint ? { constraint: output.constraint } : {}),
      ...(output.toolCalls && dialect ? { markers: dialect.markers } : {}),
    },
    stream: body.stream === true,
    includeUsage: body.stream_options?.include_usage === true,
    wantLogprobs,
    toolCalls: output.toolCalls,
  };
}

/** The chat template's output; a template that fails on these messages is the request's 400, not a server error. */
async function renderPrompt(ctx: ServingContext, messages: ChatMessage[], opts: Parameters<ServingContext['tokenizer']['applyChatTemplateAsync']>[1]) {
  try {
    return await ctx.tokenizer.applyChatTemplateAsync(messages, opts);
  } catch (err) {
    if (err instanceof ChatTemplateError) throw invalidRequest(`The model's chat template cannot render these messages: ${err.message}`, 'messages');
    throw err;
  }
}

export async function createChatCompletion(
  ctx: ServingContext,
  body: ChatCompletionRequest,
  opts: ServeOptions,
): Promise<ChatResult> {
  return serve(ctx, 'chat.completions', 'chatcmpl', await prepareChat(ctx, body), opts, {
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
  const output = new ChatOutput(p.toolCalls);
  let content = '';
  const logprobs: ChatTokenLogprob[] = [];
  let finishReason: ChatFinishReason = 'length';
  let usage: Usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
  for await (const ev of generate(ctx, p.plan, abort, trace)) {
    if (p.wantLogprobs) logprobs.push(...chatLogprobs(pieces, ev.tokens));
    if (ev.type === 'delta') content += output.push(ev.text).content;
    else {
      content += output.finish().content;
      finishReason = output.finishReason(ev.finishReason);
      usage = usageOf(ev.promptTokens, ev.completionTokens, ev.cachedTokens);
    }
  }
  const toolCalls = output.toolCalls();
  return {
    id: meta.id,
    object: 'chat.completion',
    created: meta.created,
    model: ctx.modelName,
    system_fingerprint: ctx.systemFingerprint,
    choices: [
      {
        index: 0,
        message:
          toolCalls.length > 0
            ? { role: 'assistant', content: content.length > 0 ? content : null, refusal: null, tool_calls: toolCalls }
            : { role: 'assistant', content, refusal: null },
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
  const output = new ChatOutput(p.toolCalls);
  let started = false;
  try {
    for await (const ev of generate(ctx, p.plan, abort, trace)) {
      if (!started) {
        started = true;
        yield chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]);
      }
      let lp = p.wantLogprobs && ev.tokens.length > 0 ? { content: chatLogprobs(pieces, ev.tokens), refusal: null } : null;
      const deltas = ev.type === 'delta' ? output.push(ev.text).deltas : output.finish().deltas;
      // Held-back text yields no deltas; only send what a client can see (logprobs ride on the first).
      for (const delta of deltas) {
        yield chunk([{ index: 0, delta, logprobs: lp, finish_reason: null }]);
        lp = null;
      }
      if (ev.type === 'delta') {
        if (lp) yield chunk([{ index: 0, delta: {}, logprobs: lp, finish_reason: null }]);
      } else {
        yield chunk([{ index: 0, delta: {}, logprobs: lp, finish_reason: output.finishReason(ev.finishReason) }]);
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
