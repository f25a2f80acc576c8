/**
 * npm run bench:http [-- --model-dir models/phi4-mini-shape --concurrency 1,2,4,8 --prompt-tokens 128,2048
 *                       --max-tokens 64 --requests N --duration-s S ...]   (--help lists every option)
 *
 * Starts the real server (`node --import tsx src/main.ts`) on 127.0.0.1 as a child process, waits
 * for /ready, then:
 *  1. streaming: a small SSE client measures TTFT, inter-token latency, end-to-end latency and
 *     output tokens per request, at each concurrency level and prompt length, every level bounded
 *     by a request cap and a time cap; p50/p90/p99 and aggregate output tok/s per level;
 *  2. autocannon on non-streaming /v1/completions (small max_tokens) and on /health, bounded by
 *     duration and a request cap;
 *  3. loads the Engine in this process (same model, greedy, eos banned) and runs pairs at
 *     concurrency 1: one HTTP streaming request and one direct engine generation on the same
 *     prompt, back to back, in alternating order, so that both sides of a pair see the same load
 *     on a shared machine; reports HTTP tok/s as a ratio of the engine's, the median over pairs;
 *  4. continuous batching and prefix reuse (bench/lib/scenarios.ts): streams started together,
 *     a multi-turn chat's second turn against its first, two streams' inter-token latency while a
 *     long prompt is read beside them, and the peak RSS of many long prompts against the KV budget;
 * then stops the server (SIGTERM, always).
 * Writes bench/results/http-<model>.json, .md and .svg.
 *
 * Defaults are sized for phi4-mini-shape on a 2-core machine (decode ~5-9 tok/s, prefill ~30 tok/s):
 * a 2,048-token prompt takes over a minute to prefill, so long prompts run only at concurrency 1
 * and 2 with 2 requests each; the whole default run takes about 20-25 minutes.
 * For a quick check: npm run bench:http -- --model-dir models/tiny --max-tokens 16 --duration-s 10
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadModelConfig } from '../src/engine/model-config.ts';
import { ChatTokenizer } from '../src/tokenizer/tokenizer.ts';
import { runCannon, type CannonSummary } from './lib/autocannon-run.ts';
import { loadDirectEngine, type DirectEngine, type EngineDirectResult, type EngineRun } from './lib/engine-direct.ts';
import { runLevel } from './lib/load.ts';
import { buildPrompt, type BuiltPrompt } from './lib/prompts.ts';
import { writeReport, type Comparison, type HttpBenchReport, type LevelRecord, type RequestRecord, type Scenarios, type SkippedLevel } from './lib/report.ts';
import { memoryUnderLoad, prefillBeside, prefixReuse, streamsTogether, type ScenarioContext } from './lib/scenarios.ts';
import { StepTimer, type CurvePoint } from './lib/step-curve.ts';
import type { Int8Steps } from '../src/engine/types.ts';
import { HOST, startServer, type RunningServer } from './lib/server-process.ts';
import { median, round, summarize } from './lib/stats.ts';
import { decodeTokensPerSecond, interTokenLatencies, streamCompletion } from './lib/stream-client.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const HELP = `npm run bench:http -- [options]

  --model-dir DIR          model folder (default models/phi4-mini-shape)
  --concurrency LIST       concurrency levels (default 1,2,4,8)
  --prompt-tokens LIST     prompt lengths in tokens (default 128,2048)
  --max-tokens N           tokens generated per streaming request (default 64)
  --requests N             request cap per level (default max(4, 2 x concurrency); long prompts: --long-requests)
  --duration-s S           per level: no request starts after S seconds (default 120)
  --long-prompt-min N      prompts of at least N tokens count as long (default 1024)
  --long-concurrency LIST  concurrency levels for long prompts (default 1,2)
  --long-requests N        request cap per level for long prompts (default 2, or --requests if given)
  --long-duration-s S      time cap per level for long prompts (default 300, or --duration-s if given)
  --threads N              ORT intra-op threads for server and engine; 0 = ORT decides (default 0)
  --max-queue N            server --max-queue (default 64)
  --request-timeout-s S    per streaming request, queue wait included (default 2400: the memory scenario's
                           last prompt waits for seven others, 23 min on a slow host)
  --ac-duration-s S        autocannon duration per target (default 30 for completions, /health 10)
  --ac-connections N       autocannon connections on /v1/completions (default 4; /health uses 10)
  --ac-max-tokens N        max_tokens of the autocannon completions (default 8)
  --skip-autocannon        skip autocannon
  --skip-engine            skip the direct engine comparison
  --scenarios LIST         batching scenarios to run: together,prefix,beside,memory (default all; '' for none)
  --scenarios-only         run only the scenarios (no streaming levels, autocannon or pairs)
  --together LIST          stream counts started together (default 4,8)
  --together-max-tokens N  tokens per stream started together (default 256: later streams join the decoding
                           batch only as fast as their prompts ride along, so short streams never all decode at once)
  --beside-tokens N        the long prompt read beside 2 running streams (default 2048)
  --prefix-tokens N        turn 1 of the multi-turn chat (default 1100)
  --memory-streams N       long prompts at once for the memory scenario (default 8, of --beside-tokens tokens)
  --kv-cache-gib X         server --kv-cache-gib (default: the server's own)
  --int8-steps MODE        server --int8-steps, also for the step-cost curve measured here (default: the server's own)
  --pairs N                HTTP/engine pairs per short prompt length (default 4)
  --long-pairs N           HTTP/engine pairs per long prompt length (default 2)
  --budget-min M           whole-run cap: no new level starts after M minutes (default 30)
  --ready-timeout-s S      cap on server start + model load (default 600)
  --out DIR                output folder (default bench/results)
  --plan                   print the levels that would run, then exit
  --from-json FILE         only re-render the .md and .svg from a saved .json (no server, no model)
`;

const { values: v } = parseArgs({
  options: {
    'model-dir': { type: 'string', default: 'models/phi4-mini-shape' },
    concurrency: { type: 'string', default: '1,2,4,8' },
    'prompt-tokens': { type: 'string', default: '128,2048' },
    'max-tokens': { type: 'string', default: '64' },
    requests: { type: 'string' },
    'duration-s': { type: 'string' },
    'long-prompt-min': { type: 'string', default: '1024' },
    'long-concurrency': { type: 'string', default: '1,2' },
    'long-requests': { type: 'string' },
    'long-duration-s': { type: 'string' },
    threads: { type: 'string', default: '0' },
    'max-queue': { type: 'string', default: '64' },
    'request-timeout-s': { type: 'string', default: '2400' },
    'ac-duration-s': { type: 'string' },
    'ac-connections': { type: 'string', default: '4' },
    'ac-max-tokens': { type: 'string', default: '8' },
    'skip-autocannon': { type: 'boolean', default: false },
    'skip-engine': { type: 'boolean', default: false },
    scenarios: { type: 'string', default: 'together,prefix,beside,memory' },
    'scenarios-only': { type: 'boolean', default: false },
    together: { type: 'string', default: '4,8' },
    'together-max-tokens': { type: 'string', default: '256' },
    'beside-tokens': { type: 'string', default: '2048' },
    'prefix-tokens': { type: 'string', default: '1100' },
    'memory-streams': { type: 'string', default: '8' },
    'kv-cache-gib': { type: 'string' },
    'int8-steps': { type: 'string' },
    pairs: { type: 'string', default: '4' },
    'long-pairs': { type: 'string', default: '2' },
    'budget-min': { type: 'string', default: '30' },
    'ready-timeout-s': { type: 'string', default: '600' },
    out: { type: 'string', default: 'bench/results' },
    'from-json': { type: 'string' },
    plan: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (v.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

if (v['from-json'] !== undefined) {
  const saved = JSON.parse(readFileSync(resolve(process.cwd(), v['from-json']), 'utf8')) as HttpBenchReport;
  const { files } = writeReport(resolve(ROOT, v.out), revive(saved));
  console.log(`re-rendered ${files.md} and ${files.svg}`);
  process.exit(0);
}

/** JSON wrote NaN as null; the report code expects numbers. */
function revive(r: HttpBenchReport): HttpBenchReport {
  return JSON.parse(JSON.stringify(r), (_k, val: unknown) => (val === null ? Number.NaN : val)) as HttpBenchReport;
}

function int(name: string, text: string | undefined, min = 1): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name}: expected an integer >= ${min}, got "${text}"`);
  return n;
}
function intList(name: string, text: string): number[] {
  const list = text.split(',').map((s) => int(name, s.trim()));
  return [...new Set(list)].sort((a, b) => a - b);
}

const modelDir = resolve(ROOT, v['model-dir']);
const concurrencies = intList('concurrency', v.concurrency);
const promptTargets = intList('prompt-tokens', v['prompt-tokens']);
const maxTokens = int('max-tokens', v['max-tokens']);
const requestsOverride = v.requests !== undefined ? int('requests', v.requests) : undefined;
const durationS = int('duration-s', v['duration-s'] ?? '120');
const longDurationS = int('long-duration-s', v['long-duration-s'] ?? v['duration-s'] ?? '300');
const longMin = int('long-prompt-min', v['long-prompt-min']);
const longConcurrency = intList('long-concurrency', v['long-concurrency']);
const longRequests = int('long-requests', v['long-requests'] ?? (requestsOverride !== undefined ? String(requestsOverride) : '2'));
const threads = int('threads', v.threads, 0);
const maxQueue = int('max-queue', v['max-queue']);
const requestTimeoutS = int('request-timeout-s', v['request-timeout-s']);
const acDurationS = v['ac-duration-s'] !== undefined ? int('ac-duration-s', v['ac-duration-s']) : undefined;
const acConnections = int('ac-connections', v['ac-connections']);
const acMaxTokens = int('ac-max-tokens', v['ac-max-tokens']);
const pairs = int('pairs', v.pairs);
const longPairs = int('long-pairs', v['long-pairs']);
const budgetMs = int('budget-min', v['budget-min']) * 60_000;
const readyTimeoutMs = int('ready-timeout-s', v['ready-timeout-s']) * 1000;
const outDir = resolve(ROOT, v.out);
const scenarioNames = v.scenarios.split(',').map((x) => x.trim()).filter((x) => x.length > 0);
for (const n of scenarioNames) if (!['together', 'prefix', 'beside', 'memory'].includes(n)) throw new Error(`--scenarios: unknown scenario ${n}`);
const scenariosOnly = v['scenarios-only'];
const togetherCounts = intList('together', v.together);
const togetherMaxTokens = int('together-max-tokens', v['together-max-tokens']);
const besideTokens = int('beside-tokens', v['beside-tokens']);
const prefixTokens = int('prefix-tokens', v['prefix-tokens']);
const memoryStreams = int('memory-streams', v['memory-streams']);
const kvCacheGib = v['kv-cache-gib'];
const int8Steps = v['int8-steps'];
if (int8Steps !== undefined && !['auto', 'on', 'off'].includes(int8Steps)) throw new Error(`--int8-steps: expected auto, on or off, got "${int8Steps}"`);

if (!existsSync(join(modelDir, 'model.onnx'))) {
  console.error(
    `no model.onnx in ${modelDir}. Build one first, e.g.\n` +
      `  npm run model:build -- --preset tiny --out models/tiny\n` +
      `  npm run model:build -- --preset phi4-mini-shape --out models/phi4-mini-shape`,
  );
  process.exit(2);
}

const runStart = performance.now();
const elapsedS = (): string => ((performance.now() - runStart) / 1000).toFixed(0).padStart(4);
const log = (line: string): void => console.log(`[${elapsedS()} s] ${line}`);
const overBudget = (): boolean => performance.now() - runStart > budgetMs;

const modelCfg = loadModelConfig(modelDir);
const eosIds = modelCfg.info.eosTokenIds.length > 0 ? modelCfg.info.eosTokenIds : [200020, 199999];
const noEos: Record<string, number> = Object.fromEntries(eosIds.map((id) => [String(id), -100]));
const modelShape = `${modelCfg.info.numLayers} layers, hidden ${modelCfg.info.hiddenSize}`;

/** Prompts are built once per (length, level, request) and differ per request. */
const promptCache = new Map<string, BuiltPrompt>();
function promptFor(target: number, concurrency: number, index: number): BuiltPrompt {
  const key = `${target}/${concurrency}/${index}`;
  let p = promptCache.get(key);
  if (!p) {
    p = buildPrompt(tokenizer, target, target * 100_000 + concurrency * 1000 + index);
    promptCache.set(key, p);
  }
  return p;
}

interface Plan {
  target: number;
  concurrency: number;
  maxRequests: number;
  durationS: number;
}
const plans: Plan[] = [];
const skipped: SkippedLevel[] = [];
for (const target of promptTargets) {
  const long = target >= longMin;
  for (const c of concurrencies) {
    if (long && !longConcurrency.includes(c)) {
      skipped.push({ promptTarget: target, concurrency: c, reason: `long prompt (>= ${longMin} tokens) runs only at concurrency ${longConcurrency.join(', ')} (--long-concurrency)` });
      continue;
    }
    plans.push({
      target,
      concurrency: c,
      maxRequests: long ? longRequests : (requestsOverride ?? Math.max(4, 2 * c)),
      durationS: long ? longDurationS : durationS,
    });
  }
}

if (v.plan) {
  for (const p of plans) console.log(`~${p.target}-token prompts, concurrency ${p.concurrency}: up to ${p.maxRequests} requests or ${p.durationS} s`);
  for (const k of skipped) console.log(`~${k.promptTarget}-token prompts, concurrency ${k.concurrency}: not run (${k.reason})`);
  console.log(
    `then autocannon ${v['skip-autocannon'] ? 'skipped' : `(/v1/completions ${acDurationS ?? 30} s, /health ${acDurationS ?? 10} s)`}, ` +
      `then HTTP/engine pairs ${v['skip-engine'] ? 'skipped' : `(${pairs} per short prompt length, ${longPairs} per long one)`}; ` +
      `whole-run budget ${v['budget-min']} min`,
  );
  process.exit(0);
}

log(`loading the tokenizer from ${modelDir}`);
const tokenizer = await ChatTokenizer.load(modelDir);

const notes: string[] = [];
const errors: string[] = [];

const streaming: LevelRecord[] = [];
const autocannonResults: CannonSummary[] = [];
let server: RunningServer | undefined;
let serverPeakRssGB: number | null = null;
/** Server RSS after load and warm-up: the weights and the runtime, before any real work. */
let idleRssGB: number | null = null;
let scenarios: Scenarios | undefined;
let interrupted = false;

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    interrupted = true;
    console.error(`\n${sig}: stopping the server and exiting`);
    const done = server ? server.stop(5000) : Promise.resolve(null);
    void done.finally(() => process.exit(130));
  });
}

/** A kB field of /proc/<pid>/status (VmHWM: peak RSS, VmRSS: RSS now) in GiB; null if unreadable. */
function statusGiB(pid: number, field: 'VmHWM' | 'VmRSS'): number | null {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 ** 2 : null;
  } catch {
    return null;
  }
}
const peakRssGB = (pid: number) => statusGiB(pid, 'VmHWM');
const rssGB = (pid: number) => statusGiB(pid, 'VmRSS');

/** Samples a process's RSS every 250 ms until stopped; returns the highest seen. */
function watchRss(pid: number): () => number | null {
  let peak: number | null = rssGB(pid);
  const timer = setInterval(() => {
    const now = rssGB(pid);
    if (now !== null && (peak === null || now > peak)) peak = now;
  }, 250);
  return () => {
    clearInterval(timer);
    const last = rssGB(pid);
    return last !== null && (peak === null || last > peak) ? last : peak;
  };
}

function toRecord(index: number, m: Awaited<ReturnType<typeof streamCompletion>>): RequestRecord {
  const decode = decodeTokensPerSecond(m);
  return {
    index,
    ok: m.ok,
    ...(m.error !== undefined ? { error: m.error } : {}),
    status: m.status,
    promptTokens: m.promptTokens,
    completionTokens: m.completionTokens,
    finishReason: m.finishReason,
    ttftMs: m.ttftMs === null ? null : round(m.ttftMs, 2),
    e2eMs: round(m.e2eMs, 2) ?? m.e2eMs,
    decodeTokS: round(decode, 3),
    outputTokS: m.completionTokens !== null && m.e2eMs > 0 ? round((m.completionTokens * 1000) / m.e2eMs, 3) : null,
    contentChunks: m.contentTimesMs.length,
    itlMs: interTokenLatencies(m).map((x) => round(x, 2) ?? 0),
  };
}

function completionBody(prompt: string, tokens: number, stream: boolean): Record<string, unknown> {
  return {
    model: server?.modelName ?? basename(modelDir),
    prompt,
    max_tokens: tokens,
    temperature: 0,
    logit_bias: noEos,
    ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
  };
}

async function runStreamingLevel(plan: Plan, s: RunningServer): Promise<LevelRecord> {
  // Build every prompt first: tokenizing inside the loop would block this event loop while other
  // streams are being read, and their chunks would be timestamped late, in bunches.
  const t0 = performance.now();
  for (let i = 0; i < plan.maxRequests; i++) promptFor(plan.target, plan.concurrency, i);
  log(`  ${plan.maxRequests} prompts built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: plan.concurrency });
  const rssPeak = watchRss(s.pid);
  try {
    const outcome = await runLevel({
      concurrency: plan.concurrency,
      maxRequests: plan.maxRequests,
      durationMs: plan.durationS * 1000,
      run: async (index) => {
        const prompt = promptFor(plan.target, plan.concurrency, index);
        const m = await streamCompletion({
          host: s.host,
          port: s.port,
          path: '/v1/completions',
          agent,
          timeoutMs: requestTimeoutS * 1000,
          body: completionBody(prompt.text, maxTokens, true),
        });
        return toRecord(index, m);
      },
      onResult: (r) => {
        const what = r.ok
          ? `${r.promptTokens} prompt + ${r.completionTokens} tokens, TTFT ${((r.ttftMs ?? NaN) / 1000).toFixed(2)} s, ` +
            `decode ${r.decodeTokS?.toFixed(2) ?? 'n/a'} tok/s, E2E ${(r.e2eMs / 1000).toFixed(2)} s`
          : `FAILED: ${r.error}`;
        log(`  ~${plan.target} tok, c=${plan.concurrency}, request ${r.index + 1}/${plan.maxRequests}: ${what}`);
      },
    });
    const recs = outcome.results;
    const ok = recs.filter((r) => r.ok);
    const short = ok.filter((r) => r.completionTokens !== maxTokens || r.finishReason !== 'length').length;
    const prompts = ok.map((r) => r.promptTokens).filter((n): n is number => n !== null);
    const tokens = ok.reduce((a, r) => a + (r.completionTokens ?? 0), 0);
    const wallS = outcome.wallMs / 1000;
    for (const r of recs) if (!r.ok) errors.push(`~${plan.target} tok, c=${plan.concurrency}, request ${r.index}: ${r.error}`);
    return {
      promptTarget: plan.target,
      concurrency: plan.concurrency,
      maxRequests: plan.maxRequests,
      durationCapS: plan.durationS,
      started: recs.length,
      ok: ok.length,
      failed: recs.length - ok.length,
      short,
      stoppedBy: outcome.stoppedBy,
      wallS,
      promptTokens: prompts.length > 0 ? { min: Math.min(...prompts), max: Math.max(...prompts) } : null,
      aggregateOutputTokS: wallS > 0 ? tokens / wallS : 0,
      reqPerSec: wallS > 0 ? ok.length / wallS : 0,
      ttftMs: summarize(ok.map((r) => r.ttftMs).filter((x): x is number => x !== null)),
      itlMs: summarize(ok.flatMap((r) => r.itlMs)),
      e2eMs: summarize(ok.map((r) => r.e2eMs)),
      decodeTokS: summarize(ok.map((r) => r.decodeTokS).filter((x): x is number => x !== null)),
      serverRssPeakGB: round(rssPeak() ?? NaN, 2),
      requests: recs,
    };
  } finally {
    rssPeak();
    agent.destroy();
  }
}

// ---- 3: HTTP vs the engine, in pairs -------------------------------------------------------
let engineDirect: EngineDirectResult | null = null;
const comparisons: Comparison[] = [];

/**
 * One HTTP streaming request and one direct engine generation on the same prompt, back to back,
 * HTTP first in even pairs and the engine first in odd ones. On a shared 2-core host the speed
 * drifts by ±20% over minutes, so comparing runs minutes apart measured the drift; within a pair
 * both sides see the same load, and the ratio reported is the median of the pairs' ratios.
 */
async function runPairs(s: RunningServer): Promise<void> {
  const targets = promptTargets.filter((t) => streaming.some((l) => l.promptTarget === t && l.concurrency === 1 && l.ok > 0));
  if (targets.length === 0) return;
  if (overBudget()) {
    notes.push(`HTTP/engine pairs skipped: whole-run budget of ${v['budget-min']} min reached`);
    return;
  }
  log('pairs: loading the Engine in this process beside the idle server');
  const engine: DirectEngine = await loadDirectEngine(modelDir, threads, tokenizer.encode(buildPrompt(tokenizer, 32, 7).text), requestTimeoutS * 1000);
  log(`engine loaded in ${engine.loadSeconds.toFixed(1)} s`);
  const runs: EngineRun[] = [];
  engineDirect = { loadSeconds: engine.loadSeconds, runs };
  try {
    for (const target of targets) {
      const count = target >= longMin ? longPairs : pairs;
      const done: { http: RequestRecord; engine: EngineRun }[] = [];
      for (let i = 0; i < count && !interrupted; i++) {
        if (overBudget()) {
          notes.push(`~${target} tok: ${done.length} of ${count} HTTP/engine pairs run before the whole-run budget of ${v['budget-min']} min`);
          break;
        }
        // Prompts of their own (index 100+), so the server holds no state from the streaming levels' requests.
        const prompt = promptFor(target, 1, 100 + i);
        const viaHttp = async () =>
          toRecord(i, await streamCompletion({ host: s.host, port: s.port, path: '/v1/completions', timeoutMs: requestTimeoutS * 1000, body: completionBody(prompt.text, maxTokens, true) }));
        const direct = () => engine.run(String(target), tokenizer.encode(prompt.text), maxTokens, requestTimeoutS * 1000);
        let h: RequestRecord;
        let e: EngineRun;
        if (i % 2 === 0) {
          h = await viaHttp();
          e = await direct();
        } else {
          e = await direct();
          h = await viaHttp();
        }
        if (!h.ok) {
          errors.push(`~${target} tok, pair ${i}: HTTP request failed: ${h.error}`);
          continue;
        }
        runs.push(e);
        done.push({ http: h, engine: e });
        log(
          `  pair ${i + 1}/${count} ~${target} tok: decode HTTP ${h.decodeTokS?.toFixed(2) ?? 'n/a'} / engine ${e.decodeTokS.toFixed(2)} tok/s, ` +
            `TTFT ${((h.ttftMs ?? NaN) / 1000).toFixed(2)} / ${(e.ttftMs / 1000).toFixed(2)} s`,
        );
        if (h.promptTokens !== null && h.promptTokens !== e.promptTokens) {
          notes.push(`~${target} tok, pair ${i}: the engine saw ${e.promptTokens} prompt tokens, the server reported ${h.promptTokens}.`);
        }
      }
      if (done.length === 0) continue;
      const decodeRatios = done.map((d) => (d.http.decodeTokS ?? NaN) / d.engine.decodeTokS);
      const outputRatios = done.map((d) => (d.http.outputTokS ?? NaN) / d.engine.outputTokS);
      comparisons.push({
        promptTarget: target,
        promptTokens: done[0].engine.promptTokens,
        engineRuns: done.length,
        httpRuns: done.length,
        engine: {
          ttftMs: median(done.map((d) => d.engine.ttftMs)),
          decodeTokS: median(done.map((d) => d.engine.decodeTokS)),
          outputTokS: median(done.map((d) => d.engine.outputTokS)),
          overheadMsPerToken: median(done.map((d) => d.engine.timings.overheadMsPerToken)),
        },
        http: {
          ttftMs: median(done.map((d) => d.http.ttftMs ?? NaN)),
          decodeTokS: median(done.map((d) => d.http.decodeTokS ?? NaN)),
          outputTokS: median(done.map((d) => d.http.outputTokS ?? NaN)),
        },
        decodeRatio: median(decodeRatios),
        outputRatio: median(outputRatios),
        pairDecodeRatios: decodeRatios.map((x) => round(x, 3) ?? NaN),
      });
    }
  } finally {
    await engine.close();
  }
}

// ---- 4: continuous batching and prefix reuse ----------------------------------------------------
async function kvBudgetGiB(s: RunningServer): Promise<number> {
  const text = await new Promise<string>((resolveText, reject) => {
    http.get({ host: s.host, port: s.port, path: '/metrics' }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolveText(body));
    }).on('error', reject);
  });
  const m = /^phi4_kv_cache_budget_bytes\{[^}]*\} (\S+)$/m.exec(text);
  return m ? round(Number(m[1]) / 1024 ** 3, 2) ?? Number.NaN : Number.NaN;
}

async function runScenarios(s: RunningServer): Promise<Scenarios> {
  const ctx: ScenarioContext = { host: s.host, port: s.port, model: s.modelName, tokenizer, noEos, timeoutMs: requestTimeoutS * 1000, log };
  const result: Scenarios = { together: [], prefixReuse: null, prefillBeside: null, memory: null };
  const attempt = async <T>(name: string, run: () => Promise<T>): Promise<T | null> => {
    if (!scenarioNames.includes(name) || interrupted) return null;
    if (overBudget()) {
      notes.push(`scenario ${name} skipped: whole-run budget of ${v['budget-min']} min reached`);
      return null;
    }
    log(`scenario: ${name}`);
    try {
      return await run();
    } catch (err) {
      errors.push(`scenario ${name}: ${(err as Error).message}`);
      return null;
    }
  };
  // The ceiling each together scenario is held to: a model step of n decoding sequences at the
  // context they decode at, timed in this process beside the idle server right before and right
  // after the scenario (the host's speed drifts over minutes; the mean of the two is the ceiling).
  const curveContext = 128 + Math.round(togetherMaxTokens / 2);
  if (scenarioNames.includes('together')) {
    const timer = await StepTimer.open(modelDir, threads, int8Steps as Int8Steps | undefined);
    const points: CurvePoint[] = [];
    try {
      for (const n of togetherCounts) {
        const before = await timer.time({ decode: n, prefill: 0 }, curveContext);
        const r = await attempt('together', () => streamsTogether(ctx, n, 128, togetherMaxTokens, 500_000 + n * 100));
        const after = await timer.time({ decode: n, prefill: 0 }, curveContext);
        const ms = (before.ms + after.ms) / 2;
        points.push({ decode: n, prefill: 0, ms, tokS: (n * 1000) / ms });
        log(`  a step of ${n} decoding sequences at ${curveContext} positions: ${before.ms.toFixed(1)} ms before, ${after.ms.toFixed(1)} ms after`);
        if (r) result.together.push(r);
      }
      points.push(await timer.time({ decode: 1, prefill: 0 }, curveContext));
    } finally {
      await timer.close();
    }
    result.curve = { context: curveContext, points };
  }
  result.prefixReuse = await attempt('prefix', () => prefixReuse(ctx, prefixTokens, 600_000));
  result.prefillBeside = await attempt('beside', () => prefillBeside(ctx, 2, besideTokens, 60, 700_000));
  const budget = await kvBudgetGiB(s);
  result.memory = await attempt('memory', () =>
    memoryUnderLoad(ctx, memoryStreams, besideTokens, maxTokens, 800_000, { idle: idleRssGB ?? Number.NaN, watch: () => watchRss(s.pid) }, budget),
  );
  return result;
}

// ---- 1 + 2: the server ---------------------------------------------------------------------
try {
  log(`starting the server on ${HOST} (model ${modelDir}, --threads ${threads}, --max-queue ${maxQueue})`);
  server = await startServer({ root: ROOT, modelDir, maxQueue, threads, requestTimeoutS, readyTimeoutMs, extraArgs: [...(kvCacheGib ? ['--kv-cache-gib', kvCacheGib] : []), ...(int8Steps ? ['--int8-steps', int8Steps] : [])] });
  log(`server ready in ${server.readySeconds.toFixed(1)} s on port ${server.port} (pid ${server.pid}, model "${server.modelName}")`);

  const warm = await streamCompletion({
    host: server.host,
    port: server.port,
    path: '/v1/completions',
    timeoutMs: requestTimeoutS * 1000,
    // Over 1,024 characters: the server's tokenizer worker starts now, so idle RSS includes it.
    body: completionBody(buildPrompt(tokenizer, 300, 7).text, Math.min(4, maxTokens), true),
  });
  if (!warm.ok) throw new Error(`warm-up request failed: ${warm.error}`);
  log(`warm-up done (${(warm.e2eMs / 1000).toFixed(2)} s)`);
  idleRssGB = rssGB(server.pid);

  for (const plan of scenariosOnly ? [] : plans) {
    if (interrupted) break;
    if (overBudget()) {
      skipped.push({ promptTarget: plan.target, concurrency: plan.concurrency, reason: `whole-run budget of ${v['budget-min']} min reached` });
      continue;
    }
    log(`streaming: ~${plan.target}-token prompts, concurrency ${plan.concurrency}, up to ${plan.maxRequests} requests / ${plan.durationS} s`);
    const level = await runStreamingLevel(plan, server);
    streaming.push(level);
    log(
      `  => ${level.ok}/${level.started} ok, agg ${level.aggregateOutputTokS.toFixed(2)} tok/s, TTFT p50 ${(level.ttftMs.p50 / 1000).toFixed(2)} s, ` +
        `ITL p50 ${level.itlMs.p50.toFixed(1)} ms`,
    );
  }

  if (!v['skip-autocannon'] && !interrupted && !scenariosOnly) {
    const base = `http://${server.host}:${server.port}`;
    const acPrompt = buildPrompt(tokenizer, 32, 11).text;
    const completionsS = acDurationS ?? 30;
    log(`autocannon: POST /v1/completions (max_tokens ${acMaxTokens}), ${acConnections} connections, ${completionsS} s`);
    autocannonResults.push(
      await runCannon({
        name: `POST /v1/completions (~32-token prompt, max_tokens ${acMaxTokens})`,
        url: `${base}/v1/completions`,
        method: 'POST',
        body: completionBody(acPrompt, acMaxTokens, false),
        connections: acConnections,
        durationS: completionsS,
        maxRequests: 10_000,
        timeoutS: requestTimeoutS,
      }),
    );
    const healthS = acDurationS ?? 10;
    log(`autocannon: GET /health, 10 connections, ${healthS} s`);
    autocannonResults.push(
      await runCannon({
        name: 'GET /health',
        url: `${base}/health`,
        method: 'GET',
        connections: 10,
        durationS: healthS,
        maxRequests: 2_000_000,
        timeoutS: 10,
      }),
    );
    for (const a of autocannonResults) {
      log(`  ${a.name}: ${a.requests} done, ${a.reqPerSec.toFixed(1)} req/s, p50 ${a.latencyMs.p50} ms, p99 ${a.latencyMs.p99} ms, non-2xx ${a.non2xx}`);
      if (a.non2xx > 0 || a.errors > 0) errors.push(`autocannon ${a.name}: ${a.non2xx} non-2xx, ${a.errors} errors (status codes ${JSON.stringify(a.statusCodes)})`);
    }
    notes.push(
      'autocannon counts only responses that complete within its duration; requests still queued on the server when it stops are not counted.',
    );
  }
  // Read before the pairs: the peak of serving, not of idling beside a second engine.
  serverPeakRssGB = peakRssGB(server.pid);
  if (!v['skip-engine'] && !interrupted && !scenariosOnly) await runPairs(server);
  if (scenarioNames.length > 0 && !interrupted) scenarios = await runScenarios(server);
} catch (err) {
  errors.push((err as Error).message.split('\n')[0]);
  console.error(err);
  if (server) console.error(`--- server output ---\n${server.recentOutput()}`);
} finally {
  if (server) {
    const code = await server.stop();
    log(`server stopped (exit code ${code})`);
  }
}

// ---- report -----------------------------------------------------------------------------------
for (const l of streaming) {
  if (l.short > 0) notes.push(`~${l.promptTarget} tok, c=${l.concurrency}: ${l.short} request(s) ended before max_tokens.`);
  if (l.stoppedBy === 'time') notes.push(`~${l.promptTarget} tok, c=${l.concurrency}: stopped by the ${l.durationCapS} s time cap after ${l.started} of ${l.maxRequests} requests.`);
}
const longPlans = promptTargets.filter((t) => t >= longMin);
if (longPlans.length > 0) {
  notes.push(
    `Prompts of ${longMin}+ tokens (${longPlans.join(', ')}) run only at concurrency ${longConcurrency.join(', ')} with ${longRequests} request(s) per level: ` +
      'sized for phi4-mini-shape on a 2-core CPU, where one 2,048-token prefill takes over a minute and every queued request waits for all those before it.',
  );
}
notes.push(
  'ITL is measured between SSE content chunks; the server sends one chunk per token except where the detokenizer holds back an incomplete UTF-8 sequence (then one chunk carries two tokens). Token counts come from the usage chunk.',
);
notes.push('Client and server share the machine: the benchmark process (SSE parsing, autocannon) takes some CPU from the server.');

function gitDescribe(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'routes'], { cwd: ROOT, encoding: 'utf8' }).trim().length > 0;
    return dirty ? `${sha} (+ uncommitted changes in src/ or routes/)` : sha;
  } catch {
    return 'unknown';
  }
}
function ortVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'node_modules/onnxruntime-node/package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

const cpus = os.cpus();
const report: HttpBenchReport = {
  meta: {
    date: new Date().toISOString(),
    model: server?.modelName || basename(modelDir),
    modelDir,
    modelShape,
    host: HOST,
    cpus: `${cpus.length} x ${cpus[0]?.model.trim() ?? 'unknown CPU'}`,
    memoryGB: Math.round(os.totalmem() / 1024 ** 3),
    node: process.versions.node,
    onnxruntime: ortVersion(),
    git: gitDescribe(),
    serverReadyS: server ? round(server.readySeconds, 1) : null,
    serverPeakRssGB: serverPeakRssGB === null ? null : round(serverPeakRssGB, 2),
    totalMinutes: (performance.now() - runStart) / 60_000,
  },
  settings: {
    endpoint: '/v1/completions',
    maxTokens,
    threads,
    maxQueue,
    concurrency: concurrencies,
    promptTokens: promptTargets,
    longPromptMin: longMin,
    longConcurrency,
    durationS,
    longDurationS,
    requestTimeoutS,
    eosBanned: eosIds,
  },
  streaming,
  skipped,
  engineDirect,
  comparisons,
  autocannon: autocannonResults,
  ...(scenarios ? { scenarios } : {}),
  notes,
  errors,
};
const { files, markdown } = writeReport(outDir, report);
console.log(`\n${markdown}`);
console.log(`wrote ${[files.md, files.json, files.svg].map((f) => f.replace(`${ROOT}/`, '')).join(', ')}`);
process.exit(interrupted ? 130 : errors.length > 0 ? 1 : 0);
