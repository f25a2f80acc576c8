/**
 * Worker thread that owns the ONNX Runtime session. session.run blocks whatever thread calls
 * it, so it lives here and the main thread's event loop stays free for HTTP.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { DecoderSession } from './decoder-session.ts';
import { runGeneration } from './generation-loop.ts';
import type { EngineOptions } from './types.ts';
import type { FromWorker, ToWorker } from './worker-protocol.ts';

const port = parentPort;
if (!port) throw new Error('worker-entry must run in a worker thread');
const post = (msg: FromWorker) => port.postMessage(msg);

let session: DecoderSession;
try {
  session = await DecoderSession.create(workerData as EngineOptions);
  post({ type: 'ready', info: session.info, session: session.description });
} catch (err) {
  post({ type: 'fatal', error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
}

// One sequence at a time for now; a batching scheduler replaces this FIFO.
const pending: Extract<ToWorker, { type: 'generate' }>[] = [];
let busy: Promise<void> | undefined;
let shuttingDown = false;
/**
 * The session keeps the last sequence's KV buffers for the next one (see KvBufferPool); after this
 * long with nothing to run they are dropped, so an idle server does not hold a long request's cache.
 */
const IDLE_KV_DROP_MS = 10_000;
let idleTimer: NodeJS.Timeout | undefined;

function pump(): Promise<void> {
  clearTimeout(idleTimer);
  busy ??= drain().finally(() => {
    busy = undefined;
    idleTimer = setTimeout(() => session.dropSpareKv(), IDLE_KV_DROP_MS);
    idleTimer.unref();
  });
  return busy;
}

async function drain(): Promise<void> {
  while (pending.length > 0 && !shuttingDown) {
    const job = pending.shift()!;
    const flag = new Int32Array(job.abortFlag);
    await runGeneration(session, job.request, {
      aborted: () => Atomics.load(flag, 0) !== 0,
      emit: (event) => post({ type: 'event', id: job.id, event }),
    });
  }
}

port.on('message', (msg: ToWorker) => {
  if (msg.type === 'generate') {
    pending.push(msg);
    void pump();
  } else if (msg.type === 'shutdown') {
    // The main thread has raised every abort flag; the running step ends before release.
    shuttingDown = true;
    void Promise.resolve(busy)
      .then(() => session.release())
      .finally(() => process.exit(0));
  }
});
