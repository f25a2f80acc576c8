/**
 * OpenAI's Responses API through the official openai SDK against a real server (real engine, tiny
 * model): response shape and usage, instructions and message items, the streaming event sequence,
 * function calls (grammar-forced, as the random model never calls a tool by itself), structured
 * output, stored responses (continuation on the prefix cache, retrieve, delete, store: false),
 * 400s naming the param, and the store's own bounds.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import type { FunctionTool, Response, ResponseStreamEvent } from 'openai/resources/responses/responses';
import { pino } from 'pino';
import type { LoadedModel } from '../../src/app.ts';
import { loggerOptions } from '../../src/server/logging.ts';
import type { ResponseObject, ResponseStreamEvent as WireEvent } from '../../src/server/protocol/responses.ts';
import type { GenerationBackend, ServingContext } from '../../src/server/serving/context.ts';
import { ResponseStore } from '../../src/server/serving/response-store.ts';
import { createResponse } from '../../src/server/serving/responses.ts';
import { MODEL_NAME, postJson, startServer, startSdkServer, type SdkServer, type TestServer } from '../helpers/server.ts';
import { TIME, WEATHER } from '../helpers/tool-schemas.ts';

let model: LoadedModel;
let server: TestServer;
let client: OpenAI;

let sdk: SdkServer | undefined;

before(async () => {
  sdk = await startSdkServer();
  ({ model, server, client } = sdk);
});
after(() => sdk?.close());

const TOOLS: FunctionTool[] = [
  { type: 'function', name: 'get_weather', description: 'Weather forecast', parameters: WEATHER, strict: true },
  { type: 'function', name: 'get_time', parameters: TIME, strict: true },
];
const validators: Record<string, (v: unknown) => boolean> = { get_weather: new Ajv().compile(WEATHER), get_time: new Ajv().compile(TIME) };
const QUESTION = 'What is the weather in Paris this week?';

/** `seed` is this server's extension (as in chat completions), for reproducible answers; the SDK's types lack it. */
const seeded = <T extends object>(params: T, seed: number): T => ({ ...params, seed });

/** Prompt tokens of the same conversation through chat completions: what the translation must produce. */
async function chatPromptTokens(messages: OpenAI.Chat.ChatCompletionMessageParam[]): Promise<number> {
  const res = await client.chat.completions.create({ model: MODEL_NAME, messages, max_tokens: 1 });
  return res.usage!.prompt_tokens;
}

function messageText(res: Response): string {
  return res.output.flatMap((i) => (i.type === 'message' ? i.content.map((c) => (c.type === 'output_text' ? c.text : '')) : [])).join('');
}

function functionCalls(res: Response) {
  return res.output.filter((i) => i.type === 'function_call');
}

function assertValidCall(call: { type: string; id?: string; call_id: string; name: string; arguments: string; status?: string }, names: string[]) {
  assert.match(call.id ?? '', /^fc_/);
  assert.match(call.call_id, /^call_/);
  assert.ok(names.includes(call.name), call.name);
  assert.ok(validators[call.name](JSON.parse(call.arguments)), call.arguments);
  assert.equal(call.status, 'completed');
}

describe('POST /v1/responses', () => {
  it('a string input: the response object, usage, and status incomplete when max_output_tokens cuts it', async () => {
    const res = await client.responses.create(seeded({ model: MODEL_NAME, input: 'Say something.', max_output_tokens: 8 }, 1));
    assert.match(res.id, /^resp_[A-Za-z0-9]+$/);
    assert.equal(res.object, 'response');
    assert.equal(res.model, MODEL_NAME);
    assert.ok(Math.abs(res.created_at - Date.now() / 1000) < 600);
    assert.equal(res.status, 'incomplete');
    assert.deepEqual(res.incomplete_details, { reason: 'max_output_tokens' });
    assert.equal(res.error, null);
    assert.equal(res.output.length, 1);
    const msg = res.output[0];
    assert.equal(msg.type, 'message');
    if (msg.type !== 'message') return;
    assert.match(msg.id, /^msg_/);
    assert.equal(msg.role, 'assistant');
    assert.equal(msg.status, 'incomplete');
    assert.equal(msg.content.length, 1);
    assert.equal(msg.content[0].type, 'output_text');
    assert.deepEqual((msg.content[0] as { annotations: unknown[] }).annotations, []);
    assert.ok(res.output_text.length > 0);
    assert.equal(res.output_text, messageText(res));
    // Echoed settings.
    assert.equal(res.max_output_tokens, 8);
    assert.equal(res.temperature, 1);
    assert.equal(res.top_p, 1);
    assert.equal(res.tool_choice, 'none');
    assert.deepEqual(res.tools, []);
    assert.equal(res.parallel_tool_calls, true);
    assert.deepEqual(res.text, { format: { type: 'text' } });
    assert.equal((res as unknown as { store: boolean }).store, true);
    assert.equal(res.previous_response_id, null);
    assert.equal(res.instructions, null);
    // Usage: the same prompt as a chat request with one user message.
    const usage = res.usage!;
    assert.equal(usage.input_tokens, await chatPromptTokens([{ role: 'user', content: 'Say something.' }]));
    assert.equal(usage.output_tokens, 8);
    assert.equal(usage.total_tokens, usage.input_tokens + 8);
    assert.equal(typeof usage.input_tokens_details.cached_tokens, 'number');
    assert.equal(usage.output_tokens_details.reasoning_tokens, 0);
  });

  it('instructions become a system message first; metadata and user are echoed', async () => {
    const res = await client.responses.create({
      model: MODEL_NAME,
      instructions: 'You are terse.',
      input: 'Say something.',
      max_output_tokens: 2,
      metadata: { purpose: 'test' },
      user: 'tester',
    });
    assert.equal(res.instructions, 'You are terse.');
    assert.deepEqual(res.metadata, { purpose: 'test' });
    assert.equal(res.user, 'tester');
    const expected = await chatPromptTokens([
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Say something.' },
    ]);
    assert.equal(res.usage!.input_tokens, expected);
  });

  it('message items: roles, text parts and earlier assistant output render like the chat equivalent', async () => {
    const res = await client.responses.create({
      model: MODEL_NAME,
      input: [
        { role: 'developer', content: 'Answer in French.' },
        { role: 'user', content: [{ type: 'input_text', text: 'Hello' }, { type: 'input_text', text: 'there' }] },
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Bonjour', annotations: [] }], id: 'msg_1', status: 'completed' },
        { type: 'message', role: 'user', content: 'Again?' },
      ],
      max_output_tokens: 2,
    });
    const expected = await chatPromptTokens([
      { role: 'system', content: 'Answer in French.' },
      { role: 'user', content: 'Hello\nthere' },
      { role: 'assistant', content: 'Bonjour' },
      { role: 'user', content: 'Again?' },
    ]);
    assert.equal(res.usage!.input_tokens, expected);
  });

  it('text.format json_schema: output_text parses and validates, status completed', async () => {
    const res = await client.responses.create(
      seeded({ model: MODEL_NAME, input: QUESTION, text: { format: { type: 'json_schema', name: 'weather', schema: WEATHER, strict: true } }, max_output_tokens: 80 }, 10),
    );
    assert.equal(res.status, 'completed');
    assert.equal(res.incomplete_details, null);
    assert.ok(validators.get_weather(JSON.parse(res.output_text)), res.output_text);
    assert.deepEqual(res.text?.format, { type: 'json_schema', name: 'weather', schema: WEATHER, strict: true });
  });
});

describe('streaming', () => {
  it('events in order, sequence numbers 0, 1, 2, ..., deltas add up to the final text', async () => {
    const stream = await client.responses.create(seeded({ model: MODEL_NAME, input: 'Say something.', max_output_tokens: 12, stream: true }, 2));
    const events: ResponseStreamEvent[] = [];
    for await (const ev of stream) events.push(ev);
    assert.deepEqual(
      events.map((e) => e.sequence_number),
      events.map((_, i) => i),
    );
    const types = events.map((e) => e.type);
    const deltas = types.filter((t) => t === 'response.output_text.delta').length;
    assert.ok(deltas > 1, 'text arrives in pieces');
    assert.deepEqual(types, [
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      ...Array<string>(deltas).fill('response.output_text.delta'),
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.incomplete',
    ]);
    const created = events[0] as Extract<ResponseStreamEvent, { type: 'response.created' }>;
    assert.equal(created.response.status, 'in_progress');
    assert.deepEqual(created.response.output, []);
    const final = (events.at(-1) as Extract<ResponseStreamEvent, { type: 'response.incomplete' }>).response;
    assert.equal(final.id, created.response.id);
    assert.equal(final.status, 'incomplete');
    assert.equal(final.usage?.output_tokens, 12);
    const text = events.flatMap((e) => (e.type === 'response.output_text.delta' ? [e.delta] : [])).join('');
    const done = events.find((e) => e.type === 'response.output_text.done') as Extract<ResponseStreamEvent, { type: 'response.output_text.done' }>;
    assert.equal(done.text, text);
    assert.equal(messageText(final), text);
    // Every item event names the item that was added.
    const added = events.find((e) => e.type === 'response.output_item.added') as Extract<ResponseStreamEvent, { type: 'response.output_item.added' }>;
    for (const e of events) if ('item_id' in e) assert.equal(e.item_id, added.item.id);
    // The stored response is the final one.
    const stored = await client.responses.retrieve(final.id);
    assert.equal(stored.status, 'incomplete');
    assert.equal(stored.output_text, text);
  });

  it('an engine failure after output is an error event, and nothing is stored', async () => {
    // The real engine, except that its generation ends in an engine error.
    const real = server.ctx.engine;
    const failing: GenerationBackend = {
      info: real.info,
      limits: real.limits,
      checkGrammar: (g) => real.checkGrammar(g),
      stats: () => real.stats(),
      onStep: (l) => real.onStep(l),
      close: async () => undefined,
      async *generate(req, signal) {
        for await (const ev of real.generate(req, signal)) yield ev.type === 'done' ? { ...ev, finishReason: 'error', error: 'the worker died' } : ev;
      },
    };
    const ctx: ServingContext = { ...server.ctx, engine: failing };
    const store = new ResponseStore({ sweepIntervalMs: 0 });
    const result = await createResponse(ctx, store, { model: MODEL_NAME, input: 'Say something.', max_output_tokens: 4, stream: true }, { requestId: 'failing' });
    assert.equal(result.kind, 'stream');
    if (result.kind !== 'stream') return;
    const events: WireEvent[] = [];
    for (let r = await result.chunks.next(); !r.done; r = await result.chunks.next()) events.push(r.value as WireEvent);
    assert.deepEqual(
      events.map((e) => e.sequence_number),
      events.map((_, i) => i),
    );
    assert.equal(events[0].type, 'response.created');
    assert.ok(events.some((e) => e.type === 'response.output_text.delta'), 'output came first');
    const last = events.at(-1)!;
    assert.equal(last.type, 'error');
    if (last.type !== 'error') return;
    assert.equal(last.code, 'internal_error');
    assert.match(last.message, /the worker died/);
    assert.equal(last.param, null);
    assert.equal(store.size, 0);
  });

  it("the SDK's responses.stream() helper accumulates the same response", async () => {
    const stream = client.responses.stream({ model: MODEL_NAME, input: 'Say something.', max_output_tokens: 6 });
    let text = '';
    stream.on('response.output_text.delta', (e) => {
      text += e.delta;
    });
    const final = await stream.finalResponse();
    assert.equal(final.output_text, text);
    assert.equal(final.usage?.output_tokens, 6);
  });

  it('a streamed function call: item added with empty arguments, argument deltas reassemble into a valid call', async () => {
    const stream = await client.responses.create(seeded({
      model: MODEL_NAME,
      input: QUESTION,
      tools: TOOLS,
      tool_choice: 'required',
      parallel_tool_calls: false,
      max_output_tokens: 80,
      stream: true,
    }, 6));
    const events: ResponseStreamEvent[] = [];
    for await (const ev of stream) events.push(ev);
    const types = events.map((e) => e.type);
    const fragments = types.filter((t) => t === 'response.function_call_arguments.delta').length;
    assert.ok(fragments > 1, 'arguments arrive in fragments');
    assert.deepEqual(types, [
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      ...Array<string>(fragments).fill('response.function_call_arguments.delta'),
      'response.function_call_arguments.done',
      'response.output_item.done',
      'response.completed',
    ]);
    const added = events[2] as Extract<ResponseStreamEvent, { type: 'response.output_item.added' }>;
    assert.equal(added.item.type, 'function_call');
    if (added.item.type !== 'function_call') return;
    assert.equal(added.item.arguments, '');
    assert.equal(added.item.status, 'in_progress');
    const args = events.flatMap((e) => (e.type === 'response.function_call_arguments.delta' ? [e.delta] : [])).join('');
    const done = events.find((e) => e.type === 'response.function_call_arguments.done') as Extract<ResponseStreamEvent, { type: 'response.function_call_arguments.done' }>;
    assert.equal(done.arguments, args);
    const final = (events.at(-1) as Extract<ResponseStreamEvent, { type: 'response.completed' }>).response;
    const calls = functionCalls(final);
    assert.equal(calls.length, 1);
    assert.equal(calls[0].arguments, args);
    assert.equal(calls[0].call_id, added.item.call_id);
    assertValidCall(calls[0], ['get_weather', 'get_time']);
  });
});

describe('function calls', () => {
  it("tool_choice 'required': one function_call item whose arguments validate", async () => {
    for (const seed of [1, 2, 3]) {
      const res = await client.responses.create(seeded({ model: MODEL_NAME, input: QUESTION, tools: TOOLS, tool_choice: 'required', parallel_tool_calls: false, max_output_tokens: 80 }, seed));
      assert.equal(res.status, 'completed');
      const calls = functionCalls(res);
      assert.equal(calls.length, 1);
      assert.equal(res.output.length, 1, 'no text beside the call');
      assertValidCall(calls[0], ['get_weather', 'get_time']);
      assert.equal(res.tool_choice, 'required');
      assert.deepEqual(res.tools, [
        { type: 'function', name: 'get_weather', description: 'Weather forecast', parameters: WEATHER, strict: true },
        { type: 'function', name: 'get_time', description: null, parameters: TIME, strict: true },
      ]);
    }
  });

  it('a named function: that function is called', async () => {
    const res = await client.responses.create(seeded({ model: MODEL_NAME, input: QUESTION, tools: TOOLS, tool_choice: { type: 'function', name: 'get_time' }, parallel_tool_calls: false, max_output_tokens: 80 }, 5));
    const calls = functionCalls(res);
    assert.equal(calls.length, 1);
    assertValidCall(calls[0], ['get_time']);
  });

  it('function_call_output round trip: sent back as items, and after previous_response_id', async () => {
    const first = await client.responses.create(seeded({ model: MODEL_NAME, input: QUESTION, tools: TOOLS, tool_choice: 'required', parallel_tool_calls: false, max_output_tokens: 80 }, 1));
    const [call] = functionCalls(first);
    assertValidCall(call, ['get_weather', 'get_time']);
    const result = { type: 'function_call_output' as const, call_id: call.call_id, output: '{"forecast": "sunny"}' };

    // Stateless: the whole history as items (the call as the SDK returned it).
    const stateless = await client.responses.create({ model: MODEL_NAME, input: [{ role: 'user', content: QUESTION }, call, result], tools: TOOLS, max_output_tokens: 3 });
    assert.equal(stateless.output[0].type, 'message');
    // It renders exactly like the chat conversation with an assistant tool call and a tool message.
    const expected = await client.chat.completions.create({
      model: MODEL_NAME,
      messages: [
        { role: 'user', content: QUESTION },
        { role: 'assistant', content: null, tool_calls: [{ id: call.call_id, type: 'function', function: { name: call.name, arguments: call.arguments } }] },
        { role: 'tool', tool_call_id: call.call_id, content: '{"forecast": "sunny"}' },
      ],
      tools: TOOLS.map((t) => ({ type: 'function' as const, function: { name: t.name, ...(t.description ? { description: t.description } : {}), parameters: t.parameters! } })),
      max_tokens: 1,
    });
    assert.equal(stateless.usage!.input_tokens, expected.usage!.prompt_tokens);

    // Stateful: only the result, after the stored response.
    const stateful = await client.responses.create({ model: MODEL_NAME, previous_response_id: first.id, input: [result], tools: TOOLS, max_output_tokens: 3 });
    assert.equal(stateful.previous_response_id, first.id);
    assert.equal(stateful.usage!.input_tokens, expected.usage!.prompt_tokens);
  });

  it('a function_call_output without a matching call is a 400 naming its call_id', async () => {
    const err = await client.responses
      .create({ model: MODEL_NAME, input: [{ type: 'function_call_output', call_id: 'call_nope', output: 'x' }], max_output_tokens: 2 })
      .catch((e: unknown) => e);
    assert.ok(err instanceof OpenAI.BadRequestError, String(err));
    assert.equal(err.param, 'input[0].call_id');
  });
});

describe('stored responses', () => {
  it('previous_response_id continues the conversation from the prefix cache', async () => {
    const first = await client.responses.create({ model: MODEL_NAME, instructions: 'Be brief.', input: 'Tell me a story about a lighthouse keeper.', max_output_tokens: 10 });
    const second = await client.responses.create({ model: MODEL_NAME, instructions: 'Be brief.', previous_response_id: first.id, input: 'And then?', max_output_tokens: 4 });
    assert.equal(second.previous_response_id, first.id);
    const u1 = first.usage!;
    const u2 = second.usage!;
    // The second prompt holds the first one, its answer and the new turn.
    assert.ok(u2.input_tokens > u1.input_tokens + u1.output_tokens, `${u2.input_tokens} vs ${u1.input_tokens} + ${u1.output_tokens}`);
    assert.ok(u2.input_tokens_details.cached_tokens > 0, 'the continuation reuses cached KV');
    assert.ok(u2.input_tokens_details.cached_tokens >= u1.input_tokens, `${u2.input_tokens_details.cached_tokens} cached of ${u1.input_tokens}`);
    // The same conversation sent in full renders the same prompt.
    const expected = await chatPromptTokens([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Tell me a story about a lighthouse keeper.' },
      { role: 'assistant', content: first.output_text },
      { role: 'user', content: 'And then?' },
    ]);
    assert.equal(u2.input_tokens, expected);
  });

  it('an unknown previous_response_id is a 404 naming the param', async () => {
    const err = await client.responses.create({ model: MODEL_NAME, previous_response_id: 'resp_unknown', input: 'Hi', max_output_tokens: 2 }).catch((e: unknown) => e);
    assert.ok(err instanceof OpenAI.NotFoundError, String(err));
    assert.equal(err.param, 'previous_response_id');
    assert.equal((err.error as { type?: string }).type, 'invalid_request_error');
  });

  it('retrieve returns the stored response; delete removes it', async () => {
    const created = await client.responses.create({ model: MODEL_NAME, input: 'Say something.', max_output_tokens: 4 });
    const got = await client.responses.retrieve(created.id);
    assert.deepEqual(got, created);
    const raw = (await (await fetch(`${server.url}/v1/responses/${created.id}`, { method: 'DELETE' })).json()) as unknown;
    assert.deepEqual(raw, { id: created.id, object: 'response', deleted: true });
    const again = await client.responses.retrieve(created.id).catch((e: unknown) => e);
    assert.ok(again instanceof OpenAI.NotFoundError, String(again));
    const deletedTwice = await client.responses.delete(created.id).catch((e: unknown) => e);
    assert.ok(deletedTwice instanceof OpenAI.NotFoundError, String(deletedTwice));
    // The SDK's own delete call.
    const other = await client.responses.create({ model: MODEL_NAME, input: 'Say something.', max_output_tokens: 1 });
    await client.responses.delete(other.id);
    assert.ok((await client.responses.retrieve(other.id).catch((e: unknown) => e)) instanceof OpenAI.NotFoundError);
  });

  it('store: false is neither retrievable nor continuable', async () => {
    const res = await client.responses.create({ model: MODEL_NAME, input: 'Say something.', max_output_tokens: 2, store: false });
    assert.equal((res as unknown as { store: boolean }).store, false);
    assert.ok((await client.responses.retrieve(res.id).catch((e: unknown) => e)) instanceof OpenAI.NotFoundError);
    const next = await client.responses.create({ model: MODEL_NAME, previous_response_id: res.id, input: 'Hi', max_output_tokens: 2 }).catch((e: unknown) => e);
    assert.ok(next instanceof OpenAI.NotFoundError);
  });

  it('stored conversations never reach the logs', async () => {
    const marker = `PRIVATE-${randomUUID()}`;
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString('utf8'));
        cb();
      },
    });
    const logged = await startServer(model, { logLevel: 'trace' }, { logger: pino(loggerOptions({ logLevel: 'trace' }), sink) });
    try {
      const c = new OpenAI({ baseURL: `${logged.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const first = await c.responses.create({ model: MODEL_NAME, instructions: `Guard ${marker}.`, input: `About ${marker}`, max_output_tokens: 2, metadata: { m: marker } });
      await c.responses.create({ model: MODEL_NAME, previous_response_id: first.id, input: `More ${marker}`, max_output_tokens: 2 });
      await c.responses.retrieve(first.id);
      await c.responses.delete(first.id);
      assert.equal((await postJson(`${logged.url}/v1/responses`, { model: MODEL_NAME, input: [{ role: 'user', content: [{ type: 'input_image', image_url: marker }] }] })).status, 400);
      assert.ok(lines.length > 0);
      assert.ok(!lines.some((l) => l.includes(marker)), 'the marker was logged');
    } finally {
      await logged.close();
    }
  });
});

describe('errors are 400s naming the param', () => {
  const cases: [string, object, string][] = [
    ['an image part', { input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'https://x/y.png' }] }] }, 'input[0].content[0].type'],
    ['a file part in a tool output', { input: [{ type: 'function_call', call_id: 'c1', name: 'f', arguments: '{}' }, { type: 'function_call_output', call_id: 'c1', output: [{ type: 'input_file', file_id: 'f' }] }] }, 'input[1].output[0].type'],
    ['a built-in tool', { tools: [{ type: 'web_search' }] }, 'tools[0].type'],
    ['reasoning options', { reasoning: { effort: 'high' } }, 'reasoning'],
    ['background mode', { background: true }, 'background'],
    ['a verbosity other than the default', { text: { verbosity: 'low' } }, 'text.verbosity'],
    ['an item reference', { input: [{ type: 'item_reference', id: 'msg_1' }] }, 'input[0].type'],
    ['a reasoning item', { input: [{ type: 'reasoning', id: 'rs_1', summary: [] }] }, 'input[0].type'],
    ['a message without content', { input: [{ role: 'user' }] }, 'input[0].content'],
    ['a role the API does not have', { input: [{ role: 'tool', content: 'x' }] }, 'input[0].role'],
    ['a function call without arguments', { input: [{ type: 'function_call', call_id: 'c', name: 'f' }] }, 'input[0].arguments'],
    ['tool call arguments that are not JSON', { input: [{ type: 'function_call', call_id: 'c', name: 'f', arguments: '{oops' }] }, 'input[0].arguments'],
    ['tool_choice naming an unknown function', { tools: TOOLS, tool_choice: { type: 'function', name: 'nope' } }, 'tool_choice.name'],
    ['a built-in tool_choice', { tools: TOOLS, tool_choice: { type: 'web_search_preview' } }, 'tool_choice.type'],
    ['an unenforceable keyword in a strict tool', { tools: [{ type: 'function', name: 'f', parameters: { type: 'object', not: { required: ['a'] } } }], tool_choice: 'required' }, 'tools[0].parameters.not'],
    ['an invalid text.format schema', { text: { format: { type: 'json_schema', name: 'x', schema: { type: 'nonsense' } } } }, 'text.format.schema'],
    ['a json_schema format without a schema', { text: { format: { type: 'json_schema', name: 'x' } } }, 'text.format.schema'],
    ['text.format with a required tool call', { tools: TOOLS, tool_choice: 'required', text: { format: { type: 'json_object' } } }, 'text.format'],
    ['a bad temperature', { temperature: 3 }, 'temperature'],
    // As in chat completions, a prompt plus budget over the context names the prompt.
    ['too many output tokens', { max_output_tokens: 1_000_000 }, 'input'],
    ['input longer than the context', { input: 'word '.repeat(1500) }, 'input'],
    ['no input', { input: undefined }, 'input'],
    ['an empty input list', { input: [] }, 'input'],
    ['metadata values that are not strings', { metadata: { n: 1 } }, 'metadata.n'],
  ];
  for (const [what, body, param] of cases) {
    it(what, async () => {
      const res = await postJson(`${server.url}/v1/responses`, { model: MODEL_NAME, input: 'Hi', max_output_tokens: 4, ...body });
      const json = (await res.json()) as { error: { param: string; type: string; message: string } };
      assert.equal(res.status, 400, JSON.stringify(json));
      assert.equal(json.error.type, 'invalid_request_error');
      assert.equal(json.error.param, param, json.error.message);
    });
  }

  it('an unknown model is a 404', async () => {
    const res = await postJson(`${server.url}/v1/responses`, { model: 'nope', input: 'Hi' });
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { error: { param: string } }).error.param, 'model');
  });
});

describe('ResponseStore', () => {
  const stored = (id: string) => ({ response: { id } as ResponseObject, conversation: [] });

  it('evicts the least recently used response beyond its size', () => {
    const store = new ResponseStore({ maxEntries: 2, sweepIntervalMs: 0 });
    store.put(stored('a'));
    store.put(stored('b'));
    assert.ok(store.get('a')); // a is now the most recently used
    store.put(stored('c'));
    assert.equal(store.size, 2);
    assert.equal(store.get('b'), undefined);
    assert.ok(store.get('a'));
    assert.ok(store.get('c'));
  });

  it('forgets a response once its lifetime has passed, used or not', () => {
    let now = 0;
    const store = new ResponseStore({ ttlMs: 1000, now: () => now, sweepIntervalMs: 0 });
    store.put(stored('a'));
    store.put(stored('b'));
    now = 999;
    assert.ok(store.get('a'));
    now = 1000;
    assert.equal(store.get('a'), undefined);
    assert.equal(store.delete('b'), false);
    store.put(stored('c'));
    assert.equal(store.size, 1);
    store.close();
  });
});
