/** The clock-driven load bar: ticks against the last load's time, yields to real progress, records the new time. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { LoadEstimate } from '../../src/engine/load-estimate.ts';
import { loadProgressChannel, type LoadProgress } from '../../src/engine/load-progress.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('ticks against the last load, pauses for another task, and records this load', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'load-estimate-'));
  const seen: LoadProgress[] = [];
  const listener = (m: unknown) => seen.push(m as LoadProgress);
  loadProgressChannel.subscribe(listener);
  try {
    // No previous load: nothing to estimate against, no bar.
    new LoadEstimate(dir).finish(true);
    assert.equal(seen.length, 0);
    assert.ok(Number(readFileSync(join(dir, '.last-load-seconds'), 'utf8')) >= 0);

    writeFileSync(join(dir, '.last-load-seconds'), '2.0\n');
    const estimate = new LoadEstimate(dir);
    await sleep(1100);
    const ticks = seen.length;
    assert.ok(ticks >= 1, 'ticked');
    assert.ok(seen.every((p) => p.unit === 'seconds' && p.total >= 2 && p.done < p.total));
    estimate.otherTask();
    await sleep(1100);
    assert.equal(seen.length, ticks, 'quiet while another task reports');
    estimate.finish(true);
    const last = seen.at(-1)!;
    assert.equal(last.done, last.total, 'the bar completes');
    assert.ok(Math.abs(Number(readFileSync(join(dir, '.last-load-seconds'), 'utf8')) - 2.2) < 1);
  } finally {
    loadProgressChannel.unsubscribe(listener);
  }
});
