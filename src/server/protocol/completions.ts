/** Wire schema and types of POST /v1/completions (the legacy text-completion API). */
import { samplingFieldSchemas, type SamplingFields, type Usage, type WireFinishReason } from './common.ts';

/** A string, several strings, one token-id array, or several token-id arrays. */
export type CompletionPrompt = string | string[] | number[] | number[][];

export interface CompletionRequest extends SamplingFields {
  prompt: CompletionPrompt;
  echo?: boolean | null;
  /** Legacy: number of top alternatives per token (0 = chosen token only). */
  logprobs?: number | null;
  suffix?: string | null;
  best_of?: number | null;
}

export const completionRequestSchema = {
  type: 'object',
  required: ['model', 'prompt'],
  properties: {
    ...samplingFieldSchemas,
    prompt: {
      anyOf: [
        { type: 'string' },
        { type: 'array', minItems: 1, items: { type: 'string' } },
        { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 } },
        {
          type: 'array',
          minItems: 1,
          items: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 } },
        },
      ],
    },
    echo: { type: ['boolean', 'null'] },
    logprobs: { type: ['integer', 'null'], minimum: 0, maximum: 20 },
    suffix: { type: ['string', 'null'] },
    best_of: { type: ['integer', 'null'], minimum: 1 },
  },
} as const;

/** The legacy logprobs object: parallel arrays. */
export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[];
  text_offset: number[];
}

export interface CompletionChoice {
  index: number;
  text: string;
  logprobs: CompletionLogprobs | null;
  finish_reason: WireFinishReason | null;
}

export interface CompletionResponse {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  system_fingerprint: string;
  choices: CompletionChoice[];
  usage?: Usage | null;
}

/** Streamed chunks have the same shape as the response, one choice delta at a time. */
export type CompletionChunk = CompletionResponse;
