/**
 * Continuous batching: one waiting line, and every model step serves every running sequence it
 * can. A step runs the next token of every decoding sequence plus a chunk of the prompt of at most
 * one prefilling sequence (first come, first served), sized so the step costs about ITL_FACTOR times
 * a decode-only step (or under a fixed token budget); there are no prefill and decode phases. Sequences join and leave between steps, and every abort (client
 * gone, timeout, end of a shutdown grace) is honoured before the next step.
 *
 * KV lives in blocks (kv/kv-block.ts): the decode batch is one block with a slot per decoding
 * sequence; a prefilling sequence has its own block, copied into the batch when its prompt is
 * done (or adopted as the batch when nothing else decodes). Finished sequences leave their rows
 * to the prefix cache, and a new sequence starts from the longest cached prefix of its tokens.
 * Everything counts against one KV budget: when it is full the cache is evicted first, then new
 * sequences wait, then the newest decoding sequence is preempted (its rows dropped, recomputed
 * when it is admitted again).
 */
import { KvBlock } from './kv/kv-block.ts';
import type { KvMemory } from './kv/kv-memory.ts';
import { PrefixCache, type CacheEntry } from './kv/prefix-cache.ts';
import type { PrefillInput, StepPlan, StepRunner } from './runners/step-runner.ts';
import { RideAlong, type StepCost } from './step-cost.ts';
import type { Sequence } from './sequence.ts';
import type { FinishReason, StepRecord } from './types.ts';

export interface SchedulerOptions {
  maxRunningSeqs: number;
  /** A fixed token budget per step while sequences decode; unset: sized from `stepCost`. */
  maxBatchTokens?: number;
  stepCost: StepCost;
  /** Prompt tokens per step when nothing decodes. */
  prefillChunk: number;
  /** Layouts grow by this many positions. */
  growthChunk: number;
  contextLength: number;
  prefixCache: boolean;
}

export interface SchedulerCounters {
  preemptions: number;
  queriedTokens: number;
  hitTokens: number;
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export class Scheduler {
  private readonly waiting: Sequence[] = [];
  private prefilling: Sequence | undefined;
  /** decoding[b] holds slot b of the decode block. */
  private readonly decoding: Sequence[] = [];
  private decodeBlock: KvBlock;
  private readonly cache = new PrefixCache();
  readonly counters: SchedulerCounters = { preemptions: 0, queriedTokens: 0, hitTokens: 0 };
  /** Positions the decode block allocates when it must: room for every sequence it may hold (mapped lazily). */
  private readonly decodeAllocation: number;
  private readonly rideAlong: RideAlong;

  constructor(
    private readonly runner: StepRunner,
    private readonly memory: KvMemory,
    private readonly opts: SchedulerOptions,
    private readonly onStep: (record: StepRecord) => void = () => {},
  ) {
    this.decodeBlock = this.newBlock();
    this.decodeAllocation = Math.min(memory.capacity, this.maxRunning * this.round(opts.contextLength));
    this.rideAlong = new RideAlong(opts.stepCost);
  }

  private get maxRunning(): number {
    return this.runner.batched ? this.opts.maxRunningSeqs : 1;
  }

  get running(): number {
    return this.decoding.length + (this.prefilling ? 1 : 0);
  }

  get waitingCount(): number {
    return this.waiting.length;
  }

  get cachedPositions(): number {
    return this.cache.positions;
  }

  hasWork(): boolean {
    return this.running > 0 || this.waiting.length > 0;
  }

  private newBlock(): KvBlock {
    return new KvBlock(this.runner.kvShape, this.memory);
  }

  /** Positions rounded up to the growth chunk (never past the context). */
  private round(positions: number): number {
    const g = this.opts.growthChunk;
    return Math.max(positions, Math.min(Math.ceil(positions / g) * g, this.opts.contextLength));
  }

  enqueue(seq: Sequence): void {
    const n = seq.tokens.length;
    if (n === 0) return seq.finish('error', 'prompt is empty');
    if (n >= this.opts.contextLength) return seq.finish('error', `prompt of ${n} tokens does not fit the context of ${this.opts.contextLength}`);
    if (seq.request.maxTokens <= 0) return seq.finish('length');
    this.waiting.push(seq);
  }

  /** Runs one model step; false when there was nothing to run. */
  async step(): Promise<boolean> {
    const started = performance.now();
    this.reap();
    this.admit();
    const plan = this.plan(started);
    if (!plan) return false;
    const decoders = [...this.decoding];
    const prefiller = plan.prefill ? this.prefilling : undefined;
    const runStart = performance.now();
    let logits: Float32Array[];
    try {
      logits = await this.runner.run(plan);
    } catch (err) {
      // Nothing tells which sequence broke the step: each fails rather than retrying it forever.
      for (const seq of [...decoders, ...(prefiller ? [prefiller] : [])]) this.end(seq, 'error', `model step failed: ${errorText(err)}`);
      return true;
    }
    const runMs = performance.now() - runStart;
    await Promise.all([...decoders, prefiller].map((seq) => seq?.ready()));
    const joinMs = this.complete(plan, decoders, prefiller, logits);
    const stepMs = performance.now() - started;
    const overheadMs = stepMs - runMs;
    for (const seq of decoders) seq.steppedWith(overheadMs);
    const prompt = plan.prefill?.tokens.length ?? 0;
    // Before the run the step admits, lays out and copies rows; that and a join are moves, not model work.
    this.rideAlong.observe(decoders.length, prompt, stepMs - (runStart - started) - joinMs);
    const tokens = decoders.length + prompt;
    this.onStep({ tokens, sequences: decoders.length + (prefiller ? 1 : 0), runMs });
    // The step's outputs (new KV rows, logits) are garbage now; so is what reallocations left.
    this.memory.discarded(tokens * this.memory.positionBytes + logits.reduce((n, row) => n + row.byteLength, 0));
    this.memory.collect();
    return true;
  }

  /** Ends every aborted sequence, freeing (or caching) its rows. */
  private reap(): void {
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      const seq = this.waiting[i];
      if (!seq.aborted) continue;
      this.waiting.splice(i, 1);
      seq.finish('abort');
    }
    if (this.prefilling?.aborted) this.end(this.prefilling, 'abort');
    for (let slot = this.decoding.length - 1; slot >= 0; slot--) {
      if (this.decoding[slot].aborted) this.end(this.decoding[slot], 'abort');
    }
  }

  /** Ends a running sequence wherever it is, keeping its rows in the cache when there is room. */
  private end(seq: Sequence, reason: FinishReason, error?: string): void {
    if (seq === this.prefilling) {
      this.prefilling = undefined;
      this.cacheBlock(seq, seq.block!);
      seq.block = undefined;
    } else if (seq.slot >= 0) {
      this.leaveDecodeBatch(seq, true);
    }
    seq.finish(reason, error);
  }

  /** Starts prefilling the head of the line while a sequence may start and its prompt fits. */
  private admit(): void {
    while (!this.prefilling && this.waiting.length > 0 && this.running < this.maxRunning) {
      const seq = this.waiting[0];
      if (!this.startPrefill(seq)) {
        if (this.running > 0) return; // room comes back as others end
        // Alone, it may still fit once nothing is cached.
        this.expireCache(Infinity);
        if (!this.startPrefill(seq)) {
          this.waiting.shift();
          seq.finish('error', `a prompt of ${seq.tokens.length} tokens does not fit the KV budget`);
          continue;
        }
      }
      this.waiting.shift();
    }
  }

  /** Gives `seq` a block holding the longest cached prefix of its tokens; false when the budget cannot hold its prompt now. */
  private startPrefill(seq: Sequence): boolean {
    const n = seq.tokens.length;
    // At least one token is run: its logits pick the next one.
    const match = this.opts.prefixCache ? this.cache.lookup(seq.tokens, n - 1) : undefined;
    const reserve = this.round(n + 1);
    // Taking a whole unowned entry moves its rows instead of copying them.
    const take = match !== undefined && match.length === match.entry.tokens.length && match.entry.owner === undefined;
    const joinRoom = this.decoding.length > 0 ? reserve : 0;
    const already = take ? match.entry.block.footprintPositions : 0;
    if (!this.makeRoom(reserve + joinRoom - already, match?.entry)) return false;
    let block: KvBlock;
    if (take) {
      this.cache.remove(match.entry);
      block = match.entry.block;
      block.reserve(reserve, true);
    } else {
      block = this.newBlock();
      block.reserve(reserve, true);
      block.arrange(1, this.round(Math.max(1, match?.length ?? 0)));
      if (match) {
        block.copyFrom(match.entry.block, 0, 0, 0, match.length);
        block.lengths[0] = match.length;
      }
    }
    seq.block = block;
    seq.computed = match?.length ?? 0;
    seq.state = 'prefilling';
    this.prefilling = seq;
    if (seq.admittedAt === undefined) {
      this.counters.queriedTokens += n;
      this.counters.hitTokens += seq.computed;
    }
    seq.admitted(performance.now(), seq.computed);
    return true;
  }

  /**
   * Evicts cached prefixes (never `keep`) until `positions` more fit the budget; false if they
   * cannot. What was evicted is collected before the caller touches new rows: until V8 collects
   * an evicted buffer it stays resident, on top of a full budget.
   */
  private makeRoom(positions: number, keep?: CacheEntry): boolean {
    let evicted = false;
    while (this.memory.availablePositions < positions) {
      const block = this.cache.evict(keep);
      if (!block) break;
      block.clear();
      evicted = true;
    }
    if (evicted) this.memory.collect(true);
    return this.memory.availablePositions >= positions;
  }

  /** The next step (begun at `started`): a token per decoding sequence and a prompt chunk under the token budget. */
  private plan(started: number): StepPlan | undefined {
    const plan: StepPlan = {};
    if (this.decoding.length > 0 && this.fitDecodeBatch()) {
      plan.decode = { block: this.decodeBlock, tokens: this.decoding.map((s) => s.tokens[s.computed]) };
    }
    const seq = this.prefilling;
    if (seq && (this.runner.batched || !plan.decode)) plan.prefill = this.promptChunk(seq, plan.decode ? this.decoding.length : 0, started);
    return plan.decode || plan.prefill ? plan : undefined;
  }

  /** The next chunk of `seq`'s prompt beside `decoding` decode rows, in a step begun at `started`. */
  private promptChunk(seq: Sequence, decoding: number, started: number): PrefillInput {
    const budget = (spentMs: number) => (decoding > 0 ? this.chunkBeside(decoding, spentMs) : this.opts.prefillChunk);
    let count = Math.min(seq.pending, budget(performance.now() - started), this.opts.prefillChunk);
    const block = seq.block!;
    // The layout widens with the prompt, so an early chunk attends over a short past; the last
    // chunk also makes room for the first decoded token, so decoding does not start by moving rows.
    const need = seq.computed + count === seq.tokens.length ? seq.computed + count + 1 : seq.computed + count;
    if (need > block.stride) {
      block.arrange(1, this.round(need));
      // Widening moved the rows (and touched new pages): the decoding rows have waited for that already.
      count = Math.min(count, budget(performance.now() - started));
    }
    const end = seq.computed + count;
    return { block, tokens: seq.tokens.slice(seq.computed, end), logits: end === seq.tokens.length };
  }

  /** Prompt tokens a step may carry beside `decoding` decode rows, `spentMs` of the step already spent. */
  private chunkBeside(decoding: number, spentMs: number): number {
    const fixed = this.opts.maxBatchTokens;
    return fixed !== undefined ? Math.max(1, fixed - decoding) : this.rideAlong.next(decoding, spentMs);
  }

  /** Widens the decode batch's layout for this step's rows, preempting while the budget cannot hold it. */
  private fitDecodeBatch(): boolean {
    for (;;) {
      const block = this.decodeBlock;
      let longest = 0;
      for (const len of block.lengths) longest = Math.max(longest, len);
      if (longest + 1 <= block.stride) return true;
      const stride = this.round(longest + 1);
      if (this.makeRoom(block.growthFor(block.slots, stride))) {
        block.arrange(block.slots, stride, this.decodeAllocation);
        this.memory.collect(true);
        return true;
      }
      if (this.decoding.length === 1) {
        this.end(this.decoding[0], 'error', 'the KV budget cannot hold this sequence');
        return false;
      }
      this.preemptNewest();
    }
  }

  /**
   * Samples every sequence that has logits in this step, ends the finished ones and moves a
   * completed prompt into the decode batch; returns the milliseconds that move took.
   */
  private complete(plan: StepPlan, decoders: Sequence[], prefiller: Sequence | undefined, logits: Float32Array[]): number {
    const ended: [Sequence, FinishReason, string?][] = [];
    decoders.forEach((seq, row) => {
      seq.computed++;
      const [reason, error] = this.accept(seq, logits[row]);
      if (reason) ended.push([seq, reason, error]);
    });
    // Highest slot first: leaving moves the last slot into the hole.
    ended.sort((a, b) => b[0].slot - a[0].slot);
    for (const [seq, reason, error] of ended) this.end(seq, reason, error);
    if (!prefiller || !plan.prefill) return 0;
    prefiller.computed += plan.prefill.tokens.length;
    if (!plan.prefill.logits) return 0;
    const [reason, error] = this.accept(prefiller, logits[decoders.length]);
    if (reason) {
      this.end(prefiller, reason, error);
      return 0;
    }
    const joinStart = performance.now();
    this.join(prefiller);
    return performance.now() - joinStart;
  }

  private accept(seq: Sequence, logits: Float32Array): [FinishReason | undefined, string?] {
    try {
      return [seq.accept(logits)];
    } catch (err) {
      return ['error', errorText(err)];
    }
  }

  /**
   * Moves a sequence whose prompt is done into the decode batch. If the batch cannot make room for
   * it now (the others grew since it was admitted), it goes back in line with its rows cached.
   */
  private join(seq: Sequence): void {
    this.prefilling = undefined;
    const own = seq.block!;
    seq.block = undefined;
    if (this.decoding.length === 0) {
      // Nothing else decodes: its block becomes the batch, no copy.
      this.decodeBlock.clear();
      this.decodeBlock = own;
    } else {
      const slot = this.decoding.length;
      const stride = Math.max(this.decodeBlock.stride, this.round(seq.computed + 1));
      if (!this.makeRoom(this.decodeBlock.growthFor(slot + 1, stride))) {
        this.cacheBlock(seq, own);
        this.requeue(seq);
        return;
      }
      this.decodeBlock.arrange(slot + 1, stride, this.decodeAllocation);
      this.decodeBlock.copyFrom(own, 0, slot, 0, seq.computed);
      this.decodeBlock.lengths[slot] = seq.computed;
      seq.cacheEntry = this.cacheBlock(seq, own, seq.id);
      this.memory.collect(true);
    }
    seq.state = 'decoding';
    seq.slot = this.decoding.length;
    this.decoding.push(seq);
  }

  /** Takes `seq` out of the decode batch; with `cache`, its rows stay in the prefix cache. */
  private leaveDecodeBatch(seq: Sequence, cache: boolean): void {
    const keep = cache && this.opts.prefixCache;
    // Its prompt's entry is no longer to be extended by it: the cache may drop or evict it now.
    if (seq.cacheEntry) seq.cacheEntry.owner = undefined;
    if (this.decoding.length === 1) {
      // The batch holds only this sequence: the block itself becomes the entry.
      const block = this.decodeBlock;
      this.decodeBlock = this.newBlock();
      this.decoding.length = 0;
      if (keep) this.insert({ tokens: seq.tokens.slice(0, seq.computed), block, lastUsed: 0 });
      else block.clear();
    } else {
      if (keep) this.cacheFromSlot(seq);
      const slot = seq.slot;
      this.decodeBlock.removeSlot(slot);
      const moved = this.decoding.pop()!;
      if (moved !== seq) {
        this.decoding[slot] = moved;
        moved.slot = slot;
      }
    }
    seq.slot = -1;
    seq.cacheEntry = undefined;
  }

  /** Copies a leaving sequence's rows out of the batch into the cache: onto its prompt's entry if that is still there (reallocating it). */
  private cacheFromSlot(seq: Sequence): void {
    const count = seq.computed;
    const entry = seq.cacheEntry && this.cache.has(seq.cacheEntry) ? seq.cacheEntry : undefined;
    const target = entry?.block ?? this.newBlock();
    const from = entry ? entry.tokens.length : 0;
    const stride = Math.max(target.stride, this.round(count));
    if (!this.makeRoom(target.growthFor(1, stride), entry)) return;
    if (entry) this.cache.remove(entry);
    target.arrange(1, stride);
    target.copyFrom(this.decodeBlock, seq.slot, 0, from, count - from);
    target.lengths[0] = count;
    this.insert({ tokens: seq.tokens.slice(0, count), block: target, lastUsed: 0 });
  }

  /** Caches the rows a one-slot block holds for `seq`'s leading tokens (or frees it); returns the entry if kept. */
  private cacheBlock(seq: Sequence, block: KvBlock, owner?: number): CacheEntry | undefined {
    const count = block.lengths[0] ?? 0;
    if (!this.opts.prefixCache || count === 0) {
      block.clear();
      return undefined;
    }
    const entry: CacheEntry = { tokens: seq.tokens.slice(0, count), block, lastUsed: 0, owner };
    return this.insert(entry) ? entry : undefined;
  }

  /** Inserts an entry, freeing what the cache drops; true if the entry itself was kept. */
  private insert(entry: CacheEntry): boolean {
    const dropped = this.cache.insert(entry);
    for (const block of dropped) block.clear();
    return !dropped.includes(entry.block);
  }

  /** Puts the decoding sequence that arrived last back in line; its rows are dropped. */
  private preemptNewest(): void {
    const victim = this.decoding.reduce((a, b) => (b.enqueuedAt > a.enqueuedAt ? b : a));
    this.leaveDecodeBatch(victim, false);
    this.requeue(victim);
  }

  /** Back in line at its place by arrival, to be prefilled again (from the cache, if its rows are still there). */
  private requeue(seq: Sequence): void {
    seq.computed = 0;
    seq.state = 'waiting';
    const at = this.waiting.findIndex((s) => s.enqueuedAt > seq.enqueuedAt);
    this.waiting.splice(at < 0 ? this.waiting.length : at, 0, seq);
    this.counters.preemptions++;
  }

  /** Drops cached prefixes unused since `before` (an idle server gives their memory back). */
  expireCache(before: number): void {
    for (const block of this.cache.expire(before)) block.clear();
    this.memory.collect(true);
  }

  /** Frees every KV buffer (the worker is shutting down). */
  releaseAll(): void {
    this.expireCache(Infinity);
    this.decodeBlock.clear();
    this.prefilling?.block?.clear();
  }
}
