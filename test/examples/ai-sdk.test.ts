/**
 * The Vercel AI SDK (ai v6 + @ai-sdk/openai-compatible), unchanged, against a real server (real
 * engine, tiny model): tool calls, structured outputs and a tool round trip. The random weights
 * never call a tool or write JSON by themselves, so every valid call and object is the grammar's.
 * A pass-through `fetch` records each request body and status so a failure shows what was sent.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { Output, generateObject, generateText, stepCountIs, streamText, tool, type LanguageModel } from 'ai';
import { z } from 'zod';
import type { LoadedModel } from '../../src/app.ts';
import { MODEL_NAME, loadTestModel, startServer, type TestServer } from '../helpers/server.ts';

interface Exchange {
  body: Record<string, unknown>;
  status: number;
}

let model: LoadedModel;
let server: TestServer;
let llm: LanguageModel;
const exchanges: Exchange[] = [];

before(async () => {
  model = await loadTestModel();
  server = await startServer(model);
  const local = createOpenAICompatible({
    name: 'local',
    baseURL: `${server.url}/v1`,
    apiKey: 'unused',
    supportsStructuredOutputs: true,
    fetch: async (input, init) => {
      const res = await fetch(input, init);
      exchanges.push({ body: JSON.parse(String(init?.body ?? '{}')), status: res.status });
      return res;
    },
  });
  llm = local(MODEL_NAME);
});
after(async () => {
  await server?.close();
  await model?.engine.close();
});

/** Requests made by `fn`, in order. */
async function recorded<T>(fn: () => Promise<T>): Promise<{ value: T; sent: Exchange[] }> {
  const from = exchanges.length;
  const value = await fn();
  return { value, sent: exchanges.slice(from) };
}

const weatherInput = z.object({
  city: z.enum(['Paris', 'Oslo', 'Lima']),
  unit: z.enum(['c', 'f']),
  days: z.number().int().min(1).max(7),
});
const timeInput = z.object({ zone: z.enum(['UTC', 'CET']), exact: z.boolean() });
const tools = {
  get_weather: tool({ description: 'Weather forecast for a city', inputSchema: weatherInput }),
  get_time: tool({ description: 'Current time in a zone', inputSchema: timeInput }),
};
const inputs: Record<string, z.ZodType> = { get_weather: weatherInput, get_time: timeInput };
const prompt = 'What is the weather in Paris this week?';
/** Unknown keys under the provider's name go into the request body as they are. */
const oneCall = { local: { parallel_tool_calls: false } };

describe('AI SDK: tool calls', () => {
  it("generateText, toolChoice 'required', no execute: one call whose input passes the zod schema", async () => {
    const { value: result, sent } = await recorded(() =>
      generateText({ model: llm, tools, toolChoice: 'required', prompt, seed: 1, maxOutputTokens: 100, providerOptions: oneCall }),
    );
    assert.equal(sent.length, 1);
    assert.equal(sent[0].status, 200);
    assert.equal(sent[0].body.tool_choice, 'required');
    assert.equal(sent[0].body.parallel_tool_calls, false);
    assert.deepEqual(result.warnings, [], 'the SDK dropped nothing');
    assert.equal(result.finishReason, 'tool-calls');
    assert.equal(result.toolCalls.length, 1);
    for (const call of result.toolCalls) {
      assert.ok(call.toolName in inputs, call.toolName);
      assert.equal(call.invalid, undefined, JSON.stringify(call));
      const parsed = inputs[call.toolName].safeParse(call.input);
      assert.ok(parsed.success, JSON.stringify(call.input));
    }
  });

  it('a named tool (toolChoice {type: "tool"}) and streamText: the streamed call is that tool, input valid', async () => {
    const { value: calls, sent } = await recorded(async () => {
      const result = streamText({
        model: llm,
        tools,
        toolChoice: { type: 'tool', toolName: 'get_time' },
        prompt,
        seed: 2,
        maxOutputTokens: 100,
        providerOptions: oneCall,
      });
      const deltas: string[] = [];
      for await (const part of result.fullStream) {
        if (part.type === 'tool-input-delta') deltas.push(part.delta);
        if (part.type === 'error') throw part.error;
      }
      assert.equal(await result.finishReason, 'tool-calls');
      assert.ok(deltas.length > 1, 'arguments arrive in fragments');
      return result.toolCalls;
    });
    assert.equal(sent[0].status, 200);
    assert.deepEqual(sent[0].body.tool_choice, { type: 'function', function: { name: 'get_time' } });
    assert.equal(calls.length, 1);
    assert.equal(calls[0].toolName, 'get_time');
    assert.ok(timeInput.safeParse(calls[0].input).success, JSON.stringify(calls[0].input));
  });
});

describe('AI SDK: structured outputs', () => {
  const report = z.object({
    city: z.enum(['Paris', 'Oslo', 'Lima']),
    sunny: z.boolean(),
    high: z.number().int().min(-30).max(45),
    wind: z.enum(['calm', 'breezy', 'stormy']),
  });

  it('generateText with Output.object (the v6 way): json_schema is sent, the object validates', async () => {
    const { value: result, sent } = await recorded(() =>
      generateText({ model: llm, output: Output.object({ schema: report, name: 'report' }), prompt, seed: 3, maxOutputTokens: 100 }),
    );
    assert.equal(sent[0].status, 200);
    const format = sent[0].body.response_format as { type: string; json_schema: { name: string; strict: boolean } };
    assert.equal(format.type, 'json_schema');
    assert.equal(format.json_schema.name, 'report');
    assert.equal(format.json_schema.strict, true);
    assert.deepEqual(result.warnings, [], 'the SDK dropped nothing');
    assert.equal(result.finishReason, 'stop');
    assert.ok(report.safeParse(result.output).success, JSON.stringify(result.output));
  });

  it('generateObject (deprecated in v6, still common): the object validates', async () => {
    const { object, finishReason } = await generateObject({ model: llm, schema: report, prompt, seed: 4, maxOutputTokens: 100 });
    assert.equal(finishReason, 'stop');
    assert.ok(report.safeParse(object).success, JSON.stringify(object));
  });

  it('streamText with Output.object: partial objects stream in, the final one validates', async () => {
    const result = streamText({ model: llm, output: Output.object({ schema: report }), prompt, seed: 5, maxOutputTokens: 100 });
    let partials = 0;
    for await (const partial of result.partialOutputStream) {
      assert.equal(typeof partial, 'object');
      partials++;
    }
    assert.ok(partials > 1, 'more than one partial object');
    const output = await result.output;
    assert.ok(report.safeParse(output).success, JSON.stringify(output));
  });
});

describe('AI SDK: a tool round trip', () => {
  it('execute runs on a valid input, the result goes back (assistant tool_calls + tool message), the server answers', async () => {
    const executed: unknown[] = [];
    const { value: result, sent } = await recorded(() =>
      generateText({
        model: llm,
        tools: {
          get_weather: tool({
            description: 'Weather forecast for a city',
            inputSchema: weatherInput,
            execute: async (input) => {
              executed.push(input);
              return { forecast: 'sunny', high: 21 };
            },
          }),
        },
        toolChoice: 'required',
        // Step 1 must call the tool; step 2 answers with the result in the prompt.
        prepareStep: ({ stepNumber }) => (stepNumber === 0 ? {} : { toolChoice: 'none' }),
        stopWhen: stepCountIs(2),
        prompt,
        seed: 6,
        maxOutputTokens: 100,
        providerOptions: oneCall,
      }),
    );
    assert.equal(executed.length, 1);
    assert.ok(weatherInput.safeParse(executed[0]).success, JSON.stringify(executed[0]));

    assert.equal(result.steps.length, 2);
    assert.equal(result.steps[0].finishReason, 'tool-calls');
    const call = result.steps[0].toolCalls[0];
    assert.deepEqual(result.steps[0].toolResults.map((r) => r.output), [{ forecast: 'sunny', high: 21 }]);

    assert.deepEqual(sent.map((e) => e.status), [200, 200]);
    const history = sent[1].body.messages as { role: string; tool_calls?: { id: string; function: { name: string; arguments: string } }[]; tool_call_id?: string; content?: unknown }[];
    assert.deepEqual(history.map((m) => m.role), ['user', 'assistant', 'tool']);
    assert.equal(history[1].tool_calls?.[0].id, call.toolCallId);
    assert.equal(history[1].tool_calls?.[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(history[1].tool_calls![0].function.arguments), executed[0]);
    assert.equal(history[2].tool_call_id, call.toolCallId);
    assert.deepEqual(JSON.parse(String(history[2].content)), { forecast: 'sunny', high: 21 });
    assert.equal(sent[1].body.tool_choice, 'none');

    // The second step is the model's answer: text (random words here), no further call.
    assert.equal(result.steps[1].toolCalls.length, 0);
    assert.ok(result.text.length > 0);
    assert.ok(['stop', 'length'].includes(result.finishReason), result.finishReason);
  });
});
