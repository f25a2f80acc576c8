/**
 * OpenAI request fields -> engine parameters, plus the checks JSON schema cannot express
 * (they need the model: vocabulary size, context length, served names).
 */
import { BAN_BIAS } from '../../engine/sampling/index.ts';
import type { SamplingParams } from '../../engine/types.ts';
import { contextLengthExceeded, invalidRequest, modelNotFound } from '../errors.ts';
import type { SamplingFields } from '../protocol/common.ts';
import type { ServingContext } from './context.ts';

const LOGIT_BIAS_LIMIT = 100;

export function resolveModel(ctx: ServingContext, requested: string): void {
  if (!ctx.servedNames.includes(requested)) throw modelNotFound(requested);
}

export function toSamplingParams(body: SamplingFields, vocabSize: number): SamplingParams {
  const topK = body.top_k ?? 0;
  const params: SamplingParams = {
    temperature: body.temperature ?? 1,
    topK: topK > 0 ? topK : 0,
    topP: body.top_p ?? 1,
    minP: body.min_p ?? 0,
    repetitionPenalty: body.repetition_penalty ?? 1,
    presencePenalty: body.presence_penalty ?? 0,
    frequencyPenalty: body.frequency_penalty ?? 0,
  };
  if (body.seed !== undefined && body.seed !== null) params.seed = body.seed;
  const bias = parseLogitBias(body.logit_bias, vocabSize);
  if (bias) params.logitBias = bias;
  return params;
}

/** Keys are token ids written as strings (OpenAI's format); values are clamped, not rejected. */
export function parseLogitBias(
  raw: Record<string, number> | null | undefined,
  vocabSize: number,
): Map<number, number> | undefined {
  if (!raw) return undefined;
  const out = new Map<number, number>();
  for (const [key, value] of Object.entries(raw)) {
    if (!/^\d+$/.test(key) || Number(key) >= vocabSize) {
      throw invalidRequest(
        `Invalid key in 'logit_bias': '${key}' is not a token id (expected an integer in 0..${vocabSize - 1}).`,
        'logit_bias',
        'invalid_value',
      );
    }
    if (!Number.isFinite(value)) throw invalidRequest(`Invalid value in 'logit_bias' for '${key}'.`, 'logit_bias');
    out.set(Number(key), Math.max(-LOGIT_BIAS_LIMIT, Math.min(LOGIT_BIAS_LIMIT, value)));
  }
  checkSomethingSampleable(out, vocabSize);
  return out.size > 0 ? out : undefined;
}

/** The engine treats a bias of -100 as a ban; a request that bans the whole vocabulary has nothing to generate. */
function checkSomethingSampleable(bias: ReadonlyMap<number, number>, vocabSize: number): void {
  if (bias.size < vocabSize) return;
  for (const value of bias.values()) if (value > BAN_BIAS) return;
  throw invalidRequest(
    `Invalid value for 'logit_bias': it bans every token (a bias of ${BAN_BIAS} is a ban), so nothing can be generated.`,
    'logit_bias',
    'invalid_value',
  );
}

export function stopStrings(stop: string | string[] | null | undefined): string[] {
  if (stop === undefined || stop === null) return [];
  return (Array.isArray(stop) ? stop : [stop]).filter((s) => s.length > 0);
}

export function stopTokenIds(ids: number[] | null | undefined, vocabSize: number): number[] {
  if (!ids) return [];
  for (const id of ids) {
    if (id >= vocabSize) throw invalidRequest(`Invalid token id ${id} in 'stop_token_ids'.`, 'stop_token_ids');
  }
  return ids;
}

export function checkCommon(body: SamplingFields): void {
  if (body.n !== undefined && body.n !== null && body.n !== 1) {
    throw invalidRequest(`Only n=1 is supported; got n=${body.n}.`, 'n', 'unsupported_value');
  }
  if (body.stream_options && body.stream !== true) {
    throw invalidRequest(
      "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
      'stream_options',
      'invalid_value',
    );
  }
}

/**
 * The token budget for one completion. Without a request limit it is the rest of the
 * context (capped by --max-tokens-default); with one, prompt + limit must fit.
 */
export function maxTokensFor(
  ctx: ServingContext,
  promptTokens: number,
  requested: number | null | undefined,
  promptParam: 'messages' | 'prompt',
  fallbackDefault?: number,
): number {
  const room = ctx.contextLength - promptTokens;
  if (requested !== undefined && requested !== null) {
    if (requested > room) throw contextLengthExceeded(ctx.contextLength, promptTokens, requested, promptParam);
    return requested;
  }
  if (room < 1) throw contextLengthExceeded(ctx.contextLength, promptTokens, 1, promptParam);
  // The operator's --max-tokens-default wins over the endpoint's own default.
  const cap = ctx.config.maxTokensDefault ?? fallbackDefault;
  return cap !== undefined ? Math.min(room, cap) : room;
}
