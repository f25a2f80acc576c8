/**
 * Wire schema and types of OpenAI's Responses API (POST /v1/responses, GET and DELETE
 * /v1/responses/{id}): requests, response objects and stream events, as far as this server
 * supports them (field names follow the openai SDK's resources/responses/responses.d.ts).
 *
 * The JSON schema checks shapes and types only; which item, content and tool types are supported
 * is checked by the serving layer (src/server/serving/responses.ts), which names the exact param
 * and says why. Optional fields accept `null`, and unknown fields are ignored, as in
 * src/server/protocol/common.ts.
 */
import { keepAliveSchema, type KeepAliveField } from './common.ts';
import type { ErrorObject } from './errors.ts';

const nullable = <T extends string>(t: T) => [t, 'null'] as const;

// ---------------------------------------------------------------------------------------------
// Request

/** A content part of an input message; only the text kinds are supported (checked when translating). */
export interface InputContentPart {
  type: string;
  text?: string;
  /** An assistant's earlier refusal, resent as history. */
  refusal?: string;
}

export type InputRole = 'user' | 'assistant' | 'system' | 'developer';

export interface MessageInputItem {
  type?: 'message';
  role: InputRole;
  content: string | InputContentPart[];
  id?: string | null;
  status?: string | null;
}

export interface FunctionCallInputItem {
  type: 'function_call';
  call_id: string;
  name: string;
  arguments: string;
  id?: string | null;
  status?: string | null;
}

export interface FunctionCallOutputInputItem {
  type: 'function_call_output';
  call_id: string;
  output: string | InputContentPart[];
  id?: string | null;
  status?: string | null;
}

/** What the schema lets through; unsupported item types are answered by the serving layer. */
export type InputItem = MessageInputItem | FunctionCallInputItem | FunctionCallOutputInputItem | { type: string; [key: string]: unknown };

export interface ResponsesFunctionTool {
  type: 'function';
  name: string;
  description?: string | null;
  parameters?: Record<string, unknown> | null;
  /** Unlike chat completions, the Responses API enforces a function's schema unless this is false. */
  strict?: boolean | null;
}

/** Built-in tools (web_search, file_search, ...) pass the schema and are refused by name later. */
export type RequestTool = ResponsesFunctionTool | { type: string; [key: string]: unknown };

export type ResponsesToolChoice = 'none' | 'auto' | 'required' | { type: 'function'; name: string };

export type TextFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | { type: 'json_schema'; name: string; schema: Record<string, unknown>; description?: string; strict?: boolean | null };

export interface CreateResponseRequest {
  model: string;
  keep_alive?: KeepAliveField;
  input: string | InputItem[];
  instructions?: string | null;
  max_output_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  tools?: RequestTool[] | null;
  tool_choice?: ResponsesToolChoice | { type: string; name?: string } | null;
  parallel_tool_calls?: boolean | null;
  text?: { format?: TextFormat | null; verbosity?: string | null } | null;
  stream?: boolean | null;
  store?: boolean | null;
  previous_response_id?: string | null;
  metadata?: Record<string, string> | null;
  user?: string | null;
  /** Extension (as in chat completions): a sampling seed, for reproducible answers. */
  seed?: number | null;
  // Accepted only at their "off" values (the serving layer refuses the rest, naming the param):
  reasoning?: unknown;
  background?: boolean | null;
  include?: string[] | null;
  truncation?: 'auto' | 'disabled' | null;
  top_logprobs?: number | null;
  max_tool_calls?: number | null;
  conversation?: unknown;
  prompt?: unknown;
}

/** OpenAI's rule for `name` in tools and formats. */
const NAME_PATTERN = '^[a-zA-Z0-9_-]{1,64}$';

const contentPartSchema = {
  type: 'object',
  required: ['type'],
  properties: { type: { type: 'string' }, text: { type: 'string' }, refusal: { type: 'string' } },
} as const;

const contentSchema = { anyOf: [{ type: 'string' }, { type: 'array', items: contentPartSchema }] } as const;

const inputItemSchema = {
  type: 'object',
  properties: {
    type: { type: 'string' },
    role: { type: 'string', enum: ['user', 'assistant', 'system', 'developer'] },
    content: contentSchema,
    call_id: { type: 'string' },
    name: { type: 'string' },
    arguments: { type: 'string' },
    output: contentSchema,
    id: { type: nullable('string') },
  },
} as const;

/** A JSON schema is checked (and compiled) by the serving layer, which names the exact param. */
const jsonSchemaObject = { type: 'object' } as const;

export const createResponseRequestSchema = {
  type: 'object',
  required: ['model', 'input'],
  properties: {
    model: { type: 'string' },
    keep_alive: keepAliveSchema,
    input: { anyOf: [{ type: 'string' }, { type: 'array', minItems: 1, items: inputItemSchema }] },
    instructions: { type: nullable('string') },
    max_output_tokens: { type: nullable('integer'), minimum: 1 },
    temperature: { type: nullable('number'), minimum: 0, maximum: 2 },
    top_p: { type: nullable('number'), exclusiveMinimum: 0, maximum: 1 },
    seed: { type: nullable('integer') },
    tools: {
      type: nullable('array'),
      items: {
        type: 'object',
        required: ['type'],
        properties: {
          type: { type: 'string' },
          name: { type: 'string', pattern: NAME_PATTERN },
          description: { type: nullable('string') },
          parameters: { type: nullable('object') },
          strict: { type: nullable('boolean') },
        },
      },
    },
    tool_choice: {
      anyOf: [
        { type: 'string', enum: ['none', 'auto', 'required'] },
        { type: 'object', required: ['type'], properties: { type: { type: 'string' }, name: { type: 'string' } } },
        { type: 'null' },
      ],
    },
    parallel_tool_calls: { type: nullable('boolean') },
    text: {
      type: nullable('object'),
      properties: {
        format: {
          type: nullable('object'),
          required: ['type'],
          properties: {
            type: { type: 'string', enum: ['text', 'json_object', 'json_schema'] },
            name: { type: 'string', pattern: NAME_PATTERN },
            description: { type: 'string' },
            schema: jsonSchemaObject,
            strict: { type: nullable('boolean') },
          },
        },
        verbosity: { type: nullable('string') },
      },
    },
    stream: { type: nullable('boolean') },
    store: { type: nullable('boolean') },
    previous_response_id: { type: nullable('string') },
    // OpenAI's limits: 16 pairs, keys up to 64 characters, values up to 512.
    metadata: {
      type: nullable('object'),
      maxProperties: 16,
      propertyNames: { maxLength: 64 },
      additionalProperties: { type: 'string', maxLength: 512 },
    },
    user: { type: nullable('string') },
    background: { type: nullable('boolean') },
    include: { type: nullable('array'), items: { type: 'string' } },
    truncation: { type: nullable('string'), enum: ['auto', 'disabled', null] },
    top_logprobs: { type: nullable('integer'), minimum: 0, maximum: 20 },
    max_tool_calls: { type: nullable('integer'), minimum: 1 },
  },
} as const;

// ---------------------------------------------------------------------------------------------
// Response object

export interface OutputTextPart {
  type: 'output_text';
  text: string;
  annotations: never[];
}

export type ItemStatus = 'in_progress' | 'completed' | 'incomplete';

export interface OutputMessage {
  type: 'message';
  id: string;
  status: ItemStatus;
  role: 'assistant';
  content: OutputTextPart[];
}

export interface OutputFunctionCall {
  type: 'function_call';
  id: string;
  call_id: string;
  name: string;
  arguments: string;
  status: ItemStatus;
}

export type OutputItem = OutputMessage | OutputFunctionCall;

/** A function tool as the response echoes it (every field present, strict resolved). */
export interface EchoedFunctionTool {
  type: 'function';
  name: string;
  description: string | null;
  parameters: Record<string, unknown> | null;
  strict: boolean;
}

export interface ResponseUsage {
  input_tokens: number;
  input_tokens_details: { cached_tokens: number };
  output_tokens: number;
  output_tokens_details: { reasoning_tokens: number };
  total_tokens: number;
}

export type ResponseStatus = 'in_progress' | 'completed' | 'incomplete';

export interface ResponseObject {
  id: string;
  object: 'response';
  created_at: number;
  status: ResponseStatus;
  /** Set once the response is completed. */
  completed_at: number | null;
  error: null;
  incomplete_details: { reason: 'max_output_tokens' } | null;
  instructions: string | null;
  max_output_tokens: number | null;
  model: string;
  output: OutputItem[];
  parallel_tool_calls: boolean;
  previous_response_id: string | null;
  reasoning: null;
  store: boolean;
  temperature: number;
  text: { format: TextFormat };
  tool_choice: ResponsesToolChoice;
  tools: EchoedFunctionTool[];
  top_p: number;
  truncation: 'disabled';
  /** Null until the generation has ended (in response.created / response.in_progress). */
  usage: ResponseUsage | null;
  metadata: Record<string, string>;
  user?: string;
}

export interface DeletedResponse {
  id: string;
  object: 'response';
  deleted: true;
}

// ---------------------------------------------------------------------------------------------
// Stream events (each also carries `sequence_number`, added when it is sent)

export type ResponseEventBody =
  | { type: 'response.created' | 'response.in_progress' | 'response.completed' | 'response.incomplete'; response: ResponseObject }
  | { type: 'response.output_item.added' | 'response.output_item.done'; output_index: number; item: OutputItem }
  | {
      type: 'response.content_part.added' | 'response.content_part.done';
      item_id: string;
      output_index: number;
      content_index: number;
      part: OutputTextPart;
    }
  | { type: 'response.output_text.delta'; item_id: string; output_index: number; content_index: number; delta: string; logprobs: never[] }
  | { type: 'response.output_text.done'; item_id: string; output_index: number; content_index: number; text: string; logprobs: never[] }
  | { type: 'response.function_call_arguments.delta'; item_id: string; output_index: number; delta: string }
  | { type: 'response.function_call_arguments.done'; item_id: string; output_index: number; arguments: string }
  | ({ type: 'error' } & Omit<ErrorObject, 'type'>);

export type ResponseStreamEvent = ResponseEventBody & { sequence_number: number };
