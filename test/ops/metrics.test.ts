/**
 * GET /metrics on a real server: after a known set of requests (chat JSON + stream, a
 * two-prompt completion, an eos-only answer, a client that leaves mid-stream, refusals) the
 * token counters equal the usage totals, histogram counts match the requests, the gauges show
 * work while it runs and return to 0 when idle, and every series carries model_name.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LoadedModel } from '../../src/app.ts';
import { METRIC_PREFIX } from '../../src/server/metrics.ts';
import type { RequestTrace } from '../../src/server/trace.ts';
import { parseProm, scrape, value, type Scrape } from '../helpers/prom.ts';
import {
  EOS_IDS,
  MODEL_NAME,
  NO_EOS_BIAS,
  loadTestModel,
  postJson,
  readSse,
  startServer,
  until,
  type TestServer,
} from '../helpers/server.ts';

const P = METRIC_PREFIX;
const CONTEXT = 8192;

let model: LoadedModel;
let server: TestServer;

before(async () => {
  model = await loadTestModel({ contextLength: CONTEXT, maxRunningSeqs: 1 });
  server = await startServer(model, { contextLength: CONTEXT });
});

after(async () => {
  await server?.close();
  await model?.engine.close();
});

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

const messages = [{ role: 'user', content: 'Count the sheep.' }];

async function idle(s: TestServer): Promise<void> {
  await until(
    () => s.app.inflight.count === 0 && s.ctx.admission.inflight === 0 && model.engine.stats().running === 0 && model.engine.stats().waiting === 0,
    'server idle',
  );
}

/** Opens a long stream and returns once content arrived (it is generating). */
async function openLongStream(url: string, id: string): Promise<{ abort: () => void; done: Promise<void> }> {
  const ac = new AbortController();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': id },
    body: JSON.stringify({ model: MODEL_NAME, messages, max_tokens: 8000, logit_bias: NO_EOS_BIAS, stream: true }),
    signal: ac.signal,
  });
  assert.equal(res.status, 200);
  const it = readSse(res);
  for (;;) {
    const next = await it.next();
    assert.ok(!next.done);
    const chunk = JSON.parse(next.value) as { choices: { delta: { content?: string } }[] };
    if (chunk.choices[0]?.delta.content) break;
  }
  const done = (async () => {
    try {
      for await (const _ of it) {
        // drain until aborted
      }
    } catch {
      // aborted by the test
    }
  })();
  return { abort: () => ac.abort(), done };
}

describe('metrics', () => {
  it('counters equal the usage totals; histogram counts match; gauges go back to 0', async () => {
    const usages: Usage[] = [];
    /** Expected inter-token gaps: emitted tokens - 1 per generation. */
    let expectedItl = 0;
    let admitted = 0;

    // 1. chat, JSON
    const r1 = await postJson(`${server.url}/v1/chat/completions`, { model: MODEL_NAME, messages, max_tokens: 5, logit_bias: NO_EOS_BIAS });
    assert.equal(r1.status, 200);
    const u1 = ((await r1.json()) as { usage: Usage }).usage;
    usages.push(u1);
    expectedItl += u1.completion_tokens - 1;
    admitted++;

    // 2. chat, stream with usage
    const r2 = await postJson(`${server.url}/v1/chat/completions`, {
      model: MODEL_NAME,
      messages,
      max_tokens: 4,
      logit_bias: NO_EOS_BIAS,
      stream: true,
      stream_options: { include_usage: true },
    });
    const datas: string[] = [];
    for await (const d of readSse(r2)) datas.push(d);
    assert.equal(datas.at(-1), '[DONE]');
    const u2 = (JSON.parse(datas.at(-2) ?? '{}') as { usage: Usage }).usage;
    assert.equal(u2.completion_tokens, 4);
    usages.push(u2);
    expectedItl += u2.completion_tokens - 1;
    admitted++;

    // 3. completions with two prompts: one request, two generations
    const r3 = await postJson(`${server.url}/v1/completions`, {
      model: MODEL_NAME,
      prompt: ['The first prompt', 'and a second, longer prompt here'],
      max_tokens: 3,
      logit_bias: NO_EOS_BIAS,
    });
    const b3 = (await r3.json()) as { usage: Usage; choices: { finish_reason: string }[] };
    assert.equal(b3.choices.length, 2);
    assert.equal(b3.usage.completion_tokens, 6);
    usages.push(b3.usage);
    expectedItl += 2 * (3 - 1);
    admitted++;

    // 4. completions stream with two prompts
    const r4 = await postJson(`${server.url}/v1/completions`, {
      model: MODEL_NAME,
      prompt: ['x', 'y z'],
      max_tokens: 2,
      logit_bias: NO_EOS_BIAS,
      stream: true,
      stream_options: { include_usage: true },
    });
    const d4: string[] = [];
    for await (const d of readSse(r4)) d4.push(d);
    const u4 = (JSON.parse(d4.at(-2) ?? '{}') as { usage: Usage }).usage;
    assert.equal(u4.completion_tokens, 4);
    usages.push(u4);
    expectedItl += 2 * (2 - 1);
    admitted++;

    // 5. eos at once: one counted token that is never emitted
    const r5 = await postJson(`${server.url}/v1/chat/completions`, {
      model: MODEL_NAME,
      messages,
      max_tokens: 10,
      logit_bias: { [String(EOS_IDS[0])]: 100 },
    });
    const b5 = (await r5.json()) as { usage: Usage; choices: { finish_reason: string }[] };
    assert.equal(b5.choices[0].finish_reason, 'stop');
    assert.equal(b5.usage.completion_tokens, 1);
    usages.push(b5.usage);
    admitted++;

    // 6. refusals that never reach the engine
    assert.equal((await postJson(`${server.url}/v1/chat/completions`, { model: MODEL_NAME, messages, temperature: 9 })).status, 400);
    assert.equal((await postJson(`${server.url}/v1/chat/completions`, { model: 'gpt-4o', messages })).status, 404);
    assert.equal((await fetch(`${server.url}/v1/models`)).status, 200);

    // 7. busy: a long stream runs and one request waits; then the client of the stream leaves.
    const traces = new Map<string, RequestTrace>();
    const emitted = new Map<string, number>();
    server.ctx.events.on('finished', (t) => traces.set(t.requestId, t));
    server.ctx.events.on('token', (t) => emitted.set(t.requestId, (emitted.get(t.requestId) ?? 0) + 1));
    const long = await openLongStream(server.url, 'metrics-long');
    const queued = postJson(
      `${server.url}/v1/chat/completions`,
      { model: MODEL_NAME, messages, max_tokens: 3, logit_bias: NO_EOS_BIAS },
      { 'x-request-id': 'metrics-queued' },
    );
    await until(() => model.engine.stats().waiting === 1, 'second request queued');
    const busy = await scrape(server.url);
    assert.equal(value(busy, `${P}num_requests_running`), 1);
    assert.equal(value(busy, `${P}num_requests_waiting`), 1);
    assert.ok(value(busy, `${P}kv_cache_usage_perc`) > 0 && value(busy, `${P}kv_cache_usage_perc`) < 1);
    assert.ok(value(busy, `${P}avg_generation_throughput_toks_per_s`) > 0);
    // Live: generated tokens of the running stream already count.
    const sumSoFar = usages.reduce((a, u) => a + u.completion_tokens, 0);
    assert.ok(value(busy, `${P}generation_tokens_total`) > sumSoFar);

    long.abort();
    await long.done;
    const rq = await queued;
    assert.equal(rq.status, 200);
    const uq = ((await rq.json()) as { usage: Usage }).usage;
    usages.push(uq);
    expectedItl += uq.completion_tokens - 1;
    admitted += 2;
    await idle(server);

    const aborted = traces.get('metrics-long');
    assert.ok(aborted, 'the aborted stream finished');
    assert.equal(aborted.outcome, 'abort');
    assert.ok(aborted.completionTokens > 0 && aborted.completionTokens < 8000);
    expectedItl += (emitted.get('metrics-long') ?? 0) - 1;

    const m = await scrape(server.url);
    const promptTotal = usages.reduce((a, u) => a + u.prompt_tokens, 0) + aborted.promptTokens;
    const genTotal = usages.reduce((a, u) => a + u.completion_tokens, 0) + aborted.completionTokens;
    // Answered requests add exactly their usage; the abandoned stream adds what the engine did.
    assert.equal(value(m, `${P}prompt_tokens_total`), promptTotal);
    assert.equal(value(m, `${P}generation_tokens_total`), genTotal);

    // Per-request histograms: one observation per request that reached the engine.
    for (const h of [
      'e2e_request_latency_seconds',
      'request_queue_time_seconds',
      'request_prefill_time_seconds',
      'request_decode_time_seconds',
      'request_inference_time_seconds',
      'request_prompt_tokens',
      'request_generation_tokens',
    ]) {
      assert.equal(value(m, `${P}${h}_count`), admitted, h);
      assert.equal(value(m, `${P}${h}_bucket`, { le: '+Inf' }), admitted, `${h} +Inf bucket`);
    }
    assert.equal(value(m, `${P}request_prompt_tokens_sum`), promptTotal);
    assert.equal(value(m, `${P}request_generation_tokens_sum`), genTotal);
    // Every request produced at least one token.
    assert.equal(value(m, `${P}time_to_first_token_seconds_count`), admitted);
    assert.equal(value(m, `${P}inter_token_latency_seconds_count`), expectedItl);
    // The queued request waited: some queue time was observed above the lowest bucket.
    assert.ok(value(m, `${P}request_queue_time_seconds_sum`) > 0);
    // Buckets are cumulative.
    const ttftBuckets = m.samples.filter((s) => s.name === `${P}time_to_first_token_seconds_bucket`);
    for (let i = 1; i < ttftBuckets.length; i++) assert.ok(ttftBuckets[i].value >= ttftBuckets[i - 1].value);
    assert.equal(ttftBuckets.at(-1)?.labels.le, '+Inf');
    assert.ok(ttftBuckets.some((b) => b.labels.le === '600'), 'TTFT buckets reach minutes');

    // Requests by endpoint, status and finish_reason.
    const req = (labels: Record<string, string>): number => value(m, `${P}requests_total`, labels);
    assert.equal(req({ endpoint: '/v1/chat/completions', status: '200', finish_reason: 'length' }), 3);
    assert.equal(req({ endpoint: '/v1/chat/completions', status: '200', finish_reason: 'stop' }), 1);
    assert.equal(req({ endpoint: '/v1/completions', status: '200', finish_reason: 'length' }), 2);
    assert.equal(req({ endpoint: '/v1/chat/completions', status: '499', finish_reason: 'abort' }), 1);
    assert.equal(req({ endpoint: '/v1/chat/completions', status: '400', finish_reason: 'none' }), 1);
    assert.equal(req({ endpoint: '/v1/chat/completions', status: '404', finish_reason: 'none' }), 1);
    assert.equal(req({ endpoint: '/v1/models', status: '200', finish_reason: 'none' }), 1);
    assert.equal(req({}), 10);

    // Idle: every load gauge is back to 0; KV still holds the cached prefixes, within the budget.
    for (const g of ['num_requests_running', 'num_requests_waiting', 'avg_generation_throughput_toks_per_s']) {
      assert.equal(value(m, `${P}${g}`), 0, g);
    }
    assert.ok(value(m, `${P}prefix_cache_tokens`) > 0);
    const usage = value(m, `${P}kv_cache_usage_perc`);
    assert.ok(usage > 0 && usage <= 1, `kv_cache_usage_perc ${usage}`);
    // Steps and the prefix cache: every admitted prompt was looked up, and some of it was found.
    assert.ok(value(m, `${P}iteration_tokens_total_count`) > 0);
    assert.equal(value(m, `${P}iteration_sequences_count`), value(m, `${P}iteration_tokens_total_count`));
    const queried = value(m, `${P}prefix_cache_queries_total`);
    assert.ok(queried > 0 && queried <= value(m, `${P}prompt_tokens_total`), `queried ${queried}`);
    assert.ok(value(m, `${P}prefix_cache_hits_total`) <= queried);
    assert.equal(value(m, `${P}num_preemptions_total`), 0);
  });

  it('names, types, model_name on every series, process metrics, model gauges', async () => {
    const m = await scrape(server.url);
    const expected: Record<string, string> = {
      time_to_first_token_seconds: 'histogram',
      inter_token_latency_seconds: 'histogram',
      e2e_request_latency_seconds: 'histogram',
      request_queue_time_seconds: 'histogram',
      request_prefill_time_seconds: 'histogram',
      request_decode_time_seconds: 'histogram',
      request_inference_time_seconds: 'histogram',
      request_prompt_tokens: 'histogram',
      request_generation_tokens: 'histogram',
      prompt_tokens_total: 'counter',
      generation_tokens_total: 'counter',
      requests_total: 'counter',
      num_requests_running: 'gauge',
      num_requests_waiting: 'gauge',
      avg_generation_throughput_toks_per_s: 'gauge',
      kv_cache_usage_perc: 'gauge',
      kv_cache_budget_bytes: 'gauge',
      prefix_cache_tokens: 'gauge',
      prefix_cache_queries_total: 'counter',
      prefix_cache_hits_total: 'counter',
      num_preemptions_total: 'counter',
      iteration_tokens_total: 'histogram',
      iteration_sequences: 'histogram',
      model_load_seconds: 'gauge',
      model_info: 'gauge',
      // prom-client's default process metrics, prefixed
      process_cpu_user_seconds_total: 'counter',
      process_resident_memory_bytes: 'gauge',
      nodejs_heap_size_used_bytes: 'gauge',
      nodejs_eventloop_lag_seconds: 'gauge',
    };
    for (const [name, type] of Object.entries(expected)) assert.equal(m.types.get(P + name), type, name);
    assert.ok(m.samples.length > 50);
    for (const s of m.samples) assert.equal(s.labels.model_name, MODEL_NAME, `${s.name} lacks model_name`);
    assert.ok(value(m, `${P}model_load_seconds`) > 0);
    assert.equal(value(m, `${P}model_info`, { execution_provider: 'cpu', threads: '2', logits: 'last-position', kv_update: 'batched' }), 1);
  });

  it('each app has its own registry; /metrics answers while loading', async () => {
    const other = await startServer(model, { contextLength: CONTEXT, modelName: 'other-name' });
    try {
      const m = await scrape(other.url);
      assert.equal(m.samples.filter((s) => s.name === `${P}requests_total`).length, 0);
      assert.equal(value(m, `${P}generation_tokens_total`), 0);
      for (const s of m.samples) assert.equal(s.labels.model_name, 'other-name');
    } finally {
      await other.close();
    }
    const { buildApp } = await import('../../src/app.ts');
    const { testConfig } = await import('../helpers/server.ts');
    const loading = await buildApp(testConfig({ modelDir: '/nonexistent/model' }), { load: 'background' });
    try {
      await loading.modelsStarted.catch(() => undefined);
      const res = await loading.inject({ method: 'GET', url: '/metrics' });
      assert.equal(res.statusCode, 200);
      const m: Scrape = parseProm(res.body);
      assert.equal(value(m, `${P}num_requests_running`), 0);
      assert.equal(value(m, `${P}model_load_seconds`), 0);
    } finally {
      await loading.close();
    }
  });
});
