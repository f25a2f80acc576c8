/**
 * FIFO, bounded admission queue in front of the engine.
 *
 * A request takes a lease (a slot on the engine) and gives it back when its generation has fully
 * ended. `maxConcurrent` is 1 while the engine runs one sequence at a time; a batching engine raises
 * it without changing callers. `maxQueue` bounds the requests *waiting* behind the running ones;
 * beyond that `acquire` fails at once (the HTTP layer answers 429) rather than letting latency grow
 * without bound. A waiting request whose signal aborts (client gone, timeout) leaves the line
 * immediately so it never occupies the engine.
 */

export interface QueueOptions {
  maxQueue: number;
  maxConcurrent?: number;
}

export interface QueueCounters {
  /** Leases granted (immediately or after waiting). */
  started: number;
  /** Leases given back. */
  finished: number;
  /** Refused because the line was full. */
  rejected: number;
  /** Left the line before being granted (client gone, timeout, shutdown). */
  dropped: number;
}

export interface Lease {
  /** ms spent waiting before the grant. */
  readonly waitedMs: number;
  /** Idempotent. */
  release(): void;
}

export class QueueFullError extends Error {
  override name = 'QueueFullError';
  constructor(readonly retryAfterSec: number) {
    super('request queue is full');
  }
}

export class QueueClosedError extends Error {
  override name = 'QueueClosedError';
  constructor() {
    super('request queue is closed');
  }
}

interface Waiter {
  enqueuedAt: number;
  resolve: (lease: Lease) => void;
  reject: (err: unknown) => void;
  detach: () => void;
}

/** Average over the last few service times; used only for the Retry-After hint. */
const SERVICE_WINDOW = 16;

export class RequestQueue {
  readonly maxQueue: number;
  readonly maxConcurrent: number;
  private readonly waiters: Waiter[] = [];
  private active = 0;
  private closed = false;
  private readonly serviceMs: number[] = [];
  private readonly idleResolvers: (() => void)[] = [];
  readonly counters: QueueCounters = { started: 0, finished: 0, rejected: 0, dropped: 0 };

  constructor(opts: QueueOptions) {
    this.maxQueue = opts.maxQueue;
    this.maxConcurrent = opts.maxConcurrent ?? 1;
    if (!(this.maxConcurrent >= 1)) throw new RangeError('maxConcurrent must be >= 1');
    if (!(this.maxQueue >= 0)) throw new RangeError('maxQueue must be >= 0');
  }

  get running(): number {
    return this.active;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * Resolves with a lease when a slot is free. Rejects synchronously-fast (already rejected
   * promise) with QueueFullError when the line is full, with the signal's reason when it aborts
   * while waiting, and with QueueClosedError after close().
   */
  acquire(signal?: AbortSignal): Promise<Lease> {
    if (this.closed) return Promise.reject(new QueueClosedError());
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.active < this.maxConcurrent && this.waiters.length === 0) {
      return Promise.resolve(this.grant(performance.now()));
    }
    if (this.waiters.length >= this.maxQueue) {
      this.counters.rejected++;
      return Promise.reject(new QueueFullError(this.retryAfterSeconds()));
    }
    return new Promise<Lease>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) {
          this.waiters.splice(i, 1);
          this.counters.dropped++;
          this.settleIdle();
        }
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        enqueuedAt: performance.now(),
        resolve,
        reject,
        detach: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** Seconds a refused client should wait: a rough drain time of the work ahead of it. */
  retryAfterSeconds(): number {
    if (this.serviceMs.length === 0) return 1;
    const avg = this.serviceMs.reduce((a, b) => a + b, 0) / this.serviceMs.length;
    const ahead = this.active + this.waiters.length;
    const sec = Math.ceil((avg * ahead) / this.maxConcurrent / 1000);
    return Math.min(3600, Math.max(1, sec));
  }

  /** Refuses new work and rejects everyone waiting; running leases finish normally. */
  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) {
      w.detach();
      this.counters.dropped++;
      w.reject(new QueueClosedError());
    }
    this.settleIdle();
  }

  /** Resolves when nothing runs or waits (for shutdown and tests). */
  whenIdle(): Promise<void> {
    if (this.active === 0 && this.waiters.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleResolvers.push(resolve));
  }

  private grant(enqueuedAt: number): Lease {
    this.active++;
    this.counters.started++;
    const grantedAt = performance.now();
    let released = false;
    return {
      waitedMs: grantedAt - enqueuedAt,
      release: () => {
        if (released) return;
        released = true;
        this.active--;
        this.counters.finished++;
        this.serviceMs.push(performance.now() - grantedAt);
        if (this.serviceMs.length > SERVICE_WINDOW) this.serviceMs.shift();
        this.pump();
      },
    };
  }

  private pump(): void {
    while (this.active < this.maxConcurrent && this.waiters.length > 0) {
      const w = this.waiters.shift() as Waiter;
      w.detach();
      w.resolve(this.grant(w.enqueuedAt));
    }
    this.settleIdle();
  }

  private settleIdle(): void {
    if (this.active === 0 && this.waiters.length === 0) {
      for (const r of this.idleResolvers.splice(0)) r();
    }
  }
}
