/**
 * Progress for the part of loading nothing can measure: onnxruntime builds its session (prepacking
 * every weight) inside one native call. The bar runs on the clock against the previous load of the
 * same model on this host, recorded beside the model (best effort: a read-only folder just means no
 * bar next time). Another task's own progress (the int8 weights write) takes precedence.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadProgressChannel } from './load-progress.ts';

const FILE = '.last-load-seconds';
const TASK = 'loading the model (time of the last load)';
const TICK_MS = 500;
/** Ticks pause while another task reported within this long. */
const QUIET_MS = 1500;

export class LoadEstimate {
  private readonly started = performance.now();
  private otherTaskAt = -Infinity;
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(private readonly modelDir: string) {
    const expectedMs = lastLoadSeconds(modelDir) * 1000;
    if (!(expectedMs > 0) || !loadProgressChannel.hasSubscribers) return;
    this.timer = setInterval(() => {
      if (performance.now() - this.otherTaskAt < QUIET_MS) return;
      const elapsed = performance.now() - this.started;
      loadProgressChannel.publish({ task: TASK, done: elapsed / 1000, total: Math.max(expectedMs, elapsed * 1.05) / 1000, unit: 'seconds' });
    }, TICK_MS);
    this.timer.unref();
  }

  /** Another task reported progress. */
  otherTask(): void {
    this.otherTaskAt = performance.now();
  }

  /** Loading ended; a successful load is recorded for the next estimate. */
  finish(loaded: boolean): void {
    if (this.timer) {
      clearInterval(this.timer);
      const seconds = (performance.now() - this.started) / 1000;
      loadProgressChannel.publish({ task: TASK, done: seconds, total: seconds, unit: 'seconds' });
    }
    if (!loaded) return;
    try {
      writeFileSync(join(this.modelDir, FILE), `${((performance.now() - this.started) / 1000).toFixed(1)}\n`);
    } catch {
      // A read-only model folder: no estimate next time.
    }
  }
}

function lastLoadSeconds(modelDir: string): number {
  try {
    return Number(readFileSync(join(modelDir, FILE), 'utf8').trim());
  } catch {
    return 0;
  }
}
