/**
 * Constrained decoding through the real engine (worker, scheduler, xgrammar masks) on tiny-exact:
 * the random weights would never write JSON or a tool call by themselves, so every valid output
 * here is the grammar's doing. Constrained sequences batched together give exactly what each gives
 * alone, and a grammar xgrammar rejects fails alone without harming the engine.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Ajv } from 'ajv';
import { Engine } from '../../src/engine/engine.ts';
import { DEFAULT_SAMPLING, type ConstraintSpec, type GenerationEvent, type SamplingParams } from '../../src/engine/types.ts';
import { ChatTokenizer } from '../../src/tokenizer/tokenizer.ts';
import { FIXTURES } from '../setup/model-paths.ts';

const TOOL_CALL = 200025;
const TOOL_CALL_END = 200026;
const EOS = [200020, 199999];
const GREEDY: SamplingParams = { ...DEFAULT_SAMPLING, temperature: 0 };

const SCHEMA = {
  type: 'object',
  properties: {
    color: { enum: ['red', 'green', 'blue'] },
    count: { type: 'integer', minimum: 0, maximum: 1000 },
    ok: { type: 'boolean' },
  },
  required: ['color', 'count', 'ok'],
  additionalProperties: false,
};
const CALLS = {
  type: 'array',
  minItems: 1,
  items: {
    type: 'object',
    properties: { name: { const: 'get_weather' }, arguments: { type: 'object', properties: { unit: { enum: ['c', 'f'] }, days: { type: 'integer', minimum: 1, maximum: 7 } }, required: ['unit', 'days'] } },
    required: ['name', 'arguments'],
  },
};

let engine: Engine;
let tok: ChatTokenizer;
const validate = new Ajv().compile(SCHEMA);
const validateCalls = new Ajv().compile(CALLS);

before(async () => {
  engine = await Engine.load({ modelDir: FIXTURES['tiny-exact'], threads: 2, contextLength: 2048, int8Steps: 'off' });
  tok = await ChatTokenizer.load(FIXTURES['tiny-exact']);
});
after(() => engine?.close());

const prompt = (seed: number) => Array.from({ length: 20 + seed }, (_, i) => 1000 + ((i * 7919 + seed * 104729) % 150000));

async function run(constraint: ConstraintSpec | undefined, opts: { seed?: number; sampling?: SamplingParams; maxTokens?: number; extraStop?: number[] } = {}) {
  const ids: number[] = [];
  let done: Extract<GenerationEvent, { type: 'done' }> | undefined;
  const request = {
    promptIds: prompt(opts.seed ?? 1),
    maxTokens: opts.maxTokens ?? 120,
    sampling: opts.sampling ?? GREEDY,
    ...(constraint ? { constraint } : {}),
    ...(opts.extraStop ? { extraStopTokenIds: opts.extraStop } : {}),
  };
  for await (const e of engine.generate(request)) {
    if (e.type === 'token') ids.push(e.id);
    if (e.type === 'done') done = e;
  }
  return { ids, done: done!, text: tok.decode(ids) };
}

const schemaGrammar = { type: 'json_schema', schema: JSON.stringify(SCHEMA) } as const;

describe('grammar-constrained generation', () => {
  test('without a grammar the random model writes no JSON (the control)', async () => {
    const r = await run(undefined, { maxTokens: 30 });
    assert.throws(() => JSON.parse(r.text));
  });

  test('a JSON schema: greedy and sampled outputs parse, validate and end by themselves', async () => {
    for (const [i, sampling] of [GREEDY, { ...DEFAULT_SAMPLING, seed: 7 }, { ...DEFAULT_SAMPLING, temperature: 1.5, topP: 0.9, seed: 8 }].entries()) {
      const r = await run({ grammar: { grammar: schemaGrammar, endIds: EOS } }, { seed: i + 1, sampling });
      assert.equal(r.done.finishReason, 'stop', `run ${i}: ${r.text}`);
      assert.ok(validate(JSON.parse(r.text)), `run ${i}: ${r.text}`);
    }
  });

  test('json_object: the output is one JSON object', async () => {
    // A bias towards "{}" lets the random model finish; the mask removes the higher "hello".
    const hello = tok.encode('hello', { addSpecialTokens: false });
    const braces = tok.encode('{}', { addSpecialTokens: false });
    assert.equal(hello.length, 1);
    assert.equal(braces.length, 1);
    const sampling = { ...GREEDY, logitBias: new Map([[hello[0], 100], [braces[0], 50]]) };
    const free = await run(undefined, { sampling, maxTokens: 3 });
    assert.match(free.text, /^hello/);
    const r = await run({ grammar: { grammar: { type: 'json_object' }, endIds: EOS } }, { sampling });
    assert.deepEqual(JSON.parse(r.text), {});
    assert.equal(r.done.finishReason, 'stop');
  });

  test('a forced tool call: the opener, a valid call array, then the closing token ends it', async () => {
    const r = await run({ prefix: [TOOL_CALL], grammar: { grammar: { type: 'json_schema', schema: JSON.stringify(CALLS) }, endIds: [TOOL_CALL_END] } }, { extraStop: [TOOL_CALL_END] });
    assert.equal(r.ids[0], TOOL_CALL);
    assert.equal(r.done.finishReason, 'stop');
    const json = tok.decode(r.ids.slice(1));
    assert.ok(validateCalls(JSON.parse(json)), json);
  });

  test('a trigger: free text until the opener, then the call is held to its schema', async () => {
    const sampling = { ...GREEDY, logitBias: new Map([[TOOL_CALL, 100]]) };
    const r = await run({ trigger: { id: TOOL_CALL, grammar: { type: 'json_schema', schema: JSON.stringify(CALLS) }, endIds: [TOOL_CALL_END] } }, { sampling, extraStop: [TOOL_CALL_END] });
    assert.equal(r.ids[0], TOOL_CALL);
    assert.ok(validateCalls(JSON.parse(tok.decode(r.ids.slice(1)))));
  });

  test('a banned token is never sampled, whatever its bias', async () => {
    const sampling = { ...GREEDY, logitBias: new Map([[TOOL_CALL, 100]]) };
    const r = await run({ banned: [TOOL_CALL] }, { sampling, maxTokens: 5 });
    assert.equal(r.ids.length, 5);
    assert.ok(!r.ids.includes(TOOL_CALL));
  });

  test('constrained sequences batched together give exactly what each gives alone', async () => {
    const spec = (i: number): ConstraintSpec => (i % 2 === 0 ? { grammar: { grammar: schemaGrammar, endIds: EOS } } : { banned: [TOOL_CALL] });
    const alone = [];
    for (let i = 0; i < 4; i++) alone.push(await run(spec(i), { seed: i + 3, maxTokens: 40 }));
    const together = await Promise.all([0, 1, 2, 3].map((i) => run(spec(i), { seed: i + 3, maxTokens: 40 })));
    assert.deepEqual(together.map((r) => r.ids), alone.map((r) => r.ids));
  });

  test('a grammar xgrammar rejects is reported, fails its request alone, and the engine goes on', async () => {
    const bad = { type: 'json_schema', schema: '{"$ref": "#/$defs/missing"}' } as const;
    assert.match((await engine.checkGrammar(bad)) ?? '', /rejected/);
    const failed = await run({ grammar: { grammar: bad, endIds: EOS } });
    assert.equal(failed.done.finishReason, 'error');
    assert.equal(await engine.checkGrammar(schemaGrammar), undefined);
    const r = await run({ grammar: { grammar: schemaGrammar, endIds: EOS } });
    assert.ok(validate(JSON.parse(r.text)));
  });
});
