/**
 * KV rows of finished (and running) sequences kept for the next request that starts with the
 * same tokens: a multi-turn chat resends its history, agents resend a system prompt and tool list.
 * Each entry is a one-slot block holding the rows of `tokens`; entries are evicted least recently
 * used first whenever the KV budget needs the room.
 */
import type { KvBlock } from './kv-block.ts';

export interface CacheEntry {
  /** The tokens whose rows the block holds, in order: block.lengths[0] === tokens.length. */
  tokens: number[];
  block: KvBlock;
  /** performance.now() of its last use: eviction takes the oldest first. */
  lastUsed: number;
  /** Set while a running sequence means to extend this entry with its answer when it ends. */
  owner?: number;
}

export interface PrefixMatch {
  entry: CacheEntry;
  /** Leading tokens the entry holds. */
  length: number;
}

function commonPrefix(a: readonly number[], b: readonly number[], limit: number): number {
  const n = Math.min(a.length, b.length, limit);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

export class PrefixCache {
  private readonly entries: CacheEntry[] = [];

  get size(): number {
    return this.entries.length;
  }

  /** Positions held by all entries. */
  get positions(): number {
    return this.entries.reduce((n, e) => n + e.tokens.length, 0);
  }

  /** The entry sharing the longest prefix with `tokens`, up to `limit` tokens; undefined below one token. */
  lookup(tokens: readonly number[], limit: number): PrefixMatch | undefined {
    let best: PrefixMatch | undefined;
    for (const entry of this.entries) {
      const length = commonPrefix(tokens, entry.tokens, limit);
      if (length > 0 && length > (best?.length ?? 0)) best = { entry, length };
    }
    if (best) best.entry.lastUsed = performance.now();
    return best;
  }

  /**
   * Adds an entry. Entries whose tokens are a prefix of the new one's hold nothing it lacks and are
   * dropped; if an entry already holds all of the new one's tokens, the new one is dropped instead.
   * Returns the blocks no longer referenced, for the caller to free.
   */
  insert(entry: CacheEntry): KvBlock[] {
    const covering = this.entries.find((e) => commonPrefix(e.tokens, entry.tokens, entry.tokens.length) === entry.tokens.length);
    if (covering) {
      covering.lastUsed = performance.now();
      return [entry.block];
    }
    const freed: KvBlock[] = [];
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i];
      if (e.owner === undefined && commonPrefix(e.tokens, entry.tokens, e.tokens.length) === e.tokens.length) {
        this.entries.splice(i, 1);
        freed.push(e.block);
      }
    }
    entry.lastUsed = performance.now();
    this.entries.push(entry);
    return freed;
  }

  /** Takes an entry out (its block is the caller's now). */
  remove(entry: CacheEntry): void {
    const i = this.entries.indexOf(entry);
    if (i >= 0) this.entries.splice(i, 1);
  }

  has(entry: CacheEntry): boolean {
    return this.entries.includes(entry);
  }

  /** Removes the least recently used entry (never `keep`) and returns its block, or undefined when none is left. */
  evict(keep?: CacheEntry): KvBlock | undefined {
    let oldest: number | undefined;
    this.entries.forEach((e, i) => {
      if (e !== keep && (oldest === undefined || e.lastUsed < this.entries[oldest].lastUsed)) oldest = i;
    });
    return oldest === undefined ? undefined : this.entries.splice(oldest, 1)[0].block;
  }

  /** Removes the entries unused since `before` and returns their blocks. */
  expire(before: number): KvBlock[] {
    const old = this.entries.filter((e) => e.lastUsed < before);
    for (const e of old) this.remove(e);
    return old.map((e) => e.block);
  }
}
