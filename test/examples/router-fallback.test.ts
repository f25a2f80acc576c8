/**
 * examples/router-fallback.ts against real HTTP servers on 127.0.0.1: small fakes of
 * /v1/chat/completions (ok, 429, 500, silent), a closed port, and the project's own server.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Ajv } from 'ajv';
import type { ChatCompletionTool } from 'openai/resources/chat/completions';
import {
  FallbackRouter,
  RouterError,
  parseRetryAfter,
  type Provider,
  type RouteResult,
} from '../../examples/router-fallback.ts';
import type { LoadedModel } from '../../src/app.ts';
import { MODEL_NAME, loadTestModel, startServer, type TestServer } from '../helpers/server.ts';
import { FIXTURES } from '../setup/model-paths.ts';

interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

interface FakeProvider {
  baseURL: string;
  /** Requests received so far. */
  readonly count: number;
  close(): Promise<void>;
}

function completion(text: string, totalTokens = 30): unknown {
  return {
    id: 'chatcmpl-fake',
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: 'fake',
    choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, finish_reason: 'stop', logprobs: null }],
    usage: { prompt_tokens: totalTokens - 10, completion_tokens: 10, total_tokens: totalTokens },
  };
}

const ok = (text: string, totalTokens?: number): Reply => ({ status: 200, body: completion(text, totalTokens) });
const error = (status: number, headers: Record<string, string> = {}): Reply => ({
  status,
  headers,
  body: { error: { message: `fake ${status}`, type: 'fake_error', param: null, code: null } },
});

/** `respond(n)` decides the n-th (0-based) reply; 'hang' never answers. */
async function fakeProvider(respond: (n: number) => Reply | 'hang'): Promise<FakeProvider> {
  let count = 0;
  const server = http.createServer((req, res) => {
    const n = count++;
    req.resume();
    req.on('end', () => {
      const reply = respond(n);
      if (reply === 'hang') return;
      const text = JSON.stringify(reply.body ?? {});
      res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
      res.end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    get count() {
      return count;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function closedPortURL(): Promise<string> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/v1`;
}

function provider(name: string, baseURL: string, local: boolean, extra: Partial<Provider> = {}): Provider {
  return { name, baseURL, apiKey: `key-${name}`, model: `model-${name}`, local, ...extra };
}

const request = { messages: [{ role: 'user' as const, content: 'hi' }], max_tokens: 4 };
const outcomes = (r: { attempts: readonly { provider: string; outcome: string }[] }) =>
  r.attempts.map((a) => `${a.provider}:${a.outcome}`);

const servers: FakeProvider[] = [];
async function track(p: Promise<FakeProvider>): Promise<FakeProvider> {
  const s = await p;
  servers.push(s);
  return s;
}
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

describe('FallbackRouter (fake providers)', () => {
  it('primary on a closed port → the local provider answers', async () => {
    const local = await track(fakeProvider(() => ok('from local')));
    const router = new FallbackRouter({
      providers: [provider('remote', await closedPortURL(), false), provider('local', local.baseURL, true)],
    });
    const r = await router.chat(request);
    assert.equal(r.provider, 'local');
    assert.equal(r.response.choices[0].message.content, 'from local');
    assert.deepEqual(outcomes(r), ['remote:connection-error', 'local:ok']);
    assert.equal(r.cost, 0);
  });

  it('local saturated (429, long Retry-After) → the next provider, without waiting', async () => {
    const local = await track(fakeProvider(() => error(429, { 'retry-after': '30' })));
    const backup = await track(fakeProvider(() => ok('from backup', 1500)));
    const router = new FallbackRouter({
      providers: [provider('local', local.baseURL, true), provider('backup', backup.baseURL, false, { costPer1kTokens: 2 })],
      maxRetryAfterMs: 1000,
    });
    const t0 = performance.now();
    const r = await router.chat(request);
    assert.ok(performance.now() - t0 < 5000);
    assert.equal(r.provider, 'backup');
    assert.deepEqual(outcomes(r), ['local:rate-limited', 'backup:ok']);
    assert.equal(r.attempts[0].status, 429);
    assert.equal(r.attempts[0].retryAfterMs, 30_000);
    assert.equal(local.count, 1);
    assert.equal(r.cost, 3); // 1500 tokens at 2 per 1k
  });

  it('a short Retry-After is honoured: waits, then retries the same provider', async () => {
    const local = await track(fakeProvider((n) => (n === 0 ? error(429, { 'retry-after-ms': '150' }) : ok('second try'))));
    const backup = await track(fakeProvider(() => ok('from backup')));
    const router = new FallbackRouter({
      providers: [provider('local', local.baseURL, true), provider('backup', backup.baseURL, false)],
      maxRetryAfterMs: 1000,
    });
    const t0 = performance.now();
    const r = await router.chat(request);
    assert.ok(performance.now() - t0 >= 140, 'did not wait for Retry-After');
    assert.equal(r.provider, 'local');
    assert.deepEqual(outcomes(r), ['local:rate-limited', 'local:ok']);
    assert.equal(backup.count, 0);
  });

  it('gives up on the same provider after maxRetriesPerProvider short waits', async () => {
    const local = await track(fakeProvider(() => error(429, { 'retry-after': '0' })));
    const backup = await track(fakeProvider(() => ok('from backup')));
    const router = new FallbackRouter({
      providers: [provider('local', local.baseURL, true), provider('backup', backup.baseURL, false)],
      maxRetriesPerProvider: 2,
    });
    const r = await router.chat(request);
    assert.deepEqual(outcomes(r), ['local:rate-limited', 'local:rate-limited', 'local:rate-limited', 'backup:ok']);
  });

  it('5xx and timeouts fall back; the answer reports every attempt', async () => {
    const broken = await track(fakeProvider(() => error(500)));
    const silent = await track(fakeProvider(() => 'hang'));
    const last = await track(fakeProvider(() => ok('from last')));
    const router = new FallbackRouter({
      providers: [
        provider('broken', broken.baseURL, false),
        provider('silent', silent.baseURL, false, { timeoutMs: 200 }),
        provider('last', last.baseURL, false),
      ],
    });
    const r = await router.chat(request);
    assert.equal(r.provider, 'last');
    assert.deepEqual(outcomes(r), ['broken:server-error', 'silent:timeout', 'last:ok']);
    assert.equal(r.attempts[0].status, 500);
  });

  it('a 4xx other than 408/429 stops the chain (the request is wrong everywhere)', async () => {
    const strict = await track(fakeProvider(() => error(400)));
    const next = await track(fakeProvider(() => ok('never')));
    const router = new FallbackRouter({
      providers: [provider('strict', strict.baseURL, false), provider('next', next.baseURL, false)],
    });
    await assert.rejects(router.chat(request), (err: unknown) => {
      assert.ok(err instanceof RouterError);
      assert.deepEqual(outcomes(err), ['strict:client-error']);
      return true;
    });
    assert.equal(next.count, 0);
  });

  it('privacy "high" never contacts a non-local provider', async () => {
    const remote = await track(fakeProvider(() => ok('from remote')));
    const local = await track(fakeProvider(() => ok('from local')));
    const router = new FallbackRouter({
      providers: [provider('remote', remote.baseURL, false), provider('local', local.baseURL, true)],
    });
    const r = await router.chat(request, { privacy: 'high' });
    assert.equal(r.provider, 'local');
    assert.deepEqual(r.skipped, ['remote']);
    assert.equal(remote.count, 0);
  });

  it('privacy "high" fails rather than fall back to a remote when every local provider fails', async () => {
    const remote = await track(fakeProvider(() => ok('from remote')));
    const local = await track(fakeProvider(() => error(503)));
    const router = new FallbackRouter({
      providers: [provider('local', local.baseURL, true), provider('remote', remote.baseURL, false)],
    });
    await assert.rejects(router.chat(request, { privacy: 'high' }), (err: unknown) => {
      assert.ok(err instanceof RouterError);
      assert.deepEqual(outcomes(err), ['local:server-error']);
      assert.match(err.message, /every provider failed/);
      return true;
    });
    const none = new FallbackRouter({ providers: [provider('remote', remote.baseURL, false)] });
    await assert.rejects(none.chat(request, { privacy: 'high' }), /only local providers/);
    assert.equal(remote.count, 0);
  });
});

describe('parseRetryAfter', () => {
  it('reads retry-after-ms, seconds and HTTP dates', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    assert.equal(parseRetryAfter(new Headers({ 'retry-after-ms': '250' }), now), 250);
    assert.equal(parseRetryAfter(new Headers({ 'retry-after': '2' }), now), 2000);
    assert.equal(parseRetryAfter(new Headers({ 'retry-after': 'Wed, 01 Jan 2025 00:00:03 GMT' }), now), 3000);
    assert.equal(parseRetryAfter(new Headers({ 'retry-after': 'soon' }), now), undefined);
    assert.equal(parseRetryAfter(new Headers(), now), undefined);
  });
});

const haveTinyModel = existsSync(path.join(FIXTURES.tiny, 'model.onnx'));

describe('FallbackRouter with this project\'s server (tiny model)', { skip: !haveTinyModel && 'run npx tsx test/setup/fixtures.ts' }, () => {
  let model: LoadedModel;
  let server: TestServer;

  before(async () => {
    model = await loadTestModel();
    // No waiting line: while one generation runs, the next request gets 429 with Retry-After.
    server = await startServer(model, { maxQueue: 0 });
  });
  after(async () => {
    await server?.close();
    await model?.engine.close();
  });

  const local = (): Provider => ({ name: 'local-phi4', baseURL: `${server.url}/v1`, apiKey: 'unused', model: MODEL_NAME, local: true });
  const small = { ...request, max_tokens: 3, seed: 1 };

  it('primary on a closed port → the real local server answers', async () => {
    const router = new FallbackRouter({ providers: [provider('remote', await closedPortURL(), false), local()] });
    const r: RouteResult = await router.chat(small);
    assert.equal(r.provider, 'local-phi4');
    assert.equal(r.response.model, MODEL_NAME);
    assert.equal(typeof r.response.choices[0].message.content, 'string');
    assert.deepEqual(outcomes(r), ['remote:connection-error', 'local-phi4:ok']);
  });

  it('the real server saturated (429 + Retry-After) → the next provider answers', async () => {
    const backup = await track(fakeProvider(() => ok('from backup')));
    const router = new FallbackRouter({ providers: [local(), provider('backup', backup.baseURL, false)], maxRetryAfterMs: 500 });
    // Fill every place the server admits (running and waiting), as a burst of long generations would.
    const held = Array.from({ length: server.ctx.admission.maxRunning + server.ctx.admission.maxQueue }, () => server.ctx.admission.admit());
    try {
      const r = await router.chat(small);
      assert.equal(r.provider, 'backup');
      assert.deepEqual(outcomes(r), ['local-phi4:rate-limited', 'backup:ok']);
      assert.ok((r.attempts[0].retryAfterMs ?? 0) >= 1000, 'the server sends Retry-After in whole seconds');
    } finally {
      for (const ticket of held) ticket.release();
    }
  });

  it('privacy "high" uses the real server and never the remote', async () => {
    const remote = await track(fakeProvider(() => ok('from remote')));
    const router = new FallbackRouter({ providers: [provider('remote', remote.baseURL, false), local()] });
    const r = await router.chat(small, { privacy: 'high' });
    assert.equal(r.provider, 'local-phi4');
    assert.equal(remote.count, 0);
  });

  it('an agent turn with tools: hosted 500 → the real server returns a valid tool call', async () => {
    // Enums and bounded integers only: the random model never ends a free-text string.
    const parameters = {
      type: 'object',
      properties: { city: { enum: ['Paris', 'Oslo'] }, days: { type: 'integer', minimum: 1, maximum: 7 } },
      required: ['city', 'days'],
      additionalProperties: false,
    };
    const tools: ChatCompletionTool[] = [{ type: 'function', function: { name: 'get_weather', parameters } }];
    const hosted = await track(fakeProvider(() => error(500)));
    const router = new FallbackRouter({ providers: [provider('hosted', hosted.baseURL, false), local()] });
    const r = await router.chat({ ...request, tools, tool_choice: 'required', parallel_tool_calls: false, max_tokens: 80, seed: 1 });
    assert.equal(r.provider, 'local-phi4');
    assert.deepEqual(outcomes(r), ['hosted:server-error', 'local-phi4:ok']);
    const choice = r.response.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.equal(choice.message.tool_calls?.length, 1);
    const call = choice.message.tool_calls[0];
    assert.ok(call.type === 'function' && call.function.name === 'get_weather', JSON.stringify(call));
    assert.ok(new Ajv().compile(parameters)(JSON.parse(call.function.arguments)), call.function.arguments);
  });
});
