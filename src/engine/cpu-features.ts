/**
 * Which weight type onnxruntime's integer GEMM gets right on this CPU. Its u8 x s8 kernels use
 * VNNI (vpdpbusd, 32-bit sums) where the CPU has it; without VNNI (AVX2 or AVX-512 alone) they
 * use vpmaddubsw, whose pairwise 16-bit sums saturate on full-range values and give wrong
 * products. Weights stored as u8 around a zero point of 128 take the u8 x u8 kernels, which
 * widen to 16 bits before multiplying and are exact everywhere.
 */
import { readFileSync } from 'node:fs';

export type IntegerWeights = 's8' | 'u8';

const VNNI_FLAGS = ['avx512_vnni', 'avx_vnni', 'amx_int8'];

/** The CPU's feature flags (Linux); empty where they cannot be read. */
export function cpuFlags(cpuinfo = '/proc/cpuinfo'): Set<string> {
  try {
    const line = /^flags\s*:(.*)$/m.exec(readFileSync(cpuinfo, 'utf8'));
    return new Set(line ? line[1].trim().split(/\s+/) : []);
  } catch {
    return new Set();
  }
}

/** s8 weights where the CPU has VNNI; u8 (exact, slower) where it does not or cannot tell. */
export function integerWeightsFor(flags: ReadonlySet<string> = cpuFlags()): IntegerWeights {
  return VNNI_FLAGS.some((f) => flags.has(f)) ? 's8' : 'u8';
}
