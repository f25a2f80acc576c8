/**
 * Tool calls and structured outputs through the official openai SDK against a real server (real
 * engine, tiny model). The random weights never write JSON or call a tool by themselves (the
 * controls below show it), so every valid call and object is the grammar's and parser's doing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import type { ChatCompletionTool } from 'openai/resources/chat/completions';
import type { LoadedModel } from '../../src/app.ts';
import { MODEL_NAME, startServer, startSdkServer, type SdkServer, type TestServer } from '../helpers/server.ts';
import { TIME, WEATHER, assertValidCalls, byName, collectToolCallStream } from '../helpers/tool-schemas.ts';

let model: LoadedModel;
let server: TestServer;
let client: OpenAI;

let sdk: SdkServer | undefined;

before(async () => {
  sdk = await startSdkServer();
  ({ model, server, client } = sdk);
});
after(() => sdk?.close());

const TOOLS: ChatCompletionTool[] = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather forecast', parameters: WEATHER } },
  { type: 'function', function: { name: 'get_time', parameters: TIME } },
];
const messages = [{ role: 'user' as const, content: 'What is the weather in Paris this week?' }];
const TOOL_CALL_TOKEN = '200025';


describe('tool calls', () => {
  it("tool_choice 'required': a call to one of the tools, arguments valid, finish_reason tool_calls", async () => {
    for (const seed of [1, 2, 3]) {
      const res = await client.chat.completions.create({ model: MODEL_NAME, messages, tools: TOOLS, tool_choice: 'required', parallel_tool_calls: false, seed, max_tokens: 80 });
      const choice = res.choices[0];
      assert.equal(choice.finish_reason, 'tool_calls');
      assert.equal(choice.message.content, null);
      assert.equal(choice.message.tool_calls?.length, 1);
      assertValidCalls(choice.message.tool_calls as never, ['get_weather', 'get_time']);
    }
  });

  it('parallel calls: every complete call in the list is valid', async () => {
    // The random model decides how long the list gets; only a call cut by max_tokens may be incomplete.
    const res = await client.chat.completions.create({ model: MODEL_NAME, messages, tools: TOOLS, tool_choice: 'required', seed: 4, max_tokens: 400, temperature: 0 });
    const choice = res.choices[0];
    const calls = choice.message.tool_calls ?? [];
    const complete = choice.finish_reason === 'tool_calls' ? calls : calls.slice(0, -1);
    assert.ok(calls.length >= 1, 'a call was made');
    if (complete.length > 0) assertValidCalls(complete as never, ['get_weather', 'get_time']);
  });

  it('a named tool: that tool is called', async () => {
    const res = await client.chat.completions.create({ model: MODEL_NAME, messages, tools: TOOLS, tool_choice: { type: 'function', function: { name: 'get_time' } }, parallel_tool_calls: false, seed: 5, max_tokens: 80 });
    assertValidCalls(res.choices[0].message.tool_calls as never, ['get_time']);
    assert.equal(res.choices[0].finish_reason, 'tool_calls');
  });

  it('streaming: OpenAI tool-call deltas reassemble into valid calls, no special tokens in content', async () => {
    const stream = await client.chat.completions.create({ model: MODEL_NAME, messages, tools: TOOLS, tool_choice: 'required', parallel_tool_calls: false, seed: 6, max_tokens: 80, stream: true });
    const { calls, content, finish, fragments } = await collectToolCallStream(stream);
    assert.equal(finish, 'tool_calls');
    assert.equal(content, '');
    assert.ok(fragments > 1, 'arguments arrive in fragments');
    assertValidCalls(calls, ['get_weather', 'get_time']);
  });

  it("'auto' with a strict tool: once the model opens a call, its arguments follow the schema", async () => {
    const strict: ChatCompletionTool[] = [{ type: 'function', function: { name: 'get_weather', parameters: WEATHER, strict: true } }];
    // The bias makes the random model open a call; what follows is up to the grammar.
    const res = await client.chat.completions.create({ model: MODEL_NAME, messages, tools: strict, parallel_tool_calls: false, seed: 7, max_tokens: 80, logit_bias: { [TOOL_CALL_TOKEN]: 100 } });
    assert.equal(res.choices[0].finish_reason, 'tool_calls');
    assertValidCalls(res.choices[0].message.tool_calls as never, ['get_weather']);
    // The control: without strict, the same opener is followed by whatever the random model writes.
    const loose = await client.chat.completions.create({ model: MODEL_NAME, messages, tools: [{ type: 'function', function: { name: 'get_weather', parameters: WEATHER } }], seed: 7, max_tokens: 30, logit_bias: { [TOOL_CALL_TOKEN]: 100 } });
    assert.equal(loose.choices[0].message.tool_calls, undefined);
  });

  it("'none': the model cannot open a call, even pushed to", async () => {
    const res = await client.chat.completions.create({ model: MODEL_NAME, messages, tools: TOOLS, tool_choice: 'none', seed: 8, max_tokens: 10, logit_bias: { [TOOL_CALL_TOKEN]: 100 } });
    assert.equal(res.choices[0].message.tool_calls, undefined);
    assert.equal(res.usage?.completion_tokens, 10);
  });

  it('a tool-result turn is accepted and rendered into the prompt', async () => {
    const history = [
      ...messages,
      { role: 'assistant' as const, content: null, tool_calls: [{ id: 'call_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{"city": "Paris", "unit": "c", "days": 2}' } }] },
      { role: 'tool' as const, tool_call_id: 'call_1', content: '{"forecast": "sunny"}' },
    ];
    const res = await client.chat.completions.create({ model: MODEL_NAME, messages: history, tools: TOOLS, seed: 9, max_tokens: 5 });
    assert.equal(res.choices[0].message.role, 'assistant');
    const rendered = server.ctx.tokenizer.applyChatTemplate(
      [
        { role: 'user', content: 'q' },
        { role: 'assistant', content: '', toolCalls: '[{"name": "get_weather", "arguments": {"city": "Paris"}}]' },
        { role: 'tool', content: '{"forecast": "sunny"}' },
      ],
      { addGenerationPrompt: true },
    );
    assert.equal(rendered.text, '<|user|>q<|end|><|assistant|><|tool_call|>[{"name": "get_weather", "arguments": {"city": "Paris"}}]<|/tool_call|><|end|><|tool|>{"forecast": "sunny"}<|end|><|assistant|>');
    // The markers are single special tokens; the call's JSON is plain text.
    assert.equal(rendered.ids.filter((id) => id === 200025 || id === 200026).length, 2);
  });
});

describe('--chat-template', () => {
  it('replaces the model template for every chat request', async () => {
    const custom = await startServer(model, { chatTemplate: "{% for m in messages %}{{ 'ROLE ' + m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}<|assistant|>" });
    try {
      const ask = async (url: string) => (await new OpenAI({ baseURL: `${url}/v1`, apiKey: 'x' }).chat.completions.create({ model: MODEL_NAME, messages, max_tokens: 1 })).usage!.prompt_tokens;
      const expected = server.ctx.tokenizer.encode(`ROLE user: ${messages[0].content}\n`, { addSpecialTokens: false }).length + 1;
      assert.equal(await ask(custom.url), expected);
      assert.notEqual(await ask(server.url), expected);
    } finally {
      await custom.close();
    }
  });
});

describe('structured outputs', () => {
  it('json_schema: content parses and validates, streaming and not', async () => {
    const format = { type: 'json_schema' as const, json_schema: { name: 'weather', schema: WEATHER, strict: true } };
    const res = await client.chat.completions.create({ model: MODEL_NAME, messages, response_format: format, seed: 10, max_tokens: 80 });
    assert.equal(res.choices[0].finish_reason, 'stop');
    assert.ok(byName.get_weather(JSON.parse(res.choices[0].message.content!)), res.choices[0].message.content!);
    const stream = await client.chat.completions.create({ model: MODEL_NAME, messages, response_format: format, seed: 11, max_tokens: 80, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    assert.ok(byName.get_weather(JSON.parse(text)), text);
  });

  it('json_object: content is one JSON object', async () => {
    // "{}" made likely so the random model can finish; "hello" made likelier still, and masked.
    const [hello] = server.ctx.tokenizer.encode('hello', { addSpecialTokens: false });
    const [braces] = server.ctx.tokenizer.encode('{}', { addSpecialTokens: false });
    const bias = { [hello]: 100, [braces]: 50 };
    const free = await client.chat.completions.create({ model: MODEL_NAME, messages, temperature: 0, max_tokens: 2, logit_bias: bias });
    assert.match(free.choices[0].message.content!, /^hello/);
    const res = await client.chat.completions.create({ model: MODEL_NAME, messages, temperature: 0, max_tokens: 20, logit_bias: bias, response_format: { type: 'json_object' } });
    assert.deepEqual(JSON.parse(res.choices[0].message.content!), {});
  });
});

describe('errors are 400s naming the param', () => {
  const post = (body: object) =>
    fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL_NAME, messages, max_tokens: 5, ...body }) });
  const cases: [string, object, string][] = [
    ['an invalid schema', { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'nonsense' } } } }, 'response_format.json_schema.schema'],
    ['a keyword the grammar cannot enforce', { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { n: { type: 'number', multipleOf: 3 } } } } } }, 'response_format.json_schema.schema.properties.n.multipleOf'],
    ['an unresolvable $ref', { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { $ref: '#/$defs/missing' } } } }, 'response_format.json_schema.schema'],
    ['tool_choice naming an unknown tool', { tools: TOOLS, tool_choice: { type: 'function', function: { name: 'nope' } } }, 'tool_choice.function.name'],
    ['a malformed tools entry', { tools: [{ type: 'function' }] }, 'tools[0].function'],
    ['a bad tool name', { tools: [{ type: 'function', function: { name: 'has space' } }] }, 'tools[0].function.name'],
    ['a required tool_choice without tools', { tool_choice: 'required' }, 'tool_choice'],
    ['an unenforceable keyword in a required tool', { tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', not: { required: ['a'] } } } }], tool_choice: 'required' }, 'tools[0].function.parameters.not'],
    ['response_format with a required tool call', { tools: TOOLS, tool_choice: 'required', response_format: { type: 'json_object' } }, 'response_format'],
    ['tool call arguments that are not JSON', { messages: [...messages, { role: 'assistant', tool_calls: [{ id: 'a', type: 'function', function: { name: 'get_weather', arguments: '{oops' } }] }] }, 'messages[1].tool_calls[0].function.arguments'],
  ];
  for (const [what, body, param] of cases) {
    it(what, async () => {
      const res = await post(body);
      const json = (await res.json()) as { error: { param: string; type: string; message: string } };
      assert.equal(res.status, 400, JSON.stringify(json));
      assert.equal(json.error.type, 'invalid_request_error');
      assert.equal(json.error.param, param, json.error.message);
    });
  }

  it('the server keeps serving after all of them', async () => {
    const res = await client.chat.completions.create({ model: MODEL_NAME, messages, tools: TOOLS, tool_choice: 'required', parallel_tool_calls: false, seed: 12, max_tokens: 80 });
    assertValidCalls(res.choices[0].message.tool_calls as never, ['get_weather', 'get_time']);
  });
});
