/** What the app adds to Fastify's instance and request types. */
import type { ServingMetrics } from './metrics.ts';
import type { InflightRequests } from './observe.ts';
import type { ModelHost } from './state.ts';
import type { RequestTrace } from './trace.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The hosted model's lifecycle and serving context. */
    modelHost: ModelHost;
    /** The app's Prometheus registry and instruments. */
    metrics: ServingMetrics;
    /** Requests whose work is not over yet (graceful shutdown waits for none). */
    inflight: InflightRequests;
  }
  interface FastifyRequest {
    /** Set by generation routes; read by onResponse hooks (logs, metrics). */
    trace: RequestTrace | null;
  }
  interface FastifyContextConfig {
    /**
     * Served without an API key. Every other route, and the 404 handler, needs one when keys are
     * configured (see auth.ts).
     */
    public?: boolean;
    /** The error envelope of the route's API: OpenAI's (default) or Anthropic's. */
    errorFormat?: 'openai' | 'anthropic';
  }
}

export {};
