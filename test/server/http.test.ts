/**
 * Raw HTTP against a real server: SSE framing byte for byte, every error status with its
 * param/code, stop strings that span tokens, multi-byte characters split across tokens.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildApp, type LoadedModel } from '../../src/app.ts';
import {
  EOS_IDS,
  MODEL_NAME,
  NO_EOS_BIAS,
  TEST_CONTEXT,
  loadTestModel,
  parseSse,
  postJson,
  startServer,
  testConfig,
  type TestServer,
} from '../helpers/server.ts';

let model: LoadedModel;
let server: TestServer;
let chatUrl: string;
let complUrl: string;

before(async () => {
  model = await loadTestModel();
  server = await startServer(model, { bodyLimit: 64 * 1024 });
  chatUrl = `${server.url}/v1/chat/completions`;
  complUrl = `${server.url}/v1/completions`;
});

after(async () => {
  await server?.close();
  await model?.engine.close();
});

const messages = [{ role: 'user', content: 'Tell me a story.' }];

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

async function expectError(res: Response, status: number, param: string | null, code?: string | null): Promise<ErrorBody> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const body = JSON.parse(text) as ErrorBody;
  assert.deepEqual(Object.keys(body), ['error']);
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
  assert.equal(body.error.param, param, text);
  if (code !== undefined) assert.equal(body.error.code, code, text);
  return body;
}

describe('SSE framing', () => {
  it('chat stream: role first, deltas, finish_reason, usage chunk, [DONE], byte for byte', async () => {
    const res = await postJson(chatUrl, {
      model: MODEL_NAME,
      messages,
      max_tokens: 6,
      seed: 11,
      stream: true,
      stream_options: { include_usage: true },
      logit_bias: NO_EOS_BIAS,
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    const body = await res.text();
    // Nothing but `data: ` lines separated by blank lines, ending with [DONE].
    assert.match(body, /^(data: [^\n]+\n\n)+data: \[DONE\]\n\n$/);
    const events = parseSse(body);
    assert.equal(events.at(-1)?.raw, 'data: [DONE]');
    const chunks = events.slice(0, -1).map((e) => {
      const obj = JSON.parse(e.data) as Record<string, unknown>;
      // Compact JSON, one line, exactly what JSON.stringify produces.
      assert.equal(e.raw, `data: ${JSON.stringify(obj)}`);
      return obj as {
        id: string;
        object: string;
        created: number;
        model: string;
        system_fingerprint: string;
        choices: { index: number; delta: Record<string, unknown>; finish_reason: string | null; logprobs: unknown }[];
        usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
      };
    });
    const first = chunks[0];
    assert.match(first.id, /^chatcmpl-/);
    for (const c of chunks) {
      assert.equal(c.id, first.id);
      assert.equal(c.object, 'chat.completion.chunk');
      assert.equal(c.created, first.created);
      assert.equal(c.model, MODEL_NAME);
      assert.equal(c.system_fingerprint, first.system_fingerprint);
    }
    assert.deepEqual(first.choices, [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]);
    const usageChunk = chunks.at(-1)!;
    assert.deepEqual(usageChunk.choices, []);
    assert.equal(usageChunk.usage?.completion_tokens, 6);
    assert.equal(usageChunk.usage?.total_tokens, usageChunk.usage!.prompt_tokens + 6);
    const finishChunk = chunks.at(-2)!;
    assert.deepEqual(finishChunk.choices, [{ index: 0, delta: {}, logprobs: null, finish_reason: 'length' }]);
    const middle = chunks.slice(1, -2);
    assert.ok(middle.length >= 1);
    for (const c of middle) {
      assert.equal(c.choices.length, 1);
      assert.equal(c.choices[0].finish_reason, null);
      assert.deepEqual(Object.keys(c.choices[0].delta), ['content']);
      assert.ok((c.choices[0].delta.content as string).length > 0);
      assert.equal(c.usage, null);
    }
    // The streamed text is the non-streamed text.
    const full = (await (
      await postJson(chatUrl, { model: MODEL_NAME, messages, max_tokens: 6, seed: 11, logit_bias: NO_EOS_BIAS })
    ).json()) as { choices: { message: { content: string } }[] };
    assert.equal(middle.map((c) => c.choices[0].delta.content).join(''), full.choices[0].message.content);
  });

  it('without include_usage there is no usage field and no usage chunk', async () => {
    const res = await postJson(chatUrl, { model: MODEL_NAME, messages, max_tokens: 3, stream: true, logit_bias: NO_EOS_BIAS });
    const events = parseSse(await res.text());
    assert.equal(events.at(-1)?.raw, 'data: [DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data) as Record<string, unknown>);
    for (const c of chunks) assert.ok(!('usage' in c));
    const last = chunks.at(-1) as { choices: { finish_reason: string }[] };
    assert.equal(last.choices[0].finish_reason, 'length');
  });

  it('completions stream framing', async () => {
    const res = await postJson(complUrl, { model: MODEL_NAME, prompt: 'abc', max_tokens: 4, stream: true, logit_bias: NO_EOS_BIAS, stream_options: { include_usage: true } });
    const body = await res.text();
    assert.match(body, /^(data: [^\n]+\n\n)+data: \[DONE\]\n\n$/);
    const chunks = parseSse(body).slice(0, -1).map((e) => JSON.parse(e.data) as { object: string; choices: { text: string; finish_reason: string | null }[]; usage: unknown });
    for (const c of chunks) assert.equal(c.object, 'text_completion');
    assert.deepEqual(chunks.at(-1)?.choices, []);
    assert.equal((chunks.at(-1)?.usage as { completion_tokens: number }).completion_tokens, 4);
    assert.equal(chunks.at(-2)?.choices[0].finish_reason, 'length');
  });

  it('echoes x-request-id, or makes one', async () => {
    const res = await fetch(`${server.url}/v1/models`, { headers: { 'x-request-id': 'req-abc.123' } });
    assert.equal(res.headers.get('x-request-id'), 'req-abc.123');
    const res2 = await fetch(`${server.url}/v1/models`);
    assert.match(res2.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
  });
});

describe('errors', () => {
  const chat = (body: Record<string, unknown>) => postJson(chatUrl, { model: MODEL_NAME, messages, max_tokens: 2, ...body });

  it('400 names the invalid parameter', async () => {
    await expectError(await postJson(chatUrl, { model: MODEL_NAME }), 400, 'messages', 'missing_required_parameter');
    await expectError(await postJson(chatUrl, { messages }), 400, 'model', 'missing_required_parameter');
    await expectError(await chat({ temperature: 3 }), 400, 'temperature');
    await expectError(await chat({ temperature: '0.5' }), 400, 'temperature', 'invalid_type');
    await expectError(await chat({ top_p: 0 }), 400, 'top_p');
    await expectError(await chat({ max_tokens: 0 }), 400, 'max_tokens');
    await expectError(await chat({ max_completion_tokens: 1.5 }), 400, 'max_completion_tokens');
    await expectError(await chat({ messages: [] }), 400, 'messages');
    await expectError(await chat({ messages: [{ role: 'robot', content: 'x' }] }), 400, 'messages[0].role', 'invalid_value');
    await expectError(await chat({ messages: [{ role: 'user', content: 5 }] }), 400, 'messages[0].content', 'invalid_type');
    await expectError(
      await chat({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }),
      400,
      'messages[0].content[0].type',
    );
    await expectError(await chat({ messages: [{ role: 'user', content: [{ type: 'text' }] }] }), 400, 'messages[0].content[0].text');
    await expectError(await chat({ messages: [{ role: 'user' }] }), 400, 'messages[0].content');
    await expectError(await chat({ n: 2 }), 400, 'n', 'unsupported_value');
    await expectError(await chat({ response_format: { type: 'yaml' } }), 400, 'response_format.type');
    await expectError(await chat({ top_logprobs: 2 }), 400, 'top_logprobs');
    await expectError(await chat({ logprobs: true, top_logprobs: 21 }), 400, 'top_logprobs');
    await expectError(await chat({ stop: ['a', 'b', 'c', 'd', 'e'] }), 400, 'stop');
    await expectError(await chat({ logit_bias: { hello: 1 } }), 400, 'logit_bias');
    await expectError(await chat({ logit_bias: { '999999999': 1 } }), 400, 'logit_bias');
    await expectError(await chat({ stream_options: { include_usage: true } }), 400, 'stream_options');
    await expectError(await chat({ seed: 1.5 }), 400, 'seed');
  });

  it('a list limit is reported as a limit, not as a type error', async () => {
    const five = ['a', 'b', 'c', 'd', 'e'];
    for (const res of [await chat({ stop: five }), await postJson(complUrl, { model: MODEL_NAME, prompt: 'x', stop: five })]) {
      const body = await expectError(res, 400, 'stop', 'invalid_value');
      assert.equal(body.error.message, "Invalid value for 'stop': at most 4 items are allowed.");
    }
    const empty = await expectError(await postJson(complUrl, { model: MODEL_NAME, prompt: [] }), 400, 'prompt', 'invalid_value');
    assert.equal(empty.error.message, "Invalid value for 'prompt': at least 1 item is required.");
    assert.equal((await chat({ stop: five.slice(0, 4) })).status, 200);
  });

  it('accepts what OpenAI accepts: nulls, unknown fields, text parts, n=1, response_format text', async () => {
    const res = await chat({
      temperature: null,
      stop: null,
      n: 1,
      response_format: { type: 'text' },
      some_future_field: { x: 1 },
      messages: [
        { role: 'developer', content: 'be brief' },
        { role: 'user', content: [{ type: 'text', text: 'hi' }, { type: 'text', text: 'there' }] },
        { role: 'assistant', content: null },
        { role: 'user', content: 'again' },
      ],
    });
    assert.equal(res.status, 200, await res.clone().text());
  });

  it('400 for malformed JSON and for a body that is not an object', async () => {
    const bad = await fetch(chatUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":' });
    await expectError(bad, 400, null, 'invalid_json');
    await expectError(await postJson(chatUrl, [1, 2]), 400, null);
  });

  it('a JSON body without a JSON content type is still read', async () => {
    const res = await fetch(chatUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: JSON.stringify({ model: MODEL_NAME, messages, max_tokens: 1 }),
    });
    assert.equal(res.status, 200);
  });

  it('400 context_length_exceeded gives the numbers', async () => {
    const body = await expectError(await chat({ max_tokens: 5000 }), 400, 'messages', 'context_length_exceeded');
    const promptTokens = model.tokenizer.applyChatTemplate(messages as never, { addGenerationPrompt: true }).ids.length;
    assert.match(body.error.message, new RegExp(`maximum context length is ${TEST_CONTEXT} tokens`));
    assert.match(body.error.message, new RegExp(`requested ${promptTokens + 5000} tokens \\(${promptTokens} in the messages, 5000 in the completion\\)`));

    const long = 'hello '.repeat(TEST_CONTEXT + 10);
    await expectError(
      await postJson(chatUrl, { model: MODEL_NAME, messages: [{ role: 'user', content: long }] }),
      400,
      'messages',
      'context_length_exceeded',
    );
    await expectError(
      await postJson(complUrl, { model: MODEL_NAME, prompt: long }),
      400,
      'prompt',
      'context_length_exceeded',
    );
  });

  it('without max_tokens a chat completion may use the rest of the context', async () => {
    // Ban eos so it runs to the end of the context window.
    const res = await postJson(chatUrl, { model: MODEL_NAME, messages, logit_bias: NO_EOS_BIAS, temperature: 0 });
    const body = (await res.json()) as { usage: { prompt_tokens: number; completion_tokens: number }; choices: { finish_reason: string }[] };
    assert.equal(body.usage.prompt_tokens + body.usage.completion_tokens, TEST_CONTEXT);
    assert.equal(body.choices[0].finish_reason, 'length');
  });

  it('404 model_not_found, unknown routes and unknown model ids', async () => {
    await expectError(await chat({ model: 'gpt-4o' }), 404, 'model', 'model_not_found');
    await expectError(await postJson(complUrl, { model: 'nope', prompt: 'x' }), 404, 'model', 'model_not_found');
    const route = await expectError(await fetch(`${server.url}/v1/nope`), 404, null);
    assert.equal(route.error.message, 'Invalid URL (GET /v1/nope)');
    await expectError(await fetch(`${server.url}/v1/models/gpt-4o`), 404, 'model', 'model_not_found');
    const ok = await fetch(`${server.url}/v1/models/phi4-mini`);
    assert.equal(((await ok.json()) as { id: string }).id, 'phi4-mini');
  });

  it('413 for an oversized body', async () => {
    const res = await postJson(chatUrl, { model: MODEL_NAME, messages: [{ role: 'user', content: 'x'.repeat(100_000) }] });
    await expectError(res, 413, null, 'request_too_large');
  });

  it('completions-specific 400s', async () => {
    const c = (body: Record<string, unknown>) => postJson(complUrl, { model: MODEL_NAME, prompt: 'x', max_tokens: 2, ...body });
    await expectError(await c({ suffix: 'end' }), 400, 'suffix');
    await expectError(await c({ best_of: 3 }), 400, 'best_of');
    await expectError(await c({ echo: true, logprobs: 1 }), 400, 'echo');
    await expectError(await c({ prompt: [1, 999999] }), 400, 'prompt');
    await expectError(await c({ prompt: [[1], 'x'] }), 400, 'prompt');
    await expectError(await c({ prompt: 7 }), 400, 'prompt');
    await expectError(await c({ logprobs: 21 }), 400, 'logprobs');
  });

  it('401 with an API key configured; /health and /ready stay open', async () => {
    const secured = await startServer(model, { apiKeys: ['sk-one', 'sk-two'] });
    try {
      const url = `${secured.url}/v1/models`;
      await expectError(await fetch(url), 401, null, 'invalid_api_key');
      await expectError(await fetch(url, { headers: { authorization: 'Bearer sk-wrong' } }), 401, null, 'invalid_api_key');
      await expectError(await postJson(`${secured.url}/v1/chat/completions`, { model: MODEL_NAME, messages }), 401, null, 'invalid_api_key');
      assert.equal((await fetch(url, { headers: { authorization: 'Bearer sk-two' } })).status, 200);
      assert.equal((await fetch(`${secured.url}/health`)).status, 200);
      assert.equal((await fetch(`${secured.url}/ready`)).status, 200);
    } finally {
      await secured.close();
    }
  });

  it('503 while shutting down and when the model failed to load; /health stays 200', async () => {
    const draining = await startServer(model);
    try {
      assert.equal((await fetch(`${draining.url}/ready`)).status, 200);
      draining.app.models.drain();
      await expectError(await fetch(`${draining.url}/ready`), 503, null, 'shutting_down');
      await expectError(await postJson(`${draining.url}/v1/chat/completions`, { model: MODEL_NAME, messages }), 503, null, 'shutting_down');
      assert.equal((await fetch(`${draining.url}/health`)).status, 200);
    } finally {
      await draining.close();
    }

    const broken = await buildApp(testConfig({ modelDir: '/nonexistent/model' }), { load: 'background' });
    try {
      await assert.rejects(broken.modelsStarted);
      const ready = await broken.inject({ method: 'GET', url: '/ready' });
      assert.equal(ready.statusCode, 503);
      assert.equal(ready.json<ErrorBody>().error.code, 'model_not_ready');
      const chatRes = await broken.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model: MODEL_NAME, messages } });
      assert.equal(chatRes.statusCode, 503);
      assert.equal((await broken.inject({ method: 'GET', url: '/health' })).statusCode, 200);
    } finally {
      await broken.close();
    }
  });
});

describe('stop strings and detokenization', () => {
  interface Completion {
    choices: { text: string; finish_reason: string; logprobs: { tokens: string[]; text_offset: number[] } | null }[];
    usage: { completion_tokens: number };
  }
  const base = { model: MODEL_NAME, prompt: 'The weather today is', max_tokens: 40, seed: 42, temperature: 0, logit_bias: NO_EOS_BIAS };

  it('a stop string spanning a token boundary ends the text right before it, streamed or not', async () => {
    const first = (await (await postJson(complUrl, { ...base, logprobs: 0 })).json()) as Completion;
    const { text, logprobs } = first.choices[0];
    assert.ok(logprobs);
    const offsets = logprobs.text_offset;
    // Find a boundary with at least two characters on each side whose 4-char window occurs first there.
    let stop: string | undefined;
    let cut = -1;
    for (let k = 1; k < offsets.length - 1; k++) {
      const at = offsets[k];
      if (at - offsets[k - 1] < 2 || offsets[k + 1] - at < 2) continue;
      const candidate = text.slice(at - 2, at + 2);
      if (text.indexOf(candidate) === at - 2 && candidate.trim().length === 4) {
        stop = candidate;
        cut = at - 2;
        break;
      }
    }
    assert.ok(stop, `no suitable token boundary in ${JSON.stringify(text)}`);

    const stopped = (await (await postJson(complUrl, { ...base, stop: [stop, 'zzzzzz-never'] })).json()) as Completion;
    assert.equal(stopped.choices[0].text, text.slice(0, cut));
    assert.equal(stopped.choices[0].finish_reason, 'stop');

    // Streamed: the same prefix, and no chunk ever carries any part of the stop string beyond it.
    const res = await postJson(complUrl, { ...base, stop, stream: true });
    const chunks = parseSse(await res.text())
      .slice(0, -1)
      .map((e) => JSON.parse(e.data) as { choices: { text: string; finish_reason: string | null }[] });
    const streamed = chunks.map((c) => c.choices[0]?.text ?? '').join('');
    assert.equal(streamed, text.slice(0, cut));
    assert.equal(chunks.at(-1)?.choices[0].finish_reason, 'stop');

    // Chat goes through the same path.
    const chatBase = { model: MODEL_NAME, messages, max_tokens: 30, seed: 42, temperature: 0, logit_bias: NO_EOS_BIAS };
    const chatFirst = (await (await postJson(chatUrl, chatBase)).json()) as { choices: { message: { content: string } }[] };
    const content = chatFirst.choices[0].message.content;
    const mid = Math.floor(content.length / 2);
    const chatStop = content.slice(mid, mid + 3);
    const chatStopped = (await (await postJson(chatUrl, { ...chatBase, stop: chatStop })).json()) as {
      choices: { message: { content: string }; finish_reason: string }[];
    };
    assert.equal(chatStopped.choices[0].message.content, content.slice(0, content.indexOf(chatStop)));
    assert.equal(chatStopped.choices[0].finish_reason, 'stop');
  });

  it('stop_token_ids (vLLM extension) end generation with finish_reason stop', async () => {
    const first = (await (await postJson(complUrl, { ...base, max_tokens: 5 })).json()) as Completion;
    assert.equal(first.choices[0].finish_reason, 'length');
    const ids = model.tokenizer.encode(first.choices[0].text);
    // The greedy third token, banned from the text by making it a stop token.
    const res = (await (await postJson(complUrl, { ...base, max_tokens: 5, stop_token_ids: [ids[2]] })).json()) as Completion;
    assert.equal(res.choices[0].finish_reason, 'stop');
    assert.ok(res.usage.completion_tokens <= 3);
  });

  it('a multi-byte character split across tokens arrives intact', async () => {
    // Characters the tokenizer writes as two byte-level tokens, the first not valid UTF-8 alone.
    const candidates: { char: string; pair: [number, number] }[] = [];
    for (let cp = 0x1f300; cp < 0x1faff && candidates.length < 6; cp++) {
      const c = String.fromCodePoint(cp);
      const ids = model.tokenizer.encode(c, { addSpecialTokens: false });
      if (ids.length === 2 && model.tokenizer.decode([ids[0]]).includes('\ufffd')) candidates.push({ char: c, pair: [ids[0], ids[1]] });
    }
    assert.ok(candidates.length > 0, 'no two-token character found');
    // Only these two tokens can win (both +100). Greedy then follows the model's own ranking
    // between them; the penalties push the continuation ahead at step 2. Try prompts until the
    // model produces lead-then-continuation (deterministic for the fixture), then check delivery.
    let found = false;
    for (let i = 0; i < 48 && !found; i++) {
      const { char, pair } = candidates[i % candidates.length];
      const req = {
        model: MODEL_NAME,
        prompt: `Sample ${i}:`,
        max_tokens: 2,
        temperature: 0,
        logit_bias: { [String(pair[0])]: 100, [String(pair[1])]: 100 },
        presence_penalty: 2,
        frequency_penalty: 2,
        logprobs: 0,
      };
      const res = (await (await postJson(complUrl, req)).json()) as Completion;
      const lp = res.choices[0].logprobs;
      if (!lp || res.choices[0].text !== char) continue;
      found = true;
      assert.equal(lp.tokens.length, 2);
      assert.ok(!res.choices[0].text.includes('\ufffd'));
      const streamRes = await postJson(complUrl, { ...req, stream: true });
      const deltas = parseSse(await streamRes.text())
        .slice(0, -1)
        .map((e) => (JSON.parse(e.data) as { choices: { text: string }[] }).choices[0]?.text ?? '');
      for (const d of deltas) assert.ok(!d.includes('\ufffd'), `U+FFFD in delta ${JSON.stringify(d)}`);
      assert.equal(deltas.join(''), char);
      // The first token's text is held back until the character completes: no empty half-chunk.
      assert.deepEqual(
        deltas.filter((d) => d.length > 0),
        [char],
      );
    }
    assert.ok(found, 'could not make the model emit a two-token character');
  });

  it('eos is not emitted as text and ends with finish_reason stop', async () => {
    // Bias the eos token up: the model stops at once, and the content has no special token text.
    const res = (await (
      await postJson(chatUrl, { model: MODEL_NAME, messages, max_tokens: 10, logit_bias: { [String(EOS_IDS[0])]: 100 } })
    ).json()) as { choices: { message: { content: string }; finish_reason: string }[]; usage: { completion_tokens: number } };
    assert.equal(res.choices[0].message.content, '');
    assert.equal(res.choices[0].finish_reason, 'stop');
    assert.equal(res.usage.completion_tokens, 1);
  });
});
