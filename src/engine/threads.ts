/**
 * The engine's intra-op thread count when none is configured (--threads 0). --help describes the
 * default from here, so the help text cannot drift from what the engine does.
 */
import { availableParallelism } from 'node:os';

export const DEFAULT_THREADS_DESCRIPTION = 'all cores the process may use';

export function defaultThreads(): number {
  // availableParallelism respects CPU affinity (containers pinned to fewer cores).
  return Math.max(1, availableParallelism());
}
