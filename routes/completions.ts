/** POST /v1/completions: validate, hand to the serving layer, serialize. */
import type { FastifyInstance } from 'fastify';
import { leaseModel, serveOptions } from '../src/server/http.ts';
import { completionRequestSchema, type CompletionRequest } from '../src/server/protocol/completions.ts';
import { createCompletion } from '../src/server/serving/completions.ts';
import { sendSse } from '../src/server/sse.ts';

export default async function completionRoutes(app: FastifyInstance): Promise<void> {
  app.post<{ Body: CompletionRequest }>(
    '/v1/completions',
    { schema: { body: completionRequestSchema } },
    async (request, reply) => {
      const ctx = await leaseModel(request, reply, request.body.model, request.body.keep_alive);
      const result = await createCompletion(ctx, request.body, serveOptions(request, reply));
      return result.kind === 'json' ? result.body : sendSse(reply, result.chunks);
    },
  );
}
