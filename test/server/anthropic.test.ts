/**
 * Anthropic's Messages API through the official `@anthropic-ai/sdk` against a real server (real
 * engine, tiny random model). Generations run greedy (temperature 0; the API has no seed), so a
 * request repeated gives the same text. Tool calls come from grammar-forced tool_choice.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import type { MessageParam, RawMessageStreamEvent, Tool } from '@anthropic-ai/sdk/resources/messages';
import { Ajv } from 'ajv';
import type { LoadedModel } from '../../src/app.ts';
import { anthropicParam, toChatRequest } from '../../src/server/serving/anthropic-input.ts';
import { MODEL_NAME, loadTestModel, postJson, startServer, type TestServer } from '../helpers/server.ts';

let model: LoadedModel;
let server: TestServer;
let client: Anthropic;

before(async () => {
  model = await loadTestModel();
  server = await startServer(model);
  // The SDK appends /v1/messages itself: the base URL has no /v1.
  client = new Anthropic({ baseURL: server.url, apiKey: 'unused', maxRetries: 0 });
});
after(async () => {
  await server?.close();
  await model?.engine.close();
});

const WEATHER = {
  type: 'object' as const,
  properties: { city: { enum: ['Paris', 'Oslo', 'Lima'] }, unit: { enum: ['c', 'f'] }, days: { type: 'integer', minimum: 1, maximum: 7 } },
  required: ['city', 'unit', 'days'],
  additionalProperties: false,
};
const TIME = { type: 'object' as const, properties: { zone: { enum: ['UTC', 'CET'] }, exact: { type: 'boolean' } }, required: ['zone', 'exact'] };
const TOOLS: Tool[] = [
  { name: 'get_weather', description: 'Weather forecast', input_schema: WEATHER },
  { name: 'get_time', input_schema: TIME },
];
const validInput: Record<string, (v: unknown) => boolean> = { get_weather: new Ajv().compile(WEATHER), get_time: new Ajv().compile(TIME) };
const ask: MessageParam[] = [{ role: 'user', content: 'What is the weather in Paris this week?' }];
const base = { model: MODEL_NAME, temperature: 0, messages: ask };

/** Prompt tokens of the equivalent chat-completions request: the translation must render the same prompt. */
async function chatPromptTokens(body: object): Promise<number> {
  const res = await postJson(`${server.url}/v1/chat/completions`, { model: MODEL_NAME, max_tokens: 1, ...body });
  assert.equal(res.status, 200, await res.clone().text());
  return ((await res.json()) as { usage: { prompt_tokens: number } }).usage.prompt_tokens;
}

/** A substring of `text` whose first occurrence is not at its start, to use as a stop sequence. */
function stopSequenceIn(text: string): string {
  for (let at = Math.floor(text.length / 2); at > 0; at--) {
    const s = text.slice(at, at + 3);
    if (s.trim().length === 3 && text.indexOf(s) > 0) return s;
  }
  throw new Error(`no usable stop sequence in ${JSON.stringify(text)}`);
}

describe('POST /v1/messages (non-streaming)', () => {
  it('a text message: Anthropic shape, usage, stop_reason max_tokens when cut', async () => {
    const msg = await client.messages.create({ ...base, max_tokens: 6, metadata: { user_id: 'u-1' } });
    assert.match(msg.id, /^msg_[A-Za-z0-9]+$/);
    assert.equal(msg.type, 'message');
    assert.equal(msg.role, 'assistant');
    assert.equal(msg.model, MODEL_NAME);
    assert.equal(msg.content.length, 1);
    assert.equal(msg.content[0].type, 'text');
    assert.ok(msg.content[0].type === 'text' && msg.content[0].text.length > 0);
    assert.equal(msg.stop_reason, 'max_tokens');
    assert.equal(msg.stop_sequence, null);
    assert.equal(msg.usage.output_tokens, 6);
    assert.equal(msg.usage.cache_creation_input_tokens, 0);
    assert.ok(msg.usage.input_tokens > 0);
    const count = await client.messages.countTokens({ model: MODEL_NAME, messages: ask });
    // Anthropic's accounting: computed + cached prompt tokens = the whole prompt.
    assert.equal(msg.usage.input_tokens + (msg.usage.cache_read_input_tokens ?? 0), count.input_tokens);
    assert.equal(count.input_tokens, await chatPromptTokens({ messages: ask }));
  });

  it('a repeated prompt reports its prefix-cache hit as cache_read_input_tokens', async () => {
    const messages: MessageParam[] = [{ role: 'user', content: `A prompt long enough to be cached: ${'lorem ipsum '.repeat(20)}` }];
    const first = await client.messages.create({ ...base, messages, max_tokens: 1 });
    const second = await client.messages.create({ ...base, messages, max_tokens: 1 });
    const { input_tokens: total } = await client.messages.countTokens({ model: MODEL_NAME, messages });
    assert.ok((second.usage.cache_read_input_tokens ?? 0) > 0, JSON.stringify(second.usage));
    for (const { usage } of [first, second]) assert.equal(usage.input_tokens + (usage.cache_read_input_tokens ?? 0), total);
  });

  it('system as a string and as text blocks render the same system message', async () => {
    const asString = await client.messages.countTokens({ model: MODEL_NAME, system: 'You are terse.\nAnswer briefly.', messages: ask });
    const asBlocks = await client.messages.countTokens({
      model: MODEL_NAME,
      system: [{ type: 'text', text: 'You are terse.' }, { type: 'text', text: 'Answer briefly.', cache_control: { type: 'ephemeral' } }],
      messages: ask,
    });
    const none = await client.messages.countTokens({ model: MODEL_NAME, messages: ask });
    assert.equal(asString.input_tokens, asBlocks.input_tokens);
    assert.ok(asString.input_tokens > none.input_tokens);
    assert.equal(asString.input_tokens, await chatPromptTokens({ messages: [{ role: 'system', content: 'You are terse.\nAnswer briefly.' }, ...ask] }));
    const msg = await client.messages.create({ ...base, system: [{ type: 'text', text: 'You are terse.' }], max_tokens: 2 });
    assert.equal(msg.usage.output_tokens, 2);
  });

  it('stop_sequences: stop_reason stop_sequence names the sequence that matched; the text ends before it', async () => {
    const free = await client.messages.create({ ...base, max_tokens: 16 });
    const text = free.content[0].type === 'text' ? free.content[0].text : '';
    const stop = stopSequenceIn(text);
    const msg = await client.messages.create({ ...base, max_tokens: 16, stop_sequences: ['§never§', stop] });
    assert.equal(msg.stop_reason, 'stop_sequence');
    assert.equal(msg.stop_sequence, stop);
    assert.deepEqual(msg.content, [{ type: 'text', text: text.slice(0, text.indexOf(stop)) }]);
    const streamed = await client.messages.stream({ ...base, max_tokens: 16, stop_sequences: [stop, '§never§'] }).finalMessage();
    assert.equal(streamed.stop_reason, 'stop_sequence');
    assert.equal(streamed.stop_sequence, stop);
    // Sequences that never match leave max_tokens.
    const unmatched = await client.messages.create({ ...base, max_tokens: 16, stop_sequences: ['§never§'] });
    assert.equal(unmatched.stop_reason, 'max_tokens');
    assert.equal(unmatched.stop_sequence, null);
    assert.deepEqual(unmatched.content, free.content);
  });
});

describe('POST /v1/messages (streaming)', () => {
  it('the SDK stream: events in order, final message text = the concatenated deltas = the non-streamed text', async () => {
    const stream = client.messages.stream({ ...base, max_tokens: 8 });
    const types: string[] = [];
    let deltas = '';
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') deltas += ev.delta.text;
    }
    const final = await stream.finalMessage();
    assert.equal(types[0], 'message_start');
    assert.equal(types[1], 'content_block_start');
    assert.deepEqual(types.slice(-3), ['content_block_stop', 'message_delta', 'message_stop']);
    assert.ok(types.slice(2, -3).every((t) => t === 'content_block_delta'));
    assert.match(final.id, /^msg_/);
    assert.equal(final.stop_reason, 'max_tokens');
    assert.equal(final.usage.output_tokens, 8);
    assert.deepEqual(final.content, [{ type: 'text', text: deltas }]);
    const plain = await client.messages.create({ ...base, max_tokens: 8 });
    assert.deepEqual(plain.content, final.content);
  });

  it('raw SSE: `event: <type>` framing, a ping after message_start, no [DONE]', async () => {
    const res = await postJson(`${server.url}/v1/messages`, { ...base, max_tokens: 3, stream: true });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const body = await res.text();
    assert.ok(!body.includes('[DONE]'));
    const events = body.split('\n\n').filter((b) => b.length > 0).map((block) => {
      const [eventLine, dataLine] = block.split('\n');
      const data = JSON.parse(dataLine.replace(/^data: /, '')) as { type: string } & Record<string, unknown>;
      assert.equal(eventLine, `event: ${data.type}`);
      return data;
    });
    assert.deepEqual(events.slice(0, 3).map((e) => e.type), ['message_start', 'ping', 'content_block_start']);
    const start = events[0] as unknown as { message: { content: unknown[]; stop_reason: null; usage: { input_tokens: number; output_tokens: number } } };
    assert.deepEqual(start.message.content, []);
    assert.equal(start.message.stop_reason, null);
    assert.ok(start.message.usage.input_tokens >= 0);
    const delta = events.at(-2) as unknown as { delta: { stop_reason: string; stop_sequence: null }; usage: { output_tokens: number } };
    assert.deepEqual(delta.delta, { stop_reason: 'max_tokens', stop_sequence: null });
    assert.equal(delta.usage.output_tokens, 3);
    assert.equal(events.at(-1)?.type, 'message_stop');
  });
});

describe('tools', () => {
  it("tool_choice any: a tool_use block whose input validates, stop_reason 'tool_use'", async () => {
    const msg = await client.messages.create({ ...base, max_tokens: 80, tools: TOOLS, tool_choice: { type: 'any', disable_parallel_tool_use: true } });
    assert.equal(msg.stop_reason, 'tool_use');
    assert.equal(msg.content.length, 1);
    const use = msg.content[0];
    assert.ok(use.type === 'tool_use');
    assert.match(use.id, /^toolu_/);
    assert.ok(['get_weather', 'get_time'].includes(use.name), use.name);
    assert.ok(validInput[use.name](use.input), JSON.stringify(use.input));
  });

  it('tool_choice {type: tool, name}: that tool is called', async () => {
    const msg = await client.messages.create({ ...base, max_tokens: 80, tools: TOOLS, tool_choice: { type: 'tool', name: 'get_time', disable_parallel_tool_use: true } });
    assert.equal(msg.stop_reason, 'tool_use');
    const use = msg.content.find((b) => b.type === 'tool_use');
    assert.ok(use && use.type === 'tool_use');
    assert.equal(use.name, 'get_time');
    assert.ok(validInput.get_time(use.input), JSON.stringify(use.input));
  });

  it('streamed tool_use: input_json_delta fragments reassemble into valid input', async () => {
    const stream = client.messages.stream({ ...base, max_tokens: 80, tools: TOOLS, tool_choice: { type: 'tool', name: 'get_weather', disable_parallel_tool_use: true } });
    const events: RawMessageStreamEvent[] = [];
    for await (const ev of stream) events.push(ev);
    const final = await stream.finalMessage();
    const start = events.find((e) => e.type === 'content_block_start');
    assert.ok(start && start.type === 'content_block_start' && start.content_block.type === 'tool_use');
    assert.deepEqual(start.content_block.input, {});
    const fragments = events.flatMap((e) => (e.type === 'content_block_delta' && e.delta.type === 'input_json_delta' ? [e.delta.partial_json] : []));
    assert.ok(fragments.length > 1, 'the input arrives in fragments');
    const input = JSON.parse(fragments.join('')) as unknown;
    assert.ok(validInput.get_weather(input), fragments.join(''));
    assert.equal(final.stop_reason, 'tool_use');
    assert.equal(final.content.length, 1);
    assert.ok(final.content[0].type === 'tool_use');
    assert.deepEqual(final.content[0].input, input);
    assert.equal(final.content[0].id, start.content_block.id);
  });

  it('a tool_result round trip is accepted and renders as the chat API would', async () => {
    const call = await client.messages.create({ ...base, max_tokens: 80, tools: TOOLS, tool_choice: { type: 'tool', name: 'get_weather', disable_parallel_tool_use: true } });
    const use = call.content[0];
    assert.ok(use.type === 'tool_use');
    const history: MessageParam[] = [
      ...ask,
      { role: 'assistant', content: call.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: [{ type: 'text', text: '{"forecast": "sunny"}' }] }, { type: 'text', text: 'Thanks!' }] },
    ];
    const msg = await client.messages.create({ ...base, max_tokens: 4, tools: TOOLS, messages: history });
    assert.equal(msg.role, 'assistant');
    const { input_tokens } = await client.messages.countTokens({ model: MODEL_NAME, tools: TOOLS, messages: history });
    const chat = await chatPromptTokens({
      tools: TOOLS.map((t) => ({ type: 'function', function: { name: t.name, ...(t.description ? { description: t.description } : {}), parameters: t.input_schema } })),
      messages: [
        ...ask,
        { role: 'assistant', content: null, tool_calls: [{ id: use.id, type: 'function', function: { name: use.name, arguments: JSON.stringify(use.input) } }] },
        { role: 'tool', tool_call_id: use.id, content: '{"forecast": "sunny"}' },
        { role: 'user', content: 'Thanks!' },
      ],
    });
    assert.equal(input_tokens, chat);
  });

  it("tool_choice none: no tool_use, the tools still listed in the prompt", async () => {
    const msg = await client.messages.create({ ...base, max_tokens: 5, tools: TOOLS, tool_choice: { type: 'none' } });
    assert.ok(msg.content.every((b) => b.type === 'text'));
    const withTools = await client.messages.countTokens({ model: MODEL_NAME, tools: TOOLS, tool_choice: { type: 'none' }, messages: ask });
    const without = await client.messages.countTokens({ model: MODEL_NAME, messages: ask });
    assert.ok(withTools.input_tokens > without.input_tokens);
  });
});

describe('errors in Anthropic’s envelope', () => {
  const post = (body: object, headers: Record<string, string> = {}) => postJson(`${server.url}/v1/messages`, body, headers);
  async function expectError(res: Response, status: number, type: string, mentions: RegExp): Promise<void> {
    const json = (await res.json()) as { type: string; error: { type: string; message: string } };
    assert.equal(res.status, status, JSON.stringify(json));
    assert.equal(json.type, 'error');
    assert.equal(json.error.type, type);
    assert.match(json.error.message, mentions);
    assert.deepEqual(Object.keys(json).sort(), ['error', 'type']);
  }

  it('missing max_tokens: 400 invalid_request_error', async () => {
    await expectError(await post({ model: MODEL_NAME, messages: ask }), 400, 'invalid_request_error', /max_tokens/);
  });

  it('an image block: 400 naming the block type', async () => {
    const messages = [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AAAA' } }] }];
    await expectError(await post({ model: MODEL_NAME, max_tokens: 5, messages }), 400, 'invalid_request_error', /'image'.*messages\[0\]\.content\[1\]/);
  });

  it('thinking blocks and the thinking parameter: 400; thinking disabled is accepted', async () => {
    const messages = [...ask, { role: 'assistant', content: [{ type: 'thinking', thinking: 'hm', signature: 'x' }, { type: 'text', text: 'Sunny.' }] }, { role: 'user', content: 'More?' }];
    await expectError(await post({ model: MODEL_NAME, max_tokens: 5, messages }), 400, 'invalid_request_error', /'thinking'.*not supported/);
    await expectError(await post({ model: MODEL_NAME, max_tokens: 5, messages: ask, thinking: { type: 'enabled', budget_tokens: 1024 } }), 400, 'invalid_request_error', /thinking/);
    assert.equal((await post({ model: MODEL_NAME, max_tokens: 1, messages: ask, thinking: { type: 'disabled' } })).status, 200);
  });

  it('other unsupported inputs: a final assistant message, server tools, too many stop sequences, tool_choice naming an unknown tool', async () => {
    const ok = { model: MODEL_NAME, max_tokens: 5, messages: ask };
    await expectError(await post({ ...ok, messages: [...ask, { role: 'assistant', content: 'The weather is' }] }), 400, 'invalid_request_error', /prefill.*messages\[1\]/);
    await expectError(await post({ ...ok, tools: [{ type: 'web_search_20250305', name: 'web_search' }] }), 400, 'invalid_request_error', /web_search_20250305.*tools\[0\]\.type/);
    await expectError(await post({ ...ok, stop_sequences: ['a', 'b', 'c', 'd', 'e'] }), 400, 'invalid_request_error', /stop_sequences/);
    await expectError(await post({ ...ok, tools: TOOLS, tool_choice: { type: 'tool', name: 'nope' } }), 400, 'invalid_request_error', /'nope'.*\(tool_choice\.name\)/);
    await expectError(await post({ ...ok, tools: [{ name: 'f', input_schema: { type: 'object', not: { required: ['a'] } } }], tool_choice: { type: 'any' } }), 400, 'invalid_request_error', /tools\[0\]\.input_schema\.not/);
  });

  it('an unknown model: 404 not_found_error (SDK: NotFoundError)', async () => {
    await expectError(await post({ model: 'claude-nope', max_tokens: 5, messages: ask }), 404, 'not_found_error', /claude-nope/);
    await assert.rejects(client.messages.create({ ...base, model: 'claude-nope', max_tokens: 5 }), (err: unknown) => {
      assert.ok(err instanceof Anthropic.NotFoundError);
      assert.equal(err.status, 404);
      return true;
    });
    await expectError(await postJson(`${server.url}/v1/messages/count_tokens`, { model: 'claude-nope', messages: ask }), 404, 'not_found_error', /claude-nope/);
  });

  it('with API keys configured: no key is 401 authentication_error; x-api-key (the SDK) and Bearer are accepted', async () => {
    const secured = await startServer(model, { apiKeys: ['k1'] });
    try {
      await expectError(await postJson(`${secured.url}/v1/messages`, { model: MODEL_NAME, max_tokens: 1, messages: ask }), 401, 'authentication_error', /API key/);
      await assert.rejects(
        new Anthropic({ baseURL: secured.url, apiKey: 'wrong', maxRetries: 0 }).messages.create({ ...base, max_tokens: 1 }),
        (err: unknown) => err instanceof Anthropic.AuthenticationError,
      );
      const msg = await new Anthropic({ baseURL: secured.url, apiKey: 'k1', maxRetries: 0 }).messages.create({ ...base, max_tokens: 1 });
      assert.equal(msg.usage.output_tokens, 1);
      const bearer = await postJson(`${secured.url}/v1/messages/count_tokens`, { model: MODEL_NAME, messages: ask }, { authorization: 'Bearer k1' });
      assert.equal(bearer.status, 200);
    } finally {
      await secured.close();
    }
  });
});

describe('translation (no engine)', () => {
  it('maps system, text, tool_use, tool_result and sampling fields onto a chat request', () => {
    const { request, origins } = toChatRequest(
      {
        model: 'm',
        system: [{ type: 'text', text: 'S1' }, { type: 'text', text: 'S2' }],
        messages: [
          { role: 'user', content: 'hi' },
          { role: 'assistant', content: [{ type: 'text', text: 'Let me check.' }, { type: 'tool_use', id: 'toolu_1', name: 'f', input: { a: 1 } }] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'boom', is_error: true }, { type: 'text', text: 'and?' }] },
        ],
        tools: [{ name: 'f', description: 'F', input_schema: { type: 'object' }, strict: true }],
        tool_choice: { type: 'any', disable_parallel_tool_use: true },
        stop_sequences: ['END'],
        temperature: 0.5,
        top_p: 0.9,
        top_k: 40,
        stream: true,
      },
      7,
    );
    assert.deepEqual(request, {
      model: 'm',
      max_tokens: 7,
      stream: true,
      messages: [
        { role: 'system', content: 'S1\nS2' },
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: [{ type: 'text', text: 'Let me check.' }], tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }] },
        { role: 'tool', tool_call_id: 'toolu_1', content: 'Error: boom' },
        { role: 'user', content: [{ type: 'text', text: 'and?' }] },
      ],
      tools: [{ type: 'function', function: { name: 'f', description: 'F', parameters: { type: 'object' }, strict: true } }],
      tool_choice: 'required',
      parallel_tool_calls: false,
      stop: ['END'],
      temperature: 0.5,
      top_p: 0.9,
      top_k: 40,
    });
    assert.deepEqual(origins, ['system', 'messages[0]', 'messages[1]', 'messages[2].content[0]', 'messages[2]']);
  });

  it('tool_choice auto / tool / none', () => {
    const m = { model: 'm', messages: [{ role: 'user' as const, content: 'x' }], tools: [{ name: 'f', input_schema: {} }] };
    assert.equal(toChatRequest({ ...m, tool_choice: { type: 'auto' } }, 1).request.tool_choice, 'auto');
    assert.deepEqual(toChatRequest({ ...m, tool_choice: { type: 'tool', name: 'f' } }, 1).request.tool_choice, { type: 'function', function: { name: 'f' } });
    assert.equal(toChatRequest({ ...m, tool_choice: { type: 'none' } }, 1).request.tool_choice, 'none');
    assert.equal(toChatRequest({ ...m, tool_choice: { type: 'auto' } }, 1).request.parallel_tool_calls, undefined);
  });

  it('chat-core error params are renamed to Messages-API paths', () => {
    const origins = ['system', 'messages[0]', 'messages[1].content[2]'];
    assert.equal(anthropicParam('messages[2].content', origins), 'messages[1].content[2]');
    assert.equal(anthropicParam('messages', origins), 'messages');
    assert.equal(anthropicParam('tools[3].function.parameters.properties.x', origins), 'tools[3].input_schema.properties.x');
    assert.equal(anthropicParam('tools[0].function.name', origins), 'tools[0].name');
    assert.equal(anthropicParam('tool_choice.function.name', origins), 'tool_choice.name');
    assert.equal(anthropicParam('stop', origins), 'stop_sequences');
    assert.equal(anthropicParam('temperature', origins), 'temperature');
  });
});
