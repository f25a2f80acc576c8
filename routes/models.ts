/** GET /v1/models and GET /v1/models/:id (ids may contain slashes, e.g. "microsoft/Phi-4-mini-instruct"). */
import type { FastifyInstance } from 'fastify';
import { modelNotFound } from '../src/server/errors.ts';
import type { ModelCard, ModelList } from '../src/server/protocol/models.ts';
import type { ServingContext } from '../src/server/serving/context.ts';

function card(ctx: ServingContext, id: string): ModelCard {
  return { id, object: 'model', created: ctx.loadedAt, owned_by: 'local', max_model_len: ctx.contextLength };
}

export default async function modelRoutes(app: FastifyInstance): Promise<void> {
  app.get('/v1/models', async (): Promise<ModelList> => {
    const ctx = app.modelHost.require();
    return { object: 'list', data: ctx.servedNames.map((name) => card(ctx, name)) };
  });

  app.get<{ Params: { '*': string } }>('/v1/models/*', async (request): Promise<ModelCard> => {
    const ctx = app.modelHost.require();
    const id = request.params['*'];
    if (!ctx.servedNames.includes(id)) throw modelNotFound(id);
    return card(ctx, id);
  });
}
