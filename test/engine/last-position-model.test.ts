/** The derived last-position graph must give the original export's last-position logits. */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { test } from 'node:test';
import { DecoderSession } from '../../src/engine/decoder-session.ts';
import { lastPositionModelPath } from '../../src/engine/last-position-model.ts';
import { FIXTURES } from '../setup/model-paths.ts';

test('last-position model: same logits as the original, original untouched', async () => {
  const dir = FIXTURES['tiny-exact'];
  const original = `${dir}/model.onnx`;
  const before = statSync(original);
  const full = await DecoderSession.create({ modelDir: dir, threads: 1, lastPositionLogits: false });
  const last = await DecoderSession.create({ modelDir: dir, threads: 1, kvUpdate: 'in-place' });
  try {
    assert.equal(full.description.logits, 'all-positions');
    assert.equal(last.description.logits, 'last-position');
    assert.equal(last.description.modelFile, lastPositionModelPath(original));
    const prompt = [200022, 311, 9125, 1001, 200020, 200021, 77, 88, 99, 200020, 200019];
    const a = full.newSequence();
    const b = last.newSequence();
    let la = await full.forward(a, prompt);
    let lb = await last.forward(b, prompt);
    for (let step = 0; step < 5; step++) {
      assert.equal(la.length, 200064);
      assert.equal(lb.length, 200064);
      let d = 0;
      for (let i = 0; i < la.length; i++) d = Math.max(d, Math.abs(la[i] - lb[i]));
      assert.ok(d <= 1e-4, `step ${step}: max abs diff ${d}`);
      la = await full.forward(a, [500 + step]);
      lb = await last.forward(b, [500 + step]);
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
