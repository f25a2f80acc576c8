/**
 * /v1/responses logic: OpenAI's Responses API translated onto the chat-completions core.
 * A request becomes a ChatCompletionRequest (prepareChat checks and tokenizes it), the generation
 * runs through the same serve()/generate() lifecycle, and ChatOutput's deltas become Responses
 * output items (a message, function calls) and their stream events. Knows nothing about HTTP.
 *
 * Stored responses keep their conversation as chat messages, so `previous_response_id` prepends
 * exactly the turns the model saw and wrote: the new prompt then starts with the old one, which the
 * engine's prefix cache serves without recomputing.
 */
import { randomBytes } from 'node:crypto';
import type { ChatCompletionRequest, ChatMessageParam, ToolCall } from '../protocol/chat.ts';
import type { ErrorResponse } from '../protocol/errors.ts';
import type {
  CreateResponseRequest,
  DeletedResponse,
  OutputFunctionCall,
  OutputItem,
  OutputMessage,
  OutputTextPart,
  ResponseEventBody,
  ResponseObject,
  ResponseStatus,
  ResponseStreamEvent,
  ResponseUsage,
  ResponsesToolChoice,
} from '../protocol/responses.ts';
import type { RequestTrace } from '../trace.ts';
import type { RequestAbort } from './abort.ts';
import { prepareChat, type PreparedChat } from './chat.ts';
import { ChatOutput, type ChunkDelta } from './chat-output.ts';
import { serve, streamError, unixSeconds, type ResponseMeta, type ServeOptions, type ServeResult } from './common.ts';
import type { ServingContext } from './context.ts';
import { generate } from './generate.ts';
import type { ResponseStore } from './response-store.ts';
import { callIdsOf, checkSupported, echoTools, previousResponseNotFound, renamed, responseNotFound, toChatToolChoice, toChatTools, toResponseFormat, translateInput, type MessageOrigin } from './responses-input.ts';

export type ResponsesResult = ServeResult<ResponseObject, ResponseStreamEvent>;

// ---------------------------------------------------------------------------------------------
// Prepared request

/** The response fields known before generation (echoes of the request). */
type ResponseEcho = Omit<ResponseObject, 'id' | 'object' | 'created_at' | 'status' | 'completed_at' | 'incomplete_details' | 'output' | 'usage'>;

interface PreparedResponse {
  stream: boolean;
  chat: PreparedChat;
  echo: ResponseEcho;
  /** Inputs without instructions: what a continuation starts from (before this output). */
  conversation: ChatMessageParam[];
  /** Where the finished response goes; undefined with `store: false`. */
  store: ResponseStore | undefined;
}

async function prepareResponse(ctx: ServingContext, store: ResponseStore, body: CreateResponseRequest): Promise<PreparedResponse> {
  checkSupported(body);
  const previousId = body.previous_response_id ?? null;
  const previous = previousId !== null ? store.get(previousId) : undefined;
  if (previousId !== null && !previous) throw previousResponseNotFound(previousId);

  const earlier = previous?.conversation ?? [];
  const input = translateInput(body.input, callIdsOf(earlier));
  const conversation = [...earlier, ...input.messages];
  const instructions = body.instructions ?? null;
  // OpenAI does not carry instructions over from a previous response: each request brings its own.
  const messages: ChatMessageParam[] = [...(instructions !== null ? [{ role: 'system' as const, content: instructions }] : []), ...conversation];
  const origins: MessageOrigin[] = [
    ...(instructions !== null ? [{ param: 'instructions' }] : []),
    ...earlier.map(() => ({ param: 'previous_response_id' })),
    ...input.origins,
  ];

  const tools = toChatTools(body.tools ?? []);
  const chatRequest: ChatCompletionRequest = {
    model: body.model,
    messages,
    max_completion_tokens: body.max_output_tokens,
    temperature: body.temperature,
    top_p: body.top_p,
    seed: body.seed,
    ...(tools.length > 0 ? { tools } : {}),
    tool_choice: toChatToolChoice(body.tool_choice),
    parallel_tool_calls: body.parallel_tool_calls,
    response_format: toResponseFormat(body.text?.format),
    stream: body.stream,
  };
  let chat: PreparedChat;
  try {
    chat = await prepareChat(ctx, chatRequest);
  } catch (err) {
    throw renamed(err, origins);
  }
  const keep = body.store !== false;
  return {
    stream: chat.stream,
    chat,
    conversation,
    store: keep ? store : undefined,
    echo: {
      error: null,
      instructions,
      max_output_tokens: body.max_output_tokens ?? null,
      model: ctx.modelName,
      parallel_tool_calls: body.parallel_tool_calls ?? true,
      previous_response_id: previousId,
      reasoning: null,
      store: keep,
      temperature: body.temperature ?? 1,
      text: { format: body.text?.format ?? { type: 'text' } },
      tool_choice: (body.tool_choice as ResponsesToolChoice | null | undefined) ?? (tools.length > 0 ? 'auto' : 'none'),
      tools: echoTools(tools),
      top_p: body.top_p ?? 1,
      truncation: 'disabled',
      metadata: body.metadata ?? {},
      ...(typeof body.user === 'string' ? { user: body.user } : {}),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Output items and their events

const itemId = (prefix: 'msg' | 'fc'): string => `${prefix}_${randomBytes(16).toString('hex')}`;

/** serve() names ids `resp-...`; the Responses API's are `resp_...`. */
const responseId = (meta: ResponseMeta): string => meta.id.replace(/^resp-/, 'resp_');

const textPart = (text: string): OutputTextPart => ({ type: 'output_text', text, annotations: [] });

/**
 * The output items of one response, built from ChatOutput's deltas, and the stream events that
 * build them: one item is open at a time (text goes to a message, each tool call is its own
 * function_call item), and an item is finished before the next one is added, as OpenAI streams.
 * Events carry snapshots, since the open item keeps changing.
 */
class OutputItems {
  readonly items: OutputItem[] = [];
  private open: { item: OutputItem; index: number } | undefined;

  apply(delta: ChunkDelta): ResponseEventBody[] {
    const events: ResponseEventBody[] = [];
    if (delta.content) events.push(...this.text(delta.content));
    for (const call of delta.tool_calls ?? []) {
      if (call.id !== undefined) events.push(...this.closeOpen('completed'), ...this.openCall(call.id, call.function.name ?? ''));
      if (call.function.arguments) events.push(...this.arguments(call.function.arguments));
    }
    return events;
  }

  /** Closes the open item; a response with no output at all still gets an (empty) message. */
  finish(status: 'completed' | 'incomplete'): ResponseEventBody[] {
    const events = this.items.length === 0 ? this.openMessage() : [];
    return [...events, ...this.closeOpen(status)];
  }

  private text(delta: string): ResponseEventBody[] {
    const events = this.open?.item.type === 'message' ? [] : [...this.closeOpen('completed'), ...this.openMessage()];
    const { item, index } = this.open as { item: OutputMessage; index: number };
    item.content[0].text += delta;
    events.push({ type: 'response.output_text.delta', item_id: item.id, output_index: index, content_index: 0, delta, logprobs: [] });
    return events;
  }

  private arguments(delta: string): ResponseEventBody[] {
    const { item, index } = this.open as { item: OutputFunctionCall; index: number };
    item.arguments += delta;
    return [{ type: 'response.function_call_arguments.delta', item_id: item.id, output_index: index, delta }];
  }

  private openMessage(): ResponseEventBody[] {
    const item: OutputMessage = { type: 'message', id: itemId('msg'), status: 'in_progress', role: 'assistant', content: [] };
    const index = this.add(item);
    const added: ResponseEventBody = { type: 'response.output_item.added', output_index: index, item: structuredClone(item) };
    item.content.push(textPart(''));
    return [added, { type: 'response.content_part.added', item_id: item.id, output_index: index, content_index: 0, part: textPart('') }];
  }

  private openCall(callId: string, name: string): ResponseEventBody[] {
    const item: OutputFunctionCall = { type: 'function_call', id: itemId('fc'), call_id: callId, name, arguments: '', status: 'in_progress' };
    const index = this.add(item);
    return [{ type: 'response.output_item.added', output_index: index, item: structuredClone(item) }];
  }

  private add(item: OutputItem): number {
    this.open = { item, index: this.items.push(item) - 1 };
    return this.open.index;
  }

  private closeOpen(status: 'completed' | 'incomplete'): ResponseEventBody[] {
    if (!this.open) return [];
    const { item, index } = this.open;
    this.open = undefined;
    item.status = status;
    const done: ResponseEventBody = { type: 'response.output_item.done', output_index: index, item: structuredClone(item) };
    if (item.type === 'function_call') {
      return [{ type: 'response.function_call_arguments.done', item_id: item.id, output_index: index, arguments: item.arguments }, done];
    }
    const { text } = item.content[0];
    return [
      { type: 'response.output_text.done', item_id: item.id, output_index: index, content_index: 0, text, logprobs: [] },
      { type: 'response.content_part.done', item_id: item.id, output_index: index, content_index: 0, part: textPart(text) },
      done,
    ];
  }
}

/** The output as one assistant turn (text, then its calls), as the model wrote it, for the next prompt. */
function assistantTurn(items: readonly OutputItem[]): ChatMessageParam {
  const text = items.flatMap((i) => (i.type === 'message' ? i.content.map((c) => c.text) : [])).join('');
  const calls: ToolCall[] = items.flatMap((i) =>
    i.type === 'function_call' ? [{ id: i.call_id, type: 'function' as const, function: { name: i.name, arguments: i.arguments } }] : [],
  );
  return calls.length > 0 ? { role: 'assistant', content: text, tool_calls: calls } : { role: 'assistant', content: text };
}

function usageOf(promptTokens: number, completionTokens: number, cachedTokens: number): ResponseUsage {
  return {
    input_tokens: promptTokens,
    input_tokens_details: { cached_tokens: cachedTokens },
    output_tokens: completionTokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: promptTokens + completionTokens,
  };
}

/** The response before any output (response.created, response.in_progress). */
function inProgress(p: PreparedResponse, meta: ResponseMeta): ResponseObject {
  return {
    id: responseId(meta),
    object: 'response',
    created_at: meta.created,
    status: 'in_progress',
    completed_at: null,
    incomplete_details: null,
    output: [],
    usage: null,
    ...p.echo,
  };
}

/** The finished response; stored (with the conversation it ends) unless `store: false`. */
function finished(p: PreparedResponse, meta: ResponseMeta, items: OutputItems, status: ResponseStatus, usage: ResponseUsage): ResponseObject {
  const response: ResponseObject = {
    ...inProgress(p, meta),
    status,
    completed_at: status === 'completed' ? unixSeconds() : null,
    incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    output: items.items,
    usage,
  };
  p.store?.put({ response, conversation: [...p.conversation, assistantTurn(items.items)] });
  return response;
}

type FinishEvent = { finishReason: 'stop' | 'length'; promptTokens: number; completionTokens: number; cachedTokens: number };

/** 'length' (max_output_tokens, or the time limit cut the answer) makes the response incomplete. */
const statusOf = (ev: FinishEvent): 'completed' | 'incomplete' => (ev.finishReason === 'length' ? 'incomplete' : 'completed');

// ---------------------------------------------------------------------------------------------
// Serving

export async function createResponse(
  ctx: ServingContext,
  store: ResponseStore,
  body: CreateResponseRequest,
  opts: ServeOptions,
): Promise<ResponsesResult> {
  return serve(ctx, 'responses', 'resp', await prepareResponse(ctx, store, body), opts, {
    json: (p, abort, trace, meta) => collect(ctx, p, abort, trace, meta),
    stream: (p, abort, trace, meta, done) => streamEvents(ctx, p, abort, trace, meta, done),
  });
}

async function collect(ctx: ServingContext, p: PreparedResponse, abort: RequestAbort, trace: RequestTrace, meta: ResponseMeta): Promise<ResponseObject> {
  const output = new ChatOutput(p.chat.toolCalls);
  const items = new OutputItems();
  let end: FinishEvent | undefined;
  for await (const ev of generate(ctx, p.chat.plan, abort, trace)) {
    for (const delta of ev.type === 'delta' ? output.push(ev.text).deltas : output.finish().deltas) items.apply(delta);
    if (ev.type === 'finish') end = ev;
  }
  // generate() ends with a finish event or throws.
  const last = end as FinishEvent;
  items.finish(statusOf(last));
  return finished(p, meta, items, statusOf(last), usageOf(last.promptTokens, last.completionTokens, last.cachedTokens));
}

/**
 * The event stream. response.created waits for the engine's first event, so failures before any
 * output (queue timeout, engine refusal) still become HTTP errors; later ones an `error` event.
 */
async function* streamEvents(
  ctx: ServingContext,
  p: PreparedResponse,
  abort: RequestAbort,
  trace: RequestTrace,
  meta: ResponseMeta,
  cleanup: () => void,
): AsyncGenerator<ResponseStreamEvent | ErrorResponse, void, undefined> {
  let sequence = 0;
  const stamp = (event: ResponseEventBody): ResponseStreamEvent => ({ ...event, sequence_number: sequence++ });
  const output = new ChatOutput(p.chat.toolCalls);
  const items = new OutputItems();
  let started = false;
  try {
    for await (const ev of generate(ctx, p.chat.plan, abort, trace)) {
      if (!started) {
        started = true;
        yield stamp({ type: 'response.created', response: inProgress(p, meta) });
        yield stamp({ type: 'response.in_progress', response: inProgress(p, meta) });
      }
      for (const delta of ev.type === 'delta' ? output.push(ev.text).deltas : output.finish().deltas) {
        for (const event of items.apply(delta)) yield stamp(event);
      }
      if (ev.type === 'finish') {
        const status = statusOf(ev);
        for (const event of items.finish(status)) yield stamp(event);
        const response = finished(p, meta, items, status, usageOf(ev.promptTokens, ev.completionTokens, ev.cachedTokens));
        yield stamp({ type: status === 'completed' ? 'response.completed' : 'response.incomplete', response });
      }
    }
  } catch (err) {
    const error = streamError(err, started)?.error;
    if (error) yield stamp({ type: 'error', code: error.code, message: error.message, param: error.param });
  } finally {
    cleanup();
  }
}

// ---------------------------------------------------------------------------------------------
// Stored responses

export function retrieveResponse(store: ResponseStore, id: string): ResponseObject {
  const stored = store.get(id);
  if (!stored) throw responseNotFound(id);
  return stored.response;
}

export function deleteResponse(store: ResponseStore, id: string): DeletedResponse {
  if (!store.delete(id)) throw responseNotFound(id);
  return { id, object: 'response', deleted: true };
}
