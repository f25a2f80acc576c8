/**
 * Admission and overload control in front of the engine, which owns the one waiting line (and
 * its order, and the time requests spend in it). A request holds a ticket from admission until
 * its generation has fully ended. At most `maxRunning + maxQueue` requests hold one: the ones the
 * engine runs together plus those allowed to wait behind them. Beyond that a request is refused at
 * once (429 with a Retry-After hint) rather than letting latency grow without bound; after
 * close() (shutdown) every new request is refused.
 */

export interface AdmissionOptions {
  /** Sequences the engine runs at once. */
  maxRunning: number;
  /** Requests allowed to wait in the engine's line behind the running ones. */
  maxQueue: number;
}

export interface AdmissionCounters {
  admitted: number;
  finished: number;
  /** Refused because the server was full. */
  rejected: number;
}

export interface Ticket {
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

/** Recent service times kept for the Retry-After hint. */
const SERVICE_WINDOW = 16;

export class Admission {
  readonly maxRunning: number;
  readonly maxQueue: number;
  private held = 0;
  private closed = false;
  private readonly serviceMs: number[] = [];
  private readonly idleResolvers: (() => void)[] = [];
  readonly counters: AdmissionCounters = { admitted: 0, finished: 0, rejected: 0 };

  constructor(opts: AdmissionOptions) {
    this.maxRunning = opts.maxRunning;
    this.maxQueue = opts.maxQueue;
    if (!(this.maxRunning >= 1)) throw new RangeError('maxRunning must be >= 1');
    if (!(this.maxQueue >= 0)) throw new RangeError('maxQueue must be >= 0');
  }

  /** Requests holding a ticket (running or waiting in the engine). */
  get inflight(): number {
    return this.held;
  }

  /** Throws QueueFullError when full and QueueClosedError after close(). */
  admit(): Ticket {
    if (this.closed) throw new QueueClosedError();
    if (this.held >= this.maxRunning + this.maxQueue) {
      this.counters.rejected++;
      throw new QueueFullError(this.retryAfterSeconds());
    }
    this.held++;
    this.counters.admitted++;
    const admittedAt = performance.now();
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.held--;
        this.counters.finished++;
        this.serviceMs.push(performance.now() - admittedAt);
        if (this.serviceMs.length > SERVICE_WINDOW) this.serviceMs.shift();
        if (this.held === 0) for (const r of this.idleResolvers.splice(0)) r();
      },
    };
  }

  /** Seconds a refused client should wait: a rough time for the requests ahead of it to drain. */
  retryAfterSeconds(): number {
    if (this.serviceMs.length === 0) return 1;
    const avg = this.serviceMs.reduce((a, b) => a + b, 0) / this.serviceMs.length;
    const rounds = Math.max(1, this.held - this.maxRunning + 1) / this.maxRunning;
    return Math.min(3600, Math.max(1, Math.ceil((avg * rounds) / 1000)));
  }

  /** Refuses new work; admitted requests finish normally (the engine drops its waiting ones on shutdown). */
  close(): void {
    this.closed = true;
  }

  /** Resolves when no request holds a ticket (for shutdown and tests). */
  whenIdle(): Promise<void> {
    if (this.held === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleResolvers.push(resolve));
  }
}
