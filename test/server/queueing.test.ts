/**
 * Disconnects, queue overflow and request timeouts on a real server whose engine runs one sequence
 * at a time (so requests wait in its line). Assertions are on engine and admission state
 * (counters, lifecycle events), never on how fast anything ran.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LoadedModel } from '../../src/app.ts';
import type { RequestTrace } from '../../src/server/trace.ts';
import { MODEL_NAME, NO_EOS_BIAS, loadTestModel, postJson, readSse, startServer, until, type TestServer } from '../helpers/server.ts';

/** Long enough that no generation here can end on its own before the test ends it. */
const CONTEXT = 8192;
const LONG = 8000;

let model: LoadedModel;

before(async () => {
  model = await loadTestModel({ contextLength: CONTEXT, maxRunningSeqs: 1 });
});

after(async () => {
  await model?.engine.close();
});

const messages = [{ role: 'user', content: 'Go on forever.' }];
const longBody = { model: MODEL_NAME, messages, max_tokens: LONG, logit_bias: NO_EOS_BIAS, temperature: 0 };

interface Lifecycle {
  log: string[];
  done: Map<string, RequestTrace>;
}

/** Records started/finished order by request id from the serving events. */
function watch(server: TestServer): Lifecycle {
  const lc: Lifecycle = { log: [], done: new Map() };
  server.ctx.events.on('started', (t) => lc.log.push(`started:${t.requestId}`));
  server.ctx.events.on('generationDone', (t) => {
    lc.log.push(`done:${t.requestId}:${t.outcome}`);
    lc.done.set(t.requestId, { ...t });
  });
  return lc;
}

/** Opens a long stream and returns once its first content chunk arrived (it is generating). */
async function openLongStream(url: string, id: string): Promise<{ abort: () => void; rest: Promise<string[]> }> {
  const ac = new AbortController();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': id },
    body: JSON.stringify({ ...longBody, stream: true }),
    signal: ac.signal,
  });
  assert.equal(res.status, 200);
  const it = readSse(res);
  const first: string[] = [];
  for (;;) {
    const next = await it.next();
    assert.ok(!next.done);
    first.push(next.value);
    const chunk = JSON.parse(next.value) as { choices: { delta: { content?: string } }[] };
    if (chunk.choices[0]?.delta.content) break;
  }
  const rest = (async () => {
    const all = [...first];
    try {
      for await (const d of it) all.push(d);
    } catch {
      // aborted by the test
    }
    return all;
  })();
  return { abort: () => ac.abort(), rest };
}

describe('client disconnects', () => {
  let server: TestServer;
  let lc: Lifecycle;
  before(async () => {
    server = await startServer(model, { contextLength: CONTEXT });
    lc = watch(server);
  });
  after(async () => server?.close());

  it('a dropped stream frees the engine for the next request', async () => {
    const long = await openLongStream(server.url, 'drop-stream');
    assert.equal(model.engine.stats().running, 1);

    long.abort();
    // The next request is admitted right away; the engine runs it only once the dropped one ended.
    const next = await postJson(`${server.url}/v1/chat/completions`, { model: MODEL_NAME, messages, max_tokens: 4 }, { 'x-request-id': 'after-drop' });
    assert.equal(next.status, 200);
    const body = (await next.json()) as { usage: { completion_tokens: number } };
    assert.ok(body.usage.completion_tokens >= 1);

    const dropped = lc.done.get('drop-stream');
    assert.ok(dropped, 'the dropped generation reported its end');
    assert.equal(dropped.outcome, 'abort');
    assert.ok(dropped.completionTokens < LONG, `aborted early (${dropped.completionTokens} tokens)`);
    await until(() => server.ctx.admission.inflight === 0 && model.engine.stats().running === 0, 'idle');
  });

  it('a dropped non-streaming request is aborted too', async () => {
    const ac = new AbortController();
    const pending = fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'drop-json' },
      body: JSON.stringify(longBody),
      signal: ac.signal,
    }).catch((err: unknown) => err);
    let tokens = 0;
    const onToken = (t: RequestTrace) => {
      if (t.requestId === 'drop-json') tokens++;
    };
    server.ctx.events.on('token', onToken);
    await until(() => tokens > 0, 'generation started');
    ac.abort();
    assert.ok((await pending) instanceof Error);
    await until(() => lc.done.has('drop-json'), 'aborted generation ended');
    server.ctx.events.off('token', onToken);
    assert.equal(lc.done.get('drop-json')?.outcome, 'abort');
    assert.ok((lc.done.get('drop-json')?.completionTokens ?? LONG) < LONG);
    await until(() => server.ctx.admission.inflight === 0 && model.engine.stats().running === 0, 'idle');
  });

  it('a queued request whose client left is dropped and never runs', async () => {
    const long = await openLongStream(server.url, 'blocker-1');
    const ac = new AbortController();
    const queued = fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'gave-up' },
      body: JSON.stringify({ model: MODEL_NAME, messages, max_tokens: 4 }),
      signal: ac.signal,
    }).catch((err: unknown) => err);
    await until(() => model.engine.stats().waiting === 1, 'request queued');
    ac.abort();
    await queued;
    // It leaves the engine's line while the blocker still runs.
    await until(() => model.engine.stats().waiting === 0 && lc.done.has('gave-up'), 'line emptied');
    assert.equal(model.engine.stats().running, 1);
    const gaveUp = lc.done.get('gave-up')!;
    assert.equal(gaveUp.outcome, 'abort');
    assert.equal(gaveUp.completionTokens, 0);
    assert.equal(gaveUp.queueMs, undefined, 'the engine never took it from its line');
    long.abort();
    await until(() => server.ctx.admission.inflight === 0 && model.engine.stats().running === 0, 'idle');
  });
});

describe('overflow', () => {
  it('with maxQueue 1 a burst gets 429 + Retry-After for the excess; accepted requests complete', async () => {
    const server = await startServer(model, { contextLength: CONTEXT, maxQueue: 1 });
    try {
      const long = await openLongStream(server.url, 'blocker-2');
      const burst = Array.from({ length: 5 }, (_, i) =>
        postJson(`${server.url}/v1/chat/completions`, { model: MODEL_NAME, messages, max_tokens: 4, logit_bias: NO_EOS_BIAS }, { 'x-request-id': `burst-${i}` }),
      );
      // One request fits in the line; the other four are refused immediately, while the
      // blocker still runs.
      await until(() => server.ctx.admission.counters.rejected === 4 && model.engine.stats().waiting === 1, '4 refused, 1 waiting');
      assert.equal(model.engine.stats().running, 1);
      long.abort();
      const responses = await Promise.all(burst);
      const ok = responses.filter((r) => r.status === 200);
      const refused = responses.filter((r) => r.status === 429);
      assert.equal(ok.length, 1);
      assert.equal(refused.length, 4);
      for (const r of refused) {
        const retryAfter = r.headers.get('retry-after');
        assert.match(retryAfter ?? '', /^\d+$/);
        assert.ok(Number(retryAfter) >= 1);
        const body = (await r.json()) as { error: { type: string; code: string; param: null; message: string } };
        assert.equal(body.error.code, 'queue_full');
        assert.equal(body.error.param, null);
      }
      const done = (await ok[0].json()) as { choices: { finish_reason: string }[]; usage: { completion_tokens: number } };
      assert.equal(done.choices[0].finish_reason, 'length');
      assert.equal(done.usage.completion_tokens, 4);
      await until(() => server.ctx.admission.inflight === 0 && model.engine.stats().running === 0, 'idle');
    } finally {
      await server.close();
    }
  });
});

describe('request timeout', () => {
  it('ends a running generation with what it has and finish_reason "length"', async () => {
    const server = await startServer(model, { contextLength: CONTEXT, requestTimeoutSec: 1 });
    try {
      const res = await postJson(`${server.url}/v1/chat/completions`, longBody);
      assert.equal(res.status, 200);
      const body = (await res.json()) as { choices: { finish_reason: string; message: { content: string } }[]; usage: { completion_tokens: number } };
      assert.equal(body.choices[0].finish_reason, 'length');
      assert.ok(body.usage.completion_tokens > 0 && body.usage.completion_tokens < LONG);

      const stream = await postJson(`${server.url}/v1/chat/completions`, { ...longBody, stream: true });
      assert.equal(stream.status, 200);
      const datas: string[] = [];
      for await (const d of readSse(stream)) datas.push(d);
      assert.equal(datas.at(-1), '[DONE]');
      const last = JSON.parse(datas.at(-2) ?? '{}') as { choices: { finish_reason: string }[] };
      assert.equal(last.choices[0].finish_reason, 'length');
    } finally {
      await server.close();
    }
  });

  it('answers 408 when nothing was generated before the deadline', async () => {
    // Two apps on one engine running one sequence at a time: a request on the second app cannot
    // start while the first app's long stream runs.
    const busy = await startServer(model, { contextLength: CONTEXT });
    const strict = await startServer(model, { contextLength: CONTEXT, requestTimeoutSec: 1 });
    try {
      const long = await openLongStream(busy.url, 'blocker-3');
      const waitingJson = postJson(`${strict.url}/v1/chat/completions`, { model: MODEL_NAME, messages, max_tokens: 4 });
      const waitingStream = postJson(`${strict.url}/v1/chat/completions`, { model: MODEL_NAME, messages, max_tokens: 4, stream: true });
      // Past the 1 s budget of both, then free the engine.
      await new Promise((r) => setTimeout(r, 1500));
      long.abort();
      for (const res of [await waitingJson, await waitingStream]) {
        assert.equal(res.status, 408);
        const body = (await res.json()) as { error: { code: string; type: string } };
        assert.equal(body.error.code, 'request_timeout');
      }
    } finally {
      await busy.close();
      await strict.close();
    }
  });
});
