/**
 * POST /v1/responses, GET /v1/responses/:id, DELETE /v1/responses/:id (OpenAI's Responses API):
 * validate, hand to the serving layer, serialize. The store of finished responses belongs to
 * this plugin instance (one per app), and is emptied when the app closes.
 */
import type { FastifyInstance } from 'fastify';
import { invalidRequest } from '../src/server/errors.ts';
import { leaseModel, serveOptions } from '../src/server/http.ts';
import { createResponseRequestSchema, type CreateResponseRequest } from '../src/server/protocol/responses.ts';
import { ResponseStore } from '../src/server/serving/response-store.ts';
import { createResponse, deleteResponse, retrieveResponse } from '../src/server/serving/responses.ts';
import { sendSse } from '../src/server/sse.ts';

export interface ResponsesRouteOptions {
  /** Default: a store of RESPONSES_STORE_SIZE responses kept RESPONSES_STORE_TTL_MS (src/server/serving/response-store.ts). */
  store?: ResponseStore;
}

export default async function responsesRoutes(app: FastifyInstance, opts: ResponsesRouteOptions): Promise<void> {
  const store = opts.store ?? new ResponseStore();
  app.addHook('onClose', async () => store.close());

  app.post<{ Body: CreateResponseRequest }>('/v1/responses', { schema: { body: createResponseRequestSchema } }, async (request, reply) => {
    const ctx = await leaseModel(request, reply, request.body.model, request.body.keep_alive);
    const result = await createResponse(ctx, store, request.body, serveOptions(request, reply));
    return result.kind === 'json' ? result.body : sendSse(reply, result.chunks, 'typed');
  });

  app.get<{ Params: { id: string }; Querystring: { stream?: string } }>('/v1/responses/:id', async (request) => {
    // Replaying a stored response as events is not offered; its final object is.
    if (request.query.stream !== undefined && request.query.stream !== 'false') {
      throw invalidRequest("Streaming a stored response is not supported; retrieve it without 'stream'.", 'stream', 'unsupported_parameter');
    }
    return retrieveResponse(store, request.params.id);
  });

  app.delete<{ Params: { id: string } }>('/v1/responses/:id', async (request) => deleteResponse(store, request.params.id));
}
