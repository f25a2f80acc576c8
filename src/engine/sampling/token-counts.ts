/**
 * How often each token occurred, kept up to date one token at a time, so penalties visit only the
 * distinct tokens seen instead of rescanning the whole history on every step.
 */
export class TokenCounts {
  private readonly counts: Uint32Array;
  private readonly seen: number[] = [];

  constructor(vocabSize: number, initial: readonly number[] = []) {
    this.counts = new Uint32Array(vocabSize);
    for (const id of initial) this.add(id);
  }

  add(id: number): void {
    if (id >>> 0 !== id || id >= this.counts.length) {
      throw new RangeError(`token id ${id} is outside the vocabulary of ${this.counts.length}`);
    }
    if (this.counts[id]++ === 0) this.seen.push(id);
  }

  count(id: number): number {
    return this.counts[id];
  }

  /** Each token that occurred, once, in order of first occurrence. */
  get distinct(): readonly number[] {
    return this.seen;
  }
}
