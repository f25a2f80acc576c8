import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_SAMPLING, type SamplingParams } from '../src/engine/types.ts';
import {
  LogitBias,
  MAX_TOP_LOGPROBS,
  PresenceFrequencyPenalty,
  RepetitionPenalty,
  Sampler,
  Sfc32,
  randomSeed,
} from '../src/engine/sampling/index.ts';
import { ExpHistogram } from '../src/engine/sampling/exp-histogram.ts';
import { EXP_MIN_ARG, expNonPositive } from '../src/engine/sampling/fast-exp.ts';
import { massThreshold } from '../src/engine/sampling/nucleus.ts';
import { HistogramSelector } from '../src/engine/sampling/selectors.ts';
import { TopTokens } from '../src/engine/sampling/top-tokens.ts';

const PHI4_VOCAB = 200_064;
/** The sampler's depth at Phi-4's vocabulary: ln(vocab / 1e-7). */
const PHI4_DEPTH = Math.log(PHI4_VOCAB / 1e-7);

function params(overrides: Partial<SamplingParams> = {}): SamplingParams {
  return { ...DEFAULT_SAMPLING, seed: 1, ...overrides };
}

function gaussianLogits(size: number, seed: number, scale = 1): Float32Array {
  const rng = new Sfc32(seed);
  const logits = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    const u = 1 - rng.nextFloat();
    logits[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.nextFloat());
  }
  return logits;
}

/** A confident LM step: Gaussian bulk (σ 2.5) plus a few tokens far above it. */
function lmLikeLogits(size: number, seed: number): Float32Array {
  const logits = gaussianLogits(size, seed, 2.5);
  const rng = new Sfc32(seed + 1);
  for (let j = 0; j < 30; j++) logits[Math.floor(rng.nextFloat() * size)] = 10 + j * 0.4 + 3 * rng.nextFloat();
  return logits;
}

/** Largest finite logit (NaN and -Infinity are never the max). */
function maxOf(logits: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  return max;
}

/** Reference argmax: first index of the largest value. */
function referenceArgmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** Reference softmax in float64 with Math.exp, at a temperature. */
function softmax(logits: ArrayLike<number>, temperature = 1): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  const probs = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += probs[i] = Math.exp((logits[i] - max) / temperature);
  for (let i = 0; i < logits.length; i++) probs[i] /= sum;
  return probs;
}

function logSoftmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const logZ = max + Math.log(sum);
  return Float64Array.from(logits, (v) => v - logZ);
}

/** Token ids by descending probability, ties by lower id: a plain full sort, fine in tests. */
function sortedIds(probs: ArrayLike<number>): number[] {
  return Array.from({ length: probs.length }, (_, i) => i).sort((a, b) => probs[b] - probs[a] || a - b);
}

/**
 * Smallest most-likely prefix reaching mass p (at least one token), plus tokens tied with its last
 * member: a plain sort and cumulative sum, as in vLLM and HF. `order` may be any ordering of the ids
 * by non-increasing probability, e.g. by logit, which serves every temperature.
 */
function referenceNucleus(probs: Float64Array, topP: number, order = sortedIds(probs)): Set<number> {
  let mass = 0;
  let end = 0;
  do mass += probs[order[end++]];
  while (end < order.length && mass < topP);
  const lowest = probs[order[end - 1]];
  while (end < order.length && probs[order[end]] === lowest) end++;
  return new Set(order.slice(0, end));
}

/** Draws `count` tokens, giving the sampler a fresh copy each time because it consumes its input. */
function draw(sampler: Sampler, logits: Float32Array, count: number): number[] {
  return Array.from({ length: count }, () => sampler.sample(logits.slice()).id);
}

function histogram(ids: number[], size: number): number[] {
  const counts = new Array<number>(size).fill(0);
  for (const id of ids) counts[id]++;
  return counts;
}

describe('Sfc32', () => {
  it('replays the same stream for the same seed and floats stay in [0, 1)', () => {
    const a = new Sfc32(42);
    const b = new Sfc32(42);
    for (let i = 0; i < 1000; i++) {
      const x = a.nextFloat();
      assert.equal(x, b.nextFloat());
      assert.ok(x >= 0 && x < 1);
    }
  });

  it('gives unrelated streams for nearby, negative, huge and fractional seeds', () => {
    const firsts = [0, 1, 2, -1, 2 ** 40, 2 ** 40 + 1, 0.5, Number.MAX_SAFE_INTEGER].map((seed) => {
      const rng = new Sfc32(seed);
      return [rng.nextFloat(), rng.nextFloat()].join();
    });
    assert.equal(new Set(firsts).size, firsts.length);
  });

  it('is roughly uniform', () => {
    const rng = new Sfc32(7);
    const buckets = new Array<number>(10).fill(0);
    for (let i = 0; i < 100_000; i++) buckets[Math.floor(rng.nextFloat() * 10)]++;
    for (const count of buckets) assert.ok(Math.abs(count - 10_000) < 500, `bucket count ${count}`);
  });

  it('randomSeed gives distinct safe integers', () => {
    const seeds = new Set(Array.from({ length: 20 }, randomSeed));
    assert.equal(seeds.size, 20);
    for (const s of seeds) assert.ok(Number.isSafeInteger(s) && s >= 0);
  });
});

describe('fast exp', () => {
  it('matches Math.exp to 3e-8 relative over its whole domain', () => {
    let worst = 0;
    for (let i = 0; i <= 200_000; i++) {
      const x = (EXP_MIN_ARG * i) / 200_000;
      worst = Math.max(worst, Math.abs(expNonPositive(x) / Math.exp(x) - 1));
    }
    assert.ok(worst < 3e-8, `worst relative error ${worst}`);
    assert.equal(expNonPositive(0), 1);
  });
});

describe('TopTokens', () => {
  it('finds the k highest logits, best first, ties to the lower id, ignoring banned and NaN', () => {
    const logits = gaussianLogits(10_000, 3);
    logits[17] = 9;
    logits[5000] = 9; // tie with 17: 17 ranks first
    logits[42] = NaN;
    logits[43] = -Infinity;
    const top = new TopTokens(50);
    top.scan(logits, 50);
    top.sortDescending();
    const expected = sortedIds(Float64Array.from(logits, (v) => (Number.isNaN(v) ? -Infinity : v))).slice(0, 50);
    assert.deepEqual(Array.from(top.ids.subarray(0, top.count)), expected);
    assert.deepEqual(expected.slice(0, 2), [17, 5000]);
  });

  it('reports fewer entries when fewer tokens are allowed', () => {
    const logits = new Float32Array(100).fill(-Infinity);
    logits[3] = 1;
    logits[9] = 2;
    const top = new TopTokens(5);
    top.scan(logits, 5);
    top.sortDescending();
    assert.equal(top.count, 2);
    assert.deepEqual(Array.from(top.ids.subarray(0, 2)), [9, 3]);
  });
});

describe('greedy', () => {
  const logits = gaussianLogits(PHI4_VOCAB, 11);
  const expected = referenceArgmax(logits);

  it('temperature 0 is the argmax, whatever the other settings', () => {
    for (const extra of [{}, { topP: 0.5, minP: 0.2 }, { topK: 50 }, { seed: 99 }]) {
      const sampler = new Sampler(PHI4_VOCAB, params({ temperature: 0, ...extra }), []);
      assert.equal(sampler.sample(logits.slice()).id, expected);
    }
  });

  it('topK 1 is the argmax at any temperature', () => {
    for (const temperature of [0.3, 1, 2]) {
      const sampler = new Sampler(PHI4_VOCAB, params({ temperature, topK: 1 }), []);
      assert.deepEqual(draw(sampler, logits, 20), new Array(20).fill(expected));
    }
  });

  it('breaks ties towards the lower id, identically for temperature 0 and topK 1', () => {
    const tied = new Float32Array(1000);
    tied[700] = 5;
    tied[300] = 5;
    assert.equal(new Sampler(1000, params({ temperature: 0 }), []).sample(tied.slice()).id, 300);
    assert.equal(new Sampler(1000, params({ topK: 1 }), []).sample(tied.slice()).id, 300);
    assert.equal(new Sampler(1000, params({ temperature: 0 }), []).sample(tied.slice(), { topLogprobs: 3 }).id, 300);
  });

  it('agrees with argmax over a sequence of different logits', () => {
    const sampler = new Sampler(PHI4_VOCAB, params({ temperature: 0 }), []);
    for (let step = 0; step < 5; step++) {
      const l = gaussianLogits(PHI4_VOCAB, 100 + step);
      assert.equal(sampler.sample(l.slice()).id, referenceArgmax(l));
    }
  });
});

describe('seeded determinism', () => {
  const steps = Array.from({ length: 30 }, (_, i) => gaussianLogits(PHI4_VOCAB, 500 + i, 0.5));
  const run = (p: Partial<SamplingParams>): number[] => {
    const sampler = new Sampler(PHI4_VOCAB, params(p), []);
    return steps.map((l) => sampler.sample(l.slice()).id);
  };

  it('same seed and logits give the same tokens, in every sampling mode', () => {
    for (const mode of [{}, { topP: 0.9, temperature: 0.7 }, { topK: 40 }, { minP: 0.05 }]) {
      assert.deepEqual(run({ seed: 1234, ...mode }), run({ seed: 1234, ...mode }));
    }
  });

  it('different seeds give different tokens on a flat distribution', () => {
    const a = run({ seed: 1 });
    const b = run({ seed: 2 });
    const same = a.filter((id, i) => id === b[i]).length;
    assert.ok(same <= 2, `${same} of ${a.length} tokens coincide`);
  });

  it('without a seed, the seed it reports replays the run', () => {
    const unseeded = new Sampler(PHI4_VOCAB, { ...DEFAULT_SAMPLING }, []);
    const first = steps.map((l) => unseeded.sample(l.slice()).id);
    assert.deepEqual(run({ seed: unseeded.seed }), first);
  });
});

describe('logit bias', () => {
  const vocab = 1000;
  const logits = gaussianLogits(vocab, 21);
  const top = referenceArgmax(logits);
  const runnerUp = sortedIds(logits)[1];
  const ban = new Map([[top, -100]]);

  it('-100 bans the argmax in greedy mode', () => {
    const sampler = new Sampler(vocab, params({ temperature: 0, logitBias: ban }), []);
    assert.equal(sampler.sample(logits.slice()).id, runnerUp);
  });

  it('-100 bans a token that would otherwise dominate sampling', () => {
    const peaked = logits.slice();
    peaked[top] = 30;
    for (const mode of [{}, { topP: 0.9 }, { topK: 5 }, { minP: 0.01 }, { temperature: 5 }]) {
      const sampler = new Sampler(vocab, params({ logitBias: ban, ...mode }), []);
      assert.ok(!draw(sampler, peaked, 2000).includes(top), `banned token drawn with ${JSON.stringify(mode)}`);
    }
  });

  it('+100 forces a token', () => {
    const forced = sortedIds(logits)[vocab - 1];
    const bias = new Map([[forced, 100]]);
    assert.equal(new Sampler(vocab, params({ temperature: 0, logitBias: bias }), []).sample(logits.slice()).id, forced);
    const sampler = new Sampler(vocab, params({ temperature: 1.5, logitBias: bias }), []);
    assert.deepEqual(new Set(draw(sampler, logits, 2000)), new Set([forced]));
  });

  it('adds moderate biases exactly and leaves other logits alone', () => {
    const processed = logits.slice();
    new LogitBias(vocab, new Map([[3, 2.5], [4, -1]])).apply(processed);
    const expected = logits.slice();
    expected[3] += 2.5;
    expected[4] -= 1;
    assert.deepEqual(processed, expected);
  });

  it('throws when every token is banned', () => {
    const all = new Map(Array.from({ length: 10 }, (_, i) => [i, -100] as [number, number]));
    for (const mode of [{ temperature: 0 }, {}, { topK: 3 }, { topP: 0.5 }]) {
      const sampler = new Sampler(10, params({ logitBias: all, ...mode }), []);
      assert.throws(() => sampler.sample(new Float32Array(10)), /banned/);
    }
  });

  it('rejects token ids outside the vocabulary', () => {
    assert.throws(() => new Sampler(10, params({ logitBias: new Map([[10, 1]]) }), []), RangeError);
  });
});

describe('truncation', () => {
  const vocab = 1000;
  const logits = gaussianLogits(vocab, 31, 2);

  it('top-k draws only the k highest tokens, and all of them', () => {
    const allowed = new Set(sortedIds(logits).slice(0, 10));
    const sampler = new Sampler(vocab, params({ topK: 10, temperature: 3 }), []);
    const seen = new Set(draw(sampler, logits, 3000));
    assert.deepEqual(seen, allowed);
  });

  it('top-p draws only tokens inside the nucleus', () => {
    for (const [temperature, topP] of [
      [1, 0.5],
      [0.7, 0.9],
      [2, 0.3],
    ]) {
      const nucleus = referenceNucleus(softmax(logits, temperature), topP);
      const sampler = new Sampler(vocab, params({ temperature, topP }), []);
      const seen = new Set(draw(sampler, logits, 3000));
      for (const id of seen) assert.ok(nucleus.has(id), `token ${id} outside the nucleus (T=${temperature}, p=${topP})`);
      assert.ok(seen.size >= Math.min(nucleus.size, 5), `only ${seen.size} of ${nucleus.size} nucleus tokens drawn`);
    }
  });

  it('top-p applies to the distribution left by top-k', () => {
    const probs = softmax(logits, 1.5);
    const topTen = sortedIds(probs).slice(0, 10);
    const renormalized = new Float64Array(vocab);
    let mass = 0;
    for (const id of topTen) mass += probs[id];
    for (const id of topTen) renormalized[id] = probs[id] / mass;
    const nucleus = referenceNucleus(renormalized, 0.6);
    const sampler = new Sampler(vocab, params({ temperature: 1.5, topK: 10, topP: 0.6 }), []);
    assert.deepEqual(new Set(draw(sampler, logits, 3000)), nucleus);
  });

  it('min-p draws only tokens with p ≥ minP·pmax, and all of them', () => {
    for (const [temperature, topP] of [
      [1, 1],
      [1.5, 0.95],
    ]) {
      const probs = softmax(logits, temperature);
      const pmax = Math.max(...probs);
      const nucleus = referenceNucleus(probs, topP);
      const allowed = new Set([...nucleus].filter((id) => probs[id] >= 0.2 * pmax));
      const sampler = new Sampler(vocab, params({ temperature, topP, minP: 0.2 }), []);
      assert.deepEqual(new Set(draw(sampler, logits, 4000)), allowed);
    }
  });
});

describe('exp histogram', () => {
  /** Banned (-Infinity) and NaN logits sprinkled over a copy, including at the argmax. */
  function withHoles(logits: Float32Array): Float32Array {
    const holed = logits.slice();
    const rng = new Sfc32(99);
    holed[referenceArgmax(holed)] = -Infinity;
    for (let j = 0; j < 5000; j++) holed[Math.floor(rng.nextFloat() * holed.length)] = j % 2 ? -Infinity : NaN;
    return holed;
  }
  const cases: [string, Float32Array, number][] = [
    ['flat', gaussianLogits(PHI4_VOCAB, 71), 1],
    ['near-uniform', gaussianLogits(PHI4_VOCAB, 72, 0.01), 1],
    ['lm-like at T 0.7', lmLikeLogits(PHI4_VOCAB, 73), 0.7],
    ['lm-like at T 2', lmLikeLogits(PHI4_VOCAB, 73), 2],
    ['banned and NaN logits', withHoles(gaussianLogits(PHI4_VOCAB, 74, 3)), 1],
    ['tiny temperature', gaussianLogits(PHI4_VOCAB, 75), 1e-4],
  ];

  it('totals the weights within 3e-8 of float64, leaving out banned, NaN and negligible logits', () => {
    const histogram = new ExpHistogram(PHI4_DEPTH);
    for (const [name, logits, temperature] of cases) {
      const max = maxOf(logits);
      let reference = 0;
      for (const v of logits) {
        const x = (v - max) / temperature;
        if (x > -PHI4_DEPTH) reference += Math.exp(x);
      }
      const total = histogram.fill(logits, max, 1 / temperature);
      assert.ok(Math.abs(total / reference - 1) < 3e-8, `${name}: ${total} vs ${reference}`);
    }
  });

  it('re-finds a bin\'s members in id order, so their running sum reproduces the bin sum bit for bit', () => {
    const histogram = new ExpHistogram(PHI4_DEPTH);
    const ids = new Int32Array(PHI4_VOCAB);
    const terms = new Float64Array(PHI4_VOCAB);
    for (const [name, logits, temperature] of cases) {
      histogram.fill(logits, maxOf(logits), 1 / temperature);
      for (const bin of [0, histogram.deepest >> 3, histogram.deepest >> 1, histogram.deepest]) {
        const count = histogram.collect(logits, bin, ids, terms);
        assert.equal(count > 0, histogram.sums[bin] > 0, `${name}, bin ${bin}`);
        if (count === 0) continue;
        let sum = 0;
        for (let m = 0; m < count; m++) {
          assert.ok(m === 0 || ids[m] > ids[m - 1]);
          sum += terms[m];
        }
        assert.equal(sum, histogram.sums[bin], `${name}, bin ${bin}`);
        // pick(target) is the member at which the running sum first exceeds target.
        let prefix = 0;
        for (const m of [0, count >> 1, count - 1]) {
          let before = 0;
          for (let k = 0; k < m; k++) before += terms[k];
          prefix = before;
          assert.equal(histogram.pick(logits, bin, prefix), ids[m], `${name}, bin ${bin}, member ${m}`);
        }
        assert.equal(histogram.pick(logits, bin, histogram.sums[bin] * 2), ids[count - 1]);
      }
    }
  });
});

describe('top-p at full vocabulary (histogram path)', () => {
  const kept = new Int32Array(PHI4_VOCAB);
  /** Every token the histogram selector could draw, by the same cut its draw uses. */
  function keptBy(logits: Float32Array, temperature: number, topP: number, minP = 0): Set<number> {
    const selector = new HistogramSelector({ vocabSize: PHI4_VOCAB, depth: PHI4_DEPTH, rng: new Sfc32(1), temperature, topP, minP });
    const n = selector.keptTokens(logits, maxOf(logits), kept);
    return new Set(kept.subarray(0, n));
  }
  function assertSameSet(actual: Set<number>, expected: Set<number>, label: string): void {
    assert.equal(actual.size, expected.size, `${label}: ${actual.size} tokens kept, reference ${expected.size}`);
    for (const id of expected) assert.ok(actual.has(id), `${label}: token ${id} missing`);
  }
  /** Gaussian logits rounded to quarter steps: thousands of exact ties at every level. */
  function tiedLogits(seed: number): Float32Array {
    return gaussianLogits(PHI4_VOCAB, seed).map((v) => Math.round(v * 4) / 4);
  }
  /** Flat logits with 5,000 tokens banned (-Infinity) by logit_bias, the argmax among them. */
  function bannedLogits(seed: number): Float32Array {
    const logits = gaussianLogits(PHI4_VOCAB, seed);
    const rng = new Sfc32(seed);
    logits[referenceArgmax(logits)] = -Infinity;
    for (let j = 0; j < 5000; j++) logits[Math.floor(rng.nextFloat() * PHI4_VOCAB)] = -Infinity;
    return logits;
  }
  const dominant = lmLikeLogits(PHI4_VOCAB, 84);
  dominant[777] = 40;
  const distributions: [string, Float32Array][] = [
    ['flat', gaussianLogits(PHI4_VOCAB, 81)],
    ['near-uniform', gaussianLogits(PHI4_VOCAB, 82, 0.02)],
    ['lm-like', lmLikeLogits(PHI4_VOCAB, 83)],
    ['one dominant token', dominant],
    ['ties', tiedLogits(85)],
    ['banned by logit_bias', bannedLogits(86)],
  ];
  const settings: [number, number][] = [
    [1, 0.9],
    [0.7, 0.9],
    [1, 0.5],
    [1.5, 0.99],
    [1, 0.1],
    [1, 0],
    [0.8, 0.9999],
  ];

  it('keeps exactly the nucleus of a sort-based reference (ties at the boundary all kept)', () => {
    for (const [name, logits] of distributions) {
      const order = sortedIds(logits);
      for (const [temperature, topP] of settings) {
        const expected = referenceNucleus(softmax(logits, temperature), topP, order);
        assertSameSet(keptBy(logits, temperature, topP), expected, `${name}, T ${temperature}, top_p ${topP}`);
      }
    }
  });

  it('with min_p as well, keeps the nucleus tokens with p ≥ min_p·p_max', () => {
    for (const [name, logits] of distributions) {
      const order = sortedIds(logits);
      for (const [temperature, topP, minP] of [
        [1, 0.9, 0.05],
        [1, 0.5, 0.9],
        [0.7, 0.95, 0.3],
      ]) {
        const probs = softmax(logits, temperature);
        const pmax = maxOf(probs);
        const expected = new Set([...referenceNucleus(probs, topP, order)].filter((id) => probs[id] >= minP * pmax));
        assertSameSet(keptBy(logits, temperature, topP, minP), expected, `${name}, T ${temperature}, top_p ${topP}, min_p ${minP}`);
      }
    }
  });

  it('draws only nucleus tokens', () => {
    for (const [name, logits] of distributions) {
      const nucleus = referenceNucleus(softmax(logits), 0.9);
      const sampler = new Sampler(PHI4_VOCAB, params({ topP: 0.9, seed: 17 }), []);
      for (const id of draw(sampler, logits, 100)) assert.ok(nucleus.has(id), `${name}: token ${id} outside the nucleus`);
    }
  });
});

describe('massThreshold', () => {
  const order = (n: number): Int32Array => Int32Array.from({ length: n }, (_, i) => i);

  it('returns the lowest weight of the smallest heaviest set reaching the mass', () => {
    const weights = Float64Array.from([0.1, 0.4, 0.2, 0.3]);
    assert.equal(massThreshold(order(4), 4, weights, 0.35), weights[1]);
    assert.equal(massThreshold(order(4), 4, weights, 0.5), weights[3]);
    assert.equal(massThreshold(order(4), 4, weights, 0.8), weights[2]);
    assert.equal(massThreshold(order(4), 4, weights, 1), weights[0]);
    assert.equal(massThreshold(order(4), 4, weights, 0), weights[1]);
  });

  it('handles runs of equal weights and need beyond the total', () => {
    const weights = new Float64Array(1000).fill(0.5);
    assert.equal(massThreshold(order(1000), 1000, weights, 3), 0.5);
    assert.equal(massThreshold(order(1000), 1000, weights, 1e9), 0.5);
    assert.equal(massThreshold(order(0), 0, weights, 1), 0);
  });

  it('agrees with a sort on random weights', () => {
    const rng = new Sfc32(5);
    const weights = Float64Array.from({ length: 5000 }, () => rng.nextFloat());
    const sorted = Array.from(weights).sort((a, b) => b - a);
    let total = 0;
    for (const w of sorted) total += w;
    for (const fraction of [0.001, 0.3, 0.77, 0.999]) {
      let mass = 0;
      let i = 0;
      while (mass < fraction * total) mass += sorted[i++];
      assert.equal(massThreshold(order(5000), 5000, weights, fraction * total), sorted[i - 1]);
    }
  });
});

describe('sampling frequencies', () => {
  /** Pearson's chi-square statistic of observed counts against expected probabilities. */
  function chiSquare(counts: number[], probs: ArrayLike<number>, draws: number): number {
    let stat = 0;
    for (let i = 0; i < counts.length; i++) {
      const expected = probs[i] * draws;
      if (expected > 0) stat += (counts[i] - expected) ** 2 / expected;
      else assert.equal(counts[i], 0);
    }
    return stat;
  }
  const logits = Float32Array.from([1.5, 0.2, -0.3, 2.1, 0, 0.9, -1.2, 1.1]);
  const draws = 20_000;
  // df = 7; P(χ² > 29.9) = 1e-4 under a correct sampler, and the seed is fixed.
  const CHI2_LIMIT = 29.9;

  it('match the softmax at temperature 1', () => {
    const counts = histogram(draw(new Sampler(8, params({ seed: 3 }), []), logits, draws), 8);
    assert.ok(chiSquare(counts, softmax(logits), draws) < CHI2_LIMIT);
  });

  it('match the tempered softmax at temperature 0.5 and 2', () => {
    for (const temperature of [0.5, 2]) {
      const counts = histogram(draw(new Sampler(8, params({ seed: 4, temperature }), []), logits, draws), 8);
      assert.ok(chiSquare(counts, softmax(logits, temperature), draws) < CHI2_LIMIT, `T=${temperature}`);
    }
  });

  it('match the renormalized top-k distribution', () => {
    const probs = softmax(logits);
    const keep = new Set(sortedIds(probs).slice(0, 4));
    const mass = [...keep].reduce((s, id) => s + probs[id], 0);
    const truncated = Array.from(probs, (p, id) => (keep.has(id) ? p / mass : 0));
    const counts = histogram(draw(new Sampler(8, params({ seed: 5, topK: 4 }), []), logits, draws), 8);
    assert.ok(chiSquare(counts, truncated, draws) < 21.1); // df = 3, p = 1e-4
  });

  it('match the softmax when the live tokens sit in different blocks of a large vocabulary', () => {
    // The temperature-only path sums weights per 1,024-token block and re-weighs one block per draw.
    const positions = [3, 1500, 2047, 2048, 3071, 4000, 4500, 4999];
    const wide = new Float32Array(5000).fill(-Infinity);
    positions.forEach((pos, i) => (wide[pos] = logits[i]));
    const ids = draw(new Sampler(5000, params({ seed: 9 }), []), wide, draws);
    const counts = positions.map((pos) => ids.filter((id) => id === pos).length);
    assert.equal(counts.reduce((a, b) => a + b, 0), draws, 'a banned (-Infinity) token was drawn');
    assert.ok(chiSquare(counts, softmax(logits), draws) < CHI2_LIMIT);
  });

  /** Chi-square critical values at p = 1e-4 by degrees of freedom. */
  const CHI2_1E4 = [NaN, 15.1, 18.4, 21.1, 23.5, 25.7, 27.9, 29.9];

  /** probs restricted to `kept` and renormalized. */
  function renormalized(probs: Float64Array, kept: Set<number>): number[] {
    let mass = 0;
    for (const id of kept) mass += probs[id];
    return Array.from(probs, (p, id) => (kept.has(id) ? p / mass : 0));
  }

  it('match the renormalized nucleus under top-p, alone and with min-p', () => {
    for (const [temperature, topP, minP, seed] of [
      [1, 0.7, 0, 21],
      [0.6, 0.8, 0, 22],
      [1.3, 0.9, 0, 23],
      [1, 0.95, 0.3, 24],
    ]) {
      const probs = softmax(logits, temperature);
      const pmax = maxOf(probs);
      const kept = new Set([...referenceNucleus(probs, topP)].filter((id) => probs[id] >= minP * pmax));
      const sampler = new Sampler(8, params({ seed, temperature, topP, minP }), []);
      const counts = histogram(draw(sampler, logits, draws), 8);
      const stat = chiSquare(counts, renormalized(probs, kept), draws);
      assert.ok(stat < CHI2_1E4[kept.size - 1], `T ${temperature}, top_p ${topP}, min_p ${minP}: χ² ${stat}`);
    }
  });

  it('match the renormalized nucleus when the cut splits a crowded bin (proposals get rejected)', () => {
    // All eight within 0.0054 nats of the best: one histogram bin, which top-p 0.5 cuts in half.
    const crowded = Float32Array.from({ length: 8 }, (_, i) => -0.0005 * i);
    // min-p 0.9 keeps x ≥ ln 0.9 = -0.1054; -0.104, -0.107 and -0.11 share a bin (-0.097 to -0.108 nats).
    const split = Float32Array.from([0, -0.02, -0.05, -0.104, -0.107, -0.11, -0.3, -0.5]);
    for (const [name, l, topP, minP, size] of [
      ['top-p', crowded, 0.5, 0, 4],
      ['min-p', split, 0.99, 0.9, 4],
    ] as const) {
      const probs = softmax(l);
      const pmax = maxOf(probs);
      const kept = new Set([...referenceNucleus(probs, topP)].filter((id) => probs[id] >= minP * pmax));
      assert.equal(kept.size, size);
      const counts = histogram(draw(new Sampler(8, params({ seed: 25, topP, minP }), []), l, draws), 8);
      const stat = chiSquare(counts, renormalized(probs, kept), draws);
      assert.ok(stat < CHI2_1E4[size - 1], `${name}: χ² ${stat}`);
    }
  });

  it('is sharp enough to notice a temperature off by 10%', () => {
    const counts = histogram(draw(new Sampler(8, params({ seed: 3, temperature: 0.9 }), []), logits, draws), 8);
    assert.ok(chiSquare(counts, softmax(logits), draws) > CHI2_LIMIT);
  });
});

describe('penalties', () => {
  const vocab = 50;
  const base = Float32Array.from({ length: vocab }, (_, i) => (i % 2 === 0 ? 1 : -1) * (1 + i / 10));

  it('repetition penalty divides positive and multiplies negative logits of prompt and output tokens', () => {
    const p = new RepetitionPenalty(vocab, 1.5, [4, 7, 7]);
    p.accept(10);
    p.accept(4);
    const processed = base.slice();
    p.apply(processed);
    const expected = base.slice();
    expected[4] = Math.fround(base[4] / 1.5);
    expected[7] = Math.fround(base[7] * 1.5);
    expected[10] = Math.fround(base[10] / 1.5);
    assert.deepEqual(processed, expected);
  });

  it('presence and frequency penalties count generated tokens only', () => {
    const p = new PresenceFrequencyPenalty(vocab, 0.5, 0.25);
    for (const id of [3, 8, 3, 3]) p.accept(id);
    const processed = base.slice();
    p.apply(processed);
    const expected = base.slice();
    expected[3] = Math.fround(base[3] - (0.5 + 3 * 0.25));
    expected[8] = Math.fround(base[8] - (0.5 + 0.25));
    assert.deepEqual(processed, expected);
  });

  it('the sampler applies them in place and tracks the tokens it picks', () => {
    const sampler = new Sampler(
      vocab,
      params({ temperature: 0, repetitionPenalty: 2, presencePenalty: 1, frequencyPenalty: 0.5 }),
      [2, 3],
    );
    const first = base.slice();
    const firstId = sampler.sample(first).id;
    const expected = base.slice();
    expected[2] = base[2] / 2; // prompt: repetition only
    expected[3] = base[3] * 2;
    assert.deepEqual(first, expected);
    assert.equal(firstId, referenceArgmax(expected));

    const second = base.slice();
    sampler.sample(second);
    expected[firstId] = Math.fround(Math.fround(base[firstId] / 2) - 1.5); // generated once: both penalties
    assert.deepEqual(second, expected);
  });

  it('neutral values leave logits untouched', () => {
    const logits = base.slice();
    new Sampler(vocab, params({ temperature: 0 }), [1, 2, 3]).sample(logits);
    assert.deepEqual(logits, base);
  });
});

describe('logprobs', () => {
  const logits = gaussianLogits(PHI4_VOCAB, 61, 3);
  const bias = new Map([
    [referenceArgmax(logits), -100],
    [12345, 4],
  ]);
  const processed = logits.slice();
  processed[referenceArgmax(logits)] = -Infinity;
  processed[12345] += 4;
  const reference = logSoftmax(processed);
  const best = sortedIds(reference);

  for (const mode of [{ temperature: 0 }, { temperature: 0.6, topP: 0.9 }, { topK: 7 }, { minP: 0.1, temperature: 1.3 }]) {
    it(`are the log-softmax after bias, before temperature and truncation (${JSON.stringify(mode)})`, () => {
      const sampler = new Sampler(PHI4_VOCAB, params({ logitBias: bias, ...mode }), []);
      for (const n of [0, 5, MAX_TOP_LOGPROBS]) {
        const { id, logprob, top } = sampler.sample(logits.slice(), { topLogprobs: n });
        assert.ok(logprob);
        assert.equal(logprob.id, id);
        assert.ok(Math.abs(logprob.logprob - reference[id]) < 1e-5, `${logprob.logprob} vs ${reference[id]}`);
        if (n === 0) {
          assert.equal(top, undefined);
          continue;
        }
        assert.ok(top);
        assert.deepEqual(
          top.map((t) => t.id),
          best.slice(0, n),
        );
        for (const t of top) assert.ok(Math.abs(t.logprob - reference[t.id]) < 1e-5);
        for (let i = 1; i < top.length; i++) assert.ok(top[i - 1].logprob >= top[i].logprob);
      }
    });
  }

  const flat = gaussianLogits(PHI4_VOCAB, 62, 0.5);
  const flatReference = logSoftmax(flat);
  const flatBest = sortedIds(flatReference);
  for (const mode of [{ temperature: 1 }, { temperature: 1, topP: 0.9 }, { temperature: 0.7 }, { temperature: 0 }, { minP: 0.05 }]) {
    it(`are within 1e-5 of a float64 log-softmax on flat logits too (${JSON.stringify(mode)})`, () => {
      const sampler = new Sampler(PHI4_VOCAB, params(mode), []);
      for (let step = 0; step < 3; step++) {
        const { id, logprob, top } = sampler.sample(flat.slice(), { topLogprobs: MAX_TOP_LOGPROBS });
        assert.ok(logprob && top);
        assert.ok(Math.abs(logprob.logprob - flatReference[id]) < 1e-5, `${logprob.logprob} vs ${flatReference[id]}`);
        assert.deepEqual(top.map((t) => t.id), flatBest.slice(0, MAX_TOP_LOGPROBS));
        for (const t of top) assert.ok(Math.abs(t.logprob - flatReference[t.id]) < 1e-5);
      }
    });
  }

  it('list more alternatives than top_k, while drawing only from the top k', () => {
    const sampler = new Sampler(PHI4_VOCAB, params({ topK: 3, temperature: 5 }), []);
    const allowed = new Set(best.slice(0, 3));
    for (let step = 0; step < 50; step++) {
      const { id, top } = sampler.sample(processed.slice(), { topLogprobs: 5 });
      assert.ok(allowed.has(id), `token ${id} outside the top 3`);
      assert.deepEqual(top?.map((t) => t.id), best.slice(0, 5));
    }
  });

  it('are absent unless asked for', () => {
    const result = new Sampler(PHI4_VOCAB, params(), []).sample(logits.slice());
    assert.deepEqual(Object.keys(result), ['id']);
  });

  it('list only allowed tokens when fewer than N are', () => {
    const l = new Float32Array(100).fill(-Infinity);
    l[5] = 0;
    l[6] = Math.log(3);
    const { top, logprob } = new Sampler(100, params(), []).sample(l, { topLogprobs: 4 });
    assert.ok(top && logprob);
    assert.deepEqual(top.map((t) => t.id), [6, 5]);
    assert.ok(Math.abs(top[0].logprob - Math.log(0.75)) < 1e-6);
  });

  it('reject more than 20 alternatives', () => {
    assert.throws(() => new Sampler(100, params(), []).sample(new Float32Array(100), { topLogprobs: 21 }), RangeError);
  });
});

describe('input checks', () => {
  it('rejects invalid parameters and mismatched logits', () => {
    assert.throws(() => new Sampler(10, params({ temperature: -1 }), []), RangeError);
    assert.throws(() => new Sampler(10, params({ topP: 1.5 }), []), RangeError);
    assert.throws(() => new Sampler(10, params({ minP: -0.1 }), []), RangeError);
    assert.throws(() => new Sampler(10, params({ topK: 2.5 }), []), RangeError);
    assert.throws(() => new Sampler(10, params({ repetitionPenalty: 0 }), []), RangeError);
    assert.throws(() => new Sampler(10, params({ repetitionPenalty: 1.2 }), [10]), RangeError);
    assert.throws(() => new Sampler(10, params(), []).sample(new Float32Array(11)), RangeError);
  });

  it('treats NaN logits as unavailable', () => {
    const l = new Float32Array(10).fill(NaN);
    l[4] = -3;
    for (const mode of [{ temperature: 0 }, {}, { topK: 3 }, { topP: 0.5 }]) {
      const sampler = new Sampler(10, params(mode), []);
      const { id, logprob } = sampler.sample(l.slice(), { topLogprobs: 2 });
      assert.equal(id, 4);
      assert.equal(logprob?.logprob, 0);
    }
  });
});
