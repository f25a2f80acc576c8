/**
 * Constrained decoding as a logits processor: forced tokens, then a grammar's mask, then free text
 * in which a trigger token opens a grammar again; banned tokens throughout. A grammar's next mask
 * is computed right after a token is accepted (xgrammar's calls are async), and the scheduler
 * awaits `ready()` before it samples, so `apply` always finds it.
 */
import type { LogitsProcessor } from '../sampling/processors.ts';
import type { ConstraintSpec, GrammarPhase } from '../types.ts';
import type { Grammars } from './grammar-compiler.ts';
import type { GrammarMatcher } from './xgrammar.ts';

export class TokenConstraint implements LogitsProcessor {
  private prefixAt = 0;
  private matcher: GrammarMatcher | undefined;
  private mask: Int32Array | undefined;
  private pending: Promise<void> = Promise.resolve();
  private failure: Error | undefined;

  private constructor(
    private readonly spec: ConstraintSpec,
    private readonly grammars: Grammars,
  ) {}

  /** Compiles what the constraint needs up front, so a bad grammar fails before the request runs. */
  static async create(spec: ConstraintSpec, grammars: Grammars): Promise<TokenConstraint> {
    const c = new TokenConstraint(spec, grammars);
    if (spec.trigger) await grammars.compile(spec.trigger.grammar);
    if (spec.grammar) {
      await grammars.compile(spec.grammar.grammar);
      if (!spec.prefix?.length) c.open(spec.grammar);
    }
    await c.pending;
    return c;
  }

  /** Settles once the mask for the next token is known; never rejects (a failure shows in `apply`). */
  ready(): Promise<void> {
    return this.pending;
  }

  apply(logits: Float32Array): void {
    if (this.failure) throw this.failure;
    const prefix = this.spec.prefix ?? [];
    if (this.prefixAt < prefix.length) return forceToken(logits, prefix[this.prefixAt]);
    if (this.matcher) {
      if (!this.mask) throw new Error('the grammar mask is not ready');
      applyBitmask(logits, this.mask);
    }
    for (const id of this.spec.banned ?? []) logits[id] = -Infinity;
  }

  accept(id: number): void {
    const prefix = this.spec.prefix ?? [];
    if (this.prefixAt < prefix.length) {
      this.prefixAt++;
      if (this.prefixAt === prefix.length && this.spec.grammar) this.open(this.spec.grammar);
    } else if (this.matcher) {
      if (!this.matcher.acceptToken(id)) throw new Error(`token ${id} does not fit the grammar`);
      if (this.matcher.isTerminated()) this.close();
      else this.nextMask(this.matcher);
    } else if (this.spec.trigger && id === this.spec.trigger.id) {
      this.open(this.spec.trigger);
    }
  }

  /** Frees the grammar state (wasm memory is not garbage collected). */
  release(): void {
    this.close();
  }

  private open(phase: GrammarPhase): void {
    this.mask = undefined;
    this.pending = this.settle(async () => {
      this.matcher = await this.grammars.matcher(phase.grammar, phase.endIds);
      this.mask = await this.matcher.getNextTokenBitmask();
    });
  }

  private nextMask(matcher: GrammarMatcher): void {
    this.mask = undefined;
    this.pending = this.settle(async () => {
      this.mask = await matcher.getNextTokenBitmask();
    });
  }

  private close(): void {
    this.matcher?.dispose();
    this.matcher = undefined;
    this.mask = undefined;
  }

  private settle(work: () => Promise<void>): Promise<void> {
    return work().catch((err: unknown) => {
      this.failure = err instanceof Error ? err : new Error(String(err));
    });
  }
}

/** xgrammar's bitmask: bit (id % 32) of word (id / 32) set = allowed. */
export function applyBitmask(logits: Float32Array, mask: Int32Array): void {
  const n = logits.length;
  for (let w = 0; w < mask.length; w++) {
    const bits = mask[w];
    if (bits === -1) continue;
    const base = w << 5;
    if (bits === 0) {
      logits.fill(-Infinity, base, Math.min(base + 32, n));
      continue;
    }
    for (let b = 0; b < 32 && base + b < n; b++) if (((bits >>> b) & 1) === 0) logits[base + b] = -Infinity;
  }
  if (n > mask.length << 5) logits.fill(-Infinity, mask.length << 5);
}

function forceToken(logits: Float32Array, id: number): void {
  const keep = logits[id];
  logits.fill(-Infinity);
  // A forced token keeps a finite logit even if the model (or a bias) ruled it out.
  logits[id] = Number.isFinite(keep) ? keep : 0;
}
