/**
 * Responses created with `store` (the default) are kept in memory so that `previous_response_id`
 * can continue them and GET /v1/responses/{id} can return them.
 *
 * Bounded on two axes: at most RESPONSES_STORE_SIZE entries (the least recently used one goes
 * first; a lookup counts as a use) and at most RESPONSES_STORE_TTL_MS after creation (a lookup
 * does not extend it; expired entries are dropped on use and by a timer every minute). Nothing
 * survives a restart. Each entry holds its whole conversation (at
 * most the context window), so the worst case is SIZE conversations of a full context each.
 *
 * Entries are prompts and completions: this module never logs, and callers must not log them.
 */
import type { ChatMessageParam } from '../protocol/chat.ts';
import type { ResponseObject } from '../protocol/responses.ts';

/** Responses kept at most (least recently used evicted first). */
export const RESPONSES_STORE_SIZE = 256;
/** How long a stored response can be retrieved or continued, from its creation: one hour. */
export const RESPONSES_STORE_TTL_MS = 60 * 60 * 1000;

export interface StoredResponse {
  /** The response object exactly as it was returned. */
  response: ResponseObject;
  /**
   * The conversation a continuation starts from: the inputs (earlier turns included, the
   * instructions not, as OpenAI does not carry them over) and this response's output.
   */
  conversation: readonly ChatMessageParam[];
}

interface Entry extends StoredResponse {
  expiresAt: number;
}

export interface ResponseStoreOptions {
  maxEntries?: number;
  ttlMs?: number;
  /** Clock in ms (tests pass a fake one). */
  now?: () => number;
  /** How often expired entries are dropped even when nothing uses the store; 0: only on use. */
  sweepIntervalMs?: number;
}

/** An idle server gives the memory of expired conversations back within this. */
const SWEEP_INTERVAL_MS = 60 * 1000;

export class ResponseStore {
  /** Map order is recency order: the first key is the least recently used. */
  private readonly entries = new Map<string, Entry>();
  private readonly maxEntries: number;
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(opts: ResponseStoreOptions = {}) {
    this.maxEntries = opts.maxEntries ?? RESPONSES_STORE_SIZE;
    this.ttlMs = opts.ttlMs ?? RESPONSES_STORE_TTL_MS;
    this.now = opts.now ?? Date.now;
    const every = opts.sweepIntervalMs ?? SWEEP_INTERVAL_MS;
    if (every > 0) {
      this.timer = setInterval(() => this.sweep(), every);
      this.timer.unref(); // never keeps the process alive
    }
  }

  /** Stops the sweeping timer and forgets everything (the app is closing). */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  put(stored: StoredResponse): void {
    const id = stored.response.id;
    this.entries.delete(id);
    this.entries.set(id, { ...stored, expiresAt: this.now() + this.ttlMs });
    this.sweep();
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  /** The stored response, or undefined when unknown, evicted or expired. */
  get(id: string): StoredResponse | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(id);
      return undefined;
    }
    // Most recently used now.
    this.entries.delete(id);
    this.entries.set(id, entry);
    return { response: entry.response, conversation: entry.conversation };
  }

  /** Whether it was there (and not expired). */
  delete(id: string): boolean {
    const had = this.get(id) !== undefined;
    this.entries.delete(id);
    return had;
  }

  /** Drops expired entries. */
  sweep(): void {
    const now = this.now();
    for (const [id, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(id);
  }
}
