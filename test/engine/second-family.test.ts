/**
 * The second model family through the real engine: tiny-qwen (Qwen2.5's export graph, QKV bias,
 * 7 query heads per KV head) gets the batched graph, and greedy generations batched together or
 * served from the prefix cache give exactly the tokens of plain one-at-a-time generation, as
 * batching.test.ts shows for the Phi family; its int8 graph keeps the biases; a JSON schema holds
 * over its vocabulary and ends at its own eos.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import onnxProto from 'onnx-proto';
import { Engine } from '../../src/engine/engine.ts';
import { integerWeightsFor } from '../../src/engine/cpu-features.ts';
import { derivedModelPath } from '../../src/engine/graphs/derived-model.ts';
import { int8Variant } from '../../src/engine/graphs/int8-model.ts';
import { DEFAULT_SAMPLING, type EngineOptions, type GenerationEvent, type StepRecord } from '../../src/engine/types.ts';
import { ChatTokenizer } from '../../src/tokenizer/tokenizer.ts';
import { Stepper, maxAbsDiff } from '../helpers/decoder.ts';
import { FIXTURES } from '../setup/model-paths.ts';

type Done = Extract<GenerationEvent, { type: 'done' }>;

/** <|im_end|> and <|endoftext|>, as genai_config.json lists them. */
const EOS = [151645, 151643];
/** Greedy, with the eos ids banned so every generation runs to max_tokens. */
const GREEDY = { ...DEFAULT_SAMPLING, temperature: 0, logitBias: new Map(EOS.map((id) => [id, -100])) };
const MAX_TOKENS = 16;

/** Chat-shaped prompts: `<|im_start|>user\n` ... `<|im_end|>\n<|im_start|>assistant\n` around ordinary ids. */
const prompt = (seed: number, length: number) => [
  151644, 872, 198,
  ...Array.from({ length }, (_, i) => 1000 + ((i * 7919 + seed * 104729) % 150000)),
  151645, 198, 151644, 77091, 198,
];
const PROMPTS = [prompt(1, 25), prompt(2, 80), prompt(3, 4), prompt(4, 120), prompt(5, 40)];

async function generate(engine: Engine, promptIds: number[], maxTokens = MAX_TOKENS): Promise<{ ids: number[]; done: Done }> {
  const ids: number[] = [];
  for await (const e of engine.generate({ promptIds, maxTokens, sampling: GREEDY })) {
    if (e.type === 'token') ids.push(e.id);
    else if (e.type === 'done') return { ids, done: e };
  }
  throw new Error('no done event');
}

function load(opts: Partial<EngineOptions>): Promise<Engine> {
  // Int4 steps only: an int8 step (taken by step size) would not give exactly one-at-a-time's logits.
  return Engine.load({ modelDir: FIXTURES['tiny-qwen'], threads: 2, contextLength: 4096, int8Steps: 'off', ...opts });
}

let reference: { ids: number[]; done: Done }[];

before(async () => {
  const engine = await load({ prefixCache: false });
  try {
    assert.equal(engine.info.modelType, 'qwen2');
    assert.equal(engine.session.kvUpdate, 'batched', engine.session.kvNote);
    reference = [];
    for (const p of PROMPTS) reference.push(await generate(engine, p));
  } finally {
    await engine.close();
  }
});

describe('tiny-qwen', () => {
  let engine: Engine;
  before(async () => {
    engine = await load({ prefillChunk: 32, maxBatchTokens: 24 });
  });
  after(async () => engine.close());

  test('prompts served concurrently give exactly the tokens they give one at a time, in shared steps', async () => {
    const seen: StepRecord[] = [];
    engine.onStep((s) => {
      if (s.tokens > 0) seen.push(s);
    });
    const results = await Promise.all(PROMPTS.map((p) => generate(engine, p)));
    for (const [i, r] of results.entries()) {
      assert.deepEqual(r.ids, reference[i].ids, `prompt ${i}`);
      assert.equal(r.done.finishReason, 'length');
    }
    assert.ok(Math.max(...seen.map((s) => s.sequences)) >= 3, JSON.stringify(seen.map((s) => s.sequences)));
    assert.ok(seen.some((s) => s.sequences > 1 && s.tokens > s.sequences), 'no prompt chunk rode along with decodes');
  });

  test('a prefix-cache hit, whole or partial, gives exactly what a cold server gives', async () => {
    assert.deepEqual((await generate(engine, PROMPTS[3])).ids, reference[3].ids);
    const again = await generate(engine, PROMPTS[3]);
    assert.equal(again.done.cachedTokens, PROMPTS[3].length - 1);
    assert.deepEqual(again.ids, reference[3].ids);
    // The next turn: the first turn's prompt and answer come from the cache.
    assert.deepEqual((await generate(engine, PROMPTS[1])).ids, reference[1].ids);
    const turn2 = [...PROMPTS[1], ...reference[1].ids, 151645, 198, 151644, 872, 198, 42, 43, 151645, 198, 151644, 77091, 198];
    const hit = await generate(engine, turn2);
    assert.equal(hit.done.cachedTokens, PROMPTS[1].length + reference[1].ids.length - 1);
    const cold = await load({ prefixCache: false });
    try {
      assert.deepEqual(hit.ids, (await generate(cold, turn2)).ids);
    } finally {
      await cold.close();
    }
  });
});

test('tiny-qwen, int8 steps: the projections become integer GEMMs, the bias Adds stay, logits stay near the int4 path', async () => {
  const dir = FIXTURES['tiny-qwen'];
  const int4 = await Stepper.open({ modelDir: dir, threads: 2, int8Steps: 'off' });
  const int8 = await Stepper.open({ modelDir: dir, threads: 2, int8Steps: 'on', int8MinRows: 1 });
  try {
    assert.equal(int8.decoder.description.int8.enabled, true);
    const graph = onnxProto.onnx.ModelProto.decode(readFileSync(derivedModelPath(join(dir, 'model.onnx'), int8Variant(integerWeightsFor())))).graph!;
    const add = graph.node!.find((n) => n.name === '/model/layers.0/attn/qkv_proj/Add')!;
    const producer = graph.node!.find((n) => n.output?.includes(add.input![0]))!;
    assert.equal(producer.name, '/model/layers.0/attn/qkv_proj/MatMul/int8/Sub');
    const prompt = Array.from({ length: 40 }, (_, i) => 300 + i * 11);
    const blocks = [int4.block(), int8.block()];
    const pairs: [Float32Array, Float32Array][] = [[await int4.prefill(blocks[0], prompt, 16), await int8.prefill(blocks[1], prompt, 16)]];
    for (let step = 0; step < 4; step++) pairs.push([(await int4.decode(blocks[0], [900 + step]))[0], (await int8.decode(blocks[1], [900 + step]))[0]]);
    // Measured: at most 0.28 (mean 0.046) on logits spread over ~4 units; the bounds int8.test.ts uses.
    for (const [i, [x, y]] of pairs.entries()) {
      const mean = x.reduce((acc, v, j) => acc + Math.abs(v - y[j]), 0) / x.length;
      assert.ok(maxAbsDiff(x, y) <= 1 && mean <= 0.15, `step ${i}: max ${maxAbsDiff(x, y)}, mean ${mean}`);
    }
  } finally {
    await int4.release();
    await int8.release();
  }
});

test('tiny-qwen, constrained: a JSON schema is held over Qwen2.5\'s vocabulary and ends at <|im_end|>', async () => {
  const schema = {
    type: 'object',
    properties: { color: { enum: ['red', 'green', 'blue'] }, count: { type: 'integer', minimum: 0, maximum: 1000 } },
    required: ['color', 'count'],
    additionalProperties: false,
  };
  const engine = await load({ prefixCache: false });
  try {
    const tok = await ChatTokenizer.load(FIXTURES['tiny-qwen']);
    const ids: number[] = [];
    let done: Done | undefined;
    const constraint = { grammar: { grammar: { type: 'json_schema', schema: JSON.stringify(schema) } as const, endIds: EOS } };
    for await (const e of engine.generate({ promptIds: PROMPTS[0], maxTokens: 120, sampling: { ...DEFAULT_SAMPLING, temperature: 0 }, constraint })) {
      if (e.type === 'token') ids.push(e.id);
      else if (e.type === 'done') done = e;
    }
    // Ended by an eos id the grammar allowed once the object closed (the eos itself is not a token of the answer).
    assert.equal(done?.finishReason, 'stop', tok.decode(ids));
    const value = JSON.parse(tok.decode(ids)) as { color: string; count: number };
    assert.ok(['red', 'green', 'blue'].includes(value.color) && Number.isInteger(value.count), JSON.stringify(value));
  } finally {
    await engine.close();
  }
});
