/**
 * exp(x) for x ≤ 0, several times faster than Math.exp in V8 (which costs ~10 ns per call here),
 * because sampling and log-normalizing evaluate it for up to the whole 200k-token vocabulary.
 *
 * Method: x = -(bin/64)·ln2 + r with |r| ≤ ln2/128, so exp(x) = 2^-(bin/64) · e^r, with
 * 2^-(bin/64) from two small tables and e^r from a quadratic Taylor polynomial. Relative error
 * < 3e-8, below the resolution of the float32 logits it is applied to.
 *
 * The same decomposition, with the 2^-(bin/64) factor taken out per bin instead of per token, is what
 * exp-histogram.ts sums over the whole vocabulary.
 */

const BINS_PER_OCTAVE = 64;
const OCTAVES = 128;
const BINS_PER_NAT = BINS_PER_OCTAVE * Math.LOG2E;
const NATS_PER_BIN = Math.LN2 / BINS_PER_OCTAVE;
/** Adding and subtracting 1.5·2^52 rounds a double to the nearest integer without a call or a branch. */
const ROUND_MAGIC = 6755399441055744;

/** Arguments below this would index past the tables; callers clamp to it first. */
export const EXP_MIN_ARG = -(OCTAVES - 1) * Math.LN2;

const FRACTION_POW2 = new Float64Array(BINS_PER_OCTAVE);
const OCTAVE_POW2 = new Float64Array(OCTAVES);
for (let i = 0; i < BINS_PER_OCTAVE; i++) FRACTION_POW2[i] = 2 ** (-i / BINS_PER_OCTAVE);
for (let i = 0; i < OCTAVES; i++) OCTAVE_POW2[i] = 2 ** -i;

/** The table bin of x (0 for x near 0, growing as x falls). Requires EXP_MIN_ARG ≤ x ≤ 0. */
export function expBin(x: number): number {
  return -((x * BINS_PER_NAT + ROUND_MAGIC) - ROUND_MAGIC) | 0;
}

/** exp(x) given bin = expBin(x). */
export function expInBin(x: number, bin: number): number {
  const r = x + bin * NATS_PER_BIN;
  return OCTAVE_POW2[bin >> 6] * FRACTION_POW2[bin & 63] * (1 + r * (1 + r * 0.5));
}

/** exp(x) for EXP_MIN_ARG ≤ x ≤ 0. */
export function expNonPositive(x: number): number {
  return expInBin(x, expBin(x));
}
