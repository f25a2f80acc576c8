/** Wire schema and types of POST /v1/chat/completions (requests, responses, stream chunks). */
import { samplingFieldSchemas, type SamplingFields, type Usage, type WireFinishReason } from './common.ts';

export const CHAT_ROLES = ['system', 'developer', 'user', 'assistant', 'tool'] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];

export interface TextContentPart {
  type: 'text';
  text: string;
}

export interface ChatMessageParam {
  role: ChatRole;
  content?: string | TextContentPart[] | null;
  name?: string | null;
  tool_call_id?: string | null;
}

export interface ChatCompletionRequest extends SamplingFields {
  messages: ChatMessageParam[];
  max_completion_tokens?: number | null;
  logprobs?: boolean | null;
  top_logprobs?: number | null;
  response_format?: { type: string } | null;
}

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
        },
      },
    },
    max_completion_tokens: { type: ['integer', 'null'], minimum: 1 },
    logprobs: { type: ['boolean', 'null'] },
    top_logprobs: { type: ['integer', 'null'], minimum: 0, maximum: 20 },
    response_format: {
      type: ['object', 'null'],
      required: ['type'],
      properties: { type: { type: 'string' } },
    },
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
  content: string;
  refusal: null;
}

export interface ChatCompletionChoice {
  index: number;
  message: ChatCompletionMessage;
  logprobs: ChatChoiceLogprobs | null;
  finish_reason: WireFinishReason;
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
  delta: { role?: 'assistant'; content?: string };
  logprobs: ChatChoiceLogprobs | null;
  finish_reason: WireFinishReason | null;
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
