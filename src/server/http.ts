/** Small HTTP-side helpers shared by the route plugins. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServeOptions } from './serving/common.ts';

/**
 * Aborts when the connection closes before the response finished: the client went away
 * (while queued, while a non-streaming answer was being generated, or mid-stream).
 */
export function clientGoneSignal(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  const res = reply.raw;
  res.once('close', () => {
    if (!res.writableFinished) ac.abort();
  });
  return ac.signal;
}

export function serveOptions(request: FastifyRequest, reply: FastifyReply): ServeOptions {
  return {
    requestId: String(request.id),
    clientSignal: clientGoneSignal(reply),
    onTrace: (trace) => {
      request.trace = trace;
    },
  };
}
