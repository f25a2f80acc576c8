/**
 * GET /metrics: Prometheus text format from the app's own registry. Needs the API key when keys
 * are configured, unless --metrics-public. Served in every state (loading, draining, failed).
 */
import type { FastifyInstance } from 'fastify';

export interface MetricsRouteOptions {
  /** --metrics-public: served without an API key. */
  public: boolean;
}

export default async function metricsRoutes(app: FastifyInstance, opts: MetricsRouteOptions): Promise<void> {
  app.get('/metrics', { config: { public: opts.public } }, async (_request, reply) => {
    const { contentType, body } = await app.metrics.render();
    return reply.header('cache-control', 'no-store').type(contentType).send(body);
  });
}
