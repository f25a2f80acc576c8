/**
 * One request inside the engine: its tokens (the prompt, then every sampled token), how many of
 * them have KV rows, where those rows live, its sampler and stopping criteria, and the events it
 * hands out. The scheduler moves it waiting -> prefilling -> decoding -> done, and back to waiting
 * when it is preempted (its rows are dropped and recomputed later; nothing it emitted changes).
 */
import type { TokenConstraint } from './grammar/token-constraint.ts';
import type { KvBlock } from './kv/kv-block.ts';
import type { CacheEntry } from './kv/prefix-cache.ts';
import { Sampler } from './sampling/index.ts';
import { firstStop, stopAtMaxTokens, stopOnTokens, type StoppingCriterion } from './stopping.ts';
import type { FinishReason, GenerationEvent, GenerationRequest } from './types.ts';

export type SequenceState = 'waiting' | 'prefilling' | 'decoding' | 'done';

export interface SequenceHooks {
  /** True once the request was aborted (client gone, timeout, shutdown); read before every step. */
  aborted: () => boolean;
  emit: (event: GenerationEvent) => void;
}

/** What a sequence needs to know of the model. */
export interface SequenceModel {
  vocabSize: number;
  eosTokenIds: readonly number[];
  contextLength: number;
}

export class Sequence {
  readonly tokens: number[];
  readonly promptLength: number;
  /** Leading tokens whose KV rows exist. A decoding sequence lacks only its last sampled token's. */
  computed = 0;
  state: SequenceState = 'waiting';
  /** The sequence's own rows while it prefills. */
  block: KvBlock | undefined;
  /** Its slot in the decode batch while it decodes. */
  slot = -1;
  /** The prefix-cache entry of its prompt, extended with its answer when it ends. */
  cacheEntry: CacheEntry | undefined;
  /** Prompt tokens whose rows came from the prefix cache when it was first admitted. */
  cachedTokens = 0;
  completionTokens = 0;
  readonly enqueuedAt = performance.now();
  admittedAt: number | undefined;
  private firstTokenAt: number | undefined;
  private decodeOverheadMs = 0;
  private decodeSteps = 0;
  private readonly sampler: Sampler;
  private readonly criteria: StoppingCriterion[];
  private readonly contextLength: number;

  constructor(
    readonly id: number,
    readonly request: GenerationRequest,
    model: SequenceModel,
    private readonly hooks: SequenceHooks,
    private readonly constraint?: TokenConstraint,
  ) {
    for (const id of request.promptIds) {
      if (!(Number.isInteger(id) && id >= 0 && id < model.vocabSize)) throw new RangeError(`token id ${id} is outside the vocabulary of ${model.vocabSize}`);
    }
    this.tokens = [...request.promptIds];
    this.promptLength = this.tokens.length;
    this.contextLength = model.contextLength;
    this.sampler = new Sampler(model.vocabSize, request.sampling, request.promptIds, constraint ? [constraint] : []);
    this.criteria = [stopOnTokens([...model.eosTokenIds, ...(request.extraStopTokenIds ?? [])]), stopAtMaxTokens(request.maxTokens)];
  }

  get aborted(): boolean {
    return this.hooks.aborted();
  }

  /** Tokens still to run through the model before the next one can be sampled. */
  get pending(): number {
    return this.tokens.length - this.computed;
  }

  admitted(now: number, cachedTokens: number): void {
    if (this.admittedAt !== undefined) return; // resumed after preemption: already reported
    this.admittedAt = now;
    this.cachedTokens = cachedTokens;
    this.hooks.emit({ type: 'started', queuedMs: now - this.enqueuedAt, cachedTokens });
  }

  /** Settles once the sequence can sample (its grammar's next mask is known). */
  ready(): Promise<void> | undefined {
    return this.constraint?.ready();
  }

  /** Counts a decode step's time outside the model run towards this sequence's overhead. */
  steppedWith(overheadMs: number): void {
    this.decodeOverheadMs += overheadMs;
    this.decodeSteps++;
  }

  /**
   * Samples the next token from `logits` (consumed), hands it out unless it is a stop token, and
   * says whether the sequence ends here.
   */
  accept(logits: Float32Array): FinishReason | undefined {
    const choice = this.sampler.sample(logits, { topLogprobs: this.request.topLogprobs });
    this.completionTokens++;
    this.firstTokenAt ??= performance.now();
    this.tokens.push(choice.id);
    const stop = firstStop(this.criteria, { tokenId: choice.id, completionTokens: this.completionTokens });
    if (stop !== 'stop') this.hooks.emit({ type: 'token', id: choice.id, logprob: choice.logprob, top: choice.top });
    if (stop) return stop;
    // Another token needs this one's row first: both must fit the context.
    if (this.tokens.length + 1 > this.contextLength) return 'length';
    return undefined;
  }

  /** Ends the sequence with exactly one `done` event. */
  finish(finishReason: FinishReason, error?: string): void {
    if (this.state === 'done') return;
    this.state = 'done';
    this.constraint?.release();
    const now = performance.now();
    const prefillMs = this.firstTokenAt !== undefined && this.admittedAt !== undefined ? this.firstTokenAt - this.admittedAt : 0;
    const decodeMs = this.firstTokenAt !== undefined ? now - this.firstTokenAt : 0;
    this.hooks.emit({
      type: 'done',
      finishReason,
      promptTokens: this.promptLength,
      completionTokens: this.completionTokens,
      cachedTokens: this.cachedTokens,
      timings: { prefillMs, decodeMs, overheadMsPerToken: this.decodeSteps > 0 ? this.decodeOverheadMs / this.decodeSteps : 0 },
      ...(error !== undefined ? { error } : {}),
    });
  }
}
