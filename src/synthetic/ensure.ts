/**
 * Builds a synthetic model folder unless an up-to-date one is already there. A stamp file
 * records the preset and a hash of the builder's sources, so a changed builder rebuilds.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSyntheticModel } from './build.ts';
import type { PresetName } from './presets.ts';

export const STAMP_FILE = 'synthetic-model.json';

function builderHash(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const h = createHash('sha256');
  // The builder plus the ONNX graph layer it writes through.
  for (const dir of [here, join(here, '..', 'onnx')]) {
    for (const f of readdirSync(dir).sort()) {
      if (/\.(ts|js)$/.test(f)) h.update(f).update(readFileSync(join(dir, f)));
    }
  }
  return h.digest('hex').slice(0, 16);
}

export function isSyntheticModel(dir: string): boolean {
  return existsSync(join(dir, STAMP_FILE));
}

export async function ensureSyntheticModel(
  preset: PresetName,
  outDir: string,
  onProgress?: (written: number, total: number) => void,
): Promise<{ built: boolean }> {
  const stampPath = join(outDir, STAMP_FILE);
  const stamp = { preset, builder: builderHash() };
  if (existsSync(stampPath) && existsSync(join(outDir, 'model.onnx'))) {
    const old = JSON.parse(readFileSync(stampPath, 'utf8')) as typeof stamp & { seed?: number };
    if (old.preset === stamp.preset && old.builder === stamp.builder && old.seed === undefined) return { built: false };
  }
  await buildSyntheticModel({ preset, outDir, onProgress });
  stampSyntheticModel(preset, outDir);
  return { built: true };
}

/**
 * Marks a folder as synthetic, built from the preset by the current builder, so ensureSyntheticModel
 * reuses it; a folder built with another seed is not the preset and is rebuilt when ensured.
 */
export function stampSyntheticModel(preset: PresetName, outDir: string, seed?: number): void {
  const stamp = { preset, builder: builderHash(), ...(seed !== undefined ? { seed } : {}), note: 'random weights: output is meaningless' };
  writeFileSync(join(outDir, STAMP_FILE), JSON.stringify(stamp, null, 2) + '\n');
}
