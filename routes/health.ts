/**
 * GET /health: the process is up (liveness). GET /ready: the model is loaded and new work is
 * accepted (readiness); 503 with the reason otherwise. Neither needs an API key.
 */
import type { FastifyInstance } from 'fastify';
import { sendApiError, notReady } from '../src/server/errors.ts';

export default async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get('/health', { config: { public: true } }, async () => ({ status: 'ok' }));

  app.get('/ready', { config: { public: true } }, async (_request, reply) => {
    const host = app.modelHost;
    const status = host.status;
    if (status === 'ready' && host.context) {
      return { status: 'ready', model: host.context.modelName };
    }
    return sendApiError(reply, notReady(status === 'ready' ? 'loading' : status));
  });
}
