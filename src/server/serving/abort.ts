/**
 * Why a request stops early. One controller per request merges "the client went away",
 * "the request budget ran out" and "the shutdown grace period is over", and remembers which came
 * first: a timeout or a shutdown still answers (with what was generated, or 408/503), a vanished
 * client gets nothing.
 */
export type AbortCause = 'client' | 'timeout' | 'shutdown';

export class RequestAbort {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private causeValue: AbortCause | undefined;
  private readonly onClient = (): void => this.fire('client');
  private readonly onShutdown = (): void => this.fire('shutdown');

  /**
   * @param clientSignal aborts when the client disconnects
   * @param timeoutMs whole-request budget; 0 disables
   * @param shutdownSignal aborts every request when the shutdown grace period ends
   */
  constructor(
    private readonly clientSignal: AbortSignal | undefined,
    readonly timeoutMs: number,
    private readonly shutdownSignal?: AbortSignal,
  ) {
    if (clientSignal?.aborted) this.fire('client');
    else clientSignal?.addEventListener('abort', this.onClient, { once: true });
    if (shutdownSignal?.aborted) this.fire('shutdown');
    else shutdownSignal?.addEventListener('abort', this.onShutdown, { once: true });
    if (timeoutMs > 0 && !this.controller.signal.aborted) {
      this.timer = setTimeout(() => this.fire('timeout'), timeoutMs);
      this.timer.unref();
    }
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get cause(): AbortCause | undefined {
    return this.causeValue;
  }

  /** Stops the timer and listeners; call when the request is fully answered. */
  dispose(): void {
    clearTimeout(this.timer);
    this.clientSignal?.removeEventListener('abort', this.onClient);
    this.shutdownSignal?.removeEventListener('abort', this.onShutdown);
  }

  private fire(cause: AbortCause): void {
    if (this.causeValue !== undefined) return;
    this.causeValue = cause;
    clearTimeout(this.timer);
    this.controller.abort(new RequestAbortedError(cause));
  }
}

export class RequestAbortedError extends Error {
  override name = 'RequestAbortedError';
  constructor(readonly reason: AbortCause) {
    super(
      reason === 'client' ? 'client disconnected' : reason === 'timeout' ? 'request timed out' : 'server shutting down',
    );
  }
}
