/**
 * How the engine is sized when flags leave it open: how many sequences run together, how many
 * tokens a step takes, and how much memory KV may hold. The defaults are measured choices; see
 * docs/engine.md for the step-cost curve they come from.
 */
import { freemem } from 'node:os';
import { bytesPerPosition, type KvShape } from './kv/kv-block.ts';
import type { EngineLimits, EngineOptions, ModelInfo } from './types.ts';

export const ENGINE_DEFAULTS = {
  maxRunningSeqs: 8,
  kvGrowthChunk: 256,
  prefixCacheIdleMs: 300_000,
  /** Share of the memory available after the weights are loaded that KV may take by default. */
  kvShareOfFree: 0.5,
} as const;

/** Memory this process may still take: what the machine has free, within a container's limit when there is one. */
export function availableMemory(): number {
  const limit = process.constrainedMemory?.() ?? 0;
  const free = freemem();
  return limit > 0 && limit < Number.MAX_SAFE_INTEGER ? Math.min(free, limit - process.memoryUsage().rss) : free;
}

/** Half the memory available now (the weights are loaded). */
export function defaultKvBudgetBytes(): number {
  return Math.max(64 * 1024 * 1024, Math.floor(availableMemory() * ENGINE_DEFAULTS.kvShareOfFree));
}

export interface ResolvedLimits extends Omit<EngineLimits, 'stepCost' | 'prefillChunk'> {
  /** Unset: sized from the step cost measured at load (step-cost.ts). */
  prefillChunk?: number;
  growthChunk: number;
  prefixCacheIdleMs: number;
}

export function resolveLimits(opts: EngineOptions, info: ModelInfo, shape: KvShape): ResolvedLimits {
  const growthChunk = Math.max(1, opts.kvGrowthChunk ?? ENGINE_DEFAULTS.kvGrowthChunk);
  const kvBudgetBytes = opts.kvCacheBytes ?? defaultKvBudgetBytes();
  const capacity = Math.floor(kvBudgetBytes / bytesPerPosition(shape));
  // One sequence at the whole context must fit the budget in whole layout chunks.
  const budgetContext = Math.floor(capacity / growthChunk) * growthChunk;
  const contextLength = Math.min(info.contextLength, opts.contextLength ?? Infinity, budgetContext);
  if (contextLength < 2) throw new RangeError(`a KV budget of ${kvBudgetBytes} bytes holds no useful context (${bytesPerPosition(shape)} bytes per position)`);
  const maxRunningSeqs = Math.max(1, opts.maxRunningSeqs ?? ENGINE_DEFAULTS.maxRunningSeqs);
  return {
    maxRunningSeqs,
    ...(opts.maxBatchTokens !== undefined ? { maxBatchTokens: Math.max(2, opts.maxBatchTokens) } : {}),
    ...(opts.prefillChunk !== undefined ? { prefillChunk: Math.max(1, opts.prefillChunk) } : {}),
    kvBudgetBytes,
    contextLength,
    prefixCache: opts.prefixCache ?? true,
    growthChunk,
    prefixCacheIdleMs: opts.prefixCacheIdleMs ?? ENGINE_DEFAULTS.prefixCacheIdleMs,
  };
}
