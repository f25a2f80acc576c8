/**
 * Bearer-key check for the OpenAI routes (and /metrics unless --metrics-public). Keys are
 * compared as SHA-256 digests with timingSafeEqual, so neither the content nor the length of a
 * key leaks through timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { invalidApiKey } from './errors.ts';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(header.trim());
  return m ? m[1].trim() : undefined;
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

/** Requires a key on every path `isProtected` accepts; no-op without keys. */
export function registerApiKeyAuth(
  app: FastifyInstance,
  keys: readonly string[],
  isProtected: (path: string) => boolean = (p) => p.startsWith('/v1/') || p === '/v1',
): void {
  if (keys.length === 0) return;
  const matches = keyMatcher(keys);
  app.addHook('onRequest', async (request) => {
    // CORS preflights carry no credentials by design; OPTIONS is answered by the CORS plugin
    // (or 404 without CORS), never by a route that serves data.
    if (request.method === 'OPTIONS') return;
    const path = request.url.split('?')[0];
    if (!isProtected(path)) return;
    if (!matches(bearerToken(request))) throw invalidApiKey();
  });
}
