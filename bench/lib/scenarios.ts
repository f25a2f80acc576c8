/**
 * Scenarios for continuous batching and prefix reuse, against the running server:
 *  - streams started together: aggregate decode tok/s over the window in which all of them decode;
 *  - a multi-turn chat: TTFT of turn 2 (turn 1 resent with its answer and a short follow-up)
 *    against the cold turn 1;
 *  - two running streams while a long prompt is read beside them: their inter-token latency p99
 *    during the prompt against before it;
 *  - many long prompts at once: the server's peak RSS against its idle RSS plus the KV budget.
 * Token timings are SSE content chunks (one per token, except where the detokenizer holds back an
 * incomplete UTF-8 sequence).
 */
import { buildPrompt, type BuiltPrompt, type TextTokenizer } from './prompts.ts';
import { percentile } from './stats.ts';
import { streamCompletion, type StreamMetrics } from './stream-client.ts';

export interface ScenarioContext {
  host: string;
  port: number;
  model: string;
  tokenizer: TextTokenizer;
  /** Logit bias banning the eos ids: every stream runs to max_tokens. */
  noEos: Record<string, number>;
  timeoutMs: number;
  log: (line: string) => void;
}

export interface TogetherResult {
  streams: number;
  promptTokens: number;
  /** Seconds in which every stream was between its first and its last token. */
  windowS: number;
  tokensInWindow: number;
  aggregateTokS: number;
  ttftMsMax: number;
}

export interface PrefixReuseResult {
  promptTokens: number;
  turn2PromptTokens: number;
  turn2CachedTokens: number | null;
  coldTtftMs: number;
  warmTtftMs: number;
  speedup: number;
}

export interface PrefillBesideResult {
  streams: number;
  longPromptTokens: number;
  itlP99WithoutMs: number;
  itlP99WithMs: number;
  itlP50WithoutMs: number;
  itlP50WithMs: number;
  ratioP99: number;
  /** Prompt tokens per second of the long prompt while the streams decoded. */
  longPrefillTokS: number;
}

export interface MemoryResult {
  streams: number;
  promptTokens: number;
  idleRssGiB: number;
  peakRssGiB: number;
  kvBudgetGiB: number;
  /** peak - idle - budget: what the run needed beyond the weights and the KV budget. */
  overBudgetGiB: number;
}

function completions(ctx: ScenarioContext, prompt: string, maxTokens: number, signal?: AbortSignal, onContent?: (at: number) => void): Promise<StreamMetrics> {
  return streamCompletion({
    host: ctx.host,
    port: ctx.port,
    path: '/v1/completions',
    timeoutMs: ctx.timeoutMs,
    signal,
    onContent,
    body: { model: ctx.model, prompt, max_tokens: maxTokens, temperature: 0, logit_bias: ctx.noEos, stream: true, stream_options: { include_usage: true } },
  });
}

function chat(ctx: ScenarioContext, messages: { role: string; content: string }[], maxTokens: number): Promise<StreamMetrics> {
  return streamCompletion({
    host: ctx.host,
    port: ctx.port,
    path: '/v1/chat/completions',
    timeoutMs: ctx.timeoutMs,
    body: { model: ctx.model, messages, max_tokens: maxTokens, temperature: 0, logit_bias: ctx.noEos, stream: true, stream_options: { include_usage: true } },
  });
}

function check(m: StreamMetrics, what: string): StreamMetrics {
  if (!m.ok) throw new Error(`${what} failed: ${m.error}`);
  return m;
}

/** Absolute times of a stream's content chunks. */
const times = (m: StreamMetrics): number[] => m.contentTimesMs.map((t) => m.startedAt + t);

export async function streamsTogether(ctx: ScenarioContext, streams: number, promptTarget: number, maxTokens: number, seed: number): Promise<TogetherResult> {
  const prompts: BuiltPrompt[] = Array.from({ length: streams }, (_, i) => buildPrompt(ctx.tokenizer, promptTarget, seed + i));
  const results = (await Promise.all(prompts.map((p) => completions(ctx, p.text, maxTokens)))).map((m, i) => check(m, `stream ${i}`));
  const all = results.map(times);
  const start = Math.max(...all.map((t) => t[0]));
  const end = Math.min(...all.map((t) => t[t.length - 1]));
  const tokensInWindow = all.reduce((n, t) => n + t.filter((x) => x > start && x <= end).length, 0);
  const windowS = Math.max(0, (end - start) / 1000);
  const result = {
    streams,
    promptTokens: results[0].promptTokens ?? 0,
    windowS,
    tokensInWindow,
    aggregateTokS: windowS > 0 ? tokensInWindow / windowS : Number.NaN,
    ttftMsMax: Math.max(...results.map((m) => m.ttftMs ?? Number.NaN)),
  };
  ctx.log(`  ${streams} streams together: ${result.aggregateTokS.toFixed(2)} tok/s over ${windowS.toFixed(1)} s (${tokensInWindow} tokens), TTFT max ${(result.ttftMsMax / 1000).toFixed(1)} s`);
  return result;
}

export async function prefixReuse(ctx: ScenarioContext, promptTarget: number, seed: number): Promise<PrefixReuseResult> {
  const long = buildPrompt(ctx.tokenizer, promptTarget, seed).text;
  const turn1 = check(await chat(ctx, [{ role: 'user', content: long }], 16), 'turn 1');
  const messages = [
    { role: 'user', content: long },
    { role: 'assistant', content: turn1.text },
    { role: 'user', content: 'Thanks. Now say the same thing in three words.' },
  ];
  const turn2 = check(await chat(ctx, messages, 16), 'turn 2');
  const result = {
    promptTokens: turn1.promptTokens ?? 0,
    turn2PromptTokens: turn2.promptTokens ?? 0,
    turn2CachedTokens: turn2.cachedTokens,
    coldTtftMs: turn1.ttftMs ?? Number.NaN,
    warmTtftMs: turn2.ttftMs ?? Number.NaN,
    speedup: (turn1.ttftMs ?? Number.NaN) / (turn2.ttftMs ?? Number.NaN),
  };
  ctx.log(
    `  multi-turn: turn 1 (${result.promptTokens} tokens) TTFT ${(result.coldTtftMs / 1000).toFixed(2)} s; turn 2 (${result.turn2PromptTokens} tokens, ` +
      `${result.turn2CachedTokens} cached) TTFT ${(result.warmTtftMs / 1000).toFixed(2)} s: ${result.speedup.toFixed(1)}x`,
  );
  return result;
}

/** Inter-token gaps of the streams whose later chunk falls in [from, to). */
function gapsIn(streams: number[][], from: number, to: number): number[] {
  const out: number[] = [];
  for (const t of streams) for (let i = 1; i < t.length; i++) if (t[i] >= from && t[i] < to) out.push(t[i] - t[i - 1]);
  return out;
}

export async function prefillBeside(ctx: ScenarioContext, streams: number, longTarget: number, baselineTokens: number, seed: number): Promise<PrefillBesideResult> {
  const stop = new AbortController();
  const arrivals: number[][] = Array.from({ length: streams }, () => []);
  // Long enough to outlast the long prompt (read a few tokens a step beside them), within any context.
  const maxTokens = 4 * longTarget;
  let ended: string | undefined;
  const running = Array.from({ length: streams }, (_, i) =>
    completions(ctx, buildPrompt(ctx.tokenizer, 128, seed + i).text, maxTokens, stop.signal, (at) => arrivals[i].push(at)).then((m) => {
      ended ??= m.ok ? 'a running stream ended before the measurement did' : `a running stream failed: ${m.error}`;
      return m;
    }),
  );
  const long = buildPrompt(ctx.tokenizer, longTarget, seed + 100).text;
  const waitFor = async (n: number) => {
    while (arrivals.some((a) => a.length < n)) {
      if (ended) throw new Error(ended);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  try {
    await waitFor(5);
    const baselineFrom = performance.now();
    await waitFor(5 + baselineTokens);
    const baselineTo = performance.now();
    const m = check(await completions(ctx, long, 1), 'long prompt');
    if (ended) throw new Error(ended);
    const prefillTo = m.startedAt + (m.ttftMs ?? 0);
    const without = gapsIn(arrivals, baselineFrom, baselineTo);
    const withLong = gapsIn(arrivals, m.startedAt, prefillTo);
    const result = {
      streams,
      longPromptTokens: m.promptTokens ?? 0,
      itlP99WithoutMs: percentile(without, 99),
      itlP99WithMs: percentile(withLong, 99),
      itlP50WithoutMs: percentile(without, 50),
      itlP50WithMs: percentile(withLong, 50),
      ratioP99: percentile(withLong, 99) / percentile(without, 99),
      longPrefillTokS: ((m.promptTokens ?? 0) * 1000) / (m.ttftMs ?? Number.NaN),
    };
    ctx.log(
      `  ${streams} streams beside a ${result.longPromptTokens}-token prompt: ITL p99 ${result.itlP99WithoutMs.toFixed(0)} -> ${result.itlP99WithMs.toFixed(0)} ms ` +
        `(${result.ratioP99.toFixed(2)}x), p50 ${result.itlP50WithoutMs.toFixed(0)} -> ${result.itlP50WithMs.toFixed(0)} ms; prompt read at ${result.longPrefillTokS.toFixed(1)} tok/s`,
    );
    return result;
  } finally {
    stop.abort();
    await Promise.all(running);
  }
}

export async function memoryUnderLoad(ctx: ScenarioContext, streams: number, promptTarget: number, maxTokens: number, seed: number, rss: { idle: number; watch: () => () => number | null }, kvBudgetGiB: number): Promise<MemoryResult> {
  const peak = rss.watch();
  const prompts = Array.from({ length: streams }, (_, i) => buildPrompt(ctx.tokenizer, promptTarget, seed + i).text);
  const results = await Promise.all(prompts.map((p) => completions(ctx, p, maxTokens)));
  results.forEach((m, i) => check(m, `stream ${i}`));
  const peakRssGiB = peak() ?? Number.NaN;
  const result = {
    streams,
    promptTokens: results[0].promptTokens ?? 0,
    idleRssGiB: rss.idle,
    peakRssGiB,
    kvBudgetGiB,
    overBudgetGiB: peakRssGiB - rss.idle - kvBudgetGiB,
  };
  ctx.log(`  ${streams} x ${result.promptTokens}-token prompts: peak RSS ${peakRssGiB.toFixed(2)} GiB = idle ${rss.idle.toFixed(2)} + budget ${kvBudgetGiB} + ${result.overBudgetGiB.toFixed(2)}`);
  return result;
}
