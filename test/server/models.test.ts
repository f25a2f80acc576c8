/**
 * Several models on one server (--models-dir): listing with states, load on demand, swapping
 * under --max-loaded-models 1, idle unload (--unload-after, keep_alive), a broken folder beside
 * good ones, admin load/unload, and the metrics of all that. Two families: Phi-4-mini's graph and
 * tokenizer (`tiny`) and Qwen2.5's (`tiny-qwen`).
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { after, before, describe, it } from 'node:test';
import { buildApp } from '../../src/app.ts';
import { collectGarbage } from '../../src/engine/gc.ts';
import { heapTrimAvailable } from '../../src/engine/heap-trim.ts';
import type { ServerConfig } from '../../src/config.ts';
import type { ServingContext } from '../../src/server/serving/context.ts';
import { parseProm, value } from '../helpers/prom.ts';
import { testConfig } from '../helpers/server.ts';
import { FIXTURES } from '../setup/model-paths.ts';

const PHI = 'tiny';
const QWEN = 'tiny-qwen';
const BROKEN = 'broken';
const CORRUPT = 'corrupt';

interface ModelsServer {
  url: string;
  close(): Promise<void>;
  app: Awaited<ReturnType<typeof buildApp>>;
}

let dir: string;

/** A models folder: the two families (linked), a folder with no model, and one whose model.onnx is garbage. */
function makeModelsDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'models-dir-'));
  symlinkSync(FIXTURES.tiny, join(d, PHI));
  symlinkSync(FIXTURES['tiny-qwen'], join(d, QWEN));
  mkdirSync(join(d, BROKEN));
  writeFileSync(join(d, BROKEN, 'README.txt'), 'not a model');
  mkdirSync(join(d, CORRUPT));
  for (const f of ['genai_config.json', 'config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(FIXTURES.tiny, f), join(d, CORRUPT, f));
  writeFileSync(join(d, CORRUPT, 'model.onnx'), 'this is not an onnx graph');
  writeFileSync(join(d, 'models.json'), JSON.stringify({ [PHI]: { aliases: ['phi'] } }));
  return d;
}

async function startModelsServer(overrides: Partial<ServerConfig> = {}): Promise<ModelsServer> {
  const app = await buildApp(testConfig({ modelsDir: dir, ...overrides }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address !== 'object') throw new Error('no address');
  return {
    app,
    url: `http://127.0.0.1:${address.port}`,
    close: async () => {
      const closing = app.close();
      app.server.closeAllConnections();
      await closing;
    },
  };
}

async function chat(url: string, model: string, extra: Record<string, unknown> = {}): Promise<Response> {
  return fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 4, temperature: 0, ...extra }),
  });
}

async function states(url: string): Promise<Record<string, { state: string; error?: string }>> {
  const body = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string; state: string; error?: string }[] };
  return Object.fromEntries(body.data.map((m) => [m.id, { state: m.state, ...(m.error ? { error: m.error } : {}) }]));
}

async function waitFor(check: () => Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const end = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const MIB = 1024 ** 2;

async function settledRss(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    collectGarbage();
    await new Promise((r) => setTimeout(r, 300));
  }
  return process.memoryUsage().rss;
}

/** The engine's worker thread (private): its threadId is -1 once the thread has ended. */
const engineWorker = (ctx: ServingContext): Worker => (ctx.engine as unknown as { worker: Worker }).worker;

describe('several models (--models-dir)', () => {
  before(() => {
    dir = makeModelsDir();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('lists every folder with its state; both families answer; a broken folder fails alone', async () => {
    const s = await startModelsServer();
    try {
      const listed = await states(s.url);
      assert.deepEqual(Object.keys(listed).sort(), [BROKEN, CORRUPT, 'phi', PHI, QWEN].sort());
      assert.equal(listed[PHI].state, 'unloaded');
      assert.equal(listed[QWEN].state, 'unloaded');
      assert.equal(listed[BROKEN].state, 'failed');
      assert.match(listed[BROKEN].error ?? '', /genai_config\.json is missing/);
      assert.ok(!(listed[BROKEN].error ?? '').includes(dir), 'no server paths in the reason');
      assert.equal((await fetch(`${s.url}/ready`)).status, 200);

      for (const model of [PHI, QWEN, 'phi']) {
        const res = await chat(s.url, model);
        assert.equal(res.status, 200, model);
        const body = (await res.json()) as { model: string; usage: { completion_tokens: number } };
        assert.equal(body.model, model === 'phi' ? PHI : model, 'answers name the model, aliases resolved');
        assert.ok(body.usage.completion_tokens > 0);
      }
      const card = (await (await fetch(`${s.url}/v1/models/${QWEN}`)).json()) as { state: string; max_model_len: number };
      assert.equal(card.state, 'loaded');
      assert.ok(card.max_model_len > 0);

      const broken = await chat(s.url, BROKEN);
      assert.equal(broken.status, 503);
      assert.equal(((await broken.json()) as { error: { code: string } }).error.code, 'model_load_failed');
      const corrupt = await chat(s.url, CORRUPT);
      assert.equal(corrupt.status, 503, 'a model whose load fails answers 503');
      const corruptState = (await states(s.url))[CORRUPT];
      assert.equal(corruptState.state, 'failed');
      assert.ok((corruptState.error ?? '').length > 0);
      assert.equal((await chat(s.url, PHI)).status, 200, 'the others keep serving');
      assert.equal((await chat(s.url, 'no-such-model')).status, 404);
    } finally {
      await s.close();
    }
  });

  it('--max-loaded-models 1: alternating and concurrent requests are all served by swapping', async () => {
    const s = await startModelsServer({ maxLoadedModels: 1 });
    try {
      for (const model of [PHI, QWEN, PHI]) assert.equal((await chat(s.url, model)).status, 200, model);
      const concurrent = await Promise.all([QWEN, PHI, QWEN, PHI].map((m) => chat(s.url, m)));
      assert.deepEqual(concurrent.map((r) => r.status), [200, 200, 200, 200]);
      const loaded = s.app.models.list().filter((e) => e.state === 'loaded');
      assert.ok(loaded.length <= 1, 'never two loaded at once');

      const m = parseProm(await (await fetch(`${s.url}/metrics`)).text());
      assert.ok(value(m, 'phi4_model_loads_total', { model_name: PHI }) >= 2);
      assert.ok(value(m, 'phi4_model_loads_total', { model_name: QWEN }) >= 2);
      assert.ok(value(m, 'phi4_model_unloads_total', { model_name: PHI, reason: 'evicted' }) >= 2);
      assert.equal(value(m, 'phi4_models_loaded'), 1);
      assert.ok(value(m, 'phi4_model_load_seconds', { model_name: QWEN }) > 0);
    } finally {
      await s.close();
    }
  });

  it('a memory budget too small for two models swaps them', async () => {
    const small = await startModelsServer({ modelsMemoryGib: 0.001 });
    try {
      for (const model of [PHI, QWEN, PHI]) assert.equal((await chat(small.url, model)).status, 200, model);
      assert.equal(small.app.models.list().filter((e) => e.state === 'loaded').length, 1);
      const m = parseProm(await (await fetch(`${small.url}/metrics`)).text());
      assert.equal(value(m, 'phi4_model_unloads_total', { reason: 'evicted' }), 2);
    } finally {
      await small.close();
    }
  });

  it('--unload-after 1 unloads an idle model and ends its worker thread; keep_alive overrides it', async () => {
    const s = await startModelsServer({ unloadAfterMs: 1000 });
    try {
      assert.equal((await chat(s.url, PHI)).status, 200);
      const ctx = s.app.models.find(PHI)?.ctx;
      assert.ok(ctx);
      const worker = engineWorker(ctx);
      assert.notEqual(worker.threadId, -1);
      await waitFor(async () => (await states(s.url))[PHI].state === 'unloaded', 'the idle unload');
      await waitFor(async () => worker.threadId === -1, 'the worker thread to end');

      assert.equal((await chat(s.url, QWEN, { keep_alive: -1 })).status, 200);
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal((await states(s.url))[QWEN].state, 'loaded', 'keep_alive -1 keeps it');

      assert.equal((await chat(s.url, PHI, { keep_alive: 0 })).status, 200);
      await waitFor(async () => (await states(s.url))[PHI].state === 'unloaded', 'keep_alive 0 to unload after the answer', 5000);

      const bad = await chat(s.url, PHI, { keep_alive: 'soon' });
      assert.equal(bad.status, 400);
      assert.equal(((await bad.json()) as { error: { param: string } }).error.param, 'keep_alive');
      const m = parseProm(await (await fetch(`${s.url}/metrics`)).text());
      assert.equal(value(m, 'phi4_model_unloads_total', { model_name: PHI, reason: 'idle' }), 1);
      assert.equal(value(m, 'phi4_model_unloads_total', { model_name: PHI, reason: 'keep_alive' }), 1);
    } finally {
      await s.close();
    }
  });

  it('unloading gives the memory back (the worker, its session and the tokenizer end; the heap is trimmed)', async () => {
    assert.ok(heapTrimAvailable(), 'npm install built native/malloc-trim');
    const s = await startModelsServer();
    try {
      const before = await settledRss();
      assert.equal((await fetch(`${s.url}/admin/models/${QWEN}/load`, { method: 'POST' })).status, 200);
      assert.equal((await chat(s.url, QWEN)).status, 200);
      const loaded = await settledRss();
      assert.equal((await fetch(`${s.url}/admin/models/${QWEN}/unload`, { method: 'POST' })).status, 200);
      const after = await settledRss();
      const grew = loaded - before;
      assert.ok(grew > 50 * MIB, `loading grew RSS by ${Math.round(grew / MIB)} MiB`);
      assert.ok(after - before < grew / 2, `after unload RSS is ${Math.round((after - before) / MIB)} MiB above where it was, of ${Math.round(grew / MIB)} MiB`);
    } finally {
      await s.close();
    }
  });

  it('admin load and unload; 409 while a request uses the model; --preload', async () => {
    const s = await startModelsServer({ preload: [QWEN] });
    try {
      assert.equal((await states(s.url))[QWEN].state, 'loaded', 'preloaded');
      const load = await fetch(`${s.url}/admin/models/${PHI}/load`, { method: 'POST' });
      assert.equal(load.status, 200);
      assert.equal(((await load.json()) as { state: string }).state, 'loaded');

      const stream = await chat(s.url, PHI, { stream: true, max_tokens: 200, logit_bias: { 200020: -100, 199999: -100 } });
      const reader = stream.body?.getReader();
      await reader?.read(); // the stream is running
      const busy = await fetch(`${s.url}/admin/models/${PHI}/unload`, { method: 'POST' });
      assert.equal(busy.status, 409);
      await reader?.cancel();
      await waitFor(async () => (await fetch(`${s.url}/admin/models/${PHI}/unload`, { method: 'POST' })).status === 200, 'the unload once idle');
      assert.equal((await states(s.url))[PHI].state, 'unloaded');
      assert.equal((await fetch(`${s.url}/admin/models/nope/load`, { method: 'POST' })).status, 404);
    } finally {
      await s.close();
    }
  });

  it('an unknown --preload name fails the start with the served names', async () => {
    await assert.rejects(buildApp(testConfig({ modelsDir: dir, preload: ['tiny', 'nope'] })), /--preload: no model named nope \(served: .*tiny-qwen/);
  });

  it('admin routes need the key when keys are set', async () => {
    const s = await startModelsServer({ apiKeys: ['secret'] });
    try {
      assert.equal((await fetch(`${s.url}/admin/models/${PHI}/load`, { method: 'POST' })).status, 401);
      const ok = await fetch(`${s.url}/admin/models/${PHI}/load`, { method: 'POST', headers: { authorization: 'Bearer secret' } });
      assert.equal(ok.status, 200);
    } finally {
      await s.close();
    }
  });
});
