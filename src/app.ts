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
import completionRoutes from '../routes/completions.ts';
import healthRoutes from '../routes/health.ts';
import messagesRoutes from '../routes/messages.ts';
import metricsRoutes from '../routes/metrics.ts';
import modelRoutes from '../routes/models.ts';
import playgroundRoutes from '../routes/playground.ts';
import responsesRoutes from '../routes/responses.ts';
import type { ServerConfig } from './config.ts';
import { findUp } from './find-up.ts';
import { Engine } from './engine/engine.ts';
import { collectGarbage } from './engine/gc.ts';
import type { Int8Calibration } from './engine/int8-calibration.ts';
import type { EngineOptions } from './engine/types.ts';
import { Admission } from './server/admission.ts';
import { registerApiKeyAuth } from './server/auth.ts';
import { registerOpenApi } from './server/docs/openapi.ts';
import { clientErrorHandler, frameworkErrorHandler } from './server/early-errors.ts';
import { registerErrorHandlers } from './server/errors.ts';
import './server/fastify-types.ts';
import { loggerOptions } from './server/logging.ts';
import { ServingMetrics } from './server/metrics.ts';
import { RequestObserver, isApiRoute } from './server/observe.ts';
import {
  systemFingerprint,
  type GenerationBackend,
  type ServingContext,
  type TokenizerLike,
} from './server/serving/context.ts';
import { ModelHost } from './server/state.ts';
import { ServingEvents } from './server/trace.ts';
import { ChatTokenizer } from './tokenizer/tokenizer.ts';

/** The package's version, for the API docs. */
const PACKAGE_VERSION = ((): string => {
  const file = findUp('package.json', dirname(fileURLToPath(import.meta.url)));
  return file ? (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version : 'unknown';
})();

export interface LoadedModel {
  engine: GenerationBackend;
  tokenizer: TokenizerLike;
  /** Wall time of loadModel (engine + tokenizer), when known. */
  loadSeconds?: number;
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
  /** prom-client's process metrics on the app's registry (default true). */
  processMetrics?: boolean;
}

/** Request ids from clients are echoed only if they are short and plain (they land in logs). */
const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export async function loadModel(config: ServerConfig): Promise<LoadedModel> {
  const t0 = performance.now();
  const [engine, tokenizer] = await Promise.all([
    Engine.load(engineOptions(config)),
    ChatTokenizer.load(config.modelDir),
  ]);
  return { engine, tokenizer, loadSeconds: (performance.now() - t0) / 1000 };
}

export function engineOptions(config: ServerConfig): EngineOptions {
  return {
    modelDir: config.modelDir,
    threads: config.threads,
    contextLength: config.contextLength,
    device: config.device,
    kvUpdate: config.kvUpdate,
    int8Steps: config.int8Steps,
    int8MinRows: config.int8MinRows,
    prefillChunk: config.prefillChunk,
    maxRunningSeqs: config.maxRunningSeqs,
    maxBatchTokens: config.maxBatchTokens,
    kvCacheBytes: config.kvCacheGib !== undefined ? Math.floor(config.kvCacheGib * 1024 ** 3) : undefined,
    prefixCache: config.prefixCache,
    prefixCacheIdleMs: config.prefixCacheIdleSec !== undefined ? config.prefixCacheIdleSec * 1000 : undefined,
  };
}

export function createServingContext(config: ServerConfig, model: LoadedModel): ServingContext {
  const info = model.engine.info;
  return {
    config,
    modelName: config.modelName,
    servedNames: [config.modelName, ...config.modelAliases.filter((a) => a !== config.modelName)],
    engine: model.engine,
    tokenizer: model.tokenizer,
    admission: new Admission({ maxRunning: model.engine.limits.maxRunningSeqs, maxQueue: config.maxQueue }),
    events: new ServingEvents(),
    contextLength: Math.min(info.contextLength, config.contextLength ?? Number.POSITIVE_INFINITY),
    systemFingerprint: systemFingerprint(config.modelName, info),
    loadedAt: Math.floor(Date.now() / 1000),
    draining: new AbortController(),
    shutdown: new AbortController(),
  };
}

/** What the startup log says about the model and how it runs (no secrets, no paths beyond the folder). */
export function describeModel(ctx: ServingContext, loadSeconds: number | undefined): Record<string, unknown> {
  const info = ctx.engine.info;
  const session = ctx.engine.session;
  return {
    model: ctx.modelName,
    aliases: ctx.servedNames.slice(1),
    modelDir: info.dir,
    modelType: info.modelType,
    shape: {
      layers: info.numLayers,
      hiddenSize: info.hiddenSize,
      kvHeads: info.numKvHeads,
      headSize: info.headSize,
      vocabSize: info.vocabSize,
      contextLength: ctx.contextLength,
    },
    ...(session
      ? {
          executionProvider: session.executionProvider,
          threads: session.threads,
          graphOptimizationLevel: session.graphOptimizationLevel,
          logits: session.logits,
          ...(session.logitsNote ? { logitsNote: session.logitsNote } : {}),
          kvUpdate: session.kvUpdate,
          ...(session.kvNote ? { kvNote: session.kvNote } : {}),
          ...(session.deviceNote ? { deviceNote: session.deviceNote } : {}),
          int8Steps: session.int8.enabled ? { minRows: session.int8.minRows, how: session.int8.note } : { off: session.int8.note },
          ...(session.int8.calibration ? { int8Calibration: describeCalibration(session.int8.calibration) } : {}),
          sessionLoadSeconds: +(session.loadMs / 1000).toFixed(2),
        }
      : {}),
    scheduling: {
      maxRunningSeqs: ctx.engine.limits.maxRunningSeqs,
      maxBatchTokens: ctx.engine.limits.maxBatchTokens ?? 'auto',
      stepCostMs: { fixed: +ctx.engine.limits.stepCost.fixedMs.toFixed(1), perToken: +ctx.engine.limits.stepCost.perTokenMs.toFixed(2) },
      prefillChunk: ctx.engine.limits.prefillChunk,
      kvCacheGib: +(ctx.engine.limits.kvBudgetBytes / 1024 ** 3).toFixed(2),
      prefixCache: ctx.engine.limits.prefixCache,
    },
    ...(loadSeconds !== undefined ? { loadSeconds: +loadSeconds.toFixed(2) } : {}),
  };
}

/** "rows: int4 ms / int8 ms" for the startup log. */
function describeCalibration(c: Int8Calibration): Record<string, string> {
  return Object.fromEntries(c.rows.map((rows, i) => [String(rows), `${c.int4Ms[i].toFixed(2)} / ${c.int8Ms[i].toFixed(2)} ms`]));
}

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

  const host = new ModelHost();
  const metrics = new ServingMetrics({ modelName: config.modelName, processMetrics: opts.processMetrics });
  const observer = new RequestObserver(metrics, config.logContent);
  app.decorate('modelHost', host);
  app.decorate('metrics', metrics);
  app.decorate('inflight', observer.inflight);
  app.decorateRequest('trace', null);
  registerErrorHandlers(app);

  // Clients (curl -d) often omit or mislabel the content type; every body is read as JSON.
  app.addContentTypeParser('*', { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'));

  // Hook order matters: accounting sees every request (401s and 503s included); CORS answers
  // preflights before authentication (browsers send no credentials on them).
  observer.register(app);
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    // While draining, clients should not reuse the connection.
    if (host.status === 'draining') reply.header('connection', 'close');
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
    if (isApiRoute(request)) host.require();
  });

  await registerOpenApi(app, PACKAGE_VERSION);
  await app.register(healthRoutes);
  await app.register(metricsRoutes, { public: config.metricsPublic });
  await app.register(modelRoutes);
  if (config.ui) await app.register(playgroundRoutes, {});
  await app.register(chatRoutes);
  await app.register(completionRoutes);
  await app.register(messagesRoutes);
  await app.register(responsesRoutes);

  const owns = opts.ownsEngine ?? opts.model === undefined;
  app.addHook('onClose', async () => {
    host.drain();
    metrics.detach();
    if (!owns) return;
    await host.loaded.catch(() => undefined); // an engine still loading must not outlive the app
    await host.context?.engine.close();
  });

  const loading = (opts.model ? Promise.resolve(opts.model) : loadModel(config)).then(
    (model) => {
      const ctx = createServingContext(config, model);
      const loadSeconds = model.loadSeconds;
      metrics.attach(ctx, loadSeconds);
      observer.attach(ctx);
      host.setReady(ctx);
      // Loading (tokenizer, model files) leaves garbage that an idle server would otherwise keep.
      collectGarbage();
      app.log.info(describeModel(ctx, loadSeconds), 'model ready');
      const deviceNote = ctx.engine.session?.deviceNote;
      if (deviceNote) app.log.warn({ requestedDevice: config.device }, deviceNote);
      const kvNote = ctx.engine.session?.kvNote;
      if (kvNote && config.kvUpdate === 'batched') app.log.warn({ kvUpdate: 'in-place' }, `batched graph unavailable, one sequence at a time: ${kvNote}`);
    },
    (err: unknown) => {
      const error = err instanceof Error ? err : new Error(String(err));
      host.setFailed();
      throw error;
    },
  );
  host.loaded = loading;
  if ((opts.load ?? 'await') === 'await') await loading;
  else loading.catch(() => undefined); // reported through host.loaded / /ready
  return app;
}
