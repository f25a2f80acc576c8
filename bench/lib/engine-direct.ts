/**
 * The same generations without HTTP: our Engine loaded in this process (its own worker thread),
 * greedy, eos banned through logitBias, timed the way the HTTP client times a stream: from just
 * before generate() to the first token event (TTFT), between token events, and to `done`.
 */
import { Engine } from '../../src/engine/engine.ts';
import { DEFAULT_SAMPLING, type GenerationTimings } from '../../src/engine/types.ts';

export interface EnginePrompt {
  label: string;
  ids: readonly number[];
  runs: number;
}

export interface EngineRun {
  label: string;
  promptTokens: number;
  completionTokens: number;
  finishReason: string;
  ttftMs: number;
  e2eMs: number;
  /** (tokens - 1) per second between the first and the last token event. */
  decodeTokS: number;
  /** tokens per second of the whole generation (prefill included). */
  outputTokS: number;
  /** The engine's own account (prefill, decode, work outside session.run per token). */
  timings: GenerationTimings;
}

export interface EngineDirectResult {
  loadSeconds: number;
  runs: EngineRun[];
}

export interface EngineDirectOptions {
  modelDir: string;
  /** 0: ORT decides (as the server's --threads 0). */
  threads: number;
  maxTokens: number;
  prompts: EnginePrompt[];
  /** Per generation. */
  timeoutMs: number;
  /** Nothing new starts after this (ms since the call). */
  budgetMs: number;
  log?: (line: string) => void;
}

async function generateOnce(engine: Engine, label: string, ids: readonly number[], maxTokens: number, timeoutMs: number): Promise<EngineRun> {
  const logitBias = new Map(engine.info.eosTokenIds.map((id) => [id, -100]));
  const signal = AbortSignal.timeout(timeoutMs);
  const t0 = performance.now();
  let first = 0;
  let last = 0;
  let tokens = 0;
  for await (const e of engine.generate(
    { promptIds: ids, maxTokens, sampling: { ...DEFAULT_SAMPLING, temperature: 0, logitBias } },
    signal,
  )) {
    const now = performance.now();
    if (e.type === 'token') {
      if (tokens === 0) first = now;
      last = now;
      tokens++;
      continue;
    }
    const e2eMs = now - t0;
    if (e.finishReason === 'error' || e.finishReason === 'abort') {
      throw new Error(`engine generation ended with ${e.finishReason}${e.error ? `: ${e.error}` : ''}`);
    }
    return {
      label,
      promptTokens: e.promptTokens,
      completionTokens: e.completionTokens,
      finishReason: e.finishReason,
      ttftMs: first - t0,
      e2eMs,
      decodeTokS: tokens >= 2 ? ((e.completionTokens - 1) * 1000) / (last - first) : Number.NaN,
      outputTokS: (e.completionTokens * 1000) / e2eMs,
      timings: e.timings,
    };
  }
  throw new Error('engine stream ended without done');
}

export async function runEngineDirect(opts: EngineDirectOptions): Promise<EngineDirectResult> {
  const log = opts.log ?? (() => {});
  const start = performance.now();
  const t0 = performance.now();
  // The options the server passes (src/app.ts): model folder and threads, nothing else.
  const engine = await Engine.load({ modelDir: opts.modelDir, threads: opts.threads });
  const loadSeconds = (performance.now() - t0) / 1000;
  log(`engine loaded in ${loadSeconds.toFixed(1)} s`);
  const runs: EngineRun[] = [];
  try {
    // Warm-up (not recorded): first-run allocations and kernel selection, as the server's warm-up request.
    const warm = opts.prompts[0]?.ids.slice(0, 32) ?? [];
    if (warm.length > 0) await generateOnce(engine, 'warmup', warm, Math.min(4, opts.maxTokens), opts.timeoutMs);
    for (const p of opts.prompts) {
      for (let i = 0; i < p.runs; i++) {
        if (performance.now() - start > opts.budgetMs) {
          log(`engine: time budget reached, skipping the rest`);
          return { loadSeconds, runs };
        }
        const r = await generateOnce(engine, p.label, p.ids, opts.maxTokens, opts.timeoutMs);
        runs.push(r);
        log(
          `engine ~${p.label}-token prompt (${p.ids.length} tokens): TTFT ${(r.ttftMs / 1000).toFixed(2)} s, ` +
            `decode ${r.decodeTokS.toFixed(2)} tok/s, ${r.completionTokens} tokens in ${(r.e2eMs / 1000).toFixed(2)} s`,
        );
      }
    }
  } finally {
    await engine.close();
  }
  return { loadSeconds, runs };
}
