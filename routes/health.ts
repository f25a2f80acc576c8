/**
 * GET /health: the process is up (liveness). GET /ready: the server takes requests (readiness:
 * started, not shutting down, and not every model failed); 503 with the reason otherwise.
 * Per-model readiness is the `state` of GET /v1/models/{id}. Neither needs an API key.
 */
import type { FastifyInstance } from 'fastify';
import { sendApiError, notReady } from '../src/server/errors.ts';

export default async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get('/health', { config: { public: true } }, async () => ({ status: 'ok' }));

  app.get('/ready', { config: { public: true } }, async (_request, reply) => {
    const status = app.models.status;
    if (status !== 'ready') return sendApiError(reply, notReady(status));
    const entries = app.models.list();
    const loaded = entries.filter((e) => e.state === 'loaded').map((e) => e.name);
    // One model: its name, as before; several: which are loaded.
    return entries.length === 1 ? { status: 'ready', model: entries[0].name } : { status: 'ready', models: entries.length, loaded };
  });
}
