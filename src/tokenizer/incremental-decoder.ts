/**
 * Streaming detokenization. Byte-level BPE tokens are not characters: one emoji can be
 * spread over several tokens, and decoding a prefix then shows U+FFFD for the missing
 * bytes. This decoder only releases text that later tokens can no longer change, while
 * decoding just a short window of recent tokens per step.
 */

export interface TokenDecoder {
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
}

export interface IncrementalDecoderOptions {
  skipSpecialTokens?: boolean;
}

/**
 * An incomplete UTF-8 sequence is at most 3 bytes, so it spans at most the last few
 * tokens. A pending part longer than this that still ends in U+FFFD almost always ends in
 * invalid bytes that no later token can repair, so we look for a safe point to cut it
 * rather than let the window (and the per-token decode cost) grow.
 */
const MAX_PENDING_TOKENS = 4;
/** Bounds the work of one cut attempt; a clean point is virtually always among these. */
const MAX_CUT_CANDIDATES = 8;

export class IncrementalDecoder {
  private readonly tok: TokenDecoder;
  private readonly decodeOpts: { skipSpecialTokens?: boolean };
  /**
   * Recent ids: window[0, readOffset) is already-emitted context (the prefix_offset part),
   * window[readOffset, …) is still pending. Context is kept because some decoders render a
   * token differently at the very start of a sequence (e.g. strip a leading space).
   */
  private window: number[] = [];
  private readOffset = 0;
  /** Characters of decode(window) already handed out. */
  private emitted = 0;

  constructor(tok: TokenDecoder, opts: IncrementalDecoderOptions = {}) {
    this.tok = tok;
    this.decodeOpts = { skipSpecialTokens: opts.skipSpecialTokens ?? false };
  }

  /** Adds one token and returns the text that became final because of it (often ''). */
  push(id: number): string {
    this.window.push(id);
    const text = this.decode(this.window);
    const stable = stableLength(text);
    let out = '';
    if (stable > this.emitted) {
      out = text.slice(this.emitted, stable);
      this.emitted = stable;
    }
    if (stable === text.length) {
      // Ends on a complete character: the decoder state is clean here, so the window can
      // restart at the last clean point with the just-emitted tokens as context.
      this.window = this.window.slice(this.readOffset);
      this.readOffset = this.window.length;
      this.emitted = this.decode(this.window).length;
    } else if (this.window.length - this.readOffset > MAX_PENDING_TOKENS) {
      out += this.cutAtCleanPoint(text);
    }
    return out;
  }

  /** Returns everything not yet emitted (including trailing U+FFFD) and resets. */
  flush(): string {
    const text = this.window.length > 0 ? this.decode(this.window) : '';
    const out = text.length > this.emitted ? text.slice(this.emitted) : '';
    this.window = [];
    this.readOffset = 0;
    this.emitted = 0;
    return out;
  }

  private decode(ids: readonly number[]): string {
    return ids.length === 0 ? '' : this.tok.decode(ids, this.decodeOpts);
  }

  /**
   * Finds the latest token boundary k where decoding the two halves separately gives the
   * same text as decoding the whole. Under UTF-8's maximal-subpart replacement rule that
   * only happens when no character straddles k, and bytes after k cannot change how the
   * left half decodes, so the left half is final and the window can drop it. The right half
   * must decode to something: tokens that contribute no bytes (special tokens being
   * skipped) prove nothing, because the bytes on either side of them are joined before
   * UTF-8 decoding.
   */
  private cutAtCleanPoint(text: string): string {
    const lowest = Math.max(this.readOffset + 1, this.window.length - MAX_CUT_CANDIDATES);
    for (let k = this.window.length - 1; k >= lowest; k--) {
      const right = this.decode(this.window.slice(k));
      if (right.length === 0) continue;
      const left = this.decode(this.window.slice(0, k));
      if (left + right !== text) continue;
      let out = '';
      if (left.length > this.emitted) {
        out = left.slice(this.emitted);
        this.emitted = 0;
      } else {
        this.emitted -= left.length;
      }
      this.window = this.window.slice(k);
      this.readOffset = 0;
      return out;
    }
    return '';
  }
}

/** Length of `text` without its trailing run of U+FFFD (bytes that may still complete). */
function stableLength(text: string): number {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 0xfffd) end--;
  return end;
}
