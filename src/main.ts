/**
 * npm start: parse the configuration, make sure a model exists (building the random-weight
 * `tiny` model once if none does), listen, load the model, and close cleanly on SIGTERM/SIGINT.
 */
import path from 'node:path';
import { pino } from 'pino';
import { buildApp } from './app.ts';
import { ConfigError, hasModel, parseConfig, type ServerConfig } from './config.ts';
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

const RANDOM_MODEL_WARNING =
  'Serving a SYNTHETIC model with random weights: its output is meaningless text. ' +
  'To serve the real Phi-4-mini-instruct, run `npm run model:download` and restart ' +
  '(or pass --model-dir pointing at a folder with model.onnx).';

/** Builds the tiny synthetic model into `dir`, logging progress every 10%. */
async function buildTinyModel(dir: string, log: pino.Logger): Promise<void> {
  log.warn({ modelDir: dir }, 'no model.onnx found: building the tiny synthetic model once (random weights)');
  let lastDecile = -1;
  const t0 = performance.now();
  await ensureSyntheticModel('tiny', dir, (written, total) => {
    const decile = Math.min(10, Math.floor((10 * written) / Math.max(1, total)));
    if (decile !== lastDecile) {
      lastDecile = decile;
      log.info({ percent: decile * 10 }, 'building tiny model');
    }
  });
  log.info({ seconds: +((performance.now() - t0) / 1000).toFixed(1) }, 'tiny model built');
}

async function main(): Promise<void> {
  const config = parse();
  const log = pino({ level: config.logLevel });

  if (!hasModel(config.modelDir)) {
    const isTinyDefault = config.modelDirDefaulted || path.basename(config.modelDir) === 'tiny';
    if (!isTinyDefault) {
      log.fatal({ modelDir: config.modelDir }, 'model.onnx not found in --model-dir; run `npm run model:download` first');
      process.exit(1);
    }
    await buildTinyModel(config.modelDir, log);
  }
  const synthetic = isSyntheticModel(config.modelDir);
  if (synthetic) log.warn(RANDOM_MODEL_WARNING);

  const app = await buildApp(config, { logger: log, load: 'background' });

  let closing = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    if (closing) return;
    closing = true;
    log.info({ signal }, 'shutting down: refusing new requests, finishing running ones');
    app.modelHost.drain();
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'error while closing');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);

  await app.listen({ port: config.port, host: config.host });
  const t0 = performance.now();
  try {
    await app.modelHost.loaded;
  } catch (err) {
    log.fatal({ err }, 'failed to load the model');
    await app.close().catch(() => undefined);
    process.exit(1);
  }
  const address = app.server.address();
  const port = address !== null && typeof address === 'object' ? address.port : config.port;
  log.info(
    { model: config.modelName, loadSeconds: +((performance.now() - t0) / 1000).toFixed(1) },
    `serving the OpenAI-compatible API at http://${config.host}:${port}/v1`,
  );
  if (synthetic) log.warn(RANDOM_MODEL_WARNING);
}

await main();
