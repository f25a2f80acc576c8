/** Admission control: the engine owns the waiting line, the HTTP side only bounds how many are in it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Admission, QueueClosedError, QueueFullError } from '../../src/server/admission.ts';

describe('Admission', () => {
  it('admits up to the running sequences plus the allowed waiting ones, and refuses the rest at once', () => {
    const a = new Admission({ maxRunning: 2, maxQueue: 1 });
    const tickets = [a.admit(), a.admit(), a.admit()];
    assert.equal(a.inflight, 3);
    assert.throws(() => a.admit(), (err: unknown) => err instanceof QueueFullError && err.retryAfterSec >= 1);
    assert.equal(a.counters.rejected, 1);
    tickets[0].release();
    tickets[0].release();
    assert.equal(a.inflight, 2);
    a.admit();
    assert.equal(a.counters.admitted, 4);
  });

  it('maxQueue 0 admits only as many as run together', () => {
    const a = new Admission({ maxRunning: 1, maxQueue: 0 });
    a.admit();
    assert.throws(() => a.admit(), QueueFullError);
  });

  it('the Retry-After hint grows with the requests ahead', async () => {
    const a = new Admission({ maxRunning: 1, maxQueue: 10 });
    const t = a.admit();
    await new Promise((r) => setTimeout(r, 30));
    t.release();
    const held = Array.from({ length: 11 }, () => a.admit());
    const hint = a.retryAfterSeconds();
    assert.ok(hint >= 1);
    held.slice(0, 10).forEach((x) => x.release());
    assert.ok(a.retryAfterSeconds() <= hint);
  });

  it('close() refuses new work; admitted requests finish and whenIdle resolves', async () => {
    const a = new Admission({ maxRunning: 1, maxQueue: 1 });
    const t = a.admit();
    a.close();
    assert.throws(() => a.admit(), QueueClosedError);
    let idle = false;
    const waiting = a.whenIdle().then(() => (idle = true));
    assert.equal(idle, false);
    t.release();
    await waiting;
    assert.equal(idle, true);
  });
});
