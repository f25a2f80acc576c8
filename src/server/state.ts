/**
 * Lifecycle of the one model the server hosts: loading -> ready -> draining, or failed.
 * /ready and the /v1 guard read it; main.ts and shutdown drive it.
 */
import { notReady } from './errors.ts';
import type { ServingContext } from './serving/context.ts';

export type ServerStatus = 'loading' | 'ready' | 'draining' | 'failed';

export class ModelHost {
  private statusValue: ServerStatus = 'loading';
  private ctx: ServingContext | undefined;
  /** Settles when loading ends; rejects with the load error. */
  loaded: Promise<void> = Promise.resolve();

  get status(): ServerStatus {
    // A crashed engine worker can no longer serve even though nothing told us.
    if (this.statusValue === 'ready' && this.ctx?.engine.healthy === false) return 'failed';
    return this.statusValue;
  }

  get context(): ServingContext | undefined {
    return this.ctx;
  }

  setReady(ctx: ServingContext): void {
    this.ctx = ctx;
    if (this.statusValue === 'loading') this.statusValue = 'ready';
  }

  setFailed(): void {
    this.statusValue = 'failed';
  }

  /** New work is refused from now on, and so is work still waiting in the engine's line; running work continues. */
  drain(): void {
    this.statusValue = 'draining';
    this.ctx?.admission.close();
    this.ctx?.draining.abort();
  }

  /**
   * Ends the running generations now (the end of the shutdown grace period): streams finish with
   * what they have, requests that produced nothing get 503.
   */
  abortRunning(): void {
    this.ctx?.shutdown.abort();
  }

  /** The context, or the 503 that explains why there is none. */
  require(): ServingContext {
    const status = this.status;
    if (status === 'ready' && this.ctx) return this.ctx;
    throw notReady(status === 'ready' ? 'loading' : status);
  }
}
