/**
 * A Responses API request as the chat core reads it: input items become chat messages (function
 * calls become an assistant turn's tool_calls, their outputs tool messages), tools, tool_choice and
 * text.format their chat equivalents, and errors from the chat core name the Responses fields.
 */
import { ApiError, invalidRequest } from '../errors.ts';
import type { ChatMessageParam, FunctionTool, ResponseFormat, ToolCall, ToolChoice } from '../protocol/chat.ts';
import type { CreateResponseRequest, EchoedFunctionTool, InputContentPart, InputItem, RequestTool, TextFormat } from '../protocol/responses.ts';

/** Which Responses param a chat message came from, so errors about messages name the client's field. */
export interface MessageOrigin {
  param: string;
  /** For an assistant turn built from function_call items: the param of each call. */
  calls?: string[];
}

/** Fields OpenAI accepts that this server cannot honor: refused when set, never silently ignored. */
export function checkSupported(body: CreateResponseRequest): void {
  const refuse = (param: string, why: string): never => {
    throw invalidRequest(`'${param}' is not supported: ${why}`, param, 'unsupported_parameter');
  };
  if (body.reasoning !== undefined && body.reasoning !== null) refuse('reasoning', 'this model answers without a separate reasoning phase; omit it or send null.');
  if (body.background === true) refuse('background', 'responses are generated while the request waits (or streams).');
  if (body.include && body.include.length > 0) refuse('include', 'no additional output data (logprobs, tool results) is available.');
  if (body.truncation === 'auto') refuse('truncation', "only 'disabled' is supported; an input longer than the context is refused.");
  if (body.top_logprobs) refuse('top_logprobs', 'log probabilities are available from /v1/chat/completions.');
  if (body.max_tool_calls !== undefined && body.max_tool_calls !== null) refuse('max_tool_calls', "use 'parallel_tool_calls: false' for at most one call.");
  if (body.conversation !== undefined && body.conversation !== null) refuse('conversation', "there is no Conversations API here; continue with 'previous_response_id'.");
  if (body.prompt !== undefined && body.prompt !== null) refuse('prompt', 'there are no stored prompt templates here.');
  const verbosity = body.text?.verbosity;
  if (verbosity !== undefined && verbosity !== null && verbosity !== 'medium') refuse('text.verbosity', "only the default, 'medium', is supported.");
}

/** Text of a message or tool output: text parts joined by newlines (as chat content parts are). */
function textOf(content: string | InputContentPart[], param: string): string {
  if (typeof content === 'string') return content;
  return content
    .map((part, j) => {
      const at = `${param}[${j}]`;
      if (part.type === 'input_text' || part.type === 'output_text') {
        if (typeof part.text !== 'string') throw missing(`${at}.text`);
        return part.text;
      }
      // An assistant's earlier refusal, resent as history, is text the model wrote.
      if (part.type === 'refusal') {
        if (typeof part.refusal !== 'string') throw missing(`${at}.refusal`);
        return part.refusal;
      }
      throw invalidRequest(
        `Content of type '${part.type}' is not supported: this model reads text only (input_text, output_text).`,
        `${at}.type`,
        'unsupported_value',
      );
    })
    .join('\n');
}

const missing = (param: string): ApiError => invalidRequest(`Missing required parameter: '${param}'.`, param, 'missing_required_parameter');

function stringField(item: Record<string, unknown>, key: string, param: string): string {
  const value = item[key];
  if (typeof value !== 'string') throw missing(`${param}.${key}`);
  return value;
}

/**
 * Input items -> chat messages. Consecutive function_call items (and the assistant message right
 * before them) become one assistant turn with tool_calls, which is how the model wrote them; a
 * function_call_output becomes a 'tool' message and must answer a call made earlier.
 */
export function translateInput(
  input: string | InputItem[],
  knownCalls: Set<string>,
): { messages: ChatMessageParam[]; origins: MessageOrigin[] } {
  if (typeof input === 'string') return { messages: [{ role: 'user', content: input }], origins: [{ param: 'input' }] };
  const messages: ChatMessageParam[] = [];
  const origins: MessageOrigin[] = [];
  input.forEach((raw, i) => {
    const item = raw as Record<string, unknown>;
    const param = `input[${i}]`;
    const type = item.type ?? 'message';
    if (type === 'message') {
      if (item.role === undefined) throw missing(`${param}.role`);
      if (item.content === undefined) throw missing(`${param}.content`);
      messages.push({ role: item.role as ChatMessageParam['role'], content: textOf(item.content as string | InputContentPart[], `${param}.content`) });
      origins.push({ param });
    } else if (type === 'function_call') {
      const call: ToolCall = {
        id: stringField(item, 'call_id', param),
        type: 'function',
        function: { name: stringField(item, 'name', param), arguments: stringField(item, 'arguments', param) },
      };
      knownCalls.add(call.id);
      const last = messages.at(-1);
      if (last?.role === 'assistant') {
        last.tool_calls = [...(last.tool_calls ?? []), call];
        const origin = origins[origins.length - 1];
        origin.calls = [...(origin.calls ?? []), param];
      } else {
        messages.push({ role: 'assistant', content: null, tool_calls: [call] });
        origins.push({ param, calls: [param] });
      }
    } else if (type === 'function_call_output') {
      const callId = stringField(item, 'call_id', param);
      if (!knownCalls.has(callId)) throw invalidRequest(`No tool call found for function call output with call_id '${callId}'.`, `${param}.call_id`);
      if (item.output === undefined) throw missing(`${param}.output`);
      messages.push({ role: 'tool', tool_call_id: callId, content: textOf(item.output as string | InputContentPart[], `${param}.output`) });
      origins.push({ param });
    } else {
      throw invalidRequest(
        `Input items of type '${String(type)}' are not supported; this server accepts message, function_call and function_call_output items.`,
        `${param}.type`,
        'unsupported_value',
      );
    }
  });
  return { messages, origins };
}

/** Calls made in a stored conversation, which new function_call_output items may answer. */
export function callIdsOf(conversation: readonly ChatMessageParam[]): Set<string> {
  return new Set(conversation.flatMap((m) => (m.tool_calls ?? []).map((c) => c.id)));
}

/** Function tools in chat's shape. Unlike chat, Responses enforce a function's schema unless `strict: false`. */
export function toChatTools(tools: readonly RequestTool[]): FunctionTool[] {
  return tools.map((tool, i) => {
    if (tool.type !== 'function') {
      throw invalidRequest(
        `Tool type '${tool.type}' is not supported: this server runs no built-in tools, only function tools ({"type": "function", "name", "parameters"}).`,
        `tools[${i}].type`,
        'unsupported_value',
      );
    }
    const t = tool as Partial<EchoedFunctionTool>;
    if (typeof t.name !== 'string') throw missing(`tools[${i}].name`);
    return {
      type: 'function',
      function: {
        name: t.name,
        ...(typeof t.description === 'string' ? { description: t.description } : {}),
        ...(t.parameters ? { parameters: t.parameters } : {}),
        strict: t.strict !== false,
      },
    };
  });
}

/** The tools as the response echoes them: every field present, `strict` resolved. */
export function echoTools(tools: readonly FunctionTool[]): EchoedFunctionTool[] {
  return tools.map(({ function: f }) => ({
    type: 'function',
    name: f.name,
    description: f.description ?? null,
    parameters: f.parameters ?? null,
    strict: f.strict === true,
  }));
}

export function toChatToolChoice(choice: CreateResponseRequest['tool_choice']): ToolChoice | undefined {
  if (choice === undefined || choice === null || typeof choice === 'string') return choice ?? undefined;
  if (choice.type !== 'function') {
    throw invalidRequest(`tool_choice type '${choice.type}' is not supported; use 'none', 'auto', 'required' or {"type": "function", "name"}.`, 'tool_choice.type', 'unsupported_value');
  }
  if (typeof choice.name !== 'string') throw missing('tool_choice.name');
  return { type: 'function', function: { name: choice.name } };
}

export function toResponseFormat(format: TextFormat | null | undefined): ResponseFormat | undefined {
  if (!format) return undefined;
  if (format.type !== 'json_schema') return { type: format.type };
  if (typeof format.name !== 'string') throw missing('text.format.name');
  if (format.schema === undefined) throw missing('text.format.schema');
  return {
    type: 'json_schema',
    json_schema: {
      name: format.name,
      schema: format.schema,
      ...(format.description !== undefined ? { description: format.description } : {}),
      ...(format.strict !== undefined ? { strict: format.strict } : {}),
    },
  };
}

/** A chat param (as prepareChat's errors name it) -> the Responses param the client sent. */
function responsesParam(param: string, origins: readonly MessageOrigin[]): string {
  const msg = /^messages\[(\d+)\](?:\.tool_calls\[(\d+)\](.*))?/.exec(param);
  if (msg) {
    const origin = origins[Number(msg[1])];
    if (!origin) return 'input';
    const call = msg[2] !== undefined ? origin.calls?.[Number(msg[2])] : undefined;
    return call !== undefined ? call + (msg[3] ?? '').replace(/^\.function/, '') : origin.param;
  }
  if (param === 'messages') return 'input';
  if (param.startsWith('response_format.json_schema.schema')) return `text.format.schema${param.slice('response_format.json_schema.schema'.length)}`;
  if (param.startsWith('response_format')) return 'text.format';
  const tool = /^tools\[(\d+)\]\.function(.*)$/.exec(param);
  if (tool) return `tools[${tool[1]}]${tool[2]}`;
  if (param === 'tool_choice.function.name') return 'tool_choice.name';
  if (param === 'max_completion_tokens' || param === 'max_tokens') return 'max_output_tokens';
  return param;
}

/** prepareChat's errors, renamed to the Responses fields. */
export function renamed(err: unknown, origins: readonly MessageOrigin[]): unknown {
  if (!(err instanceof ApiError) || err.param === null) return err;
  const message = err.message
    .replaceAll("'response_format'", "'text.format'")
    .replaceAll("'max_completion_tokens'", "'max_output_tokens'")
    .replaceAll(' the messages', ' the input');
  return new ApiError(err.status, message, err.type, responsesParam(err.param, origins), err.code, err.headers);
}

export const previousResponseNotFound = (id: string): ApiError =>
  new ApiError(404, `Previous response with id '${id}' not found.`, 'invalid_request_error', 'previous_response_id', 'previous_response_not_found');

export const responseNotFound = (id: string): ApiError =>
  new ApiError(404, `No response found with id '${id}'.`, 'invalid_request_error', null, 'not_found');

