/**
 * The engine facade on the main thread: starts the worker that owns the ONNX session,
 * turns its messages into per-request async streams, and aborts through shared memory so
 * an abort lands before the worker's next model step even while it is busy.
 */
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../worker-thread.ts';
import { LoadEstimate } from './load-estimate.ts';
import { loadProgressChannel } from './load-progress.ts';
import type { SessionDescription } from './model-session.ts';
import type { EngineLimits, EngineOptions, EngineStats, GenerationEvent, GenerationRequest, GrammarSpec, ModelInfo, StepRecord } from './types.ts';
import type { FromWorker, ToWorker, WorkerStats } from './worker-protocol.ts';


interface Subscription {
  push: (event: GenerationEvent) => void;
  abortFlag: Int32Array;
  promptTokens: number;
  generated: number;
  /** The worker took it from its waiting line. */
  started: boolean;
}

export class EngineClosedError extends Error {
  override name = 'EngineClosedError';
}

export class Engine {
  private nextId = 1;
  private readonly subs = new Map<number, Subscription>();
  private closed = false;
  private fatal: string | undefined;
  private workerStats: WorkerStats;
  private readonly stepListeners: ((step: StepRecord, stats: EngineStats) => void)[] = [];
  private readonly grammarChecks = new Map<number, (error: string | undefined) => void>();

  private constructor(
    private readonly worker: Worker,
    readonly info: ModelInfo,
    readonly session: SessionDescription,
    readonly limits: EngineLimits,
  ) {
    this.workerStats = { kvUsedBytes: 0, kvBudgetBytes: limits.kvBudgetBytes, prefixCachedTokens: 0, prefixQueriedTokens: 0, prefixHitTokens: 0, preemptions: 0 };
    worker.on('message', (msg: FromWorker) => this.onMessage(msg));
    worker.on('error', (err) => this.failAll(`engine worker crashed: ${err.message}`));
    worker.on('exit', (code) => {
      if (!this.closed) this.failAll(`engine worker exited with code ${code}`);
    });
  }

  static async load(opts: EngineOptions): Promise<Engine> {
    const worker = startWorker(import.meta.url, './worker-entry', opts);
    const estimate = new LoadEstimate(opts.modelDir);
    let cleanup = () => {};
    const ready = await new Promise<Extract<FromWorker, { type: 'ready' }>>((resolve, reject) => {
      const onMessage = (msg: FromWorker) => {
        if (msg.type === 'ready') resolve(msg);
        else if (msg.type === 'fatal') reject(new Error(msg.error));
        else if (msg.type === 'progress' && loadProgressChannel.hasSubscribers) {
          estimate.otherTask();
          loadProgressChannel.publish(msg.progress);
        }
      };
      const onExit = (code: number) => reject(new Error(`engine worker exited with code ${code} while loading`));
      worker.on('message', onMessage);
      worker.on('error', reject);
      worker.on('exit', onExit);
      // Only our own listeners: Worker keeps internal ones that removeAllListeners would break.
      cleanup = () => {
        worker.off('message', onMessage);
        worker.off('error', reject);
        worker.off('exit', onExit);
      };
    })
      .then((msg) => (estimate.finish(true), msg), (err: unknown) => (estimate.finish(false), Promise.reject(err)))
      .finally(() => cleanup());
    return new Engine(worker, ready.info, ready.session, ready.limits);
  }

  /** False once the worker has died; the server reports not-ready. */
  get healthy(): boolean {
    return !this.closed && this.fatal === undefined;
  }

  /** Running and waiting as this thread has seen them; KV figures as of the worker's last step. */
  stats(): EngineStats {
    let running = 0;
    for (const s of this.subs.values()) if (s.started) running++;
    return { running, waiting: this.subs.size - running, ...this.workerStats };
  }

  /** Calls `listener` after every model step (for metrics); returns a function that stops it. */
  onStep(listener: (step: StepRecord, stats: EngineStats) => void): () => void {
    this.stepListeners.push(listener);
    return () => {
      const i = this.stepListeners.indexOf(listener);
      if (i >= 0) this.stepListeners.splice(i, 1);
    };
  }

  /**
   * Streams the events of one generation: token events, then exactly one `done`.
   * Aborting the signal ends it with finish_reason "abort" before the next model step.
   */
  generate(request: GenerationRequest, signal?: AbortSignal): AsyncIterable<GenerationEvent> {
    if (!this.healthy) throw new EngineClosedError(this.fatal ?? 'engine is closed');
    const id = this.nextId++;
    const shared = new SharedArrayBuffer(4);
    const abortFlag = new Int32Array(shared);
    const queue: GenerationEvent[] = [];
    let wake: (() => void) | undefined;
    const sub: Subscription = {
      abortFlag,
      promptTokens: request.promptIds.length,
      generated: 0,
      started: false,
      push: (event) => {
        if (event.type === 'token') sub.generated++;
        if (event.type === 'started') sub.started = true;
        queue.push(event);
        wake?.();
      },
    };
    this.subs.set(id, sub);
    const onAbort = () => Atomics.store(abortFlag, 0, 1);
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    this.post({ type: 'generate', id, request, abortFlag: shared });

    return {
      async *[Symbol.asyncIterator]() {
        try {
          for (;;) {
            while (queue.length === 0) await new Promise<void>((r) => (wake = r));
            wake = undefined;
            const event = queue.shift()!;
            yield event;
            if (event.type === 'done') return;
          }
        } finally {
          // A consumer that stops early (client gone) must stop the worker too; the
          // subscription stays until the worker's done arrives, so stats stay truthful.
          onAbort();
          signal?.removeEventListener('abort', onAbort);
          queue.length = 0;
          sub.push = () => {};
        }
      },
    };
  }

  /**
   * Compiles a grammar in the worker (where it stays cached for the request that follows) and
   * resolves with the reason it cannot be used, or undefined.
   */
  checkGrammar(grammar: GrammarSpec): Promise<string | undefined> {
    if (!this.healthy) return Promise.reject(new EngineClosedError(this.fatal ?? 'engine is closed'));
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.grammarChecks.set(id, resolve);
      this.post({ type: 'checkGrammar', id, grammar });
    });
  }

  private post(msg: ToWorker): void {
    this.worker.postMessage(msg);
  }

  private onMessage(msg: FromWorker): void {
    if (msg.type === 'step') {
      this.workerStats = msg.stats;
      const stats = this.stats();
      for (const listener of this.stepListeners) listener(msg.step, stats);
      return;
    }
    if (msg.type === 'grammarChecked') {
      this.grammarChecks.get(msg.id)?.(msg.error);
      this.grammarChecks.delete(msg.id);
      return;
    }
    if (msg.type !== 'event') return;
    if (msg.stats) this.workerStats = msg.stats;
    const sub = this.subs.get(msg.id);
    if (!sub) return;
    sub.push(msg.event);
    // The worker is done with it whether or not the reader ever asks for the event.
    if (msg.event.type === 'done') this.subs.delete(msg.id);
  }

  private failAll(reason: string): void {
    this.fatal = reason;
    for (const resolve of this.grammarChecks.values()) resolve(reason);
    this.grammarChecks.clear();
    for (const [id, sub] of this.subs) {
      sub.push({
        type: 'done',
        finishReason: 'error',
        promptTokens: sub.promptTokens,
        completionTokens: sub.generated,
        cachedTokens: 0,
        timings: { prefillMs: 0, decodeMs: 0, overheadMsPerToken: 0 },
        error: reason,
      });
      this.subs.delete(id);
    }
  }

  /** Aborts running generations, waits for the worker to finish them, and ends it. */
  async close(): Promise<void> {
    if (this.closed) return;
    for (const sub of this.subs.values()) Atomics.store(sub.abortFlag, 0, 1);
    this.closed = true;
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.post({ type: 'shutdown' });
    const timeout = setTimeout(() => void this.worker.terminate(), 10_000);
    await exited;
    clearTimeout(timeout);
  }
}
