/**
 * Closed-loop load at a fixed concurrency, bounded twice: at most `maxRequests` requests are
 * started, and none is started once `durationMs` has passed (requests already running finish;
 * each carries its own timeout). `concurrency` clients each send their next request as soon as
 * their previous one ends.
 */

export interface LevelOptions<T> {
  concurrency: number;
  maxRequests: number;
  /** No request starts after this many ms from the level's start. */
  durationMs: number;
  run: (index: number) => Promise<T>;
  /** Called as each request completes (progress output). */
  onResult?: (result: T, index: number) => void;
}

export interface LevelOutcome<T> {
  /** In start order. */
  results: T[];
  /** From the first request's start to the last one's end. */
  wallMs: number;
  /** Which bound ended the level. */
  stoppedBy: 'requests' | 'time';
}

export async function runLevel<T>(opts: LevelOptions<T>): Promise<LevelOutcome<T>> {
  if (!(opts.concurrency >= 1) || !(opts.maxRequests >= 1)) throw new RangeError('concurrency and maxRequests must be >= 1');
  const start = performance.now();
  const results: T[] = [];
  let issued = 0;
  let stoppedBy: 'requests' | 'time' = 'requests';
  const client = async (): Promise<void> => {
    for (;;) {
      if (issued >= opts.maxRequests) return;
      if (performance.now() - start >= opts.durationMs) {
        stoppedBy = 'time';
        return;
      }
      const index = issued++;
      const result = await opts.run(index);
      results[index] = result;
      opts.onResult?.(result, index);
    }
  };
  const clients = Array.from({ length: Math.min(opts.concurrency, opts.maxRequests) }, () => client());
  await Promise.all(clients);
  return { results, wallMs: performance.now() - start, stoppedBy };
}
