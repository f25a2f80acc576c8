/** Shapes of the synthetic models. The graph builder reads nothing else. */
export interface ModelShape {
  /**
   * Which model family's export this mirrors (graph details, config files, tokenizer); absent
   * means phi3. Both come out of the same genai builder code; see decoder-graph.ts.
   */
  family?: ModelFamily;
  /** q/k/v projections with biases (Qwen2), added after the packed QKV MatMulNBits as the builder does. */
  qkvBias?: boolean;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headSize: number;
  /** max_position_embeddings: rows of the long rotary cache. */
  contextLength: number;
  /** original_max_position_embeddings: rows of the short cache and the If threshold. */
  originalContextLength: number;
  ropeTheta: number;
  partialRotaryFactor: number;
  /** LongRoPE factors (one per rotary frequency); absent means plain RoPE with one cache. */
  longRope?: { shortFactor: number[]; longFactor: number[] };
  rmsNormEps: number;
  /** MatMulNBits accuracy_level: 4 = int8 activations (the CPU export), 0 = exact fp32. */
  accuracyLevel: 0 | 1 | 2 | 3 | 4;
  blockSize: 32;
  /** Standard deviation of the tied logits; sets how peaked the random model's output is. */
  logitStd: number;
  seed: number;
  /**
   * Projections are the int4 round-to-nearest quantization of known fp32 weights (rtnFp32Weight),
   * as the genai builder quantizes a real model, instead of random int4 blocks: an fp32 reference
   * of the same model can then be built, to measure what quantization costs.
   */
  rtnWeights?: boolean;
  /** A few hidden channels whose norm gains are `factor` times the rest, as real LLM activations have. */
  outliers?: { channels: number[]; factor: number };
}

export type ModelFamily = 'phi3' | 'qwen2';

// Phi-4-mini-instruct config.json rope_scaling.long_factor.
const PHI4_LONG_FACTOR = [
  1, 1.118320672, 1.250641126, 1.398617824, 1.564103225, 1.74916897, 1.956131817, 2.187582649, 2.446418898,
  2.735880826, 3.059592084, 3.421605075, 3.826451687, 4.279200023, 4.785517845, 5.351743533, 5.984965424,
  6.693110555, 7.485043894, 8.370679318, 9.36110372, 10.4687158, 11.70738129, 13.09260651, 14.64173252,
  16.37415215, 18.31155283, 20.47818807, 22.90118105, 25.61086418, 28.64115884, 32.03, 32.1, 32.13, 32.23, 32.6,
  32.61, 32.64, 32.66, 32.7, 32.71, 32.93, 32.97, 33.28, 33.49, 33.5, 44.16, 47.77,
];

/** Real LongRoPE factors resampled to another number of rotary frequencies. */
function resampleFactors(factors: number[], n: number): number[] {
  if (n === factors.length) return factors.slice();
  return Array.from({ length: n }, (_, i) => factors[Math.round((i * (factors.length - 1)) / Math.max(1, n - 1))]);
}

const PHI4_COMMON = {
  vocabSize: 200064,
  contextLength: 131072,
  originalContextLength: 4096,
  ropeTheta: 10000,
  partialRotaryFactor: 0.75,
  rmsNormEps: 1e-5,
  blockSize: 32 as const,
  seed: 1234,
};

function phi4Rope(headSize: number, partialRotaryFactor: number) {
  const n = (headSize * partialRotaryFactor) / 2;
  return { shortFactor: new Array<number>(n).fill(1), longFactor: resampleFactors(PHI4_LONG_FACTOR, n) };
}

/** Test fixture and embedded default: real vocabulary and I/O, two small layers. */
const TINY: ModelShape = {
  ...PHI4_COMMON,
  hiddenSize: 64,
  intermediateSize: 128,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  // 64 is the smallest head where 0.75 partial rotary gives a cache width that is a multiple of 8.
  headSize: 64,
  longRope: phi4Rope(64, 0.75),
  accuracyLevel: 4,
  logitStd: 4,
};

/** What every Qwen2.5 export shares (Qwen2.5-0.5B/1.5B-Instruct's config.json). */
const QWEN25_COMMON = {
  family: 'qwen2' as const,
  qkvBias: true,
  // 151,665 tokens padded to 151,936 rows of embeddings and logits, as in the real checkpoints.
  vocabSize: 151936,
  contextLength: 32768,
  originalContextLength: 32768,
  ropeTheta: 1000000,
  partialRotaryFactor: 1,
  rmsNormEps: 1e-6,
  blockSize: 32 as const,
  seed: 2025,
};

export const PRESETS = {
  tiny: TINY,
  /** The same weights with exact fp32 MatMulNBits, for KV-cache equivalence tests. */
  'tiny-exact': { ...TINY, accuracyLevel: 0 },
  /**
   * A differently shaped export (Phi-3-mini-4k style: plain RoPE, full rotary) for config-driven
   * tests, with Phi-4-mini's three query heads per KV head and exact MatMulNBits so that derived
   * graphs can be compared with it exactly.
   */
  'tiny-alt': {
    ...PHI4_COMMON,
    contextLength: 4096,
    originalContextLength: 4096,
    partialRotaryFactor: 1,
    hiddenSize: 64,
    intermediateSize: 96,
    numLayers: 3,
    numHeads: 12,
    numKvHeads: 4,
    headSize: 32,
    accuracyLevel: 0,
    logitStd: 4,
    seed: 99,
  },
  /** tiny-exact's shape with int4 weights quantized from fp32 ones: quantization error is measurable. */
  'tiny-rtn': { ...TINY, accuracyLevel: 0, rtnWeights: true },
  /** tiny-rtn with four hidden channels 30x larger than the rest: the worst case for quantized activations. */
  'tiny-outliers': { ...TINY, accuracyLevel: 0, rtnWeights: true, outliers: { channels: [3, 17, 40, 51], factor: 30 } },
  /** Phi-4-mini-instruct's real dimensions, for benchmarks. */
  'phi4-mini-shape': {
    ...PHI4_COMMON,
    hiddenSize: 3072,
    intermediateSize: 8192,
    numLayers: 32,
    numHeads: 24,
    numKvHeads: 8,
    headSize: 128,
    longRope: { shortFactor: new Array<number>(48).fill(1), longFactor: PHI4_LONG_FACTOR },
    accuracyLevel: 4,
    logitStd: 4,
  },
  /**
   * The second family, small: Qwen2.5's graph (QKV bias, full rotary with theta 1e6 and one cache,
   * 32k context) and tokenizer, with Qwen2.5-0.5B's 7 query heads per KV head, and exact
   * MatMulNBits so derived graphs can be compared with it exactly.
   */
  'tiny-qwen': {
    ...QWEN25_COMMON,
    hiddenSize: 64,
    intermediateSize: 128,
    numLayers: 3,
    numHeads: 14,
    numKvHeads: 2,
    headSize: 32,
    accuracyLevel: 0,
    logitStd: 4,
  },
  /** Qwen2.5-0.5B-Instruct's real dimensions, for benchmarks. */
  'qwen2.5-0.5b-shape': {
    ...QWEN25_COMMON,
    hiddenSize: 896,
    intermediateSize: 4864,
    numLayers: 24,
    numHeads: 14,
    numKvHeads: 2,
    headSize: 64,
    accuracyLevel: 4,
    logitStd: 4,
  },
} satisfies Record<string, ModelShape>;

export type PresetName = keyof typeof PRESETS;

export function isPresetName(name: string): name is PresetName {
  return Object.hasOwn(PRESETS, name);
}

export function familyOf(shape: ModelShape): ModelFamily {
  return shape.family ?? 'phi3';
}

export function rotaryDim(shape: ModelShape): number {
  return Math.round(shape.headSize * shape.partialRotaryFactor);
}
