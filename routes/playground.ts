/**
 * GET /: the web playground (public/index.html), and its assets under /playground/. Public routes:
 * the page loads without an API key and asks for one when the API answers 401. Off with --no-ui.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { PLAYGROUND_HEADERS, PLAYGROUND_PREFIX, loadPlaygroundAssets, type PlaygroundAsset } from '../src/server/playground.ts';

export interface PlaygroundRouteOptions {
  /** public/ folder to serve (default: found beside the sources). */
  dir?: string;
}

function serve(asset: PlaygroundAsset) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    reply.headers(PLAYGROUND_HEADERS).header('etag', asset.etag);
    const match = request.headers['if-none-match'];
    if (typeof match === 'string' && match.split(',').some((tag) => tag.trim() === asset.etag)) return reply.code(304).send();
    return reply.type(asset.contentType).send(asset.body);
  };
}

export default async function playgroundRoutes(app: FastifyInstance, opts: PlaygroundRouteOptions): Promise<void> {
  for (const asset of loadPlaygroundAssets(opts.dir)) {
    const url = asset.name === 'index.html' ? '/' : `${PLAYGROUND_PREFIX}${asset.name}`;
    // hide: a page, not an API operation (kept out of /openapi.json).
    app.get(url, { config: { public: true }, schema: { hide: true } }, serve(asset));
  }
}
