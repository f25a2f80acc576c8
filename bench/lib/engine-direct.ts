/**
 * The same generations without HTTP: our Engine loaded in this process (its own worker thread),
 * greedy, eos banned through logitBias, timed the way the HTTP client times a stream: from just
 * before generate() to the first token event (TTFT), between token events, and to `done`.
 * bench:http alternates these with HTTP requests while the server is up, so that both sides of a
 * pair see the same machine load.
 */
import { Engine } from '../../src/engine/engine.ts';
import { DEFAULT_SAMPLING, type GenerationTimings } from '../../src/engine/types.ts';

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
    if (e.type !== 'done') continue;
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

/** Our Engine loaded in this process, warmed up, ready to time generations one at a time. */
export interface DirectEngine {
  loadSeconds: number;
  run(label: string, ids: readonly number[], maxTokens: number, timeoutMs: number): Promise<EngineRun>;
  close(): Promise<void>;
}

export async function loadDirectEngine(modelDir: string, threads: number, warmupIds: readonly number[], timeoutMs: number): Promise<DirectEngine> {
  const t0 = performance.now();
  // The options the server passes (src/app.ts): model folder and threads, nothing else.
  const engine = await Engine.load({ modelDir, threads });
  const loadSeconds = (performance.now() - t0) / 1000;
  try {
    // Warm-up (not recorded): first-run allocations and kernel selection, as the server's warm-up request.
    if (warmupIds.length > 0) await generateOnce(engine, 'warmup', warmupIds, 4, timeoutMs);
  } catch (err) {
    await engine.close();
    throw err;
  }
  return {
    loadSeconds,
    run: (label, ids, maxTokens, runTimeoutMs) => generateOnce(engine, label, ids, maxTokens, runTimeoutMs),
    close: () => engine.close(),
  };
}
