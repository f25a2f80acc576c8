/** What the app adds to Fastify's instance and request types. */
import type { ServingMetrics } from './metrics.ts';
import type { KeepAliveMs } from './models/keep-alive.ts';
import type { ModelLease, ModelRegistry } from './models/registry.ts';
import type { InflightRequests } from './observe.ts';
import type { RequestTrace } from './trace.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The models served, their state (loaded or not) and serving contexts. */
    models: ModelRegistry;
    /** Settles once the preloaded models are loaded; rejects when the one --model-dir model fails. */
    modelsStarted: Promise<void>;
    /** The app's Prometheus registry and instruments. */
    metrics: ServingMetrics;
    /** Requests whose work is not over yet (graceful shutdown waits for none). */
    inflight: InflightRequests;
  }
  interface FastifyRequest {
    /** Set by generation routes; read by onResponse hooks (logs, metrics). */
    trace: RequestTrace | null;
    /** The model a generation route uses; given back when the request's work is over. */
    modelLease: { lease: ModelLease; requestedAt: number; keepAliveMs?: KeepAliveMs } | null;
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
