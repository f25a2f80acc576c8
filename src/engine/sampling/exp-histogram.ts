/**
 * The softmax weights of one step summed into logarithmic bins, in a single pass over the vocabulary
 * that neither branches on the data nor stores anything per token.
 *
 * A token's tempered log-weight x = (logit - max) / T ≤ 0 is written as x = -b·h + r with
 * h = ln2/64 (≈0.0108 nats), b an integer (its bin) and |r| ≤ h/2. Its weight is then
 * 2^(-b/64) · e^r, and bin b holds `sums[b]` = Σ e^r over its tokens, e^r taken as 1 + r + r²/2
 * (relative error < r³/6 < 2.7e-8). The bin factor 2^(-b/64) is applied once per bin, not per token.
 *
 * What this buys:
 * - the total mass (the softmax normalizer, for logprobs at temperature 1) to ~3e-8 relative;
 * - top-p without sorting: bins are ordered by weight, so walking them from the top finds the one bin
 *   where the cumulative mass crosses p, and only that bin's tokens need comparing individually;
 * - drawing without per-token state: pick a bin by mass, then `pick` re-scans the logits for that
 *   bin's members only. It evaluates each member's term with the same float operations in the same
 *   order as `fill`, so its running sum reproduces `sums[bin]` bit for bit.
 *
 * Tokens more than `depth` nats below the best one (as the sampler chooses depth, < 1e-7 of the mass
 * together), banned (-Infinity) and NaN logits go to junk slots past the real bins and are never
 * read: a branch-free mask chooses the slot, because a data-dependent branch per token mispredicts
 * on logits where a sizeable fraction falls below the window. There are four junk slots, one per
 * lane of the unrolled loop, so that consecutive junk tokens do not wait on each other's
 * read-modify-write.
 */

/** Bins are 1/64 octave wide, as in fast-exp.ts. */
export const BINS_PER_NAT = 64 * Math.LOG2E;
// Module constants rather than imports from fast-exp.ts: V8 folds these into the loops, whereas an
// imported binding is re-loaded on every use, which made `fill` several times slower.
const NATS_PER_BIN = Math.LN2 / 64;
/** Adding and subtracting 1.5·2^52 rounds a double to the nearest integer without a call or a branch. */
const ROUND_MAGIC = 6755399441055744;
const JUNK_SLOTS = 4;

export class ExpHistogram {
  /** Σ e^r per bin after `fill`, then JUNK_SLOTS slots of garbage. */
  readonly sums: Float64Array;
  /** Real bins: 0 (the best token) to bins - 1 (depth nats down). */
  readonly bins: number;
  /** 2^(-b/64): weight of bin b's centre relative to the best token. */
  readonly scale: Float64Array;
  /** Σ over real bins of scale·sums: the weights' total after `fill`. */
  total = 0;
  /** Last non-empty bin after `fill`. */
  deepest = 0;
  private max = 0;
  /** Bins per logit: BINS_PER_NAT / temperature. */
  private perLogit = 1;

  constructor(depth: number) {
    this.bins = Math.ceil(depth * BINS_PER_NAT) + 1;
    this.sums = new Float64Array(this.bins + JUNK_SLOTS);
    this.scale = new Float64Array(this.bins);
    for (let b = 0; b < this.bins; b++) this.scale[b] = 2 ** (-b / 64);
  }

  /**
   * Bins the weights exp((logit - max) · invTemperature); returns their total. `max` must be the
   * largest logit and finite, and invTemperature · BINS_PER_NAT finite.
   */
  fill(logits: Float32Array, max: number, invTemperature: number): number {
    const sums = this.sums;
    sums.fill(0);
    const perLogit = invTemperature * BINS_PER_NAT;
    this.max = max;
    this.perLogit = perLogit;
    // z > floor ⇔ round(-z) ≤ bins - 1. NaN and -Infinity fail it.
    const floor = 0.5 - this.bins;
    const junk = this.bins;
    const n = logits.length;
    const unrolled = n - (n & 3);
    // Four tokens per iteration: fewer loop overheads, and independent work for the CPU to overlap.
    // Each bin still receives its tokens' terms in id order, which `pick` relies on.
    for (let i = 0; i < unrolled; i += 4) {
      const z0 = (logits[i] - max) * perLogit;
      const z1 = (logits[i + 1] - max) * perLogit;
      const z2 = (logits[i + 2] - max) * perLogit;
      const z3 = (logits[i + 3] - max) * perLogit;
      const in0 = +(z0 > floor);
      const in1 = +(z1 > floor);
      const in2 = +(z2 > floor);
      const in3 = +(z3 > floor);
      const q0 = (z0 - ROUND_MAGIC) + ROUND_MAGIC;
      const q1 = (z1 - ROUND_MAGIC) + ROUND_MAGIC;
      const q2 = (z2 - ROUND_MAGIC) + ROUND_MAGIC;
      const q3 = (z3 - ROUND_MAGIC) + ROUND_MAGIC;
      const r0 = (z0 - q0) * NATS_PER_BIN;
      const r1 = (z1 - q1) * NATS_PER_BIN;
      const r2 = (z2 - q2) * NATS_PER_BIN;
      const r3 = (z3 - q3) * NATS_PER_BIN;
      // Outside the window q may be garbage (even ±Infinity, which |0 turns into 0); the mask replaces
      // it with the lane's junk slot, and the garbage term lands there.
      sums[((-q0 | 0) & -in0) | (junk & (in0 - 1))] += 1 + r0 * (1 + r0 * 0.5);
      sums[((-q1 | 0) & -in1) | ((junk + 1) & (in1 - 1))] += 1 + r1 * (1 + r1 * 0.5);
      sums[((-q2 | 0) & -in2) | ((junk + 2) & (in2 - 1))] += 1 + r2 * (1 + r2 * 0.5);
      sums[((-q3 | 0) & -in3) | ((junk + 3) & (in3 - 1))] += 1 + r3 * (1 + r3 * 0.5);
    }
    for (let i = unrolled; i < n; i++) {
      const z = (logits[i] - max) * perLogit;
      const inside = +(z > floor);
      const q = (z - ROUND_MAGIC) + ROUND_MAGIC;
      const r = (z - q) * NATS_PER_BIN;
      sums[((-q | 0) & -inside) | (junk & (inside - 1))] += 1 + r * (1 + r * 0.5);
    }
    let total = 0;
    let deepest = 0;
    for (let b = 0; b < this.bins; b++) {
      const s = sums[b];
      total += this.scale[b] * s;
      if (s > 0) deepest = b;
    }
    this.total = total;
    this.deepest = deepest;
    return total;
  }

  /** Mass of one bin (same units as `total`). */
  mass(bin: number): number {
    return this.scale[bin] * this.sums[bin];
  }

  /**
   * The bin holding tokens of tempered log-weight x (≤ 0), by the same rounding as `fill`: any token
   * in a lower-numbered bin weighs more than e^x, any token in a higher-numbered one less.
   * `bins` when x is beyond the window.
   */
  binOf(x: number): number {
    const z = x * BINS_PER_NAT;
    if (!(z > 0.5 - this.bins)) return this.bins;
    return -((z - ROUND_MAGIC) + ROUND_MAGIC) | 0;
  }

  /**
   * The member of `bin` (in id order) at which the running sum of its terms e^r first exceeds
   * `target`, for target in [0, sums[bin]); the last member if rounding left target a hair above.
   * -1 only for an empty bin.
   */
  pick(logits: Float32Array, bin: number, target: number): number {
    const { max, perLogit } = this;
    const mid = max - bin / perLogit;
    const half = halfWidth(mid, perLogit);
    const n = logits.length;
    let acc = 0;
    let last = -1;
    // A cheap logit-range test, true for every member and few others, guards the exact test: one
    // comparison of |v - mid| rather than two bounds, and combined over four logits, so that the loop
    // costs one rarely-taken branch per four tokens. The members are then visited in id order.
    for (let i = 0; i < n; i += 4) {
      if (
        i + 4 <= n &&
        !(Math.abs(logits[i] - mid) <= half || Math.abs(logits[i + 1] - mid) <= half ||
          Math.abs(logits[i + 2] - mid) <= half || Math.abs(logits[i + 3] - mid) <= half)
      ) continue;
      const end = Math.min(i + 4, n);
      for (let k = i; k < end; k++) {
        const v = logits[k];
        if (!(Math.abs(v - mid) <= half)) continue;
        const z = (v - max) * perLogit;
        const rounded = (z - ROUND_MAGIC) + ROUND_MAGIC;
        if (rounded !== -bin) continue;
        const r = (z - rounded) * NATS_PER_BIN;
        acc += 1 + r * (1 + r * 0.5);
        last = k;
        if (target < acc) return k;
      }
    }
    return last;
  }

  /**
   * Writes the members of `bin`, in id order, to ids and their terms e^r to terms (the token's weight
   * is scale[bin] times its term). Returns how many there are. Scans as `pick` does.
   */
  collect(logits: Float32Array, bin: number, ids: Int32Array, terms: Float64Array): number {
    const { max, perLogit } = this;
    const mid = max - bin / perLogit;
    const half = halfWidth(mid, perLogit);
    const n = logits.length;
    let count = 0;
    for (let i = 0; i < n; i += 4) {
      if (
        i + 4 <= n &&
        !(Math.abs(logits[i] - mid) <= half || Math.abs(logits[i + 1] - mid) <= half ||
          Math.abs(logits[i + 2] - mid) <= half || Math.abs(logits[i + 3] - mid) <= half)
      ) continue;
      const end = Math.min(i + 4, n);
      for (let k = i; k < end; k++) {
        const v = logits[k];
        if (!(Math.abs(v - mid) <= half)) continue;
        const z = (v - max) * perLogit;
        const rounded = (z - ROUND_MAGIC) + ROUND_MAGIC;
        if (rounded !== -bin) continue;
        const r = (z - rounded) * NATS_PER_BIN;
        ids[count] = k;
        terms[count++] = 1 + r * (1 + r * 0.5);
      }
    }
    return count;
  }

  /**
   * Writes to `out`, in id order, the tokens of bins before `bin` and those of `bin` whose term is at
   * least `minTerm`, binned exactly as `fill` bins them; returns how many. For tests and diagnostics.
   */
  listKept(logits: Float32Array, bin: number, minTerm: number, out: Int32Array): number {
    const { max, perLogit } = this;
    const floor = 0.5 - this.bins;
    let n = 0;
    for (let i = 0; i < logits.length; i++) {
      const z = (logits[i] - max) * perLogit;
      if (!(z > floor)) continue;
      const rounded = (z - ROUND_MAGIC) + ROUND_MAGIC;
      const r = (z - rounded) * NATS_PER_BIN;
      const b = -rounded;
      if (b < bin || (b === bin && 1 + r * (1 + r * 0.5) >= minTerm)) out[n++] = i;
    }
    return n;
  }
}

/**
 * Half-width of the logit range around `mid` that can fall in one bin. A bin holds z ∈ [-b - ½, -b + ½];
 * the margins cover the rounding of the bounds (they only let a few more tokens reach the exact test).
 */
function halfWidth(mid: number, perLogit: number): number {
  return 0.500001 / perLogit + Math.abs(mid) * 1e-12;
}
