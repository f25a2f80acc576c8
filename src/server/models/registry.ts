/**
 * The models a server offers and which of them are loaded. Requests take a lease on a model
 * (loading it when needed) and give it back when their work is over; an idle model unloads after
 * its keep-alive, and the least recently used idle one makes room when a load would pass
 * `maxLoaded` or the memory budget. A model with requests running or waiting is never unloaded.
 *
 * One line of waiting requests, served in order: a request whose model cannot load yet (no room,
 * or another load in progress) holds the line behind it, so a busy model cannot starve the others.
 * Loads run one at a time (each one takes the machine's cores).
 */
import { ApiError, modelNotFound, notReady, requestTimeout } from '../errors.ts';
import type { ServingContext } from '../serving/context.ts';
import type { ModelSource } from './catalog.ts';
import type { KeepAliveMs } from './keep-alive.ts';

export type ModelState = 'unloaded' | 'loading' | 'loaded' | 'unloading' | 'failed';
export type UnloadReason = 'idle' | 'keep_alive' | 'evicted' | 'admin' | 'crashed' | 'shutdown';
export type ServerStatus = 'loading' | 'ready' | 'draining' | 'failed';

export interface LoadedServing {
  ctx: ServingContext;
  /** Ends the model's worker threads (engine and tokenizer). */
  close(): Promise<void>;
  loadSeconds: number;
}

export interface RegistryHooks {
  load(source: ModelSource): Promise<LoadedServing>;
  onLoaded?(entry: ModelEntry, loaded: LoadedServing): void;
  onUnloaded?(entry: ModelEntry, ctx: ServingContext, reason: UnloadReason): void;
  onLoadFailed?(entry: ModelEntry, err: Error): void;
}

export interface RegistryOptions {
  maxLoaded: number;
  memoryBudgetBytes: number;
  /** Keep-alive of a model whose requests set none. */
  unloadAfterMs: KeepAliveMs;
  /** Estimated bytes a model takes once loaded (weights and its KV share). */
  footprint(source: ModelSource): number;
  /** How long a request may wait for its model to load (the request timeout); 0: no limit. */
  waitTimeoutMs: number;
}

export interface ModelLease {
  readonly ctx: ServingContext;
  /** Idempotent. `keepAliveMs` (the request's keep_alive) replaces the model's keep-alive from now on. */
  release(keepAliveMs?: KeepAliveMs): void;
}

export class ModelEntry {
  state: ModelState;
  error: string | undefined;
  ctx: ServingContext | undefined;
  closeServing: (() => Promise<void>) | undefined;
  /** Leases held: requests between their acquire and the end of their work. */
  users = 0;
  lastUsedAt = 0;
  loadCount = 0;
  keepAliveMs: KeepAliveMs;
  /** Provided by the embedder (tests): never unloaded. */
  pinned = false;
  idleTimer: NodeJS.Timeout | undefined;

  constructor(readonly source: ModelSource, keepAliveMs: KeepAliveMs) {
    this.state = source.problem ? 'failed' : 'unloaded';
    this.error = source.problem;
    this.keepAliveMs = keepAliveMs;
  }

  get name(): string {
    return this.source.name;
  }

  get resident(): boolean {
    return this.state === 'loaded' || this.state === 'loading' || this.state === 'unloading';
  }
}

interface Waiter {
  entry: ModelEntry;
  resolve(lease: ModelLease): void;
  reject(err: Error): void;
  /** Stops the waiter's timer and abort listener. */
  settled?(): void;
}

export const modelUnavailable = (entry: ModelEntry): ApiError =>
  new ApiError(503, `The model \`${entry.name}\` cannot be served: ${entry.error ?? 'it failed to load'}.`, 'server_error', 'model', 'model_load_failed');

export const modelBusy = (entry: ModelEntry): ApiError =>
  new ApiError(409, `The model \`${entry.name}\` has ${entry.users} request(s) in flight; it unloads when they end.`, 'invalid_request_error', 'model', 'model_busy');

export class ModelRegistry {
  private readonly entries: ModelEntry[];
  private readonly byName = new Map<string, ModelEntry>();
  private readonly waiters: Waiter[] = [];
  private loadInProgress = false;
  private currentLoad: Promise<void> = Promise.resolve();
  private draining = false;
  private starting = true;

  constructor(
    sources: readonly ModelSource[],
    private readonly opts: RegistryOptions,
    private readonly hooks: RegistryHooks,
  ) {
    this.entries = sources.map((s) => new ModelEntry(s, opts.unloadAfterMs));
    for (const e of this.entries) for (const n of [e.name, ...e.source.aliases]) this.byName.set(n, e);
  }

  list(): readonly ModelEntry[] {
    for (const e of this.entries) this.checkHealth(e);
    return this.entries;
  }

  find(name: string): ModelEntry | undefined {
    const e = this.byName.get(name);
    if (e) this.checkHealth(e);
    return e;
  }

  get status(): ServerStatus {
    if (this.draining) return 'draining';
    if (this.starting) return 'loading';
    return this.entries.length > 0 && this.list().every((e) => e.state === 'failed') ? 'failed' : 'ready';
  }

  /** Throws the 503 that explains why the server takes no requests now. */
  requireReady(): void {
    const status = this.status;
    if (status !== 'ready') throw notReady(status);
  }

  /** Loads `names` (the --preload list) one after the other; the server is ready once they settled. */
  async start(names: readonly string[], pinned: readonly LoadedServing[] = []): Promise<void> {
    pinned.forEach((p, i) => this.adopt(this.entries[i], p));
    try {
      for (const name of names) {
        const lease = await this.acquire(name).catch(() => undefined);
        lease?.release();
      }
    } finally {
      this.starting = false;
    }
  }

  /** A lease on the model named `name` (loading it first when needed), in the order requests came. */
  acquire(name: string, signal?: AbortSignal): Promise<ModelLease> {
    const entry = this.find(name);
    if (!entry) return Promise.reject(modelNotFound(name));
    if (this.draining) return Promise.reject(notReady('draining'));
    if (entry.state === 'failed') return Promise.reject(modelUnavailable(entry));
    if (entry.state === 'loaded' && this.waiters.length === 0) return Promise.resolve(this.lease(entry));
    return new Promise<ModelLease>((resolve, reject) => {
      const waiter: Waiter = { entry, resolve, reject };
      const timeoutMs = this.opts.waitTimeoutMs;
      const timer = timeoutMs > 0 ? setTimeout(() => this.dropWaiter(waiter, requestTimeout(timeoutMs / 1000)), timeoutMs) : undefined;
      const onAbort = (): void => this.dropWaiter(waiter, signal?.reason as Error);
      waiter.settled = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      if (signal?.aborted) return reject(signal.reason as Error);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
      this.pump();
    });
  }

  /** Loads a model that is not loaded (a failed one is tried again); resolves once it is. */
  async load(name: string): Promise<ModelEntry> {
    const entry = this.find(name);
    if (!entry) throw modelNotFound(name);
    if (entry.state === 'failed' && !entry.source.problem) {
      entry.state = 'unloaded';
      entry.error = undefined;
    }
    const lease = await this.acquire(name);
    lease.release();
    return entry;
  }

  /** Unloads an idle model now; 409 while requests use it. */
  async unload(name: string, reason: UnloadReason = 'admin'): Promise<ModelEntry> {
    const entry = this.find(name);
    if (!entry) throw modelNotFound(name);
    if (entry.users > 0 || this.waiters.some((w) => w.entry === entry)) throw modelBusy(entry);
    if (entry.state === 'loaded') await this.unloadEntry(entry, reason);
    return entry;
  }

  /** Refuses new work, and work still waiting for a model or in an engine's line; running work continues. */
  drain(): void {
    this.draining = true;
    for (const w of this.waiters.splice(0)) {
      w.settled?.();
      w.reject(notReady('draining'));
    }
    for (const e of this.entries) {
      e.ctx?.admission.close();
      e.ctx?.draining.abort();
    }
  }

  /** Ends every running generation now (the end of the shutdown grace period). */
  abortRunning(): void {
    for (const e of this.entries) e.ctx?.shutdown.abort();
  }

  /** Unloads everything (the app closes); pinned models are left to their owner. */
  async close(): Promise<void> {
    this.drain();
    await this.currentLoad; // a model still loading must not outlive the app
    await Promise.all(this.entries.map(async (e) => {
      clearTimeout(e.idleTimer);
      if (e.state === 'loaded' && !e.pinned) await this.unloadEntry(e, 'shutdown');
    }));
  }

  private adopt(entry: ModelEntry, loaded: LoadedServing): void {
    entry.pinned = true;
    this.markLoaded(entry, loaded);
  }

  private grant(w: Waiter): void {
    w.settled?.();
    w.resolve(this.lease(w.entry));
  }

  private lease(entry: ModelEntry): ModelLease {
    entry.users++;
    entry.lastUsedAt = performance.now();
    clearTimeout(entry.idleTimer);
    const ctx = entry.ctx as ServingContext;
    let released = false;
    return {
      ctx,
      release: (keepAliveMs) => {
        if (released) return;
        released = true;
        this.release(entry, keepAliveMs);
      },
    };
  }

  private release(entry: ModelEntry, keepAliveMs: KeepAliveMs | undefined): void {
    entry.users--;
    entry.lastUsedAt = performance.now();
    if (keepAliveMs !== undefined) entry.keepAliveMs = keepAliveMs;
    if (entry.users === 0) this.scheduleIdleUnload(entry);
    this.pump();
  }

  private scheduleIdleUnload(entry: ModelEntry): void {
    clearTimeout(entry.idleTimer);
    if (entry.pinned || entry.state !== 'loaded' || !Number.isFinite(entry.keepAliveMs)) return;
    const reason: UnloadReason = entry.keepAliveMs === 0 ? 'keep_alive' : 'idle';
    entry.idleTimer = setTimeout(() => {
      if (entry.users === 0 && entry.state === 'loaded' && !this.waiters.some((w) => w.entry === entry)) void this.unloadEntry(entry, reason);
    }, entry.keepAliveMs);
    entry.idleTimer.unref();
  }

  /**
   * Serves the line in order: requests for loaded models get their lease, requests for a loading one
   * wait for it, and the first request whose model cannot start loading holds everyone behind it.
   */
  private pump(): void {
    let i = 0;
    while (i < this.waiters.length) {
      const w = this.waiters[i];
      const entry = w.entry;
      this.checkHealth(entry);
      if (entry.state === 'loaded') {
        this.waiters.splice(i, 1);
        this.grant(w);
      } else if (entry.state === 'failed') {
        this.waiters.splice(i, 1);
        w.settled?.();
        w.reject(modelUnavailable(entry));
      } else if (entry.state === 'loading' || this.tryStartLoad(entry)) {
        i++;
      } else {
        return;
      }
    }
  }

  /** Starts loading `entry` if it fits, or unloads the least recently used idle model to make room; true once it is loading. */
  private tryStartLoad(entry: ModelEntry): boolean {
    if (entry.state !== 'unloaded' || this.loadInProgress || this.entries.some((e) => e.state === 'unloading')) return false;
    if (this.fits(entry)) {
      this.currentLoad = this.loadEntry(entry);
      return true;
    }
    const victim = this.leastRecentlyUsedIdle(entry);
    if (victim) void this.unloadEntry(victim, 'evicted');
    return false;
  }

  private fits(entry: ModelEntry): boolean {
    const resident = this.entries.filter((e) => e.resident && e !== entry);
    if (resident.length === 0) return true; // one model always gets its chance, whatever the estimate
    if (resident.length + 1 > this.opts.maxLoaded) return false;
    const used = resident.reduce((sum, e) => sum + this.opts.footprint(e.source), 0);
    return used + this.opts.footprint(entry.source) <= this.opts.memoryBudgetBytes;
  }

  private leastRecentlyUsedIdle(except: ModelEntry): ModelEntry | undefined {
    return this.entries
      .filter((e) => e !== except && e.state === 'loaded' && e.users === 0 && !e.pinned)
      .sort((a, b) => a.lastUsedAt - b.lastUsedAt)[0];
  }

  private async loadEntry(entry: ModelEntry): Promise<void> {
    this.loadInProgress = true;
    entry.state = 'loading';
    try {
      const loaded = await this.hooks.load(entry.source);
      if (this.draining) {
        await loaded.close();
        entry.state = 'unloaded';
      } else {
        this.markLoaded(entry, loaded);
      }
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      entry.state = 'failed';
      entry.error = error.message.split(entry.source.dir).join(entry.name);
      this.hooks.onLoadFailed?.(entry, error);
    } finally {
      this.loadInProgress = false;
      this.pump();
    }
  }

  private markLoaded(entry: ModelEntry, loaded: LoadedServing): void {
    entry.ctx = loaded.ctx;
    entry.closeServing = loaded.close;
    entry.state = 'loaded';
    entry.error = undefined;
    entry.loadCount++;
    entry.lastUsedAt = performance.now();
    this.hooks.onLoaded?.(entry, loaded);
    if (entry.users === 0) this.scheduleIdleUnload(entry);
  }

  private async unloadEntry(entry: ModelEntry, reason: UnloadReason): Promise<void> {
    const ctx = entry.ctx;
    if (!ctx || entry.state !== 'loaded') return;
    clearTimeout(entry.idleTimer);
    entry.state = 'unloading';
    try {
      this.hooks.onUnloaded?.(entry, ctx, reason);
      await entry.closeServing?.();
    } finally {
      entry.ctx = undefined;
      entry.closeServing = undefined;
      if (entry.state === 'unloading') entry.state = 'unloaded';
      this.pump();
    }
  }

  /** A loaded model whose engine worker died is failed from now on (a load by hand tries again). */
  private checkHealth(entry: ModelEntry): void {
    if (entry.state !== 'loaded' || entry.ctx?.engine.healthy !== false) return;
    const ctx = entry.ctx;
    entry.state = 'failed';
    entry.error = "the model's engine worker stopped";
    entry.ctx = undefined;
    this.hooks.onUnloaded?.(entry, ctx, 'crashed');
    void entry.closeServing?.().catch(() => undefined);
  }

  private dropWaiter(waiter: Waiter, reason: Error): void {
    const i = this.waiters.indexOf(waiter);
    if (i < 0) return;
    this.waiters.splice(i, 1);
    waiter.settled?.();
    waiter.reject(reason);
    this.pump();
  }
}
