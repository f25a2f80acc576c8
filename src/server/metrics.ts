/**
 * Prometheus metrics on a registry owned by one app (never prom-client's global registry, so
 * several apps can live in one process). Names and meanings follow vLLM's `vllm:*` metrics with
 * the `phi4_` prefix; every per-model series carries `model_name` (with one model, every series does).
 *
 * Fed from `ServingEvents` (tokens and generation ends, as they happen) and from one call per
 * finished HTTP request (`recordRequest`); gauges read the queue and the engine when scraped.
 * Only counts and times are recorded, never text.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EngineStats, StepRecord } from '../engine/types.ts';
import type { ServingContext } from './serving/context.ts';
import type { RequestTrace, TraceOutcome } from './trace.ts';

export const METRIC_PREFIX = 'phi4_';

// CPU inference is slow: a long prompt on the real model can take minutes to first token.
const TTFT_BUCKETS = [0.05, 0.1, 0.25, 0.5, 0.75, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600];
const ITL_BUCKETS = [0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2, 5, 10];
const REQUEST_SECONDS_BUCKETS = [
  0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 900, 1200, 1800, 3600,
];
const QUEUE_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200];
// vLLM's 1-2-5 series, up to Phi-4-mini's 131072-token context.
const TOKEN_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 131072];
const STEP_TOKEN_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
const STEP_SEQUENCE_BUCKETS = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64];

/** Window of the recent decode-throughput gauge. */
const THROUGHPUT_WINDOW_MS = 10_000;

/** `finish_reason` label of requests that never generated (rejected, refused, listing models). */
export type FinishLabel = TraceOutcome | 'none';

/** What the HTTP layer reports once per finished request. */
export interface RequestRecord {
  /** Route path, e.g. "/v1/chat/completions". */
  endpoint: string;
  status: number;
  finishReason: FinishLabel;
  /** Present for generation requests that reached the serving layer. */
  trace?: RequestTrace;
  /** performance.now() when the response ended. */
  endedAt: number;
  /** The model the request named, when it named a listed one (a trace's model wins). */
  model?: string;
}

/** Per-request accumulations (across the generations of a multi-prompt completion). */
export interface TraceStats {
  countedPromptTokens: number;
  countedCompletionTokens: number;
  /** Time of the previous token of the current generation. */
  previousTokenAt?: number;
  ttftObserved: boolean;
  /** Inter-token gaps within generations. */
  itlCount: number;
  itlSumMs: number;
  /** Engine-side prefill/decode time summed over generations. */
  prefillMs: number;
  decodeMs: number;
  generations: number;
  lastTimings?: object;
}

/** Decode throughput over the recent past; 0 when nothing runs. */
class RecentRate {
  private readonly times: number[] = [];
  private busySince = 0;

  /** A generation started; if nothing was generated lately, the window restarts here. */
  start(now: number): void {
    this.prune(now);
    if (this.times.length === 0) this.busySince = now;
  }

  token(now: number): void {
    this.times.push(now);
    if (this.times.length > 100_000) this.times.splice(0, this.times.length - 100_000);
  }

  perSecond(now: number, running: number): number {
    this.prune(now);
    if (running === 0 || this.times.length === 0) return 0;
    const spanMs = Math.min(THROUGHPUT_WINDOW_MS, now - this.busySince);
    return spanMs > 0 ? (this.times.length * 1000) / spanMs : 0;
  }

  private prune(now: number): void {
    let i = 0;
    while (i < this.times.length && this.times[i] <= now - THROUGHPUT_WINDOW_MS) i++;
    if (i > 0) this.times.splice(0, i);
  }
}

export interface MetricsOptions {
  /** The one model's name, put on every series (process metrics too); unset when several models are served. */
  modelName?: string;
  /** prom-client's process/Node.js metrics on this registry (default true). */
  processMetrics?: boolean;
}

type ModelLabel = { model_name: string };

/** A loaded model the metrics follow. */
interface FollowedModel {
  ctx: ServingContext;
  rate: RecentRate;
  /** The engine's cumulative counts when last seen (the counters grow by the difference). */
  seen: { queried: number; hits: number; preemptions: number };
  stopFollowingSteps: () => void;
}


export class ServingMetrics {
  readonly registry = new Registry();
  private readonly followed = new Map<string, FollowedModel>();
  private readonly stats = new WeakMap<RequestTrace, TraceStats>();
  private loadedModels: () => number = () => this.followed.size;

  private readonly ttft: Histogram<'model_name'>;
  private readonly itl: Histogram<'model_name'>;
  private readonly e2e: Histogram<'model_name'>;
  private readonly queueTime: Histogram<'model_name'>;
  private readonly prefillTime: Histogram<'model_name'>;
  private readonly decodeTime: Histogram<'model_name'>;
  private readonly inferenceTime: Histogram<'model_name'>;
  private readonly promptTokensHist: Histogram<'model_name'>;
  private readonly generationTokensHist: Histogram<'model_name'>;
  private readonly promptTokens: Counter<'model_name'>;
  private readonly generationTokens: Counter<'model_name'>;
  private readonly requests: Counter<'endpoint' | 'status' | 'finish_reason' | 'model_name'>;
  private readonly loadSeconds: Gauge<'model_name'>;
  private readonly loads: Counter<'model_name'>;
  private readonly unloads: Counter<'model_name' | 'reason'>;
  private readonly prefixQueries: Counter<'model_name'>;
  private readonly prefixHits: Counter<'model_name'>;
  private readonly preemptions: Counter<'model_name'>;
  private readonly stepTokens: Histogram<'model_name'>;
  private readonly stepSequences: Histogram<'model_name'>;
  private readonly modelInfo: Gauge<'execution_provider' | 'threads' | 'logits' | 'kv_update' | 'model_name'>;

  constructor(opts: MetricsOptions) {
    const p = METRIC_PREFIX;
    const registers = [this.registry];
    if (opts.modelName !== undefined) this.registry.setDefaultLabels({ model_name: opts.modelName });
    const labelNames = ['model_name'] as const;
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: p });

    const histogram = (name: string, help: string, buckets: number[]): Histogram<'model_name'> =>
      new Histogram({ name: p + name, help, buckets, labelNames, registers });
    this.ttft = histogram(
      'time_to_first_token_seconds',
      'Time from the request arriving (queue wait included) to its first generated token.',
      TTFT_BUCKETS,
    );
    this.itl = histogram(
      'inter_token_latency_seconds',
      'Time between consecutive generated tokens of one generation.',
      ITL_BUCKETS,
    );
    this.e2e = histogram(
      'e2e_request_latency_seconds',
      'Time from the request arriving to its response ending, for requests that reached the engine.',
      REQUEST_SECONDS_BUCKETS,
    );
    this.queueTime = histogram('request_queue_time_seconds', 'Time a request waited for an engine slot.', QUEUE_BUCKETS);
    this.prefillTime = histogram(
      'request_prefill_time_seconds',
      'Engine time spent on prompt processing (prefill) up to the first token, per request.',
      REQUEST_SECONDS_BUCKETS,
    );
    this.decodeTime = histogram(
      'request_decode_time_seconds',
      'Engine time spent generating tokens after the first, per request.',
      REQUEST_SECONDS_BUCKETS,
    );
    this.inferenceTime = histogram(
      'request_inference_time_seconds',
      'Time a request held the engine (prefill + decode).',
      REQUEST_SECONDS_BUCKETS,
    );
    this.promptTokensHist = histogram('request_prompt_tokens', 'Prompt tokens processed per request.', TOKEN_BUCKETS);
    this.generationTokensHist = histogram(
      'request_generation_tokens',
      'Tokens generated per request.',
      TOKEN_BUCKETS,
    );
    this.promptTokens = new Counter({
      name: `${p}prompt_tokens_total`,
      help: 'Prompt tokens processed (prefilled). Equals the sum of usage.prompt_tokens of the answered requests, plus the prompts of requests cut short.',
      labelNames,
      registers,
    });
    this.generationTokens = new Counter({
      name: `${p}generation_tokens_total`,
      help: 'Tokens generated. Equals the sum of usage.completion_tokens of the answered requests, plus the tokens of requests cut short.',
      labelNames,
      registers,
    });
    this.requests = new Counter({
      name: `${p}requests_total`,
      help: 'Finished /v1 requests by route, HTTP status (499: client went away) and finish_reason (none: nothing generated).',
      labelNames: ['endpoint', 'status', 'finish_reason', 'model_name'] as const,
      registers,
    });

    const self = this;
    const gauge = (name: string, help: string, read: (stats: EngineStats, m: FollowedModel) => number) =>
      new Gauge({
        name: p + name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          if (self.followed.size === 0 && opts.modelName !== undefined) this.set(0);
          for (const m of self.followed.values()) this.set({ model_name: m.ctx.modelName }, read(m.ctx.engine.stats(), m));
        },
      });
    gauge('num_requests_running', 'Sequences the engine is prefilling or decoding.', (st) => st.running);
    gauge('num_requests_waiting', "Requests waiting in the engine's line.", (st) => st.waiting);
    gauge(
      'avg_generation_throughput_toks_per_s',
      `Tokens generated per second over the last ${THROUGHPUT_WINDOW_MS / 1000} s of busy time; 0 while idle.`,
      (st, m) => m.rate.perSecond(performance.now(), st.running),
    );
    gauge('kv_cache_usage_perc', 'Share of the KV budget in use (running, waiting and cached sequences), 0 to 1.', (st) =>
      st.kvBudgetBytes > 0 ? st.kvUsedBytes / st.kvBudgetBytes : 0,
    );
    gauge('kv_cache_budget_bytes', 'The KV memory budget (--kv-cache-gib).', (st) => st.kvBudgetBytes);
    gauge('prefix_cache_tokens', 'Positions held by the prefix cache.', (st) => st.prefixCachedTokens);
    const counter = (name: string, help: string) => new Counter({ name: p + name, help, labelNames, registers });
    this.prefixQueries = counter('prefix_cache_queries_total', 'Prompt tokens looked up in the prefix cache.');
    this.prefixHits = counter('prefix_cache_hits_total', 'Prompt tokens whose KV came from the prefix cache.');
    this.preemptions = counter('num_preemptions_total', 'Running sequences put back in line because the KV budget was full (recomputed later).');
    this.stepTokens = histogram('iteration_tokens_total', 'Tokens per model step (one per decoding sequence, plus a prompt chunk).', STEP_TOKEN_BUCKETS);
    this.stepSequences = histogram('iteration_sequences', 'Sequences per model step.', STEP_SEQUENCE_BUCKETS);
    this.loadSeconds = new Gauge({
      name: `${p}model_load_seconds`,
      help: "Seconds the model's last load took (ONNX session and tokenizer); 0 until loaded.",
      labelNames,
      registers,
    });
    if (opts.modelName !== undefined) this.loadSeconds.set(0);
    this.loads = counter('model_loads_total', 'Times the model was loaded (at start, on demand or by an admin request).');
    this.unloads = new Counter({
      name: `${p}model_unloads_total`,
      help: 'Times the model was unloaded, by reason: idle (keep-alive over), keep_alive (a request asked for 0), evicted (room for another model), admin, crashed, shutdown.',
      labelNames: ['model_name', 'reason'] as const,
      registers,
    });
    new Gauge({
      name: `${p}models_loaded`,
      help: 'Models loaded now (their workers and sessions hold memory).',
      registers,
      collect() {
        this.set(self.loadedModels());
      },
    });
    this.modelInfo = new Gauge({
      name: `${p}model_info`,
      help: 'Always 1 for each loaded model; labels describe how it runs.',
      labelNames: ['execution_provider', 'threads', 'logits', 'kv_update', 'model_name'] as const,
      registers,
    });
  }

  /** How many models the registry has loaded (read when scraped). */
  countLoadedModelsWith(read: () => number): void {
    this.loadedModels = read;
  }

  /** Starts following a loaded model's serving context; returns the function that stops it. */
  attach(ctx: ServingContext, loadSeconds: number | undefined): () => void {
    const label: ModelLabel = { model_name: ctx.modelName };
    const start = ctx.engine.stats();
    const m: FollowedModel = {
      ctx,
      rate: new RecentRate(),
      seen: { queried: start.prefixQueriedTokens, hits: start.prefixHitTokens, preemptions: start.preemptions },
      stopFollowingSteps: ctx.engine.onStep((step, stats) => this.recordStep(m, step, stats)),
    };
    this.followed.set(ctx.modelName, m);
    // Counters show 0 from the start, as unlabelled ones would.
    for (const c of [this.promptTokens, this.generationTokens, this.prefixQueries, this.prefixHits, this.preemptions]) c.inc(label, 0);
    for (const h of this.perModelHistograms()) h.zero(label);
    const session = ctx.engine.session;
    this.loadSeconds.set(label, loadSeconds ?? (session ? session.loadMs / 1000 : 0));
    this.loads.inc(label);
    if (session) {
      const how = { execution_provider: session.executionProvider, threads: String(session.threads), logits: session.logits, kv_update: session.kvUpdate };
      this.modelInfo.set({ ...how, ...label }, 1);
    }
    this.followEvents(ctx, m);
    return () => {
      m.stopFollowingSteps();
      if (this.followed.get(ctx.modelName) === m) this.followed.delete(ctx.modelName);
      if (session) this.modelInfo.remove({ execution_provider: session.executionProvider, threads: String(session.threads), logits: session.logits, kv_update: session.kvUpdate, ...label });
    };
  }

  private perModelHistograms(): Histogram<'model_name'>[] {
    return [this.ttft, this.itl, this.e2e, this.queueTime, this.prefillTime, this.decodeTime, this.inferenceTime, this.promptTokensHist, this.generationTokensHist, this.stepTokens, this.stepSequences];
  }

  /** A model was unloaded (its series stay; the gauges stop reporting it). */
  recordUnload(modelName: string, reason: string): void {
    this.unloads.inc({ model_name: modelName, reason });
  }

  private followEvents(ctx: ServingContext, m: FollowedModel): void {
    const label: ModelLabel = { model_name: ctx.modelName };
    ctx.events.on('started', (trace) => {
      this.statsOf(trace);
      m.rate.start(performance.now());
    });
    ctx.events.on('token', (trace, now) => {
      const st = this.statsOf(trace);
      if (!st.ttftObserved) {
        st.ttftObserved = true;
        this.ttft.observe(label, (now - trace.receivedAt) / 1000);
      }
      if (st.previousTokenAt !== undefined) {
        const gap = now - st.previousTokenAt;
        this.itl.observe(label, gap / 1000);
        st.itlCount++;
        st.itlSumMs += gap;
      }
      st.previousTokenAt = now;
      m.rate.token(now);
      this.reconcileTokens(trace, st);
    });
    ctx.events.on('generationDone', (trace) => {
      const st = this.statsOf(trace);
      if (!st.ttftObserved && trace.completionTokens > 0) {
        // The only token was an eos (counted, never emitted): it came right before this.
        st.ttftObserved = true;
        this.ttft.observe(label, (performance.now() - trace.receivedAt) / 1000);
      }
      st.previousTokenAt = undefined;
      st.generations++;
      if (trace.engineTimings && trace.engineTimings !== st.lastTimings) {
        st.lastTimings = trace.engineTimings;
        st.prefillMs += trace.engineTimings.prefillMs;
        st.decodeMs += trace.engineTimings.decodeMs;
      }
      this.reconcileTokens(trace, st);
    });
  }

  /** Stops following every model's steps (the app closes; an engine may serve other apps). */
  detach(): void {
    for (const m of this.followed.values()) m.stopFollowingSteps();
    this.followed.clear();
  }

  private recordStep(m: FollowedModel, step: StepRecord, stats: EngineStats): void {
    const label: ModelLabel = { model_name: m.ctx.modelName };
    if (step.tokens > 0) {
      this.stepTokens.observe(label, step.tokens);
      this.stepSequences.observe(label, step.sequences);
    }
    const grow = (c: Counter<'model_name'>, now: number, before: number) => now > before && c.inc(label, now - before);
    grow(this.prefixQueries, stats.prefixQueriedTokens, m.seen.queried);
    grow(this.prefixHits, stats.prefixHitTokens, m.seen.hits);
    grow(this.preemptions, stats.preemptions, m.seen.preemptions);
    m.seen = { queried: stats.prefixQueriedTokens, hits: stats.prefixHitTokens, preemptions: stats.preemptions };
  }

  /** Accumulations for a trace (created on first use). */
  statsOf(trace: RequestTrace): TraceStats {
    let st = this.stats.get(trace);
    if (!st) {
      st = {
        countedPromptTokens: 0,
        countedCompletionTokens: 0,
        ttftObserved: false,
        itlCount: 0,
        itlSumMs: 0,
        prefillMs: 0,
        decodeMs: 0,
        generations: 0,
      };
      this.stats.set(trace, st);
    }
    return st;
  }

  /** Brings the token counters up to the trace's totals (which only grow). */
  private reconcileTokens(trace: RequestTrace, st: TraceStats): void {
    const label: ModelLabel = { model_name: trace.model };
    const prompt = trace.promptTokens - st.countedPromptTokens;
    if (prompt > 0) {
      this.promptTokens.inc(label, prompt);
      st.countedPromptTokens = trace.promptTokens;
    }
    const completion = trace.completionTokens - st.countedCompletionTokens;
    if (completion > 0) {
      this.generationTokens.inc(label, completion);
      st.countedCompletionTokens = trace.completionTokens;
    }
  }

  /** One finished /v1 request: its response ended and (if it ran) its engine slot is free. */
  recordRequest(r: RequestRecord): void {
    const trace = r.trace;
    const model = trace?.model ?? r.model;
    this.requests.inc({ endpoint: r.endpoint, status: String(r.status), finish_reason: r.finishReason, ...(model !== undefined ? { model_name: model } : {}) });
    if (!trace || trace.startedAt === undefined) return;
    const label: ModelLabel = { model_name: trace.model };
    const st = this.statsOf(trace);
    this.reconcileTokens(trace, st);
    this.e2e.observe(label, Math.max(0, r.endedAt - trace.receivedAt) / 1000);
    this.queueTime.observe(label, (trace.queueMs ?? 0) / 1000);
    this.prefillTime.observe(label, st.prefillMs / 1000);
    this.decodeTime.observe(label, st.decodeMs / 1000);
    this.inferenceTime.observe(label, Math.max(0, (trace.finishedAt ?? r.endedAt) - trace.startedAt) / 1000);
    this.promptTokensHist.observe(label, trace.promptTokens);
    this.generationTokensHist.observe(label, trace.completionTokens);
  }

  /** The Prometheus text exposition. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
