/** POST /v1/chat/completions: validate, hand to the serving layer, serialize. */
import type { FastifyInstance } from 'fastify';
import { leaseModel, serveOptions } from '../src/server/http.ts';
import { chatCompletionRequestSchema, type ChatCompletionRequest } from '../src/server/protocol/chat.ts';
import { createChatCompletion } from '../src/server/serving/chat.ts';
import { sendSse } from '../src/server/sse.ts';

export default async function chatRoutes(app: FastifyInstance): Promise<void> {
  app.post<{ Body: ChatCompletionRequest }>(
    '/v1/chat/completions',
    { schema: { body: chatCompletionRequestSchema } },
    async (request, reply) => {
      const ctx = await leaseModel(request, reply, request.body.model, request.body.keep_alive);
      const result = await createChatCompletion(ctx, request.body, serveOptions(request, reply));
      return result.kind === 'json' ? result.body : sendSse(reply, result.chunks);
    },
  );
}
