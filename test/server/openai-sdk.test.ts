/** The official `openai` SDK against a real server on a random port (real engine, tiny model). */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import type { LoadedModel } from '../../src/app.ts';
import { MODEL_NAME, NO_EOS_BIAS, startSdkServer, type SdkServer, type TestServer } from '../helpers/server.ts';

let model: LoadedModel;
let server: TestServer;
let client: OpenAI;

let sdk: SdkServer | undefined;

before(async () => {
  sdk = await startSdkServer();
  ({ model, server, client } = sdk);
});
after(() => sdk?.close());

const messages = [
  { role: 'system' as const, content: 'You are terse.' },
  { role: 'user' as const, content: 'Say something.' },
];

describe('openai SDK', () => {
  it('lists the served model and its alias', async () => {
    const page = await client.models.list();
    const ids = page.data.map((m) => m.id);
    assert.deepEqual(ids, [MODEL_NAME, 'phi4-mini']);
    for (const m of page.data) {
      assert.equal(m.object, 'model');
      assert.equal(typeof m.created, 'number');
    }
    const one = await client.models.retrieve(MODEL_NAME);
    assert.equal(one.id, MODEL_NAME);
  });

  it('chat completion (non-streaming) has the OpenAI shape and real usage', async () => {
    const res = await client.chat.completions.create({
      model: MODEL_NAME,
      messages,
      max_tokens: 12,
      seed: 7,
      logit_bias: NO_EOS_BIAS,
    });
    assert.match(res.id, /^chatcmpl-/);
    assert.equal(res.object, 'chat.completion');
    assert.equal(res.model, MODEL_NAME);
    assert.match(res.system_fingerprint ?? '', /^fp_/);
    assert.ok(Math.abs(res.created - Date.now() / 1000) < 600);
    assert.equal(res.choices.length, 1);
    const choice = res.choices[0];
    assert.equal(choice.message.role, 'assistant');
    assert.equal(typeof choice.message.content, 'string');
    assert.equal(choice.finish_reason, 'length');
    assert.equal(res.usage?.completion_tokens, 12);
    const templated = model.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
    assert.equal(res.usage?.prompt_tokens, templated.ids.length);
    assert.equal(res.usage?.total_tokens, templated.ids.length + 12);
  });

  it('an alias is accepted; the response names the served model', async () => {
    const res = await client.chat.completions.create({ model: 'phi4-mini', messages, max_tokens: 2 });
    assert.equal(res.model, MODEL_NAME);
  });

  it('same seed gives the same text; streamed text equals non-streamed text', async () => {
    const params = { model: MODEL_NAME, messages, max_tokens: 24, seed: 1234, temperature: 1, logit_bias: NO_EOS_BIAS };
    const a = await client.chat.completions.create(params);
    const b = await client.chat.completions.create(params);
    assert.equal(a.choices[0].message.content, b.choices[0].message.content);

    const stream = await client.chat.completions.create({ ...params, stream: true });
    let text = '';
    let finish: string | null = null;
    let role: string | undefined;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'chat.completion.chunk');
      const c = chunk.choices[0];
      if (!c) continue;
      role ??= c.delta.role;
      text += c.delta.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
    assert.equal(role, 'assistant');
    assert.equal(finish, 'length');
    assert.equal(text, a.choices[0].message.content);

    const other = await client.chat.completions.create({ ...params, seed: 4321 });
    assert.notEqual(other.choices[0].message.content, a.choices[0].message.content);
  });

  it('streaming with include_usage ends with a usage chunk', async () => {
    const stream = await client.chat.completions.create({
      model: MODEL_NAME,
      messages,
      max_tokens: 5,
      seed: 3,
      logit_bias: NO_EOS_BIAS,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const last = chunks.at(-1);
    assert.ok(last);
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage?.completion_tokens, 5);
    assert.ok((last.usage?.prompt_tokens ?? 0) > 0);
    for (const c of chunks.slice(0, -1)) assert.equal(c.usage, null);
  });

  it("a chat's next turn reports its cached prompt tokens, in JSON and in the final stream chunk", async () => {
    const turn1 = [
      { role: 'system' as const, content: 'You keep a lighthouse log.' },
      { role: 'user' as const, content: `Log entry for night ${Date.now()}: the fog came in.` },
    ];
    const first = await client.chat.completions.create({ model: MODEL_NAME, messages: turn1, max_tokens: 8, seed: 5, logit_bias: NO_EOS_BIAS });
    // Only what other tests' chats share with it (the system role's opening tokens) can be cached.
    assert.ok((first.usage?.prompt_tokens_details?.cached_tokens ?? -1) >= 0 && first.usage!.prompt_tokens_details!.cached_tokens! < 8);
    const turn2 = [...turn1, { role: 'assistant' as const, content: first.choices[0].message.content ?? '' }, { role: 'user' as const, content: 'And at dawn?' }];
    const second = await client.chat.completions.create({ model: MODEL_NAME, messages: turn2, max_tokens: 4, logit_bias: NO_EOS_BIAS });
    const p1 = first.usage!.prompt_tokens;
    const cached = second.usage?.prompt_tokens_details?.cached_tokens ?? 0;
    // Turn 1's prompt at least (its answer too, up to where re-tokenized text first differs from the sampled ids).
    assert.ok(cached >= p1 && cached < second.usage!.prompt_tokens, `${cached} cached of ${second.usage!.prompt_tokens}, turn 1 prompt ${p1}`);
    const stream = await client.chat.completions.create({
      model: MODEL_NAME,
      messages: turn2,
      max_tokens: 4,
      logit_bias: NO_EOS_BIAS,
      stream: true,
      stream_options: { include_usage: true },
    });
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) usage = chunk.usage ?? usage;
    // The same prompt again: all of it but the last token, which is run to sample the first answer token.
    assert.equal(usage?.prompt_tokens_details?.cached_tokens, second.usage!.prompt_tokens - 1);
  });

  it('text completions: string prompt, token prompt, batch, echo, stream', async () => {
    const res = await client.completions.create({
      model: MODEL_NAME,
      prompt: 'Once upon a time',
      max_tokens: 8,
      seed: 5,
      logit_bias: NO_EOS_BIAS,
    });
    assert.match(res.id, /^cmpl-/);
    assert.equal(res.object, 'text_completion');
    assert.equal(res.choices[0].finish_reason, 'length');
    assert.equal(res.usage?.completion_tokens, 8);
    assert.equal(res.usage?.prompt_tokens, model.tokenizer.encode('Once upon a time').length);

    const ids = model.tokenizer.encode('Once upon a time');
    const byIds = await client.completions.create({ model: MODEL_NAME, prompt: ids, max_tokens: 8, seed: 5, logit_bias: NO_EOS_BIAS });
    assert.equal(byIds.choices[0].text, res.choices[0].text);

    const echo = await client.completions.create({ model: MODEL_NAME, prompt: 'Once upon a time', max_tokens: 8, seed: 5, echo: true, logit_bias: NO_EOS_BIAS });
    assert.equal(echo.choices[0].text, `Once upon a time${res.choices[0].text}`);

    const batch = await client.completions.create({ model: MODEL_NAME, prompt: ['Once upon a time', 'Hello'], max_tokens: 8, seed: 5, logit_bias: NO_EOS_BIAS });
    assert.deepEqual(batch.choices.map((c) => c.index), [0, 1]);
    assert.equal(batch.choices[0].text, res.choices[0].text);
    assert.equal(batch.usage?.completion_tokens, 16);

    const stream = await client.completions.create({ model: MODEL_NAME, prompt: 'Once upon a time', max_tokens: 8, seed: 5, logit_bias: NO_EOS_BIAS, stream: true });
    let text = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(text, res.choices[0].text);
    assert.equal(finish, 'length');
  });

  it('chat logprobs come with token strings, bytes and alternatives', async () => {
    const res = await client.chat.completions.create({
      model: MODEL_NAME,
      messages,
      max_tokens: 6,
      seed: 9,
      logprobs: true,
      top_logprobs: 3,
      logit_bias: NO_EOS_BIAS,
    });
    const content = res.choices[0].logprobs?.content;
    assert.ok(content);
    assert.equal(content.length, 6);
    for (const t of content) {
      assert.equal(typeof t.token, 'string');
      assert.ok(t.logprob <= 0);
      assert.equal(t.top_logprobs.length, 3);
      assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[2].logprob);
    }
    // Tokens that are whole characters spell the content exactly.
    if (content.every((t) => t.bytes !== null)) {
      const bytes = content.flatMap((t) => t.bytes ?? []);
      assert.equal(Buffer.from(bytes).toString('utf8'), res.choices[0].message.content);
    }
  });

  it('SDK errors carry the status and the OpenAI error body', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'gpt-5', messages, max_tokens: 1 }),
      (err: unknown) => {
        assert.ok(err instanceof OpenAI.APIError);
        assert.equal(err.status, 404);
        assert.equal(err.code, 'model_not_found');
        return true;
      },
    );
    await assert.rejects(client.chat.completions.create({ model: MODEL_NAME, messages, temperature: 3 }), (err: unknown) => {
      assert.ok(err instanceof OpenAI.BadRequestError);
      assert.equal(err.param, 'temperature');
      return true;
    });
  });
});
