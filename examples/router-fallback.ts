/**
 * A small client-side LLM router over the `openai` SDK: an ordered chain of OpenAI-compatible
 * providers (say a hosted API, then this server, then another hosted API), tried in order.
 *
 * - Falls back on connection errors, timeouts (including HTTP 408), 5xx and 429.
 * - A 429 whose Retry-After is short (≤ maxRetryAfterMs) is retried on the same provider after
 *   waiting; a longer (or missing) Retry-After moves on at once.
 * - Other 4xx stop the chain: the request itself is wrong, and sending it on would only show the
 *   prompt to more providers.
 * - `privacy: "high"` restricts the chain to providers marked `local`; the others are never contacted.
 * - Non-streaming only: a stream that fails halfway cannot be replayed transparently elsewhere.
 * - The request goes to each provider as it is (only `model` changes), so an agent turn with
 *   `tools` / `tool_choice` / `response_format` falls back like any other, and the answering
 *   provider's `tool_calls` come back in `response`.
 *
 * Run the demo:  npx tsx examples/router-fallback.ts [--private] [--tools] "your prompt"
 * (`--tools` offers a get_weather tool with tool_choice "required" and prints the call)
 * (env: OPENAI_API_KEY for the hosted primary, LOCAL_BASE_URL / LOCAL_MODEL / LOCAL_API_KEY for this
 * server, BACKUP_BASE_URL / BACKUP_API_KEY / BACKUP_MODEL for a second hosted API).
 */
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import type { ChatCompletion, ChatCompletionCreateParamsNonStreaming, ChatCompletionTool } from 'openai/resources/chat/completions';

export interface Provider {
  name: string;
  /** OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1 */
  baseURL: string;
  apiKey: string;
  model: string;
  /** Runs on infrastructure you control; the only kind `privacy: "high"` may reach. */
  local: boolean;
  /** Price per 1000 tokens (prompt + completion); omitted means free. */
  costPer1kTokens?: number;
  /** Per-attempt timeout; default RouterOptions.timeoutMs. */
  timeoutMs?: number;
}

export interface RouterOptions {
  providers: readonly Provider[];
  /** Per-attempt timeout, default 30 000 ms. */
  timeoutMs?: number;
  /** Longest Retry-After worth waiting for on the same provider, default 2 000 ms. */
  maxRetryAfterMs?: number;
  /** Same-provider retries after a short Retry-After, default 1. */
  maxRetriesPerProvider?: number;
  /** Called after every attempt, e.g. for logs or metrics. */
  onAttempt?: (attempt: Attempt) => void;
}

export type Privacy = 'normal' | 'high';

export interface RouteOptions {
  privacy?: Privacy;
  signal?: AbortSignal;
}

/** Everything of a chat completion request except `model`, which each provider sets. */
export type ChatRequest = Omit<ChatCompletionCreateParamsNonStreaming, 'model'>;

export type AttemptOutcome = 'ok' | 'connection-error' | 'timeout' | 'rate-limited' | 'server-error' | 'client-error';

export interface Attempt {
  provider: string;
  outcome: AttemptOutcome;
  status?: number;
  /** Parsed Retry-After of a 429, in ms. */
  retryAfterMs?: number;
  durationMs: number;
  error?: string;
}

export interface RouteResult {
  /** Name of the provider that answered. */
  provider: string;
  response: ChatCompletion;
  /** Every request made, in order, including the successful one. */
  attempts: Attempt[];
  /** usage.total_tokens / 1000 × costPer1kTokens; 0 without a price or usage. */
  cost: number;
  /** Providers left out by the privacy rule (never contacted). */
  skipped: string[];
}

export class RouterError extends Error {
  override name = 'RouterError';
  constructor(
    message: string,
    readonly attempts: readonly Attempt[],
    readonly skipped: readonly string[],
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * Retry-After as milliseconds: OpenAI's `retry-after-ms`, else `retry-after` in seconds or as an
 * HTTP date. Undefined when absent or unparsable.
 */
export function parseRetryAfter(headers: Headers | undefined, now = Date.now()): number | undefined {
  const ms = headers?.get('retry-after-ms');
  if (ms && /^\d+(\.\d+)?$/.test(ms.trim())) return Math.ceil(Number(ms));
  const value = headers?.get('retry-after')?.trim();
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.ceil(Number(value) * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

interface Classified {
  outcome: Exclude<AttemptOutcome, 'ok'>;
  status?: number;
  retryAfterMs?: number;
}

function classify(err: unknown): Classified {
  // The timeout class extends the connection class, so it is tested first.
  if (err instanceof APIConnectionTimeoutError) return { outcome: 'timeout' };
  if (err instanceof APIConnectionError) return { outcome: 'connection-error' };
  if (err instanceof APIError && typeof err.status === 'number') {
    const status = err.status;
    if (status === 429) return { outcome: 'rate-limited', status, retryAfterMs: parseRetryAfter(err.headers) };
    if (status === 408) return { outcome: 'timeout', status };
    if (status >= 500) return { outcome: 'server-error', status };
    return { outcome: 'client-error', status };
  }
  throw err;
}

export class FallbackRouter {
  private readonly clients = new Map<string, OpenAI>();
  private readonly timeoutMs: number;
  private readonly maxRetryAfterMs: number;
  private readonly maxRetriesPerProvider: number;

  constructor(private readonly opts: RouterOptions) {
    if (opts.providers.length === 0) throw new Error('FallbackRouter needs at least one provider');
    const names = new Set(opts.providers.map((p) => p.name));
    if (names.size !== opts.providers.length) throw new Error('provider names must be unique');
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.maxRetryAfterMs = opts.maxRetryAfterMs ?? 2_000;
    this.maxRetriesPerProvider = opts.maxRetriesPerProvider ?? 1;
  }

  /** The chain a request with this privacy level may use, in order. */
  eligible(privacy: Privacy = 'normal'): Provider[] {
    return this.opts.providers.filter((p) => privacy !== 'high' || p.local);
  }

  async chat(request: ChatRequest, route: RouteOptions = {}): Promise<RouteResult> {
    const chain = this.eligible(route.privacy);
    const skipped = this.opts.providers.filter((p) => !chain.includes(p)).map((p) => p.name);
    const attempts: Attempt[] = [];
    if (chain.length === 0) {
      throw new RouterError('privacy "high" allows only local providers, and none is configured', attempts, skipped);
    }
    for (const provider of chain) {
      for (let retry = 0; ; retry++) {
        const started = performance.now();
        try {
          const response = await this.client(provider).chat.completions.create(
            { ...request, model: provider.model, stream: false },
            { timeout: provider.timeoutMs ?? this.timeoutMs, signal: route.signal, maxRetries: 0 },
          );
          this.record(attempts, { provider: provider.name, outcome: 'ok', durationMs: performance.now() - started });
          return { provider: provider.name, response, attempts, cost: costOf(provider, response), skipped };
        } catch (err) {
          if (err instanceof APIUserAbortError) throw err;
          const c = classify(err);
          this.record(attempts, {
            provider: provider.name,
            ...c,
            durationMs: performance.now() - started,
            error: err instanceof Error ? err.message : String(err),
          });
          if (c.outcome === 'client-error') {
            throw new RouterError(`${provider.name} rejected the request (HTTP ${c.status})`, attempts, skipped, { cause: err });
          }
          const wait = c.retryAfterMs;
          const retrySame =
            c.outcome === 'rate-limited' && wait !== undefined && wait <= this.maxRetryAfterMs && retry < this.maxRetriesPerProvider;
          if (!retrySame) break;
          await sleep(wait, undefined, { signal: route.signal });
        }
      }
    }
    const summary = attempts.map((a) => `${a.provider}: ${a.outcome}${a.status ? ` ${a.status}` : ''}`).join(', ');
    throw new RouterError(`every provider failed (${summary})`, attempts, skipped);
  }

  private record(attempts: Attempt[], attempt: Attempt): void {
    attempts.push(attempt);
    this.opts.onAttempt?.(attempt);
  }

  private client(provider: Provider): OpenAI {
    let client = this.clients.get(provider.name);
    if (!client) {
      // The router owns retries and fallback; the SDK's own retries would hide failures from it.
      client = new OpenAI({ baseURL: provider.baseURL, apiKey: provider.apiKey, maxRetries: 0 });
      this.clients.set(provider.name, client);
    }
    return client;
  }
}

function costOf(provider: Provider, response: ChatCompletion): number {
  const tokens = response.usage?.total_tokens;
  if (provider.costPer1kTokens === undefined || tokens === undefined) return 0;
  return (tokens / 1000) * provider.costPer1kTokens;
}

/** The demo chain from the environment: hosted primary (if keyed) → this server → hosted backup (if set). */
export function demoProviders(env: Readonly<Record<string, string | undefined>>): Provider[] {
  const providers: Provider[] = [];
  const price = (v: string | undefined): number | undefined => (v && Number.isFinite(Number(v)) ? Number(v) : undefined);
  if (env.OPENAI_API_KEY) {
    providers.push({
      name: 'openai',
      baseURL: env.OPENAI_BASE_URL ?? 'https://api.openai.com/v1',
      apiKey: env.OPENAI_API_KEY,
      model: env.OPENAI_MODEL ?? 'gpt-4o-mini',
      local: false,
      costPer1kTokens: price(env.OPENAI_COST_PER_1K),
    });
  }
  providers.push({
    name: 'local-phi4',
    baseURL: env.LOCAL_BASE_URL ?? 'http://127.0.0.1:8080/v1',
    apiKey: env.LOCAL_API_KEY ?? 'unused',
    model: env.LOCAL_MODEL ?? 'phi-4-mini-instruct',
    local: true,
  });
  if (env.BACKUP_BASE_URL && env.BACKUP_MODEL) {
    providers.push({
      name: 'backup',
      baseURL: env.BACKUP_BASE_URL,
      apiKey: env.BACKUP_API_KEY ?? 'unused',
      model: env.BACKUP_MODEL,
      local: false,
      costPer1kTokens: price(env.BACKUP_COST_PER_1K),
    });
  }
  return providers;
}

/** The `--tools` demo's tool. */
export const weatherTool: ChatCompletionTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string', description: 'City name, e.g. Paris' }, unit: { enum: ['celsius', 'fahrenheit'] } },
      required: ['city', 'unit'],
      additionalProperties: false,
    },
  },
};

export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<number> {
  const privacy: Privacy = argv.includes('--private') ? 'high' : 'normal';
  const withTools = argv.includes('--tools');
  const prompt =
    argv.filter((a) => a !== '--private' && a !== '--tools').join(' ') ||
    (withTools ? 'What is the weather in Paris?' : 'In one sentence: why run a model locally?');
  const router = new FallbackRouter({
    providers: demoProviders(process.env),
    timeoutMs: 60_000,
    onAttempt: (a) =>
      console.error(`  ${a.provider}: ${a.outcome}${a.status ? ` (HTTP ${a.status})` : ''} in ${Math.round(a.durationMs)} ms`),
  });
  console.error(`privacy ${privacy}; chain: ${router.eligible(privacy).map((p) => p.name).join(' → ')}`);
  try {
    const request: ChatRequest = {
      messages: [{ role: 'user', content: prompt }],
      max_tokens: 128,
      // An agent turn: whichever provider answers must call the tool, once.
      ...(withTools && { tools: [weatherTool], tool_choice: 'required', parallel_tool_calls: false }),
    };
    const result = await router.chat(request, { privacy });
    const choice = result.response.choices[0];
    const cut = choice?.finish_reason === 'length' ? ' [cut off at max_tokens]' : '';
    for (const call of choice?.message.tool_calls ?? []) {
      if (call.type === 'function') console.log(`tool call ${call.id}: ${call.function.name}(${call.function.arguments})${cut}`);
    }
    if (!choice?.message.tool_calls?.length) console.log(choice?.message.content ?? '');
    console.error(`answered by ${result.provider}; cost ${result.cost.toFixed(6)}; attempts ${result.attempts.length}`);
    return 0;
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    return 1;
  }
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(path.resolve(entry)).href) {
  process.exitCode = await main();
}
