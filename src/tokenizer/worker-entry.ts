/** The tokenizer worker thread (see tokenizer-worker.ts): loads the model folder's tokenizer, answers jobs in order. */
import { parentPort, workerData } from 'node:worker_threads';
import { ChatTemplateError, ChatTokenizer } from './tokenizer.ts';
import type { TokenizeReply, TokenizeRequest } from './tokenizer-worker.ts';

const port = parentPort;
if (!port) throw new Error('tokenizer worker-entry must run in a worker thread');

const loading = ChatTokenizer.load(workerData as string);
// Jobs that arrive while the tokenizer loads wait for it, in arrival order.
port.on('message', (req: TokenizeRequest) => void answer(port, req));

async function answer(out: NonNullable<typeof parentPort>, req: TokenizeRequest): Promise<void> {
  let reply: TokenizeReply;
  try {
    const tok = await loading;
    const result = req.kind === 'encode' ? tok.encode(req.text, req.opts) : tok.applyChatTemplate(req.messages, req.opts);
    reply = { id: req.id, ok: true, result };
  } catch (err) {
    reply = { id: req.id, ok: false, error: err instanceof Error ? err.message : String(err), ...(err instanceof ChatTemplateError ? { templateError: true } : {}) };
  }
  out.postMessage(reply);
}
