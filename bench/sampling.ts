/**
 * Per-token cost of Sampler.sample() at Phi-4-mini's vocabulary size (200,064), the part of the
 * per-token work outside session.run that issue 5 wants under 1 ms.
 * Run: npx tsx bench/sampling.ts
 *
 * Two synthetic logit shapes, since cost can depend on how many tokens sit near the top:
 * - "lm-like": Gaussian bulk (σ = 2.5) plus a 30-token head 10–22 logits up, roughly the shape of a
 *   confident LM step;
 * - "flat": standard normal over the whole vocabulary, the worst case for truncation (every token
 *   is within the exp() window, and at temperature 1 the top-p 0.9 nucleus holds ~60% of the
 *   vocabulary).
 * Each configuration is timed plain and with top_logprobs 5 (OpenAI `logprobs: true, top_logprobs: 5`).
 */
import { DEFAULT_SAMPLING, type SamplingParams } from '../src/engine/types.ts';
import { Sampler, Sfc32 } from '../src/engine/sampling/index.ts';

const VOCAB = 200_064;
const WARMUP = 100;
const ROUNDS = 7;
const PER_ROUND = 100;
const VARIANTS = 4;

const rng = new Sfc32(12345);
function gaussian(): number {
  const u = 1 - rng.nextFloat();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.nextFloat());
}

function lmLike(): Float32Array {
  const logits = new Float32Array(VOCAB);
  for (let i = 0; i < VOCAB; i++) logits[i] = 2.5 * gaussian();
  for (let j = 0; j < 30; j++) logits[Math.floor(rng.nextFloat() * VOCAB)] = 10 + j * 0.4 + gaussian();
  return logits;
}

function flat(): Float32Array {
  const logits = new Float32Array(VOCAB);
  for (let i = 0; i < VOCAB; i++) logits[i] = gaussian();
  return logits;
}

const configs: [string, Partial<SamplingParams>][] = [
  ['greedy', { temperature: 0 }],
  ['temp 1 (no truncation)', { temperature: 1 }],
  ['temp 0.7 (no truncation)', { temperature: 0.7 }],
  ['temp 1 + top_p 0.9', { temperature: 1, topP: 0.9 }],
  ['temp 0.7 + top_p 0.9', { temperature: 0.7, topP: 0.9 }],
  ['temp 0.7 + top_k 40', { temperature: 0.7, topK: 40 }],
  ['temp 0.7 + min_p 0.05', { temperature: 0.7, minP: 0.05 }],
];

/**
 * Mean µs per call, per round of PER_ROUND calls. The best round is the headline figure: on a
 * shared 2-core machine the other rounds mostly measure the neighbours.
 */
function measure(params: Partial<SamplingParams>, inputs: Float32Array[], topLogprobs?: number): { best: number; median: number } {
  const sampler = new Sampler(VOCAB, { ...DEFAULT_SAMPLING, seed: 7, ...params }, []);
  const opts = { topLogprobs };
  for (let i = 0; i < WARMUP; i++) sampler.sample(inputs[i % VARIANTS], opts);
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const start = performance.now();
    for (let i = 0; i < PER_ROUND; i++) sampler.sample(inputs[i % VARIANTS], opts);
    rounds.push(((performance.now() - start) / PER_ROUND) * 1000);
  }
  rounds.sort((a, b) => a - b);
  return { best: rounds[0], median: rounds[ROUNDS >> 1] };
}

const cell = ({ best, median }: { best: number; median: number }): string => `${best.toFixed(0)} (${median.toFixed(0)})`.padStart(16);

for (const [shape, make] of [['lm-like', lmLike], ['flat', flat]] as const) {
  const inputs = Array.from({ length: VARIANTS }, make);
  console.log(`\n${shape} logits, vocab ${VOCAB}: mean µs per sample(), best round (median round)`);
  console.log(`${'config'.padEnd(26)}${'plain'.padStart(16)}${'+top-5 logprobs'.padStart(16)}`);
  for (const [name, params] of configs) {
    console.log(`${name.padEnd(26)}${cell(measure(params, inputs))}${cell(measure(params, inputs, 5))}`);
  }
}
