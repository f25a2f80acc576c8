/**
 * Wire schema and types of Anthropic's Messages API: POST /v1/messages (requests, responses,
 * stream events) and POST /v1/messages/count_tokens.
 *
 * The schemas check shapes only; which block types, tools and parameters this server can honour
 * is decided by the serving layer (src/server/serving/anthropic.ts), so that an unsupported
 * feature gets a 400 that names it instead of a generic schema message.
 * Unknown fields are ignored (`cache_control`, `citations`, `service_tier`...), as elsewhere.
 */
import { keepAliveSchema, type KeepAliveField } from './common.ts';

// ---------------------------------------------------------------------------------------------
// Requests

export interface TextBlockParam {
  type: 'text';
  text: string;
}

export interface ToolUseBlockParam {
  type: 'tool_use';
  id: string;
  name: string;
  input: Record<string, unknown>;
}

export interface ToolResultBlockParam {
  type: 'tool_result';
  tool_use_id: string;
  /** Blocks other than text (images) are rejected by the serving layer. */
  content?: string | { type: string; text?: string }[];
  is_error?: boolean;
}

/** Any other `type` (image, document, thinking...) passes the schema and is refused by name. */
export interface OtherBlockParam {
  type: string;
}

export type ContentBlockParam = TextBlockParam | ToolUseBlockParam | ToolResultBlockParam | OtherBlockParam;

export interface MessageParam {
  role: 'user' | 'assistant';
  content: string | ContentBlockParam[];
}

export interface ToolParam {
  name: string;
  description?: string;
  input_schema?: Record<string, unknown>;
  /** Absent or 'custom' for client tools; anything else is a server tool (refused). */
  type?: string | null;
  /** Anthropic's strict tool use: the input is made to follow input_schema (a grammar here). */
  strict?: boolean;
}

export type ToolChoiceParam =
  | { type: 'auto' | 'any'; disable_parallel_tool_use?: boolean }
  | { type: 'tool'; name: string; disable_parallel_tool_use?: boolean }
  | { type: 'none' };

/** Fields shared by /v1/messages and /v1/messages/count_tokens. */
export interface MessagesInput {
  model: string;
  keep_alive?: KeepAliveField;
  messages: MessageParam[];
  system?: string | TextBlockParam[];
  tools?: ToolParam[];
  tool_choice?: ToolChoiceParam;
  /** Only `{type: 'disabled'}` is accepted. */
  thinking?: { type: string };
}

export interface MessagesRequest extends MessagesInput {
  max_tokens: number;
  stop_sequences?: string[];
  temperature?: number;
  top_p?: number;
  top_k?: number;
  /** Accepted and ignored (Anthropic uses `user_id` for abuse detection). */
  metadata?: Record<string, unknown>;
  stream?: boolean;
}

export type CountTokensRequest = MessagesInput;

/**
 * At most this many stop sequences: the limit the chat core applies to `stop` (each one is
 * checked against every generated piece of text).
 */
export const MAX_STOP_SEQUENCES = 4;

const textBlockSchema = {
  type: 'object',
  required: ['type', 'text'],
  properties: { type: { type: 'string', enum: ['text'] }, text: { type: 'string' } },
} as const;

/** `if type is X then ...`: a missing field is reported under its own name (ajv's `then`). */
const whenType = (type: string, then: Record<string, unknown>) =>
  ({ if: { required: ['type'], properties: { type: { const: type } } }, then }) as const;

const contentBlockSchema = {
  type: 'object',
  required: ['type'],
  properties: { type: { type: 'string' } },
  allOf: [
    whenType('text', { required: ['text'], properties: { text: { type: 'string' } } }),
    whenType('tool_use', {
      required: ['id', 'name', 'input'],
      properties: { id: { type: 'string' }, name: { type: 'string' }, input: { type: 'object' } },
    }),
    whenType('tool_result', {
      required: ['tool_use_id'],
      properties: {
        tool_use_id: { type: 'string' },
        content: {
          anyOf: [
            { type: 'string' },
            {
              type: 'array',
              items: { type: 'object', required: ['type'], properties: { type: { type: 'string' }, text: { type: 'string' } } },
            },
          ],
        },
        is_error: { type: 'boolean' },
      },
    }),
  ],
} as const;

const messagesInputProperties = {
  model: { type: 'string' },
  keep_alive: keepAliveSchema,
  messages: {
    type: 'array',
    minItems: 1,
    items: {
      type: 'object',
      required: ['role', 'content'],
      properties: {
        role: { type: 'string', enum: ['user', 'assistant'] },
        content: { anyOf: [{ type: 'string' }, { type: 'array', items: contentBlockSchema }] },
      },
    },
  },
  system: { anyOf: [{ type: 'string' }, { type: 'array', items: textBlockSchema }] },
  tools: {
    type: 'array',
    items: {
      type: 'object',
      required: ['name'],
      properties: {
        name: { type: 'string', pattern: '^[a-zA-Z0-9_-]{1,64}$' },
        description: { type: 'string' },
        input_schema: { type: 'object' },
        type: { type: ['string', 'null'] },
        strict: { type: 'boolean' },
      },
      // Client tools need a schema; server tools (other types) are refused by name later.
      if: { properties: { type: { enum: ['custom', null] } } },
      then: { required: ['input_schema'] },
    },
  },
  tool_choice: {
    type: 'object',
    required: ['type'],
    properties: {
      type: { type: 'string', enum: ['auto', 'any', 'tool', 'none'] },
      name: { type: 'string' },
      disable_parallel_tool_use: { type: 'boolean' },
    },
    if: { required: ['type'], properties: { type: { const: 'tool' } } },
    then: { required: ['name'] },
  },
  thinking: { type: 'object', required: ['type'], properties: { type: { type: 'string' } } },
} as const;

export const countTokensRequestSchema = {
  type: 'object',
  required: ['model', 'messages'],
  properties: messagesInputProperties,
} as const;

export const messagesRequestSchema = {
  type: 'object',
  required: ['model', 'max_tokens', 'messages'],
  properties: {
    ...messagesInputProperties,
    max_tokens: { type: 'integer', minimum: 1 },
    stop_sequences: { type: 'array', items: { type: 'string' }, maxItems: MAX_STOP_SEQUENCES },
    // Anthropic's ranges (the chat API allows temperature up to 2).
    temperature: { type: 'number', minimum: 0, maximum: 1 },
    top_p: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
    top_k: { type: 'integer', minimum: 0 },
    metadata: { type: 'object' },
    stream: { type: 'boolean' },
  },
} as const;

// ---------------------------------------------------------------------------------------------
// Responses

export interface TextBlock {
  type: 'text';
  text: string;
}

export interface ToolUseBlock {
  type: 'tool_use';
  id: string;
  name: string;
  input: Record<string, unknown>;
}

export type ContentBlock = TextBlock | ToolUseBlock;

export type StopReason = 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use';

/**
 * Anthropic's accounting: `input_tokens` counts the prompt tokens that were computed, and
 * `cache_read_input_tokens` those served from the prefix cache; their sum is the prompt length.
 * Nothing is ever "written" to a cache on request here, so cache_creation_input_tokens is 0.
 */
export interface MessageUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

export interface MessageResponse {
  id: string;
  type: 'message';
  role: 'assistant';
  model: string;
  content: ContentBlock[];
  stop_reason: StopReason | null;
  stop_sequence: string | null;
  usage: MessageUsage;
}

export interface CountTokensResponse {
  input_tokens: number;
}

export interface AnthropicErrorBody {
  type: 'error';
  error: { type: string; message: string };
}

export type ContentBlockDelta = { type: 'text_delta'; text: string } | { type: 'input_json_delta'; partial_json: string };

/** The events of a streamed message, in Anthropic's order; each is sent as `event: <type>`. */
export type MessageStreamEvent =
  | { type: 'message_start'; message: MessageResponse }
  | { type: 'ping' }
  | { type: 'content_block_start'; index: number; content_block: ContentBlock }
  | { type: 'content_block_delta'; index: number; delta: ContentBlockDelta }
  | { type: 'content_block_stop'; index: number }
  | { type: 'message_delta'; delta: { stop_reason: StopReason; stop_sequence: string | null }; usage: MessageUsage }
  | { type: 'message_stop' }
  | AnthropicErrorBody;
