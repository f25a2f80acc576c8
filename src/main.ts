/**
 * npm start: parse the configuration, make sure a model exists (building the random-weight
 * `tiny` model once if none does), listen, load the model, and shut down gracefully on
 * SIGTERM/SIGINT (see src/server/shutdown.ts).
 *
 * Signals come in copies: when a whole process group is signalled (systemd, `kill -- -PGID`,
 * Ctrl-C in a terminal) npm relays the one it got, so this process sees it twice. A signal within
 * REPEAT_WINDOW_MS of the first is taken as the same request; one sent later ends the grace period
 * at once. The start script `exec`s node, so npm's child is this process and `npm start` exits
 * with its code (0 after a clean drain) instead of re-raising a signal that killed a shell.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { pino } from 'pino';
import { buildApp } from './app.ts';
import { ConfigError, hasModel, parseConfig, type ServerConfig } from './config.ts';
import { createLogger } from './server/logging.ts';
import { gracefulShutdown } from './server/shutdown.ts';
import { browsableUrl, progressBar, showLoadProgress, startupBanner, wantsPrettyLogs } from './server/terminal.ts';
import { ensureSyntheticModel, isSyntheticModel } from './synthetic/ensure.ts';

function parse(): ServerConfig {
  try {
    const parsed = parseConfig(process.argv.slice(2));
    if (parsed.kind === 'help') {
      process.stdout.write(parsed.text);
      process.exit(0);
    }
    return parsed.config;
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

/** Signals closer than this to the first are copies of it (npm and supervisors relay within milliseconds). */
const REPEAT_WINDOW_MS = 2000;
const REPEAT_MESSAGE = `signal repeated within ${REPEAT_WINDOW_MS / 1000} s of the first: taken as the same request to shut down (relayed by npm or a supervisor)`;

const RANDOM_MODEL_WARNING =
  'Serving a SYNTHETIC model with random weights: its output is meaningless text. ' +
  'To serve the real Phi-4-mini-instruct, run `npm run model:download` and restart ' +
  '(or pass --model-dir pointing at a folder with model.onnx).';

/** Builds the tiny synthetic model into `dir`: a progress bar on a terminal, else a log line every 10%. */
async function buildTinyModel(dir: string, log: pino.Logger, terminal: boolean): Promise<void> {
  log.warn({ modelDir: dir }, 'no model.onnx found: building the tiny synthetic model once (random weights)');
  let lastDecile = -1;
  const t0 = performance.now();
  const bar = terminal ? progressBar('building tiny model', 'bytes') : undefined;
  await ensureSyntheticModel('tiny', dir, (written, total) => {
    if (bar) return bar.update(written, total);
    const decile = Math.min(10, Math.floor((10 * written) / Math.max(1, total)));
    if (decile !== lastDecile) {
      lastDecile = decile;
      log.info({ percent: decile * 10 }, 'building tiny model');
    }
  }).finally(() => bar?.stop());
  log.info({ seconds: +((performance.now() - t0) / 1000).toFixed(1) }, 'tiny model built');
}

function isEmptyOrMissing(dir: string): boolean {
  if (!existsSync(dir)) return true;
  return readdirSync(dir).every((f) => f === 'lost+found' || f.startsWith('.'));
}

async function main(): Promise<void> {
  const config = parse();
  // On a terminal: readable logs, progress bars and a banner; JSON lines otherwise (src/server/terminal.ts).
  const pretty = wantsPrettyLogs(config, process.stdout.isTTY === true);
  const terminal = pretty && process.stdout.isTTY === true && process.stderr.isTTY === true;
  const log = await createLogger({ ...config, logPretty: pretty });

  if (!config.modelsDir && !hasModel(config.modelDir)) {
    // A folder with other files but no model.onnx is most likely an unfinished download: serving
    // random weights there would hide that. A missing or empty one (a fresh Docker volume) gets tiny.
    const isTinyDefault = config.modelDirDefaulted || path.basename(config.modelDir) === 'tiny' || isEmptyOrMissing(config.modelDir);
    if (!isTinyDefault) {
      log.fatal({ modelDir: config.modelDir }, 'model.onnx not found in --model-dir (an unfinished download?); run `npm run model:download` first, or point --model-dir at an empty folder to get the tiny synthetic model');
      process.exit(1);
    }
    await buildTinyModel(config.modelDir, log, terminal);
  }
  const synthetic = !config.modelsDir && isSyntheticModel(config.modelDir);
  if (config.modelsDir && !config.modelDirDefaulted) log.info({ modelsDir: config.modelsDir, ignoredModelDir: config.modelDir }, 'MODELS_DIR/--models-dir given: MODEL_DIR from the environment is not used');
  if (synthetic) log.warn(RANDOM_MODEL_WARNING);
  log.info(
    {
      auth: config.apiKeys.length > 0 ? `${config.apiKeys.length} key(s)` : 'off',
      metrics: config.apiKeys.length > 0 && !config.metricsPublic ? 'key required' : 'public',
      cors: config.corsOrigins.length > 0 ? config.corsOrigins : 'off',
      logContent: config.logContent,
      shutdownGraceSeconds: config.shutdownGraceSec,
    },
    'configuration',
  );
  if (config.logContent) log.warn('--log-content: prompts and completions will be written to the logs');

  const stopLoadProgress = terminal ? showLoadProgress() : undefined;
  const app = await buildApp(config, { logger: log, load: 'background' }).catch((err: unknown) => {
    if (!(err instanceof ConfigError)) throw err;
    log.fatal(err.message);
    process.exit(2);
  });

  let shuttingDown = false;
  let firstSignalAt = 0;
  const hurry = new AbortController();
  const shutdown = (signal: NodeJS.Signals): void => {
    if (shuttingDown) {
      if (performance.now() - firstSignalAt < REPEAT_WINDOW_MS) {
        log.info({ signal }, REPEAT_MESSAGE);
        return;
      }
      log.warn({ signal }, 'second signal: ending the grace period now');
      hurry.abort();
      return;
    }
    shuttingDown = true;
    firstSignalAt = performance.now();
    log.info({ signal }, 'signal received');
    const graceMs = config.shutdownGraceSec * 1000;
    // Last resort if closing hangs (a wedged engine worker): never outlive the grace by much.
    setTimeout(() => {
      log.error('shutdown did not complete in time; exiting');
      process.exit(1);
    }, graceMs + 60_000).unref();
    gracefulShutdown(app, { graceMs, log, hurry: hurry.signal }).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'error while shutting down');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);

  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = address !== null && typeof address === 'object' ? address.port : config.port;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  log.info({ host: config.host, port, url }, 'listening');
  if (terminal) {
    const loading = app.models.status !== 'ready';
    process.stdout.write(`${startupBanner({ url: browsableUrl(config.host, port), ui: config.ui, color: !process.env.NO_COLOR, loading })}\n`);
  }
  try {
    await app.modelsStarted;
    stopLoadProgress?.();
  } catch (err) {
    stopLoadProgress?.();
    log.fatal({ err }, 'failed to load the model');
    await app.close().catch(() => undefined);
    process.exit(1);
  }
  if (shuttingDown) return;
  const models = app.models.list().map((e) => e.name);
  log.info(config.modelsDir ? { models, loaded: app.models.list().filter((e) => e.state === 'loaded').map((e) => e.name) } : { model: config.modelName }, `serving the OpenAI-compatible API at ${url}/v1`);
  if (synthetic) log.warn(RANDOM_MODEL_WARNING);
}

await main();
