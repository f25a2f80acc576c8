/** The engine facade on the real worker + ONNX session. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Engine } from '../../src/engine/engine.ts';
import { DEFAULT_SAMPLING, type GenerationEvent, type GenerationRequest, type SamplingParams } from '../../src/engine/types.ts';
import { FIXTURES } from '../setup/model-paths.ts';

let engine: Engine;
before(async () => {
  engine = await Engine.load({ modelDir: FIXTURES.tiny, threads: 2 });
});
after(async () => {
  await engine.close();
});

const PROMPT = [200022, 9125, 382, 261, 1746, 200020, 200021, 13225, 11, 2375, 0, 200020, 200019];

function request(sampling: Partial<SamplingParams>, maxTokens = 16, extra: Partial<GenerationRequest> = {}): GenerationRequest {
  return { promptIds: PROMPT, maxTokens, sampling: { ...DEFAULT_SAMPLING, ...sampling }, ...extra };
}

async function collect(events: AsyncIterable<GenerationEvent>): Promise<{ ids: number[]; done: Extract<GenerationEvent, { type: 'done' }>; tokens: Extract<GenerationEvent, { type: 'token' }>[] }> {
  const tokens: Extract<GenerationEvent, { type: 'token' }>[] = [];
  for await (const e of events) {
    if (e.type === 'token') tokens.push(e);
    else if (e.type === 'done') return { ids: tokens.map((t) => t.id), done: e, tokens };
  }
  throw new Error('stream ended without a done event');
}

test('reads the model shape from the folder', () => {
  assert.equal(engine.info.numLayers, 2);
  assert.equal(engine.info.numKvHeads, 2);
  assert.equal(engine.info.headSize, 64);
  assert.equal(engine.info.vocabSize, 200064);
  assert.deepEqual(engine.info.eosTokenIds, [200020, 199999]);
  assert.equal(engine.info.contextLength, 131072);
});

test('generates max_tokens tokens and reports usage', async () => {
  const { ids, done } = await collect(engine.generate(request({ temperature: 1, seed: 7 }, 12)));
  assert.equal(done.finishReason, 'length');
  assert.equal(done.completionTokens, 12);
  assert.equal(done.promptTokens, PROMPT.length);
  assert.equal(ids.length, 12);
  for (const id of ids) assert.ok(id >= 0 && id < 200064);
  assert.deepEqual([engine.stats().running, engine.stats().waiting], [0, 0]);
});

test('timings split the generation: prefill, then decode with its time outside the model steps per step', async () => {
  const t0 = performance.now();
  const one = await collect(engine.generate(request({ temperature: 0 }, 1)));
  const { done } = await collect(engine.generate(request({ temperature: 1, seed: 3 }, 12)));
  const wall = performance.now() - t0;
  // A single token has no decode step to average over.
  assert.equal(one.done.timings.overheadMsPerToken, 0);
  const { prefillMs, decodeMs, overheadMsPerToken } = done.timings;
  assert.ok(prefillMs > 0 && decodeMs > 0 && prefillMs + decodeMs <= wall, JSON.stringify(done.timings));
  // Sampling 11 tokens from 200k logits takes measurable time, and the steps' share is outside it.
  assert.ok(overheadMsPerToken > 0 && overheadMsPerToken * 11 < decodeMs, JSON.stringify(done.timings));
});

test('same seed and request give the same tokens; another seed differs', async () => {
  const a = await collect(engine.generate(request({ temperature: 1, seed: 42 })));
  const b = await collect(engine.generate(request({ temperature: 1, seed: 42 })));
  const c = await collect(engine.generate(request({ temperature: 1, seed: 43 })));
  assert.deepEqual(a.ids, b.ids);
  assert.notDeepEqual(a.ids, c.ids);
});

test('temperature 0 and top_k 1 both equal greedy decoding', async () => {
  const greedy = await collect(engine.generate(request({ temperature: 0 })));
  const topK1 = await collect(engine.generate(request({ temperature: 1, topK: 1, seed: 5 })));
  assert.deepEqual(topK1.ids, greedy.ids);
});

test('logit_bias -100 bans a token the model would otherwise pick', async () => {
  const greedy = await collect(engine.generate(request({ temperature: 0 }, 4)));
  const banned = greedy.ids[0];
  const biased = await collect(engine.generate(request({ temperature: 0, logitBias: new Map([[banned, -100]]) }, 4)));
  assert.ok(!biased.ids.includes(banned), `token ${banned} still generated: ${biased.ids}`);
});

test('logit_bias +100 on an eos id stops with finish_reason "stop" and emits no token', async () => {
  const { ids, done } = await collect(engine.generate(request({ temperature: 0, logitBias: new Map([[200020, 100]]) })));
  assert.equal(done.finishReason, 'stop');
  assert.deepEqual(ids, []);
  assert.equal(done.completionTokens, 1);
});

test('logprobs: chosen token and sorted top-N alternatives', async () => {
  const { tokens } = await collect(engine.generate(request({ temperature: 0 }, 3, { topLogprobs: 5 })));
  for (const t of tokens) {
    assert.ok(t.logprob && t.logprob.id === t.id && t.logprob.logprob <= 0);
    assert.equal(t.top?.length, 5);
    const lps = t.top!.map((x) => x.logprob);
    assert.deepEqual(lps, [...lps].sort((x, y) => y - x));
    // Greedy picks the most likely token, so it heads the list.
    assert.equal(t.top![0].id, t.id);
  }
});

test('a timer keeps ticking while a long generation runs in the worker', async () => {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  let tokensSeen = 0;
  let ticksAtFirstToken = -1;
  try {
    for await (const e of engine.generate(request({ temperature: 1, seed: 1 }, 200))) {
      if (e.type === 'token' && ++tokensSeen === 1) ticksAtFirstToken = ticks;
    }
  } finally {
    clearInterval(timer);
  }
  assert.equal(tokensSeen, 200);
  // The event loop ran timers between tokens: ticks kept advancing during generation.
  assert.ok(ticks > ticksAtFirstToken && ticks >= 10, `only ${ticks} ticks during 200 tokens`);
});

test('an abort stops generation promptly', async () => {
  const controller = new AbortController();
  let seen = 0;
  let done: Extract<GenerationEvent, { type: 'done' }> | undefined;
  for await (const e of engine.generate(request({ temperature: 1, seed: 3 }, 5000), controller.signal)) {
    if (e.type === 'token' && ++seen === 5) controller.abort();
    if (e.type === 'done') done = e;
  }
  assert.equal(done?.finishReason, 'abort');
  // The worker checks the flag before every step, but it runs ahead of this loop by however many
  // token messages are queued (a tiny-model step takes well under a millisecond), so the bound is
  // loose: an abort that did not work would run to 5,000.
  assert.ok(done!.completionTokens < 5 + 64, `generated ${done!.completionTokens} tokens after aborting at 5`);
  assert.deepEqual([engine.stats().running, engine.stats().waiting], [0, 0]);
});

test('a consumer that stops iterating aborts the worker-side generation', async () => {
  let seen = 0;
  for await (const e of engine.generate(request({ temperature: 1, seed: 3 }, 5000))) {
    if (e.type === 'token' && ++seen === 3) break;
  }
  // The next request is served promptly: the abandoned one was stopped, not run to 5000 tokens.
  const next = await collect(engine.generate(request({ temperature: 0 }, 2)));
  assert.equal(next.done.finishReason, 'length');
  assert.equal(engine.stats().running, 0);
});

test('an already-aborted signal yields done(abort) without generating', async () => {
  const { ids, done } = await collect(engine.generate(request({ temperature: 0 }, 10), AbortSignal.abort()));
  assert.deepEqual(ids, []);
  assert.equal(done.finishReason, 'abort');
});

test('a reader that stops right after done (without closing the stream) leaves nothing running', async () => {
  const it = engine.generate(request({ temperature: 0 }, 3))[Symbol.asyncIterator]();
  for (;;) {
    const { value } = await it.next();
    if (value?.type === 'done') break;
  }
  assert.deepEqual([engine.stats().running, engine.stats().waiting], [0, 0]);
});
