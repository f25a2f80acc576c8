/**
 * Stop-string matching over a stream of text deltas.
 *
 * Text that could still turn into a stop string (a suffix that is a prefix of one) is held back
 * and released once it can no longer match, so a stop string is never emitted, even when it spans
 * several tokens. Streaming and non-streaming responses run the same matcher over the same deltas,
 * so their texts are equal.
 */

export interface StopPush {
  /** Text that is safe to emit now. */
  text: string;
  /** A stop string matched; `text` ends right before it and later input is ignored. */
  stopped: boolean;
  /** The stop string that matched. */
  match?: string;
}

export class StopStringMatcher {
  private readonly stops: readonly string[];
  private held = '';
  private done = false;

  constructor(stops: readonly string[]) {
    // Empty stop strings would match everywhere; OpenAI ignores them too.
    this.stops = [...new Set(stops.filter((s) => s.length > 0))];
  }

  push(delta: string): StopPush {
    if (this.done) return { text: '', stopped: true };
    if (this.stops.length === 0) return { text: delta, stopped: false };
    const buf = this.held + delta;

    let at = -1;
    let match: string | undefined;
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) {
        at = i;
        match = s;
      }
    }
    if (at >= 0) {
      this.done = true;
      this.held = '';
      return { text: buf.slice(0, at), stopped: true, match };
    }

    const keep = this.partialSuffixLength(buf);
    this.held = buf.slice(buf.length - keep);
    return { text: buf.slice(0, buf.length - keep), stopped: false };
  }

  /** End of generation without a match: whatever was held back is plain text. */
  flush(): string {
    const out = this.done ? '' : this.held;
    this.held = '';
    return out;
  }

  /** Longest suffix of `buf` that is a proper prefix of some stop string. */
  private partialSuffixLength(buf: string): number {
    let best = 0;
    for (const s of this.stops) {
      const max = Math.min(s.length - 1, buf.length);
      for (let len = max; len > best; len--) {
        if (buf.endsWith(s.slice(0, len))) {
          best = len;
          break;
        }
      }
    }
    return best;
  }
}
