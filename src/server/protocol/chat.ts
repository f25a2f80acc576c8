/** Wire schema and types of POST /v1/chat/completions (requests, responses, stream chunks). */
import { samplingFieldSchemas, type SamplingFields, type Usage, type WireFinishReason } from './common.ts';

export const CHAT_ROLES = ['system', 'developer', 'user', 'assistant', 'tool'] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];

export interface TextContentPart {
  type: 'text';
  text: string;
}

export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface ChatMessageParam {
  role: ChatRole;
  content?: string | TextContentPart[] | null;
  name?: string | null;
  tool_call_id?: string | null;
  /** Assistant turns: the calls it made (rendered back into the prompt). */
  tool_calls?: ToolCall[] | null;
}

export interface FunctionTool {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean | null };
}

export type ToolChoice = 'none' | 'auto' | 'required' | { type: 'function'; function: { name: string } };

export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | { type: 'json_schema'; json_schema: { name: string; description?: string; schema?: Record<string, unknown>; strict?: boolean | null } };

export interface ChatCompletionRequest extends SamplingFields {
  messages: ChatMessageParam[];
  max_completion_tokens?: number | null;
  logprobs?: boolean | null;
  top_logprobs?: number | null;
  response_format?: ResponseFormat | null;
  tools?: FunctionTool[] | null;
  tool_choice?: ToolChoice | null;
  parallel_tool_calls?: boolean | null;
}

const toolCallSchema = {
  type: 'object',
  required: ['id', 'type', 'function'],
  properties: {
    id: { type: 'string' },
    type: { type: 'string', enum: ['function'] },
    function: {
      type: 'object',
      required: ['name', 'arguments'],
      properties: { name: { type: 'string' }, arguments: { type: 'string' } },
    },
  },
} as const;

/** A JSON schema is checked (and compiled) by the serving layer, which names the exact param. */
const jsonSchemaObject = { type: 'object' } as const;

export const toolsSchema = {
  type: ['array', 'null'],
  items: {
    type: 'object',
    required: ['type', 'function'],
    properties: {
      type: { type: 'string', enum: ['function'] },
      function: {
        type: 'object',
        required: ['name'],
        properties: {
          name: { type: 'string', pattern: '^[a-zA-Z0-9_-]{1,64}$' },
          description: { type: 'string' },
          parameters: jsonSchemaObject,
          strict: { type: ['boolean', 'null'] },
        },
      },
    },
  },
} as const;

export const toolChoiceSchema = {
  anyOf: [
    { type: 'string', enum: ['none', 'auto', 'required'] },
    {
      type: 'object',
      required: ['type', 'function'],
      properties: {
        type: { type: 'string', enum: ['function'] },
        function: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } },
      },
    },
    { type: 'null' },
  ],
} as const;

export const chatCompletionRequestSchema = {
  type: 'object',
  required: ['model', 'messages'],
  properties: {
    ...samplingFieldSchemas,
    messages: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['role'],
        properties: {
          role: { type: 'string', enum: CHAT_ROLES },
          content: {
            anyOf: [
              { type: 'string' },
              {
                type: 'array',
                items: {
                  type: 'object',
                  // `text` is checked by the serving layer, so a wrong `type` is what gets reported.
                  required: ['type'],
                  // Only text parts: images/audio are not something this model reads.
                  properties: { type: { type: 'string', enum: ['text'] }, text: { type: 'string' } },
                },
              },
              { type: 'null' },
            ],
          },
          name: { type: ['string', 'null'] },
          tool_call_id: { type: ['string', 'null'] },
          tool_calls: { type: ['array', 'null'], items: toolCallSchema },
        },
      },
    },
    max_completion_tokens: { type: ['integer', 'null'], minimum: 1 },
    logprobs: { type: ['boolean', 'null'] },
    top_logprobs: { type: ['integer', 'null'], minimum: 0, maximum: 20 },
    response_format: {
      type: ['object', 'null'],
      required: ['type'],
      properties: {
        type: { type: 'string', enum: ['text', 'json_object', 'json_schema'] },
        json_schema: {
          type: 'object',
          required: ['name'],
          properties: {
            name: { type: 'string', pattern: '^[a-zA-Z0-9_-]{1,64}$' },
            description: { type: 'string' },
            schema: jsonSchemaObject,
            strict: { type: ['boolean', 'null'] },
          },
        },
      },
    },
    tools: toolsSchema,
    tool_choice: toolChoiceSchema,
    parallel_tool_calls: { type: ['boolean', 'null'] },
  },
} as const;

export interface TopLogprob {
  token: string;
  logprob: number;
  bytes: number[] | null;
}

export interface ChatTokenLogprob extends TopLogprob {
  top_logprobs: TopLogprob[];
}

export interface ChatChoiceLogprobs {
  content: ChatTokenLogprob[] | null;
  refusal: null;
}

export interface ChatCompletionMessage {
  role: 'assistant';
  /** Null when the answer is only tool calls, as OpenAI sends it. */
  content: string | null;
  refusal: null;
  tool_calls?: ToolCall[];
}

/** A streamed piece of a tool call: id, type and name come first, then argument fragments. */
export interface ToolCallDelta {
  index: number;
  id?: string;
  type?: 'function';
  function: { name?: string; arguments: string };
}

/** Chat adds 'tool_calls': the answer is one or more calls. */
export type ChatFinishReason = WireFinishReason | 'tool_calls';

export interface ChatCompletionChoice {
  index: number;
  message: ChatCompletionMessage;
  logprobs: ChatChoiceLogprobs | null;
  finish_reason: ChatFinishReason;
}

export interface ChatCompletionResponse {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  system_fingerprint: string;
  choices: ChatCompletionChoice[];
  usage: Usage;
}

export interface ChatCompletionChunkChoice {
  index: number;
  delta: { role?: 'assistant'; content?: string; tool_calls?: ToolCallDelta[] };
  logprobs: ChatChoiceLogprobs | null;
  finish_reason: ChatFinishReason | null;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  system_fingerprint: string;
  choices: ChatCompletionChunkChoice[];
  /** Present (null until the last chunk) only with stream_options.include_usage, as OpenAI does. */
  usage?: Usage | null;
}
