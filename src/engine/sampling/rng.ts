/**
 * Seeded randomness for sampling. A request with a seed must replay the same tokens, so the
 * generator is a small deterministic one (sfc32) rather than Math.random, whose stream cannot be seeded.
 */
import { randomInt } from 'node:crypto';

export interface Rng {
  /** Uniform in [0, 1). */
  nextFloat(): number;
}

// Reinterpreting the seed's float64 bits lets any number (negative, above 2^32, fractional) be a
// distinct seed without lossy modular arithmetic.
const seedFloat = new Float64Array(1);
const seedWords = new Uint32Array(seedFloat.buffer);

/** splitmix32: spreads structured seeds (0, 1, 2, ...) into unrelated generator states. */
function mix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** sfc32 by Chris Doty-Humphrey: passes PractRand, needs only 32-bit integer ops, which V8 keeps unboxed. */
export class Sfc32 implements Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
    seedFloat[0] = seed;
    const lo = seedWords[0];
    const hi = seedWords[1];
    this.a = mix32(lo);
    this.b = mix32(hi ^ 0x6a09e667);
    this.c = mix32(lo ^ 0xbb67ae85);
    this.d = 1;
    // The first outputs of sfc32 still correlate with the seed words; the author advises discarding them.
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** 53 random bits, so tokens with probabilities far below 2^-32 are still drawn at the right rate. */
  nextFloat(): number {
    const high = this.nextUint32() >>> 5;
    const low = this.nextUint32() >>> 6;
    return (high * 67108864 + low) / 9007199254740992;
  }
}

/** A fresh seed for requests that gave none; a safe integer so it can be logged and replayed exactly. */
export function randomSeed(): number {
  return randomInt(0, 2 ** 48 - 1);
}
