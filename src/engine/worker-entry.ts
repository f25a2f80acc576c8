/**
 * Worker thread that owns the ONNX session and the scheduler. session.run blocks whatever thread
 * calls it, so it lives here and the main thread's event loop stays free for HTTP. The worker
 * runs model steps for as long as any sequence runs or waits, and idles otherwise.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { collectGarbage } from './gc.ts';
import { trimHeap } from './heap-trim.ts';
import { Grammars } from './grammar/grammar-compiler.ts';
import { TokenConstraint } from './grammar/token-constraint.ts';
import { KvMemory } from './kv/kv-memory.ts';
import { resolveLimits, type ResolvedLimits } from './limits.ts';
import { loadDecoder, type LoadedDecoder } from './model-session.ts';
import { Scheduler } from './scheduler.ts';
import { Sequence } from './sequence.ts';
import { calibrateStepCost, prefillChunkFor } from './step-cost.ts';
import type { EngineOptions, GenerationEvent, GenerationRequest, StepRecord } from './types.ts';
import type { FromWorker, ToWorker, WorkerStats } from './worker-protocol.ts';

const port = parentPort;
if (!port) throw new Error('worker-entry must run in a worker thread');
const post = (msg: FromWorker) => port.postMessage(msg);

let decoder: LoadedDecoder;
let limits: ResolvedLimits;
let memory: KvMemory;
let scheduler: Scheduler;
let grammars: Grammars;
try {
  const opts = workerData as EngineOptions;
  decoder = await loadDecoder(opts, { progress: (progress) => post({ type: 'progress', progress }) });
  limits = resolveLimits(opts, decoder.info, decoder.runner.kvShape);
  memory = new KvMemory(decoder.runner.kvShape, limits.kvBudgetBytes);
  decoder.info.contextLength = limits.contextLength;
  const stepCost = await calibrateStepCost(decoder.runner, memory);
  // Loading decoded the model's graph into this heap; that garbage would otherwise sit there idle.
  collectGarbage();
  const prefillChunk = limits.prefillChunk ?? prefillChunkFor(stepCost);
  scheduler = new Scheduler(decoder.runner, memory, { ...limits, prefillChunk, stepCost }, (step) => postStep(step));
  grammars = new Grammars(opts.modelDir, decoder.info.vocabSize, decoder.info.eosTokenIds);
  const { growthChunk: _g, prefixCacheIdleMs: _i, ...engineLimits } = limits;
  post({ type: 'ready', info: decoder.info, session: decoder.description, limits: { ...engineLimits, prefillChunk, stepCost } });
} catch (err) {
  post({ type: 'fatal', error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
}

function stats(): WorkerStats {
  return {
    kvUsedBytes: memory.usedBytes,
    kvBudgetBytes: memory.budgetBytes,
    prefixCachedTokens: scheduler.cachedPositions,
    prefixQueriedTokens: scheduler.counters.queriedTokens,
    prefixHitTokens: scheduler.counters.hitTokens,
    preemptions: scheduler.counters.preemptions,
  };
}

function postStep(step: StepRecord): void {
  post({ type: 'step', step, stats: stats() });
}

let loop: Promise<void> | undefined;
let stopping = false;
let idleTimer: NodeJS.Timeout | undefined;
let trimTimer: NodeJS.Timeout | undefined;

/** After a second without work, what the last requests freed goes back to the system. */
const TRIM_AFTER_IDLE_MS = 1000;

function pump(): void {
  clearTimeout(idleTimer);
  clearTimeout(trimTimer);
  loop ??= run().finally(() => {
    loop = undefined;
    if (stopping) return;
    expireWhenIdle();
    trimTimer = setTimeout(giveMemoryBack, TRIM_AFTER_IDLE_MS);
    trimTimer.unref();
  });
}

function giveMemoryBack(): void {
  collectGarbage();
  trimHeap();
}

async function run(): Promise<void> {
  while (!stopping && scheduler.hasWork()) {
    if (!(await scheduler.step())) break;
    // Let queued messages (new requests) in between steps even when steps are very short.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** Cached prefixes unused for a while are dropped, so an idle server gives their memory back. */
function expireWhenIdle(): void {
  idleTimer = setTimeout(() => {
    scheduler.expireCache(performance.now() - limits.prefixCacheIdleMs);
    trimHeap();
    post({ type: 'step', step: { tokens: 0, sequences: 0, runMs: 0 }, stats: stats() });
    if (scheduler.cachedPositions > 0) expireWhenIdle();
  }, limits.prefixCacheIdleMs);
  idleTimer.unref();
}

/** Creates the request's sequence (compiling its grammar first) and puts it in line. */
async function admitRequest(id: number, request: GenerationRequest, abortFlag: SharedArrayBuffer): Promise<void> {
  const flag = new Int32Array(abortFlag);
  const hooks = { aborted: () => Atomics.load(flag, 0) !== 0, emit: (event: GenerationEvent) => post({ type: 'event', id, event, stats: event.type === 'done' ? stats() : undefined }) };
  let seq: Sequence;
  try {
    const constraint = request.constraint ? await TokenConstraint.create(request.constraint, grammars) : undefined;
    seq = new Sequence(id, request, { vocabSize: decoder.info.vocabSize, eosTokenIds: decoder.info.eosTokenIds, contextLength: limits.contextLength }, hooks, constraint);
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    post({ type: 'event', id, event: { type: 'done', finishReason: 'error', promptTokens: request.promptIds.length, completionTokens: 0, cachedTokens: 0, timings: { prefillMs: 0, decodeMs: 0, overheadMsPerToken: 0 }, error } });
    return;
  }
  scheduler.enqueue(seq);
  pump();
}

port.on('message', (msg: ToWorker) => {
  if (msg.type === 'generate') {
    void admitRequest(msg.id, msg.request, msg.abortFlag);
  } else if (msg.type === 'checkGrammar') {
    grammars.compile(msg.grammar).then(
      () => post({ type: 'grammarChecked', id: msg.id }),
      (err: unknown) => post({ type: 'grammarChecked', id: msg.id, error: err instanceof Error ? err.message : String(err) }),
    );
  } else if (msg.type === 'shutdown') {
    // The main thread has raised every abort flag: the running step ends, then every sequence does.
    stopping = true;
    clearTimeout(idleTimer);
    clearTimeout(trimTimer);
    void Promise.resolve(loop)
      .then(async () => {
        while (scheduler.hasWork() && (await scheduler.step()));
        scheduler.releaseAll();
        await decoder.runner.release();
      })
      .finally(() => process.exit(0));
  }
});
