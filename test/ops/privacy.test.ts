/**
 * No prompt or completion text in logs or metrics: a unique marker goes into every place a client
 * can put text (messages, prompts, stop strings, bad requests, an abandoned stream); the server's
 * whole log output (level trace) and /metrics never contain it. With --log-content the summary
 * line carries the prompt and the completion.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { LoadedModel } from '../../src/app.ts';
import { loggerOptions } from '../../src/server/logging.ts';
import {
  MODEL_NAME,
  NO_EOS_BIAS,
  loadTestModel,
  postJson,
  readSse,
  startServer,
  until,
  type TestServer,
} from '../helpers/server.ts';

const CONTEXT = 4096;
let model: LoadedModel;

before(async () => {
  model = await loadTestModel({ contextLength: CONTEXT });
});

after(async () => {
  await model?.engine.close();
});

interface LogLine {
  level: number;
  msg: string;
  reqId?: string;
  [k: string]: unknown;
}

/** A server whose every log line (level trace) lands in `lines`. */
async function capturedServer(overrides: Parameters<typeof startServer>[1]): Promise<{ server: TestServer; lines: string[] }> {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter((l) => l.length > 0));
      cb();
    },
  });
  const logger = pino(loggerOptions({ logLevel: 'trace' }), sink);
  const server = await startServer(model, { contextLength: CONTEXT, logLevel: 'trace', ...overrides }, { logger });
  return { server, lines };
}

const idle = (s: TestServer) =>
  until(() => s.app.inflight.count === 0 && s.ctx.admission.inflight === 0 && model.engine.stats().running === 0, 'idle');

describe('privacy', () => {
  it('the marker appears in neither the logs nor /metrics', async () => {
    const marker = `PRIVATE-${randomUUID()}`;
    const { server, lines } = await capturedServer({});
    try {
      const chat = `${server.url}/v1/chat/completions`;
      const compl = `${server.url}/v1/completions`;
      const withMarker = [
        { role: 'system', content: `You guard ${marker}.` },
        { role: 'user', content: [{ type: 'text', text: `Tell me about ${marker}` }] },
      ];
      const h = (id: string) => ({ 'x-request-id': id });
      assert.equal((await postJson(chat, { model: MODEL_NAME, messages: withMarker, max_tokens: 4, stop: [marker] }, h('p-chat'))).status, 200);
      const stream = await postJson(chat, { model: MODEL_NAME, messages: withMarker, max_tokens: 4, stream: true, user: marker }, h('p-stream'));
      for await (const _ of readSse(stream)) {
        // consume
      }
      assert.equal((await postJson(compl, { model: MODEL_NAME, prompt: [marker, `x ${marker}`], max_tokens: 3, echo: true }, h('p-compl'))).status, 200);
      // The other APIs, tools and schemas: client text in every field they read.
      const tool = { type: 'function', function: { name: 'f', description: marker, parameters: { type: 'object', properties: { a: { enum: [marker] } }, required: ['a'] } } };
      assert.equal((await postJson(chat, { model: MODEL_NAME, messages: withMarker, tools: [tool], tool_choice: 'required', max_tokens: 40 }, h('p-tools'))).status, 200);
      const format = { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { a: { enum: [marker] } }, required: ['a'] } } };
      assert.equal((await postJson(chat, { model: MODEL_NAME, messages: withMarker, response_format: format, max_tokens: 40 }, h('p-json-schema'))).status, 200);
      const badRef = { type: 'json_schema', json_schema: { name: 'x', schema: { $ref: `#/$defs/${marker}` } } };
      assert.equal((await postJson(chat, { model: MODEL_NAME, messages: withMarker, response_format: badRef }, h('p-bad-schema'))).status, 400);
      const anthropic = { model: MODEL_NAME, max_tokens: 4, system: marker, stop_sequences: [marker], messages: [{ role: 'user', content: marker }] };
      assert.equal((await postJson(`${server.url}/v1/messages`, anthropic, h('p-messages'))).status, 200);
      const first = await postJson(`${server.url}/v1/responses`, { model: MODEL_NAME, instructions: marker, input: marker, max_output_tokens: 4 }, h('p-responses'));
      assert.equal(first.status, 200);
      const { id } = (await first.json()) as { id: string };
      assert.equal((await postJson(`${server.url}/v1/responses`, { model: MODEL_NAME, previous_response_id: id, input: marker, max_output_tokens: 4 }, h('p-continue'))).status, 200);
      assert.equal((await fetch(`${server.url}/v1/responses/${id}`)).status, 200);
      // Refused requests: invalid value, context overflow, malformed JSON (its parse error quotes the body).
      assert.equal((await postJson(chat, { model: MODEL_NAME, messages: withMarker, temperature: 5 }, h('p-400'))).status, 400);
      assert.equal((await postJson(compl, { model: MODEL_NAME, prompt: `${marker} `.repeat(CONTEXT) }, h('p-ctx'))).status, 400);
      const bad = await fetch(chat, { method: 'POST', headers: { 'content-type': 'application/json', ...h('p-json') }, body: `{"messages": "${marker}` });
      assert.equal(bad.status, 400);
      assert.equal((await postJson(chat, { model: marker, messages: withMarker }, h('p-404'))).status, 404);
      // A client that leaves mid-stream.
      const ac = new AbortController();
      const res = await fetch(chat, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...h('p-abort') },
        body: JSON.stringify({ model: MODEL_NAME, messages: withMarker, max_tokens: 3000, logit_bias: NO_EOS_BIAS, stream: true }),
        signal: ac.signal,
      });
      const it = readSse(res);
      await it.next();
      await it.next();
      ac.abort();
      await it.next().catch(() => undefined);
      await idle(server);

      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      await idle(server);
      const all = lines.join('\n');
      assert.ok(lines.length > 10, 'logs were captured');
      assert.ok(!all.includes(marker), 'marker found in the logs');
      assert.ok(!all.includes('PRIVATE-'), 'marker prefix found in the logs');
      assert.ok(!metrics.includes(marker) && !metrics.includes('PRIVATE-'), 'marker found in /metrics');

      // JSON lines; one summary per request, carrying the request id; every line of a request has it.
      const parsed = lines.map((l) => JSON.parse(l) as LogLine);
      const summaries = parsed.filter((l) => l.msg === 'request completed');
      for (const id of ['p-chat', 'p-stream', 'p-compl', 'p-400', 'p-ctx', 'p-json', 'p-404', 'p-abort']) {
        const mine = summaries.filter((l) => l.reqId === id);
        assert.equal(mine.length, 1, `one summary line for ${id}`);
        assert.ok(!('prompt' in mine[0]) && !('completion' in mine[0]));
      }
      const chatLine = summaries.find((l) => l.reqId === 'p-chat');
      assert.ok(chatLine);
      for (const k of ['endpoint', 'status', 'promptTokens', 'completionTokens', 'queueMs', 'ttftMs', 'tokPerSec', 'finishReason']) {
        assert.ok(k in chatLine, `summary has ${k}`);
      }
      assert.equal(chatLine.status, 200);
      assert.equal(chatLine.completionTokens, 4);
      const abortLine = summaries.find((l) => l.reqId === 'p-abort');
      assert.equal(abortLine?.status, 499);
      assert.equal(abortLine?.finishReason, 'abort');
      const rejected = parsed.filter((l) => l.msg === 'request rejected');
      assert.ok(rejected.length >= 4);
      for (const l of rejected) assert.match(String(l.reqId), /^p-/);
    } finally {
      await server.close();
    }
  });

  it('with --log-content the summary line carries the prompt and the completion', async () => {
    const marker = `VISIBLE-${randomUUID()}`;
    const { server, lines } = await capturedServer({ logContent: true });
    try {
      const res = await postJson(
        `${server.url}/v1/chat/completions`,
        { model: MODEL_NAME, messages: [{ role: 'user', content: `Repeat ${marker}` }], max_tokens: 4, logit_bias: NO_EOS_BIAS },
        { 'x-request-id': 'c-chat' },
      );
      const body = (await res.json()) as { choices: { message: { content: string } }[] };
      const compl = await postJson(
        `${server.url}/v1/completions`,
        { model: MODEL_NAME, prompt: [`a ${marker}`, 'b'], max_tokens: 2, logit_bias: NO_EOS_BIAS, stream: true },
        { 'x-request-id': 'c-compl' },
      );
      const texts: string[] = ['', ''];
      for await (const d of readSse(compl)) {
        if (d === '[DONE]') break;
        const c = JSON.parse(d) as { choices: { index: number; text: string }[] };
        for (const ch of c.choices) texts[ch.index] += ch.text;
      }
      await idle(server);
      const parsed = lines.map((l) => JSON.parse(l) as LogLine);
      const chatLine = parsed.find((l) => l.msg === 'request completed' && l.reqId === 'c-chat');
      assert.ok(chatLine);
      assert.deepEqual(chatLine.prompt, [{ role: 'user', content: `Repeat ${marker}` }]);
      assert.equal(chatLine.completion, body.choices[0].message.content);
      const complLine = parsed.find((l) => l.msg === 'request completed' && l.reqId === 'c-compl');
      assert.deepEqual(complLine?.prompt, [`a ${marker}`, 'b']);
      assert.deepEqual(complLine?.completion, texts);
      // Metrics stay free of text either way.
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      assert.ok(!metrics.includes(marker));
    } finally {
      await server.close();
    }
  });
});
