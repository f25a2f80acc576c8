/** A model folder's resident-weight estimate (what the registry fits models by), read without loading it. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { integerWeightsFor } from '../../src/engine/cpu-features.ts';
import { describeModelFolder } from '../../src/server/models/catalog.ts';

const dir = mkdtempSync(join(tmpdir(), 'catalog-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test("weightBytes counts the export and, with the int8 path, only the int8 weights of this CPU's type", () => {
  const sizes: Record<string, number> = {
    'model.onnx': 10,
    'model.onnx.data': 100,
    'model.batched.onnx': 7, // derived graph, weights shared with the export
    'model.batched-int8.onnx.0a1b2c.data': 1_000,
    'model.batched-int8-u8.onnx.3d4e5f.data': 10_000,
  };
  for (const [name, size] of Object.entries(sizes)) writeFileSync(join(dir, name), Buffer.alloc(size));
  assert.equal(describeModelFolder(dir, 'm', [], false).weightBytes, 110);
  const int8 = integerWeightsFor() === 'u8' ? 10_000 : 1_000;
  assert.equal(describeModelFolder(dir, 'm', [], true).weightBytes, 110 + int8);
});
