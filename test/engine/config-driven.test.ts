/** Nothing about the model shape is hard-coded: a differently shaped export loads and generates. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Engine } from '../../src/engine/engine.ts';
import { DEFAULT_SAMPLING } from '../../src/engine/types.ts';
import { FIXTURES } from '../setup/model-paths.ts';

const SHAPES = [
  {
    fixture: 'tiny-alt',
    what: '3 layers, 12 query and 4 KV heads of 32, plain RoPE, 4k context',
    info: { modelType: 'phi3', numLayers: 3, numKvHeads: 4, headSize: 32, contextLength: 4096, vocabSize: 200064, eosTokenIds: [200020, 199999] },
  },
  {
    fixture: 'tiny-qwen',
    what: 'the Qwen2 family: QKV bias, 14 query and 2 KV heads of 32, theta 1e6, 32k context',
    info: { modelType: 'qwen2', numLayers: 3, numKvHeads: 2, headSize: 32, contextLength: 32768, vocabSize: 151936, eosTokenIds: [151645, 151643] },
  },
] as const;

for (const { fixture, what, info } of SHAPES) {
  test(`${fixture} (${what}) loads and generates`, async () => {
    // Stops only at max_tokens: the random model may sample an eos id.
    const sampling = { ...DEFAULT_SAMPLING, seed: 1, logitBias: new Map(info.eosTokenIds.map((id) => [id, -100])) };
    const engine = await Engine.load({ modelDir: FIXTURES[fixture], threads: 1 });
    try {
      for (const [key, value] of Object.entries(info)) assert.deepEqual(engine.info[key as keyof typeof info], value, key);
      assert.equal(engine.session.kvUpdate, 'batched');
      let tokens = 0;
      let finish: string | undefined;
      for await (const e of engine.generate({ promptIds: [1, 2, 3, 4, 5], maxTokens: 8, sampling })) {
        if (e.type === 'token') tokens++;
        else if (e.type === 'done') finish = e.finishReason;
      }
      assert.equal(tokens, 8);
      assert.equal(finish, 'length');
    } finally {
      await engine.close();
    }
  });
}

test('a missing model folder gets an error that names the missing file', async () => {
  await assert.rejects(Engine.load({ modelDir: '/nonexistent/model' }), /genai_config\.json is missing/);
});

test('--context-length caps the context below the model\'s own', async () => {
  const engine = await Engine.load({ modelDir: FIXTURES.tiny, threads: 1, contextLength: 24 });
  try {
    assert.equal(engine.info.contextLength, 24);
    let tokens = 0;
    let finish: string | undefined;
    for await (const e of engine.generate({ promptIds: Array.from({ length: 20 }, (_, i) => 100 + i), maxTokens: 100, sampling: { ...DEFAULT_SAMPLING, seed: 2 } })) {
      if (e.type === 'token') tokens++;
      else if (e.type === 'done') finish = e.finishReason;
    }
    // 20 prompt positions + 4 generated fill the 24-position context.
    assert.equal(finish, 'length');
    assert.equal(tokens, 4);
  } finally {
    await engine.close();
  }
});

test('a folder without its model file gets an error naming the file', async () => {
  const { mkdtempSync, copyFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'no-model-'));
  try {
    copyFileSync(join(FIXTURES.tiny, 'genai_config.json'), join(dir, 'genai_config.json'));
    await assert.rejects(Engine.load({ modelDir: dir }), (err: Error) => err.message.includes(join(dir, 'model.onnx')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--device cuda without a CUDA build falls back to CPU and says why', async () => {
  const engine = await Engine.load({ modelDir: FIXTURES['tiny-alt'], threads: 1, device: 'cuda' });
  try {
    if (engine.session.executionProvider === 'cpu') assert.match(engine.session.deviceNote ?? '', /CUDA execution provider unavailable/);
    else assert.equal(engine.session.deviceNote, undefined);
  } finally {
    await engine.close();
  }
});

test('an export with an input the engine does not feed gets an error naming that input', async () => {
  const { mkdtempSync, readFileSync, writeFileSync, copyFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const onnxProto = (await import('onnx-proto')).default;
  const { onnx } = onnxProto;
  const dir = mkdtempSync(join(tmpdir(), 'extra-input-'));
  try {
    const model = onnx.ModelProto.decode(readFileSync(join(FIXTURES['tiny-alt'], 'model.onnx')));
    // An image input like a multimodal export's: consumed by a node so ORT keeps it.
    model.graph!.input!.push({ name: 'pixel_values', type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'n' }] } } } });
    model.graph!.output!.push({ name: 'pixel_echo', type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'n' }] } } } });
    model.graph!.node!.push({ name: 'echo', opType: 'Identity', input: ['pixel_values'], output: ['pixel_echo'] });
    writeFileSync(join(dir, 'model.onnx'), onnx.ModelProto.encode(model).finish());
    // A copy, not a symlink: ORT refuses external data that resolves outside the model folder.
    copyFileSync(join(FIXTURES['tiny-alt'], 'model.onnx.data'), join(dir, 'model.onnx.data'));
    copyFileSync(join(FIXTURES['tiny-alt'], 'genai_config.json'), join(dir, 'genai_config.json'));
    await assert.rejects(Engine.load({ modelDir: dir, threads: 1 }), /unsupported model input\(s\): pixel_values/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
