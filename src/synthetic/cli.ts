/**
 * npm run model:build -- --preset NAME --out DIR
 * Builds a random-weight model folder with the exact layout and graph of an
 * onnxruntime-genai CPU int4 export: Phi-4-mini's, or Qwen2.5's for the qwen presets.
 */
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { buildSyntheticModel } from './build.ts';
import { stampSyntheticModel } from './ensure.ts';
import { PRESETS, isPresetName } from './presets.ts';

const { values } = parseArgs({
  options: {
    preset: { type: 'string', default: 'tiny' },
    out: { type: 'string' },
    seed: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});

const presets = Object.keys(PRESETS).join(', ');
if (values.help || !values.out) {
  console.log(`usage: npm run model:build -- --preset NAME --out DIR [--seed N]\npresets: ${presets}`);
  process.exit(values.help ? 0 : 2);
}
if (!isPresetName(values.preset)) {
  console.error(`unknown preset "${values.preset}"; presets: ${presets}`);
  process.exit(2);
}

const bar = new cliProgress.SingleBar(
  { format: `${values.preset} [{bar}] {percentage}% | {value}/{total} MB | ETA {eta}s`, hideCursor: true },
  cliProgress.Presets.shades_classic,
);
let started = false;
const t0 = performance.now();
await buildSyntheticModel({
  preset: values.preset,
  outDir: values.out,
  overrides: values.seed ? { seed: Number(values.seed) } : undefined,
  onProgress: (written, total) => {
    const mb = (n: number) => Math.round(n / 1048576);
    if (!started) {
      bar.start(mb(total), 0);
      started = true;
    }
    bar.update(mb(written));
  },
});
if (started) bar.stop();
// The stamp lets benchmarks and tests reuse the folder instead of building it again.
stampSyntheticModel(values.preset, values.out, values.seed ? Number(values.seed) : undefined);
console.log(`built ${values.preset} in ${values.out} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
