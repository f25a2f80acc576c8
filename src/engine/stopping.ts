/** Stopping criteria, each a small unit the generation loop asks after every sampled token. */
import type { FinishReason } from './types.ts';

export interface StopState {
  tokenId: number;
  completionTokens: number;
}

export type StoppingCriterion = (s: StopState) => FinishReason | undefined;

export function stopOnTokens(ids: Iterable<number>): StoppingCriterion {
  const set = new Set(ids);
  return (s) => (set.has(s.tokenId) ? 'stop' : undefined);
}

export function stopAtMaxTokens(maxTokens: number): StoppingCriterion {
  return (s) => (s.completionTokens >= maxTokens ? 'length' : undefined);
}

export function firstStop(criteria: StoppingCriterion[], s: StopState): FinishReason | undefined {
  for (const c of criteria) {
    const r = c(s);
    if (r) return r;
  }
  return undefined;
}
