/**
 * A worker thread with its own copy of the model's tokenizer. Byte-level BPE over long words is
 * slow (a 100,000-character prompt can take a second), and on the main thread that would stall
 * health checks and every running stream; long inputs are tokenized here instead.
 */
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../worker-thread.ts';
import { ChatTemplateError } from './chat-encoding.ts';
import type { ChatMessage, ChatTemplateOptions, EncodeOptions, RenderedChat } from './tokenizer.ts';

export type TokenizeJob =
  | { kind: 'encode'; text: string; opts: EncodeOptions }
  | { kind: 'chat'; messages: readonly ChatMessage[]; opts: ChatTemplateOptions };

export type TokenizeRequest = TokenizeJob & { id: number };

export type TokenizeReply =
  | { id: number; ok: true; result: number[] | RenderedChat }
  | { id: number; ok: false; error: string; /** The chat template failed (ChatTemplateError). */ templateError?: boolean };


interface Pending {
  resolve: (result: number[] | RenderedChat) => void;
  reject: (err: Error) => void;
}

/** Started on the first job; holds the process open only while jobs are pending. */
export class TokenizerWorker {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly modelDir: string) {}

  async encode(text: string, opts: EncodeOptions): Promise<number[]> {
    return (await this.run({ kind: 'encode', text, opts })) as number[];
  }

  async applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions): Promise<RenderedChat> {
    return (await this.run({ kind: 'chat', messages, opts })) as RenderedChat;
  }

  private run(job: TokenizeJob): Promise<number[] | RenderedChat> {
    const worker = (this.worker ??= this.start());
    const id = this.nextId++;
    if (this.pending.size === 0) worker.ref();
    const result = new Promise<number[] | RenderedChat>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    worker.postMessage({ ...job, id } satisfies TokenizeRequest);
    return result;
  }

  private start(): Worker {
    const worker = startWorker(import.meta.url, './worker-entry', this.modelDir);
    worker.unref();
    worker.on('message', (reply: TokenizeReply) => this.settle(reply));
    worker.on('error', (err) => this.fail(worker, err));
    worker.on('exit', (code) => this.fail(worker, new Error(`tokenizer worker exited with code ${code}`)));
    return worker;
  }

  private settle(reply: TokenizeReply): void {
    const job = this.pending.get(reply.id);
    if (!job) return;
    this.pending.delete(reply.id);
    if (this.pending.size === 0) this.worker?.unref();
    if (reply.ok) job.resolve(reply.result);
    else job.reject(reply.templateError ? new ChatTemplateError(reply.error) : new Error(reply.error));
  }

  /** Ends the worker (the model is unloaded); jobs still pending fail. */
  async close(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    this.fail(worker, new Error('tokenizer closed'));
    await worker.terminate();
  }

  /** A dead worker fails the jobs it held; the next job starts a new one. */
  private fail(worker: Worker, err: Error): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    for (const job of this.pending.values()) job.reject(err);
    this.pending.clear();
  }
}
