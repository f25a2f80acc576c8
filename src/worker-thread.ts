/**
 * Starts a worker thread from a module beside the caller. Source runs under tsx (.ts); the Docker
 * image runs compiled JavaScript (.js). Workers do not always inherit the parent's loader
 * (node --test children don't), so a TypeScript worker registers tsx itself before importing its entry.
 */
import { Worker } from 'node:worker_threads';

/** `entry` is the entry module's name without extension, resolved against `callerUrl` (import.meta.url). */
export function startWorker(callerUrl: string, entry: string, workerData: unknown): Worker {
  const fromSource = callerUrl.endsWith('.ts');
  const url = new URL(`${entry}${fromSource ? '.ts' : '.js'}`, callerUrl);
  if (!fromSource) return new Worker(url, { workerData });
  const bootstrap = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(bootstrap, { eval: true, workerData });
}
