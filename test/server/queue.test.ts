import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QueueClosedError, QueueFullError, RequestQueue, type Lease } from '../../src/server/queue.ts';

/** A fake job: holds its lease until told to finish. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('RequestQueue', () => {
  it('grants immediately when idle and counts running', async () => {
    const q = new RequestQueue({ maxQueue: 2 });
    const lease = await q.acquire();
    assert.equal(q.running, 1);
    assert.equal(q.waiting, 0);
    lease.release();
    lease.release(); // idempotent
    assert.equal(q.running, 0);
    assert.deepEqual(q.counters, { started: 1, finished: 1, rejected: 0, dropped: 0 });
  });

  it('serves waiters in FIFO order, one at a time', async () => {
    const q = new RequestQueue({ maxQueue: 10 });
    const order: number[] = [];
    const first = await q.acquire();
    const jobs = [1, 2, 3].map(async (n) => {
      const lease = await q.acquire();
      order.push(n);
      assert.equal(q.running, 1);
      await Promise.resolve();
      lease.release();
    });
    assert.equal(q.waiting, 3);
    first.release();
    await Promise.all(jobs);
    assert.deepEqual(order, [1, 2, 3]);
    assert.equal(q.running, 0);
  });

  it('rejects at once when the line is full, with a retry hint', async () => {
    const q = new RequestQueue({ maxQueue: 1 });
    const running = await q.acquire();
    const waiting = q.acquire();
    await assert.rejects(q.acquire(), (err: unknown) => {
      assert.ok(err instanceof QueueFullError);
      assert.ok(err.retryAfterSec >= 1);
      return true;
    });
    assert.equal(q.counters.rejected, 1);
    running.release();
    (await waiting).release();
    assert.equal(q.counters.finished, 2);
  });

  it('maxQueue 0 admits only when a slot is free', async () => {
    const q = new RequestQueue({ maxQueue: 0 });
    const a = await q.acquire();
    await assert.rejects(q.acquire(), QueueFullError);
    a.release();
    (await q.acquire()).release();
  });

  it('drops a waiter whose signal aborts, and never grants it', async () => {
    const q = new RequestQueue({ maxQueue: 5 });
    const running = await q.acquire();
    const ac = new AbortController();
    const gone = q.acquire(ac.signal);
    const next = q.acquire();
    assert.equal(q.waiting, 2);
    ac.abort(new Error('client gone'));
    await assert.rejects(gone, /client gone/);
    assert.equal(q.waiting, 1);
    assert.equal(q.counters.dropped, 1);
    running.release();
    const lease = await next;
    assert.equal(q.counters.started, 2);
    lease.release();
  });

  it('rejects an already-aborted signal without queueing', async () => {
    const q = new RequestQueue({ maxQueue: 5 });
    await assert.rejects(q.acquire(AbortSignal.abort(new Error('early'))), /early/);
    assert.equal(q.counters.started, 0);
  });

  it('supports several concurrent slots for a batching engine', async () => {
    const q = new RequestQueue({ maxQueue: 1, maxConcurrent: 2 });
    const a = await q.acquire();
    const b = await q.acquire();
    assert.equal(q.running, 2);
    const c = q.acquire();
    await assert.rejects(q.acquire(), QueueFullError);
    a.release();
    const lc = await c;
    assert.equal(q.running, 2);
    b.release();
    lc.release();
  });

  it('close() rejects waiters and new work; running leases finish', async () => {
    const q = new RequestQueue({ maxQueue: 5 });
    const running = await q.acquire();
    const waiting = q.acquire();
    q.close();
    await assert.rejects(waiting, QueueClosedError);
    await assert.rejects(q.acquire(), QueueClosedError);
    const idle = q.whenIdle();
    running.release();
    await idle;
    assert.equal(q.running, 0);
  });

  it('every accepted job of a burst completes; the excess is refused', async () => {
    const q = new RequestQueue({ maxQueue: 3 });
    const gates = Array.from({ length: 10 }, deferred);
    const results = await Promise.allSettled(
      gates.map(async (g, i) => {
        const lease: Lease = await q.acquire();
        setImmediate(g.resolve);
        await g.promise;
        lease.release();
        return i;
      }),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r) => r.status === 'rejected');
    assert.equal(ok.length, 4); // 1 running + 3 waiting
    assert.equal(refused.length, 6);
    for (const r of refused) assert.ok((r as PromiseRejectedResult).reason instanceof QueueFullError);
    assert.equal(q.running + q.waiting, 0);
  });
});
