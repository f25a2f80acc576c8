/**
 * GET /v1/models and GET /v1/models/:id (ids may contain slashes, e.g. "microsoft/Phi-4-mini-instruct"):
 * every served name with its state, so a client (or a load balancer) sees per-model readiness.
 */
import type { FastifyInstance } from 'fastify';
import { modelNotFound } from '../src/server/errors.ts';
import { modelCard } from '../src/server/models/cards.ts';
import type { ModelCard, ModelList } from '../src/server/protocol/models.ts';

export default async function modelRoutes(app: FastifyInstance): Promise<void> {
  app.get('/v1/models', async (): Promise<ModelList> => {
    const data = app.models.list().flatMap((entry) => [entry.name, ...entry.source.aliases].map((id) => modelCard(entry, id)));
    return { object: 'list', data };
  });

  app.get<{ Params: { '*': string } }>('/v1/models/*', async (request): Promise<ModelCard> => {
    const id = request.params['*'];
    const entry = app.models.find(id);
    if (!entry) throw modelNotFound(id);
    return modelCard(entry, id);
  });
}
