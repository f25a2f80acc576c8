/** Small HTTP-side helpers shared by the route plugins. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ClientGoneError, invalidRequest } from './errors.ts';
import { parseKeepAlive } from './models/keep-alive.ts';
import type { KeepAliveField } from './protocol/common.ts';
import type { ServingContext } from './serving/context.ts';
import type { ServeOptions } from './serving/common.ts';

/**
 * Aborts when the connection closes before the response finished: the client went away
 * (while queued, while a non-streaming answer was being generated, or mid-stream).
 */
export function clientGoneSignal(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  const res = reply.raw;
  res.once('close', () => {
    if (!res.writableFinished) ac.abort(new ClientGoneError());
  });
  return ac.signal;
}

export function serveOptions(request: FastifyRequest, reply: FastifyReply): ServeOptions {
  return {
    requestId: String(request.id),
    clientSignal: clientGoneSignal(reply),
    ...(request.modelLease ? { receivedAt: request.modelLease.requestedAt } : {}),
    onTrace: (trace) => {
      request.trace = trace;
    },
  };
}

/**
 * The serving context of the model a request names, loaded for it when needed (the wait counts
 * against the request's timeout). The lease is given back when the request's work is over
 * (src/server/observe.ts), with the request's keep_alive.
 */
export async function leaseModel(request: FastifyRequest, reply: FastifyReply, model: string, keepAlive: KeepAliveField | undefined): Promise<ServingContext> {
  const keepAliveMs = keepAlive === undefined || keepAlive === null ? undefined : parseKeepAlive(keepAlive);
  if (keepAlive !== undefined && keepAlive !== null && keepAliveMs === undefined) {
    throw invalidRequest('keep_alive must be seconds or a duration such as "5m" (0 unloads the model after this answer, -1 keeps it loaded).', 'keep_alive');
  }
  const requestedAt = performance.now();
  const lease = await request.server.models.acquire(model, clientGoneSignal(reply));
  request.modelLease = { lease, requestedAt, ...(keepAliveMs !== undefined ? { keepAliveMs } : {}) };
  return lease.ctx;
}
