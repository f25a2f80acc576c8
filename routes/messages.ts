/**
 * Anthropic's Messages API: POST /v1/messages and POST /v1/messages/count_tokens. Every error on
 * these routes (validation, auth, 404 model, 429, 503...) is sent in Anthropic's envelope.
 */
import type { FastifyInstance } from 'fastify';
import { leaseModel, serveOptions } from '../src/server/http.ts';
import {
  countTokensRequestSchema,
  messagesRequestSchema,
  type CountTokensRequest,
  type MessagesRequest,
} from '../src/server/protocol/anthropic.ts';
import { countTokens, createMessage } from '../src/server/serving/anthropic.ts';
import { sendSse } from '../src/server/sse.ts';

export default async function messagesRoutes(app: FastifyInstance): Promise<void> {
  app.post<{ Body: MessagesRequest }>(
    '/v1/messages',
    { schema: { body: messagesRequestSchema }, config: { errorFormat: 'anthropic' } },
    async (request, reply) => {
      const ctx = await leaseModel(request, reply, request.body.model, request.body.keep_alive);
      const result = await createMessage(ctx, request.body, serveOptions(request, reply));
      return result.kind === 'json' ? result.body : sendSse(reply, result.chunks, 'typed');
    },
  );

  app.post<{ Body: CountTokensRequest }>(
    '/v1/messages/count_tokens',
    { schema: { body: countTokensRequestSchema }, config: { errorFormat: 'anthropic' } },
    async (request, reply) => countTokens(await leaseModel(request, reply, request.body.model, request.body.keep_alive), request.body),
  );
}
