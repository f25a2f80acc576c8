/** The integer GEMM's weight type follows the CPU: s8 only where VNNI keeps its sums exact. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cpuFlags, integerWeightsFor } from '../../src/engine/cpu-features.ts';

const dir = mkdtempSync(join(tmpdir(), 'cpuinfo-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function cpuinfo(flags: string): string {
  const path = join(dir, `cpuinfo-${flags.length}`);
  writeFileSync(path, `processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: ${flags}\nbugs\t\t: spectre_v1\n\nprocessor\t: 1\nflags\t\t: ${flags}\n`);
  return path;
}

test('the flags line of /proc/cpuinfo is read; a missing file gives none', () => {
  assert.deepEqual([...cpuFlags(cpuinfo('fpu sse4_2 avx2 fma'))], ['fpu', 'sse4_2', 'avx2', 'fma']);
  assert.equal(cpuFlags(join(dir, 'absent')).size, 0);
});

test('s8 weights with AVX-512 VNNI, AVX-VNNI or AMX; u8 with AVX2 or AVX-512 alone, or when unknown', () => {
  assert.equal(integerWeightsFor(cpuFlags(cpuinfo('avx2 avx512f avx512bw avx512_vnni'))), 's8');
  assert.equal(integerWeightsFor(new Set(['avx2', 'avx_vnni'])), 's8');
  assert.equal(integerWeightsFor(new Set(['avx512_vnni', 'amx_int8', 'amx_tile'])), 's8');
  assert.equal(integerWeightsFor(new Set(['avx2', 'fma'])), 'u8');
  assert.equal(integerWeightsFor(new Set(['avx2', 'avx512f', 'avx512bw'])), 'u8');
  assert.equal(integerWeightsFor(new Set()), 'u8');
});
