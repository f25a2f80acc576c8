/** What the app adds to Fastify's instance and request types. */
import type { ModelHost } from './state.ts';
import type { RequestTrace } from './trace.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The hosted model's lifecycle and serving context. */
    modelHost: ModelHost;
  }
  interface FastifyRequest {
    /** Set by generation routes; read by onResponse hooks (logs, metrics). */
    trace: RequestTrace | null;
  }
}

export {};
