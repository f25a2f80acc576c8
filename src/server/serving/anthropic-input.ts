/**
 * A Messages request as the chat core reads it: system and content blocks become chat messages
 * (tool_use blocks an assistant turn's tool_calls, tool_result blocks tool messages), tools and
 * tool_choice their chat equivalents; unsupported inputs are refused, and errors from the chat core
 * name the Messages fields.
 */
import { ApiError, invalidRequest } from '../errors.ts';
import type {
  ContentBlockParam,
  MessageParam,
  MessagesInput,
  MessagesRequest,
  ToolChoiceParam,
  ToolParam,
  ToolResultBlockParam,
  ToolUseBlockParam,
} from '../protocol/anthropic.ts';
import type { ChatCompletionRequest, ChatMessageParam, FunctionTool, TextContentPart, ToolCall, ToolChoice } from '../protocol/chat.ts';

/** A chat request plus, for each of its messages, the Messages-API path it came from (for errors). */
interface Translated {
  request: ChatCompletionRequest;
  origins: string[];
}

/** Why a block type cannot be served, for the 400 that names it. */
const UNSUPPORTED_BLOCKS: Readonly<Record<string, string>> = {
  image: 'the model reads text only',
  document: 'the model reads text only',
  thinking: 'extended thinking is not supported',
  redacted_thinking: 'extended thinking is not supported',
};

const ALLOWED_BLOCKS = { user: ['text', 'tool_result'], assistant: ['text', 'tool_use'] } as const;

function rejectBlock(type: string, role: MessageParam['role'], param: string): ApiError {
  if (type === 'text' || type === 'tool_use' || type === 'tool_result') {
    return invalidRequest(`A '${type}' block cannot appear in a ${role} message.`, param);
  }
  const why = UNSUPPORTED_BLOCKS[type] ?? 'this server handles text and client tool use only';
  return invalidRequest(
    `Content blocks of type '${type}' are not supported (${why}); a ${role} message may hold: ${ALLOWED_BLOCKS[role].join(', ')}.`,
    param,
    'unsupported_value',
  );
}

function checkThinking(body: MessagesInput): void {
  // {type: 'disabled'} asks for what this server does anyway.
  if (body.thinking && body.thinking.type !== 'disabled') {
    throw invalidRequest(`Extended thinking ('thinking' of type '${body.thinking.type}') is not supported by this model.`, 'thinking', 'unsupported_value');
  }
}

/** Anthropic's top-level `system` is the chat's first message; empty means none. */
function systemMessage(system: MessagesInput['system']): ChatMessageParam | undefined {
  if (system === undefined) return undefined;
  const text = typeof system === 'string' ? system : system.map((b) => b.text).join('\n');
  return text.length > 0 ? { role: 'system', content: text } : undefined;
}

/** A tool result becomes the chat's `tool` message; only text content can be rendered. */
function toolMessage(block: ToolResultBlockParam, param: string): ChatMessageParam {
  let text = '';
  if (typeof block.content === 'string') text = block.content;
  else if (block.content) {
    text = block.content
      .map((part, k) => {
        if (part.type !== 'text' || typeof part.text !== 'string') {
          throw invalidRequest(`A tool_result may hold text blocks only (the model reads text only); got '${part.type}'.`, `${param}.content[${k}]`, 'unsupported_value');
        }
        return part.text;
      })
      .join('\n');
  }
  // The template has no error flag; the model learns of a failed call from the text.
  if (block.is_error === true) text = `Error: ${text}`;
  return { role: 'tool', tool_call_id: block.tool_use_id, content: text };
}

/** A user turn: runs of text blocks become user messages, each tool_result a tool message, in order. */
function userTurn(blocks: ContentBlockParam[], i: number, out: ChatMessageParam[], origins: string[]): void {
  let text: TextContentPart[] = [];
  const flush = (): void => {
    if (text.length === 0) return;
    out.push({ role: 'user', content: text });
    origins.push(`messages[${i}]`);
    text = [];
  };
  blocks.forEach((block, j) => {
    const param = `messages[${i}].content[${j}]`;
    if (block.type === 'text') text.push({ type: 'text', text: (block as TextContentPart).text });
    else if (block.type === 'tool_result') {
      flush();
      out.push(toolMessage(block as ToolResultBlockParam, param));
      origins.push(param);
    } else throw rejectBlock(block.type, 'user', param);
  });
  flush();
  if (blocks.length === 0) {
    out.push({ role: 'user', content: '' });
    origins.push(`messages[${i}]`);
  }
}

/** An assistant turn: its text and its tool_use blocks as one chat message with tool_calls. */
function assistantTurn(blocks: ContentBlockParam[], i: number): ChatMessageParam {
  const text: TextContentPart[] = [];
  const calls: ToolCall[] = [];
  blocks.forEach((block, j) => {
    if (block.type === 'text') text.push({ type: 'text', text: (block as TextContentPart).text });
    else if (block.type === 'tool_use') {
      const use = block as ToolUseBlockParam;
      calls.push({ id: use.id, type: 'function', function: { name: use.name, arguments: JSON.stringify(use.input) } });
    } else throw rejectBlock(block.type, 'assistant', `messages[${i}].content[${j}]`);
  });
  return { role: 'assistant', content: text, ...(calls.length > 0 ? { tool_calls: calls } : {}) };
}

function conversation(body: MessagesInput): { messages: ChatMessageParam[]; origins: string[] } {
  const messages: ChatMessageParam[] = [];
  const origins: string[] = [];
  const system = systemMessage(body.system);
  if (system) {
    messages.push(system);
    origins.push('system');
  }
  body.messages.forEach((m, i) => {
    if (m.role === 'assistant' && i === body.messages.length - 1) {
      // Continuing a prefilled answer needs the prompt to end inside the assistant turn, which
      // the chat core does not render; answering after it would silently ignore the prefill.
      throw invalidRequest('A final assistant message (prefill) is not supported: the last message must be from the user.', `messages[${i}]`, 'unsupported_value');
    }
    if (typeof m.content === 'string') {
      messages.push({ role: m.role, content: m.content });
      origins.push(`messages[${i}]`);
    } else if (m.role === 'user') userTurn(m.content, i, messages, origins);
    else {
      messages.push(assistantTurn(m.content, i));
      origins.push(`messages[${i}]`);
    }
  });
  return { messages, origins };
}

function functionTool(tool: ToolParam, i: number): FunctionTool {
  if (tool.type !== undefined && tool.type !== null && tool.type !== 'custom') {
    throw invalidRequest(`Tools of type '${tool.type}' (server tools) are not supported; define client tools with name, description and input_schema.`, `tools[${i}].type`, 'unsupported_value');
  }
  const fn: FunctionTool['function'] = { name: tool.name, parameters: tool.input_schema ?? { type: 'object' } };
  if (tool.description !== undefined) fn.description = tool.description;
  if (tool.strict !== undefined) fn.strict = tool.strict;
  return { type: 'function', function: fn };
}

function toolChoice(choice: ToolChoiceParam): { tool_choice: ToolChoice; parallel_tool_calls?: boolean } {
  const single = 'disable_parallel_tool_use' in choice && choice.disable_parallel_tool_use === true ? { parallel_tool_calls: false } : {};
  switch (choice.type) {
    case 'auto':
      return { tool_choice: 'auto', ...single };
    case 'any':
      return { tool_choice: 'required', ...single };
    case 'tool':
      return { tool_choice: { type: 'function', function: { name: choice.name } }, ...single };
    case 'none':
      return { tool_choice: 'none' };
  }
}

/** The chat request a Messages request means (count_tokens passes `max_tokens: 1`, no sampling). */
export function toChatRequest(body: MessagesInput & Partial<MessagesRequest>, maxTokens: number): Translated {
  checkThinking(body);
  const { messages, origins } = conversation(body);
  const request: ChatCompletionRequest = { model: body.model, messages, max_tokens: maxTokens, stream: body.stream === true };
  if (body.tools && body.tools.length > 0) request.tools = body.tools.map(functionTool);
  if (body.tool_choice) Object.assign(request, toolChoice(body.tool_choice));
  if (body.stop_sequences && body.stop_sequences.length > 0) request.stop = body.stop_sequences;
  if (body.temperature !== undefined) request.temperature = body.temperature;
  if (body.top_p !== undefined) request.top_p = body.top_p;
  if (body.top_k !== undefined) request.top_k = body.top_k;
  return { request, origins };
}

/** A chat-core error's `param` in Messages terms (`tools[0].function.parameters` -> `tools[0].input_schema`). */
export function anthropicParam(param: string, origins: readonly string[]): string {
  const message = /^messages\[(\d+)\]/.exec(param);
  if (message) return origins[Number(message[1])] ?? 'messages';
  const tool = /^tools\[(\d+)\]\.function\.(parameters|name)(.*)$/.exec(param);
  if (tool) return `tools[${tool[1]}].${tool[2] === 'name' ? 'name' : 'input_schema'}${tool[3]}`;
  const renamed: Record<string, string> = { 'tool_choice.function.name': 'tool_choice.name', stop: 'stop_sequences', max_completion_tokens: 'max_tokens' };
  return renamed[param] ?? param;
}

export function inAnthropicTerms(err: unknown, origins: readonly string[]): unknown {
  if (!(err instanceof ApiError) || err.param === null) return err;
  return new ApiError(err.status, err.message, err.type, anthropicParam(err.param, origins), err.code, err.headers);
}

