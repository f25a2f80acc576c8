/**
 * The model registry's scheduling, with loads the test finishes by hand: who gets a lease while
 * another model loads, who waits for room, the order of the line, failures, aborts and timeouts.
 * (test/server/models.test.ts serves real models through HTTP.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiError } from '../../src/server/errors.ts';
import type { ModelSource } from '../../src/server/models/catalog.ts';
import { ModelRegistry, type LoadedServing, type ModelLease, type RegistryOptions } from '../../src/server/models/registry.ts';
import type { ServingContext } from '../../src/server/serving/context.ts';

const source = (name: string, extra: Partial<ModelSource> = {}): ModelSource => ({ name, aliases: [], dir: `/models/${name}`, weightBytes: 100, ...extra });

/** A registry whose loads resolve (or fail) when the test says so. */
function harness(opts: Partial<RegistryOptions> = {}, sources = [source('a'), source('b')]) {
  const pending = new Map<string, { resolve: (l: LoadedServing) => void; reject: (e: Error) => void }>();
  const closed: string[] = [];
  const unloaded: string[] = [];
  const registry = new ModelRegistry(
    sources,
    { maxLoaded: 2, memoryBudgetBytes: 1000, unloadAfterMs: Infinity, footprint: (s) => s.weightBytes, waitTimeoutMs: 0, ...opts },
    {
      load: (s) =>
        new Promise<LoadedServing>((resolve, reject) => {
          pending.set(s.name, { resolve, reject });
        }),
      onUnloaded: (entry, _ctx, reason) => unloaded.push(`${entry.name}:${reason}`),
    },
  );
  const finishLoad = async (name: string): Promise<void> => {
    await until(() => pending.has(name));
    const ctx = { modelName: name, engine: { healthy: true }, admission: { close() {} }, draining: new AbortController(), shutdown: new AbortController() } as unknown as ServingContext;
    pending.get(name)?.resolve({ ctx, loadSeconds: 0.1, close: async () => void closed.push(name) });
    pending.delete(name);
    await tick();
  };
  const failLoad = async (name: string, message: string): Promise<void> => {
    await until(() => pending.has(name));
    pending.get(name)?.reject(new Error(message));
    pending.delete(name);
    await tick();
  };
  return { registry, finishLoad, failLoad, pending, closed, unloaded };
}

const tick = () => new Promise((r) => setImmediate(r));
async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await tick();
  assert.ok(check(), 'condition never held');
}
/** Whether a promise has settled (without waiting for it). */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(() => (done = true), () => (done = true));
  await tick();
  return done;
}

describe('model registry', () => {
  it('a request for a loaded model is served while another model loads', async () => {
    const h = harness();
    const a = h.registry.acquire('a');
    await h.finishLoad('a');
    (await a).release();
    const b = h.registry.acquire('b');
    await until(() => h.registry.find('b')?.state === 'loading');
    const a2 = h.registry.acquire('a');
    assert.ok(await settled(a2), 'a is granted while b loads');
    assert.equal(await settled(b), false);
    await h.finishLoad('b');
    assert.ok(await settled(b));
  });

  it('with room for one model, a request waits for the busy one to go idle; the line keeps its order', async () => {
    const h = harness({ maxLoaded: 1 });
    const first = h.registry.acquire('a');
    await h.finishLoad('a');
    const leaseA = await first;
    const b = h.registry.acquire('b');
    const aLater = h.registry.acquire('a'); // behind b in the line: must not starve it
    assert.equal(await settled(b), false);
    assert.equal(await settled(aLater), false, 'a later request for a waits behind b');
    leaseA.release();
    await until(() => h.pending.has('b'));
    assert.deepEqual(h.unloaded, ['a:evicted']);
    assert.deepEqual(h.closed, ['a']);
    await h.finishLoad('b');
    const leaseB = await b;
    assert.equal(await settled(aLater), false);
    leaseB.release();
    await h.finishLoad('a');
    assert.ok(await settled(aLater));
    assert.deepEqual(h.unloaded, ['a:evicted', 'b:evicted']);
  });

  it('the memory budget decides too; one model alone always loads', async () => {
    const h = harness({ memoryBudgetBytes: 150 }, [source('a'), source('b'), source('huge', { weightBytes: 10_000 })]);
    const huge = h.registry.acquire('huge');
    await h.finishLoad('huge');
    (await huge).release();
    const a = h.registry.acquire('a');
    await until(() => h.pending.has('a'));
    assert.deepEqual(h.unloaded, ['huge:evicted']);
    await h.finishLoad('a');
    (await a).release();
    const b = h.registry.acquire('b'); // 100 + 100 > 150
    await until(() => h.pending.has('b'));
    assert.deepEqual(h.unloaded, ['huge:evicted', 'a:evicted']);
  });

  it('a failed load answers its waiters with 503 and the reason; a load by hand tries again', async () => {
    const h = harness();
    const outcomes = [h.registry.acquire('a'), h.registry.acquire('a')].map((p) => p.then(() => undefined, (err: unknown) => err));
    await h.failLoad('a', 'bad graph in /models/a/model.onnx');
    for (const err of await Promise.all(outcomes)) {
      assert.ok(err instanceof ApiError && err.status === 503 && err.code === 'model_load_failed', String(err));
      assert.match(err.message, /bad graph in a\/model\.onnx/, 'the reason, without the server path');
    }
    assert.equal(h.registry.find('a')?.state, 'failed');
    await assert.rejects(h.registry.acquire('a'), (err: ApiError) => err.status === 503);
    const again = h.registry.load('a');
    await h.finishLoad('a');
    assert.equal((await again).state, 'loaded');
  });

  it('a waiter that aborts or times out leaves the line', async () => {
    const h = harness({ waitTimeoutMs: 30 });
    const ac = new AbortController();
    const gone = h.registry.acquire('a', ac.signal);
    ac.abort(new Error('client gone'));
    await assert.rejects(gone, /client gone/);
    const late = h.registry.acquire('b');
    await assert.rejects(late, (err: ApiError) => err.status === 408);
    await h.finishLoad('a');
    const lease: ModelLease = await h.registry.acquire('a');
    lease.release();
  });

  it('keep_alive 0 unloads after the last lease; unload by hand refuses a busy model', async () => {
    const h = harness();
    const a = h.registry.acquire('a');
    await h.finishLoad('a');
    const lease = await a;
    await assert.rejects(h.registry.unload('a'), (err: ApiError) => err.status === 409);
    lease.release(0);
    await until(() => h.registry.find('a')?.state === 'unloaded');
    assert.deepEqual(h.unloaded, ['a:keep_alive']);
    await assert.rejects(h.registry.acquire('nope'), (err: ApiError) => err.status === 404);
  });
});
