/**
 * Wire fields shared by /v1/chat/completions and /v1/completions.
 * Optional fields accept `null` because many clients (LangChain, routers) send explicit nulls.
 * No `additionalProperties: false`: unknown fields are ignored, as OpenAI does.
 */

const nullable = <T extends string>(t: T) => [t, 'null'] as const;

/** Ollama's keep_alive (every generation route): how long the model stays loaded after this request; see src/server/models/keep-alive.ts. */
export const keepAliveSchema = { anyOf: [{ type: 'number' }, { type: 'string' }, { type: 'null' }] } as const;
export type KeepAliveField = number | string | null;

export const samplingFieldSchemas = {
  model: { type: 'string' },
  keep_alive: keepAliveSchema,
  max_tokens: { type: nullable('integer'), minimum: 1 },
  temperature: { type: nullable('number'), minimum: 0, maximum: 2 },
  top_p: { type: nullable('number'), exclusiveMinimum: 0, maximum: 1 },
  /** vLLM extension; -1 and 0 disable. */
  top_k: { type: nullable('integer'), minimum: -1 },
  /** vLLM extension. */
  min_p: { type: nullable('number'), minimum: 0, maximum: 1 },
  seed: { type: nullable('integer') },
  stop: {
    anyOf: [
      { type: 'string' },
      { type: 'array', items: { type: 'string' }, maxItems: 4 },
      { type: 'null' },
    ],
  },
  presence_penalty: { type: nullable('number'), minimum: -2, maximum: 2 },
  frequency_penalty: { type: nullable('number'), minimum: -2, maximum: 2 },
  /** vLLM extension (multiplicative, 1 disables). */
  repetition_penalty: { type: nullable('number'), exclusiveMinimum: 0 },
  /** Keys are token ids as strings; values are clamped to [-100, 100]. */
  logit_bias: { type: nullable('object'), additionalProperties: { type: 'number' } },
  n: { type: nullable('integer'), minimum: 1 },
  stream: { type: nullable('boolean') },
  stream_options: {
    type: nullable('object'),
    properties: { include_usage: { type: nullable('boolean') } },
  },
  user: { type: nullable('string') },
  /** vLLM extension: extra token ids that end generation. */
  stop_token_ids: { type: nullable('array'), items: { type: 'integer', minimum: 0 } },
} as const;

/** Fields of both request bodies as the serving layer sees them after validation. */
export interface SamplingFields {
  model: string;
  keep_alive?: KeepAliveField;
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  min_p?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  repetition_penalty?: number | null;
  logit_bias?: Record<string, number> | null;
  n?: number | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean | null } | null;
  user?: string | null;
  stop_token_ids?: number[] | null;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens: number };
}

export type WireFinishReason = 'stop' | 'length';
