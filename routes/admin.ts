/**
 * POST /admin/models/:id/load and /admin/models/:id/unload: load a model ahead of its first request,
 * or give its memory back now (409 while requests use it). Behind the API key; with no key set,
 * only from this machine.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../src/server/errors.ts';
import { modelCard } from '../src/server/models/cards.ts';
import type { ModelCard } from '../src/server/protocol/models.ts';

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

const adminForbidden = (): ApiError =>
  new ApiError(403, 'Admin routes answer only requests from this machine when no API key is set.', 'permission_error', null, 'forbidden');

export default async function adminRoutes(app: FastifyInstance, opts: { keysConfigured?: boolean }): Promise<void> {
  const guard = async (request: FastifyRequest): Promise<void> => {
    if (!opts.keysConfigured && !LOOPBACK.has(request.socket.remoteAddress ?? '')) throw adminForbidden();
  };

  app.post<{ Params: { '*': string } }>('/admin/models/*', { onRequest: guard }, async (request): Promise<ModelCard> => {
    const { id, action } = splitAction(request.params['*']);
    const entry = action === 'load' ? await app.models.load(id) : await app.models.unload(id);
    return modelCard(entry, id);
  });
}

/** "org/name/load" -> { id: "org/name", action: "load" } (ids may contain slashes). */
function splitAction(path: string): { id: string; action: 'load' | 'unload' } {
  const cut = path.lastIndexOf('/');
  const action = path.slice(cut + 1);
  if (cut <= 0 || (action !== 'load' && action !== 'unload')) {
    throw new ApiError(404, 'Use POST /admin/models/{id}/load or /admin/models/{id}/unload.', 'invalid_request_error', null, 'not_found');
  }
  return { id: path.slice(0, cut), action };
}
