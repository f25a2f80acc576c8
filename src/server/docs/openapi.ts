/**
 * OpenAPI 3 docs built from the routes' own request schemas (@fastify/swagger), served with
 * Swagger UI's assets from the package (nothing from a CDN) at /docs, and as JSON at
 * /openapi.json. Response schemas and examples are added to the document only (through the
 * transform), so they never change how a route serializes its answers.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { ROUTE_DOCS } from './route-docs.ts';

export const DOCS_PREFIX = '/docs';

/** Registers the docs; call before the routes, so swagger sees them as they are added. */
export async function registerOpenApi(app: FastifyInstance, version: string): Promise<void> {
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'Phi-4-mini local server',
        version,
        description: 'OpenAI-compatible (chat, completions, Responses) and Anthropic Messages APIs, computed on this host.',
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer' },
          apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key' },
        },
      },
      security: [{ bearer: [] }, { apiKey: [] }],
    },
    transform: ({ schema, url, route }) => {
      const doc = ROUTE_DOCS[`${String(route.method)} ${url}`];
      const base = (schema ?? {}) as Record<string, unknown>;
      if (!doc) return { schema: base, url };
      const { bodyExamples, ...rest } = doc;
      return { schema: { ...base, ...rest, ...(base.body ? { body: withExamples(base.body, bodyExamples) } : {}) }, url };
    },
  });
  await app.register(swaggerUi, { routePrefix: DOCS_PREFIX, staticCSP: true });
  app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());
}

function withExamples(body: unknown, examples: unknown[] | undefined): unknown {
  if (!body || !examples) return body;
  return { ...(body as object), examples };
}
