/**
 * Graceful shutdown (SIGTERM/SIGINT): stop taking work, let running generations finish within
 * the grace period, abort what is left, close every connection, and let the caller exit 0.
 *
 * 1. `/ready` turns 503 at once and every new /v1 request gets an OpenAI-shaped 503
 *    (`shutting_down`); requests waiting in the queue get the same. The listening socket stays
 *    open so clients get that answer rather than a refused connection.
 * 2. In-flight requests (streams included) run to their end, for at most `graceMs`.
 * 3. Then running generations are aborted: streams end normally with what they have
 *    (finish_reason "length", then [DONE]).
 * 4. The server stops listening, idle keep-alive and hanging sockets are closed
 *    (closeAllConnections), and the app closes (engine worker included).
 */
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';

export interface ShutdownOptions {
  /** How long in-flight requests may run before they are aborted. */
  graceMs: number;
  log: FastifyBaseLogger;
  /** Ends the grace period early (a second signal). */
  hurry?: AbortSignal;
  /** After aborting, how long to wait for aborted requests to wind down (default 15 s). */
  abortWaitMs?: number;
}

export interface ShutdownResult {
  /** Requests still running when the grace period ended (0: everything finished in time). */
  aborted: number;
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

export async function gracefulShutdown(app: FastifyInstance, opts: ShutdownOptions): Promise<ShutdownResult> {
  const models = app.models;
  models.drain();
  const inflight = app.inflight;
  opts.log.info(
    { inflight: inflight.count, graceSeconds: opts.graceMs / 1000 },
    'shutting down: refusing new requests, letting running ones finish',
  );

  let idle = false;
  const idleNow = inflight.whenIdle().then(() => {
    idle = true;
  });
  await Promise.race([idleNow, delay(opts.graceMs, opts.hurry)]);
  let aborted = 0;
  if (!idle) {
    aborted = inflight.count;
    opts.log.warn({ inflight: aborted }, 'shutdown grace period over: aborting running requests');
    models.abortRunning();
    await Promise.race([idleNow, delay(opts.abortWaitMs ?? 15_000)]);
  }

  const closing = app.close();
  // Whatever is left: keep-alive sockets between requests, clients that never finished a request.
  app.server.closeAllConnections();
  await closing;
  opts.log.info({ aborted }, 'shutdown complete');
  return { aborted };
}
