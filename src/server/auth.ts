/**
 * API-key check (Bearer or x-api-key), deny by default: every route needs a key except those marked
 * `config: { public: true }` (/health, /ready; /metrics with --metrics-public), and so do unknown
 * paths. Keys are compared as SHA-256 digests with timingSafeEqual, so neither the content nor the
 * length of a key leaks through timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DOCS_PREFIX } from './docs/openapi.ts';
import { invalidApiKey } from './errors.ts';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(header.trim());
  return m ? m[1].trim() : undefined;
}

/** The key a client sent: `Authorization: Bearer` (OpenAI) or `x-api-key` (Anthropic). */
export function apiKeyOf(request: FastifyRequest): string | undefined {
  const header = request.headers['x-api-key'];
  return bearerToken(request) ?? (typeof header === 'string' && header.trim() ? header.trim() : undefined);
}

export function keyMatcher(keys: readonly string[]): (candidate: string | undefined) => boolean {
  const digests = keys.map(digest);
  return (candidate) => {
    if (candidate === undefined) return false;
    const d = digest(candidate);
    let ok = false;
    // No early exit: every key is compared whatever matches.
    for (const k of digests) ok = timingSafeEqual(k, d) || ok;
    return ok;
  };
}

/**
 * Whether the route the router matched is open to all. Decided on the matched route, never on the
 * URL text: percent-encoding, absolute-form targets and the like reach one route by many spellings.
 */
function isPublicRoute(request: FastifyRequest): boolean {
  // Swagger UI's own routes (its page and assets) cannot be marked; they hold no data.
  return request.routeOptions.config?.public === true || (request.routeOptions.url ?? '').startsWith(`${DOCS_PREFIX}`);
}

/**
 * Requires a key on every request but those to public routes; no-op without keys. Runs after
 * routing (onRequest), and after the CORS plugin, which answers preflights (they carry no
 * credentials by design) before this hook.
 */
export function registerApiKeyAuth(app: FastifyInstance, keys: readonly string[]): void {
  if (keys.length === 0) return;
  const matches = keyMatcher(keys);
  app.addHook('onRequest', async (request) => {
    if (isPublicRoute(request)) return;
    if (!matches(apiKeyOf(request))) throw invalidApiKey();
  });
}
