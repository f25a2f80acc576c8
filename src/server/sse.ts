/**
 * Server-sent events in OpenAI's framing: `data: {json}\n\n` per chunk, then `data: [DONE]\n\n`;
 * or typed, as Anthropic's Messages and OpenAI's Responses streams are: `event: {type}\ndata: {json}\n\n`
 * per event (its `type` field names it), and no terminator.
 *
 * The body is a Readable that pulls one chunk at a time from the serving layer, so every chunk
 * is written (and flushed: Node's HTTP sockets run with Nagle off) as soon as it exists, and a
 * slow reader applies backpressure instead of buffering. When the connection goes away Fastify
 * destroys the Readable, which returns the iterator so the generation behind it stops.
 */
import { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';

export const SSE_DONE = 'data: [DONE]\n\n';

export function sseEvent(data: unknown): string {
  return `data: ${JSON.stringify(data)}\n\n`;
}

export function typedSseEvent(data: unknown): string {
  const type = (data as { type?: unknown }).type;
  return `event: ${typeof type === 'string' ? type : 'message'}\n${sseEvent(data)}`;
}

export type SseFraming = 'openai' | 'typed';

class SseBody extends Readable {
  private finished = false;

  constructor(
    private readonly source: AsyncIterator<unknown>,
    private readonly framing: SseFraming,
  ) {
    super({ highWaterMark: 1 });
  }

  override _read(): void {
    if (this.finished) return;
    this.source.next().then(
      (r) => {
        if (this.destroyed) return;
        if (r.done) {
          this.finished = true;
          if (this.framing === 'openai') this.push(SSE_DONE);
          this.push(null);
        } else {
          this.push(this.framing === 'openai' ? sseEvent(r.value) : typedSseEvent(r.value));
        }
      },
      (err: unknown) => this.destroy(err instanceof Error ? err : new Error(String(err))),
    );
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.finished) {
      this.finished = true;
      // Runs the serving layer's cleanup (abort the engine, free the queue slot) in the background.
      this.source.return?.().catch(() => undefined);
    }
    callback(err);
  }
}

export function sendSse(reply: FastifyReply, chunks: AsyncIterator<unknown>, framing: SseFraming = 'openai'): FastifyReply {
  reply
    .code(200)
    .header('content-type', 'text/event-stream; charset=utf-8')
    .header('cache-control', 'no-cache')
    .header('connection', 'keep-alive')
    // Tells nginx-style proxies not to buffer the stream.
    .header('x-accel-buffering', 'no');
  return reply.send(new SseBody(chunks, framing));
}
