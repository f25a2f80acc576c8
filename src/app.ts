/**
 * buildApp(config): the whole HTTP server as a Fastify instance, ready for `listen` or `inject`.
 * Routes live in /routes and stay thin; everything else is wired here.
 */
import { randomUUID } from 'node:crypto';
import cors from '@fastify/cors';
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import chatRoutes from '../routes/chat.ts';
import adminRoutes from '../routes/admin.ts';
import completionRoutes from '../routes/completions.ts';
import healthRoutes from '../routes/health.ts';
import messagesRoutes from '../routes/messages.ts';
import metricsRoutes from '../routes/metrics.ts';
import modelRoutes from '../routes/models.ts';
import playgroundRoutes from '../routes/playground.ts';
import responsesRoutes from '../routes/responses.ts';
import { ConfigError, type ServerConfig } from './config.ts';
import { findUp } from './find-up.ts';
import { collectGarbage } from './engine/gc.ts';
import { trimHeap } from './engine/heap-trim.ts';
import { loadProgressChannel, type LoadProgress } from './engine/load-progress.ts';
import { registerApiKeyAuth } from './server/auth.ts';
import { registerOpenApi } from './server/docs/openapi.ts';
import { clientErrorHandler, frameworkErrorHandler } from './server/early-errors.ts';
import { registerErrorHandlers } from './server/errors.ts';
import './server/fastify-types.ts';
import { loggerOptions } from './server/logging.ts';
import { ServingMetrics } from './server/metrics.ts';
import { RequestObserver, isApiRoute } from './server/observe.ts';
import { describeModelFolder, scanModelsDir, type ModelSource } from './server/models/catalog.ts';
import {
  createServingContext,
  describeModel,
  footprint,
  kvBudgetFor,
  loadModel,
  modelsMemoryBudget,
  type LoadedModel,
} from './server/models/loading.ts';
import { ModelRegistry, type LoadedServing } from './server/models/registry.ts';
import type { ServingContext } from './server/serving/context.ts';

export { loadModel, type LoadedModel } from './server/models/loading.ts';

/** The package's version, for the API docs. */
const PACKAGE_VERSION = ((): string => {
  const file = findUp('package.json', dirname(fileURLToPath(import.meta.url)));
  return file ? (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version : 'unknown';
})();

export interface AppOptions {
  /**
   * An already-loaded model served as config.modelName (tests share one engine between apps);
   * never unloaded. Without it the app loads its models itself and closes them on app.close().
   */
  model?: LoadedModel;
  /** Close `model.engine` on app.close(); default: only when the app loaded it. */
  ownsEngine?: boolean;
  /**
   * 'await' (default): buildApp resolves once the preloaded models are loaded (or rejects when the
   * one --model-dir model fails). 'background': resolves at once; /ready answers 503 until
   * `app.modelsStarted` settles.
   */
  load?: 'await' | 'background';
  /** A pino logger, or Fastify logger options; default: JSON lines at config.logLevel. */
  logger?: Logger | FastifyServerOptions['logger'];
  /** prom-client's process metrics on the app's registry (default true). */
  processMetrics?: boolean;
}

/** Request ids from clients are echoed only if they are short and plain (they land in logs). */
const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

function isPinoLogger(x: unknown): x is Logger {
  return typeof x === 'object' && x !== null && typeof (x as Logger).child === 'function' && 'level' in x;
}

export async function buildApp(config: ServerConfig, opts: AppOptions = {}): Promise<FastifyInstance> {
  const logger = opts.logger ?? loggerOptions(config);
  const headersTimeoutMs = config.headersTimeoutSec * 1000;
  const app = Fastify({
    ...(isPinoLogger(logger) ? { loggerInstance: logger } : { logger }),
    // One summary line per request (src/server/observe.ts) replaces Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimit,
    // Idle keep-alive sockets close after this; a response in progress is never cut by a timeout:
    // connectionTimeout (socket inactivity) stays off because a long prefill sends nothing for minutes.
    keepAliveTimeout: config.keepAliveTimeoutSec * 1000,
    requestTimeout: config.readTimeoutSec * 1000,
    connectionTimeout: 0,
    http: {
      headersTimeout: headersTimeoutMs,
      // How often Node checks the two timeouts above (its default, 30 s, would be coarser than them).
      connectionsCheckingInterval: Math.max(250, Math.min(30_000, Math.floor(headersTimeoutMs / 4))),
    },
    // Our own 503 (OpenAI-shaped) is sent from the readiness guard instead.
    return503OnClosing: false,
    // Errors before routing (bad URL) and from Node's parser (431, 400, 408) in the same envelope.
    frameworkErrors: frameworkErrorHandler,
    clientErrorHandler,
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

  const metrics = new ServingMetrics({ ...(config.modelsDir ? {} : { modelName: config.modelName }), processMetrics: opts.processMetrics });
  const observer = new RequestObserver(metrics, config.logContent);
  const registry = createRegistry(app, config, opts, metrics, observer);
  metrics.countLoadedModelsWith(() => registry.list().filter((e) => e.state === 'loaded').length);
  app.decorate('models', registry);
  app.decorate('metrics', metrics);
  app.decorate('inflight', observer.inflight);
  app.decorateRequest('trace', null);
  app.decorateRequest('modelLease', null);
  registerErrorHandlers(app);

  // Clients (curl -d) often omit or mislabel the content type; every body is read as JSON.
  app.addContentTypeParser('*', { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'));

  // Hook order matters: accounting sees every request (401s and 503s included); CORS answers
  // preflights before authentication (browsers send no credentials on them).
  observer.register(app);
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    // While draining, clients should not reuse the connection.
    if (registry.status === 'draining') reply.header('connection', 'close');
  });
  if (config.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: config.corsOrigins.includes('*') ? '*' : config.corsOrigins,
      methods: ['GET', 'HEAD', 'POST', 'DELETE', 'OPTIONS'],
      exposedHeaders: ['x-request-id', 'retry-after'],
      maxAge: 600,
    });
  }
  registerApiKeyAuth(app, config.apiKeys);
  app.addHook('onRequest', async (request) => {
    // Refuse early (before reading the body) while loading, failed or shutting down.
    if (isApiRoute(request)) registry.requireReady();
  });

  await registerOpenApi(app, PACKAGE_VERSION);
  await app.register(healthRoutes);
  await app.register(metricsRoutes, { public: config.metricsPublic });
  await app.register(modelRoutes);
  await app.register(adminRoutes, { keysConfigured: config.apiKeys.length > 0 });
  if (config.ui) await app.register(playgroundRoutes, {});
  await app.register(chatRoutes);
  await app.register(completionRoutes);
  await app.register(messagesRoutes);
  await app.register(responsesRoutes);

  app.addHook('onClose', async () => {
    metrics.detach();
    await registry.close();
  });

  const starting = startModels(app, config, opts, registry);
  app.decorate('modelsStarted', starting);
  if ((opts.load ?? 'await') === 'await') await starting;
  else starting.catch(() => undefined); // reported through app.modelsStarted and /ready
  return app;
}

/** The models the app serves, as the registry's hooks load, follow and unload them. */
function createRegistry(app: FastifyInstance, config: ServerConfig, opts: AppOptions, metrics: ServingMetrics, observer: RequestObserver): ModelRegistry {
  const withInt8 = config.int8Steps !== 'off';
  const sources = opts.model
    ? [{ name: config.modelName, aliases: config.modelAliases, dir: config.modelDir, weightBytes: 0 }]
    : config.modelsDir
      ? scanModelsDir(config.modelsDir, withInt8)
      : [describeModelFolder(config.modelDir, config.modelName, config.modelAliases, withInt8)];
  const detachers = new Map<string, () => void>();
  return new ModelRegistry(
    sources,
    {
      maxLoaded: config.maxLoadedModels,
      memoryBudgetBytes: modelsMemoryBudget(config),
      unloadAfterMs: config.unloadAfterMs,
      footprint: (source) => footprint(config, source),
      waitTimeoutMs: config.requestTimeoutSec * 1000,
    },
    {
      load: (source) => loadServing(app, config, source),
      onLoaded: (entry, loaded) => {
        detachers.set(entry.name, metrics.attach(loaded.ctx, loaded.loadSeconds));
        observer.attach(loaded.ctx);
        // Loading (tokenizer, model files) leaves garbage that an idle server would otherwise keep.
        collectGarbage();
        app.log.info({ ...describeModel(loaded.ctx, loaded.loadSeconds), loadCount: entry.loadCount }, 'model ready');
        warnAboutSession(app, config, loaded.ctx);
      },
      onUnloaded: (entry, _ctx, reason) => {
        detachers.get(entry.name)?.();
        detachers.delete(entry.name);
        metrics.recordUnload(entry.name, reason);
        app.log.info({ model: entry.name, reason }, 'model unloaded');
      },
      onLoadFailed: (entry, err) => app.log.error({ model: entry.name, err }, 'model failed to load'),
    },
  );
}

/** Loads one model for the registry, logging its progress (the engine reports long one-off work). */
async function loadServing(app: FastifyInstance, config: ServerConfig, source: ModelSource): Promise<LoadedServing> {
  app.log.info({ model: source.name, estimatedGib: +(footprint(config, source) / 1024 ** 3).toFixed(2) }, 'loading model');
  const stopProgressLog = logLoadProgress(app, source.name);
  try {
    const model = await loadModel(config, source.dir, kvBudgetFor(config, source));
    const ctx = createServingContext(config, model, source);
    const close = async (): Promise<void> => {
      await Promise.all([model.engine.close(), model.tokenizer.close?.()]);
      collectGarbage();
      trimHeap(); // the worker's heap memory (weights, session) is free now, not yet given back
    };
    return { ctx, close, loadSeconds: model.loadSeconds ?? 0 };
  } finally {
    stopProgressLog();
  }
}

/** Loads the --preload models; with one --model-dir model, its failure fails the start. */
async function startModels(app: FastifyInstance, config: ServerConfig, opts: AppOptions, registry: ModelRegistry): Promise<void> {
  const pinned: LoadedServing[] = [];
  if (opts.model) {
    const model = opts.model;
    const owns = opts.ownsEngine ?? false;
    const ctx = createServingContext(config, model, { name: config.modelName, aliases: config.modelAliases });
    pinned.push({ ctx, loadSeconds: model.loadSeconds ?? 0, close: async () => (owns ? model.engine.close() : undefined) });
  }
  const names = config.preload.includes('all') ? registry.list().map((e) => e.name) : config.preload;
  const unknown = opts.model ? [] : names.filter((n) => !registry.find(n));
  if (unknown.length > 0) throw new ConfigError(`--preload: no model named ${unknown.join(', ')} (served: ${registry.list().map((e) => e.name).join(', ')})`);
  await registry.start(opts.model ? [] : names, pinned);
  if (config.modelsDir || opts.model) return;
  const only = registry.list()[0];
  if (only.state === 'failed') throw new Error(only.error ?? 'the model failed to load');
}

function warnAboutSession(app: FastifyInstance, config: ServerConfig, ctx: ServingContext): void {
  const deviceNote = ctx.engine.session?.deviceNote;
  if (deviceNote) app.log.warn({ model: ctx.modelName, requestedDevice: config.device }, deviceNote);
  const kvNote = ctx.engine.session?.kvNote;
  if (kvNote && config.kvUpdate === 'batched') app.log.warn({ model: ctx.modelName, kvUpdate: 'in-place' }, `batched graph unavailable, one sequence at a time: ${kvNote}`);
}

/** Progress of the engine's long one-off load work in the log, every quarter. */
function logLoadProgress(app: FastifyInstance, model: string): () => void {
  let lastQuarter = -1;
  const onMessage = (message: unknown): void => {
    const p = message as LoadProgress;
    const quarter = Math.floor((4 * p.done) / Math.max(1, p.total));
    if (quarter === lastQuarter) return;
    lastQuarter = quarter;
    app.log.info({ model, task: p.task, percent: quarter * 25 }, 'loading model');
  };
  loadProgressChannel.subscribe(onMessage);
  return () => loadProgressChannel.unsubscribe(onMessage);
}
