/** Builds the model fixtures the tests read (skipped when they are already up to date). */
import { ensureSyntheticModel } from '../../src/synthetic/ensure.ts';
import { FIXTURES } from './model-paths.ts';

for (const [preset, dir] of Object.entries(FIXTURES)) {
  const t0 = performance.now();
  const { built } = await ensureSyntheticModel(preset as keyof typeof FIXTURES, dir);
  console.log(`fixture ${preset}: ${built ? `built in ${((performance.now() - t0) / 1000).toFixed(1)} s` : 'up to date'} (${dir})`);
}
