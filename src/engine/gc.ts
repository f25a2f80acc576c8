/**
 * A full garbage collection of the calling thread's heap, on demand. Freed ArrayBuffers (KV
 * buffers) and load-time garbage are only given back when V8 collects them, and an idle server
 * allocates nothing that would prompt it.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | undefined;

export function collectGarbage(): void {
  if (!gc) {
    // --expose-gc only affects contexts created afterwards; a fresh context hands us `gc`.
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
}
