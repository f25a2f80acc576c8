/**
 * The process logger: pino JSON lines by default; human-readable output through the optional
 * `pino-pretty` package only when asked (--log-pretty). Headers are never logged; the
 * authorization header is redacted in case a future log call includes request headers.
 */
import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import type { ServerConfig } from '../config.ts';

export function loggerOptions(config: Pick<ServerConfig, 'logLevel'>): LoggerOptions {
  return {
    level: config.logLevel,
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', 'authorization'],
      censor: '[redacted]',
    },
  };
}

export const PINO_PRETTY_MISSING =
  '--log-pretty needs the optional package pino-pretty, which is not installed ' +
  '(install it with `npm install --no-save pino-pretty`); logging JSON lines instead.';

/** pino-pretty's stream factory when the package is installed. */
async function loadPretty(): Promise<((opts: Record<string, unknown>) => DestinationStream) | undefined> {
  const name = 'pino-pretty';
  try {
    createRequire(import.meta.url).resolve(name);
  } catch {
    return undefined;
  }
  const mod = (await import(name)) as { default?: unknown };
  const factory = (typeof mod.default === 'function' ? mod.default : mod) as (o: Record<string, unknown>) => DestinationStream;
  return typeof factory === 'function' ? factory : undefined;
}

/**
 * Builds the logger for `npm start`. With --log-pretty and no pino-pretty, writes a clear
 * message to stderr and falls back to JSON lines.
 */
export async function createLogger(
  config: Pick<ServerConfig, 'logLevel' | 'logPretty'>,
  destination?: DestinationStream,
): Promise<Logger> {
  const options = loggerOptions(config);
  if (config.logPretty) {
    const pretty = await loadPretty();
    if (pretty) return pino(options, pretty({ colorize: process.stdout.isTTY === true, translateTime: 'SYS:standard', sync: true }));
    process.stderr.write(`${PINO_PRETTY_MISSING}\n`);
  }
  return destination ? pino(options, destination) : pino(options);
}
