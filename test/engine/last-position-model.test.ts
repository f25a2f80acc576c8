/** The derived last-position graph (the export's attention) must give the original export's logits. */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { test } from 'node:test';
import { lastPositionModelPath } from '../../src/engine/graphs/last-position-model.ts';
import { FullRecompute, Stepper, maxAbsDiff } from '../helpers/decoder.ts';
import { FIXTURES } from '../setup/model-paths.ts';

test('last-position model: same logits as the original, original untouched', async () => {
  const dir = FIXTURES['tiny-exact'];
  const original = `${dir}/model.onnx`;
  const before = statSync(original);
  const full = await FullRecompute.open(dir);
  const last = await Stepper.open({ modelDir: dir, threads: 1, kvUpdate: 'in-place' });
  try {
    assert.equal(last.decoder.description.logits, 'last-position');
    assert.equal(last.decoder.description.modelFile, lastPositionModelPath(original));
    const tokens = [200022, 311, 9125, 1001, 200020, 200021, 77, 88, 99, 200020, 200019];
    const block = last.block();
    let lb = await last.prefill(block, tokens);
    for (let step = 0; step < 5; step++) {
      const la = await full.logits(tokens);
      assert.equal(lb.length, 200064);
      assert.ok(maxAbsDiff(la, lb) <= 1e-4, `step ${step}: max abs diff ${maxAbsDiff(la, lb)}`);
      tokens.push(500 + step);
      [lb] = await last.decode(block, [500 + step]);
    }
  } finally {
    await full.release();
    await last.release();
  }
  const after = statSync(original);
  assert.equal(after.size, before.size);
  assert.equal(after.mtimeMs, before.mtimeMs);
  // The derived graph references the original's external data instead of copying weights.
  assert.ok(statSync(lastPositionModelPath(original)).size < before.size + 4096);
});
