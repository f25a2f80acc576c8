/**
 * buildApp(config): the whole HTTP server as a Fastify instance, ready for `listen` or `inject`.
 * Routes live in /routes and stay thin; everything else is wired here.
 */
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Logger } from 'pino';
import chatRoutes from '../routes/chat.ts';
import completionRoutes from '../routes/completions.ts';
import healthRoutes from '../routes/health.ts';
import modelRoutes from '../routes/models.ts';
import type { ServerConfig } from './config.ts';
import { Engine } from './engine/engine.ts';
import { registerApiKeyAuth } from './server/auth.ts';
import { registerErrorHandlers } from './server/errors.ts';
import './server/fastify-types.ts';
import { RequestQueue } from './server/queue.ts';
import {
  systemFingerprint,
  type GenerationBackend,
  type ServingContext,
  type TokenizerLike,
} from './server/serving/context.ts';
import { ModelHost } from './server/state.ts';
import { ServingEvents } from './server/trace.ts';
import { ChatTokenizer } from './tokenizer/tokenizer.ts';

export interface LoadedModel {
  engine: GenerationBackend;
  tokenizer: TokenizerLike;
}

export interface AppOptions {
  /**
   * An already-loaded model (tests share one engine between apps). Without it the app loads
   * config.modelDir itself and closes the engine on app.close().
   */
  model?: LoadedModel;
  /** Close `model.engine` on app.close(); default: only when the app loaded it. */
  ownsEngine?: boolean;
  /**
   * 'await' (default): buildApp resolves once the model is loaded (or rejects).
   * 'background': resolves at once; /ready answers 503 until `app.modelHost.loaded` settles.
   */
  load?: 'await' | 'background';
  /** A pino logger, or Fastify logger options; default: JSON lines at config.logLevel. */
  logger?: Logger | FastifyServerOptions['logger'];
}

/** Request ids from clients are echoed only if they are short and plain (they land in logs). */
const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export async function loadModel(config: ServerConfig): Promise<LoadedModel> {
  const [engine, tokenizer] = await Promise.all([
    Engine.load({ modelDir: config.modelDir, threads: config.threads, contextLength: config.contextLength }),
    ChatTokenizer.load(config.modelDir),
  ]);
  return { engine, tokenizer };
}

export function createServingContext(config: ServerConfig, model: LoadedModel): ServingContext {
  const info = model.engine.info;
  return {
    config,
    modelName: config.modelName,
    servedNames: [config.modelName, ...config.modelAliases.filter((a) => a !== config.modelName)],
    engine: model.engine,
    tokenizer: model.tokenizer,
    queue: new RequestQueue({ maxQueue: config.maxQueue, maxConcurrent: config.maxConcurrent }),
    events: new ServingEvents(),
    contextLength: Math.min(info.contextLength, config.contextLength ?? Number.POSITIVE_INFINITY),
    systemFingerprint: systemFingerprint(config.modelName, info),
    loadedAt: Math.floor(Date.now() / 1000),
  };
}

function isPinoLogger(x: unknown): x is Logger {
  return typeof x === 'object' && x !== null && typeof (x as Logger).child === 'function' && 'level' in x;
}

export async function buildApp(config: ServerConfig, opts: AppOptions = {}): Promise<FastifyInstance> {
  const logger = opts.logger ?? { level: config.logLevel };
  const app = Fastify({
    ...(isPinoLogger(logger) ? { loggerInstance: logger } : { logger }),
    bodyLimit: config.bodyLimit,
    // Our own 503 (OpenAI-shaped) is sent from the readiness guard instead.
    return503OnClosing: false,
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && CLIENT_REQUEST_ID.test(given) ? given : randomUUID();
    },
    ajv: {
      customOptions: {
        // OpenAI rejects "0.5" for a number; so do we (Fastify's default would coerce it).
        coerceTypes: false,
        allErrors: false,
      },
    },
  }) as unknown as FastifyInstance;

  const host = new ModelHost();
  app.decorate('modelHost', host);
  app.decorateRequest('trace', null);
  registerErrorHandlers(app);

  // Clients (curl -d) often omit or mislabel the content type; every body is read as JSON.
  app.addContentTypeParser('*', { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'));

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  registerApiKeyAuth(app, config.apiKeys);
  app.addHook('onRequest', async (request) => {
    // Refuse early (before reading the body) while loading, failed or shutting down.
    if (request.url.startsWith('/v1/')) host.require();
  });

  await app.register(healthRoutes);
  await app.register(modelRoutes);
  await app.register(chatRoutes);
  await app.register(completionRoutes);

  const owns = opts.ownsEngine ?? opts.model === undefined;
  app.addHook('onClose', async () => {
    host.drain();
    if (!owns) return;
    await host.loaded.catch(() => undefined); // an engine still loading must not outlive the app
    await host.context?.engine.close();
  });

  const loading = (opts.model ? Promise.resolve(opts.model) : loadModel(config)).then(
    (model) => {
      host.setReady(createServingContext(config, model));
      const info = model.engine.info;
      app.log.info(
        { model: config.modelName, contextLength: host.context?.contextLength, layers: info.numLayers, vocab: info.vocabSize },
        'model ready',
      );
    },
    (err: unknown) => {
      const error = err instanceof Error ? err : new Error(String(err));
      host.setFailed(error);
      throw error;
    },
  );
  host.loaded = loading;
  if ((opts.load ?? 'await') === 'await') await loading;
  else loading.catch(() => undefined); // reported through host.loaded / /ready
  return app;
}
