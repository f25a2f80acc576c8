/** What the scheduler hands a model step, and what runs it. */
import type { KvBlock, KvShape } from '../kv/kv-block.ts';

/** One token per decoding sequence: slot b of `block` gets `tokens[b]` at position `block.lengths[b]`. */
export interface DecodeInput {
  block: KvBlock;
  tokens: readonly number[];
}

/** A chunk of one sequence's prompt, appended to its one-slot `block`. */
export interface PrefillInput {
  block: KvBlock;
  tokens: readonly number[];
  /** Whether the step returns the logits of the chunk's last position (the prompt ends here). */
  logits: boolean;
}

export interface StepPlan {
  decode?: DecodeInput;
  prefill?: PrefillInput;
}

export interface StepRunner {
  readonly kvShape: KvShape;
  /** Many sequences per step (the batched graph) or one (the export's own graph). */
  readonly batched: boolean;
  /**
   * Runs one step: writes the new KV rows and advances the blocks' lengths. Returns the logits of
   * every decode slot in order, then of the prefill's last position when asked; each row is valid
   * until the next run.
   */
  run(plan: StepPlan): Promise<Float32Array[]>;
  release(): Promise<void>;
}
