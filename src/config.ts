/**
 * Server configuration: CLI flags, each with an environment-variable equivalent.
 * Precedence: flag > env > default. Table-driven so later features (auth files, CORS, metrics,
 * shutdown grace, ...) add one row each.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface ServerConfig {
  port: number;
  host: string;
  /** Absolute path of the model folder (model.onnx, genai_config.json, tokenizer files). */
  modelDir: string;
  /** True when --model-dir/MODEL_DIR was not given and the default folder was chosen. */
  modelDirDefaulted: boolean;
  /** The name clients must send in `model` (and the name returned in responses). */
  modelName: string;
  /** Other names accepted in `model`. */
  modelAliases: string[];
  /** Requests allowed to wait behind the running one(s); beyond that: 429. */
  maxQueue: number;
  /** Generations the engine runs at once (1 until the engine batches). */
  maxConcurrent: number;
  /** Whole-request budget in seconds (queue wait + generation); 0 disables. */
  requestTimeoutSec: number;
  /** Caps the model's context window; undefined uses the model's own. */
  contextLength?: number;
  /** ORT intra-op threads; 0 lets ORT decide. */
  threads: number;
  /** Bearer keys accepted on /v1/*; empty disables auth. */
  apiKeys: string[];
  logLevel: LogLevel;
  /** Default max tokens when a request sets none; undefined means "the rest of the context". */
  maxTokensDefault?: number;
  /** Largest accepted request body in bytes. */
  bodyLimit: number;
}

export const DEFAULT_REAL_MODEL_DIR = 'models/phi-4-mini-instruct';
export const DEFAULT_TINY_MODEL_DIR = 'models/tiny';

type Kind = 'int' | 'string' | 'list' | 'level';

interface OptionSpec {
  flag: string;
  env?: string;
  kind: Kind;
  help: string;
  /** Shown in --help; the real default is applied in resolveConfig. */
  defaultText?: string;
  min?: number;
  max?: number;
}

const OPTIONS: readonly OptionSpec[] = [
  { flag: 'port', env: 'PORT', kind: 'int', min: 0, max: 65535, defaultText: '8080', help: 'TCP port (0 picks a free one)' },
  { flag: 'host', env: 'HOST', kind: 'string', defaultText: '127.0.0.1', help: 'interface to bind' },
  {
    flag: 'model-dir',
    env: 'MODEL_DIR',
    kind: 'string',
    defaultText: `${DEFAULT_REAL_MODEL_DIR} if it has model.onnx, else ${DEFAULT_TINY_MODEL_DIR}`,
    help: 'model folder',
  },
  { flag: 'model-name', env: 'MODEL_NAME', kind: 'string', defaultText: 'the model folder name', help: 'served model name' },
  {
    flag: 'model-alias',
    env: 'MODEL_ALIAS',
    kind: 'list',
    help: 'other accepted model names (repeatable or comma separated)',
  },
  { flag: 'max-queue', env: 'MAX_QUEUE', kind: 'int', min: 0, defaultText: '32', help: 'requests that may wait; more get 429' },
  {
    flag: 'request-timeout',
    env: 'REQUEST_TIMEOUT',
    kind: 'int',
    min: 0,
    defaultText: '600',
    help: 'seconds per request incl. queue wait; 0 disables',
  },
  { flag: 'context-length', env: 'CONTEXT_LENGTH', kind: 'int', min: 1, help: "cap the model's context window" },
  { flag: 'threads', env: 'THREADS', kind: 'int', min: 0, defaultText: '0 (ORT decides)', help: 'intra-op threads' },
  { flag: 'api-key', env: 'API_KEY', kind: 'list', help: 'require "Authorization: Bearer KEY" on /v1 (repeatable)' },
  { flag: 'log-level', env: 'LOG_LEVEL', kind: 'level', defaultText: 'info', help: LOG_LEVELS.join('|') },
  {
    flag: 'max-tokens-default',
    env: 'MAX_TOKENS_DEFAULT',
    kind: 'int',
    min: 1,
    defaultText: 'rest of the context',
    help: 'max tokens when a request sets none',
  },
  { flag: 'body-limit', env: 'BODY_LIMIT', kind: 'int', min: 1024, defaultText: '8388608', help: 'max request body bytes' },
];

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export type ParseResult = { kind: 'help'; text: string } | { kind: 'config'; config: ServerConfig };

export function helpText(): string {
  const rows = OPTIONS.map((o) => {
    const left = `  --${o.flag}${o.kind === 'list' ? ' <v>[,<v>]' : ' <v>'}`;
    const env = o.env ? ` [env ${o.env}]` : '';
    const def = o.defaultText ? ` (default: ${o.defaultText})` : '';
    return `${left.padEnd(32)}${o.help}${def}${env}`;
  });
  return [
    'Usage: npm start -- [options]',
    '',
    'OpenAI-compatible server for Phi-4-mini-instruct ONNX.',
    '',
    'Options:',
    ...rows,
    `  ${'--help'.padEnd(30)}show this help`,
    '',
  ].join('\n');
}

/** Parses argv (without node and script) and env. Throws ConfigError on bad input. */
export function parseConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = process.env,
  cwd: string = process.cwd(),
): ParseResult {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = { help: { type: 'boolean' } };
  for (const o of OPTIONS) options[o.flag] = { type: 'string', multiple: o.kind === 'list' };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false });
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}\n\n${helpText()}`);
  }
  const values = parsed.values as Record<string, string | string[] | boolean | undefined>;
  if (values.help === true) return { kind: 'help', text: helpText() };

  const raw = new Map<string, string | string[]>();
  for (const o of OPTIONS) {
    const v = values[o.flag];
    if (v !== undefined && typeof v !== 'boolean') raw.set(o.flag, v);
    else if (o.env && env[o.env] !== undefined && env[o.env] !== '') raw.set(o.flag, env[o.env] as string);
  }
  return { kind: 'config', config: resolveConfig(raw, cwd) };
}

function spec(flag: string): OptionSpec {
  const s = OPTIONS.find((o) => o.flag === flag);
  if (!s) throw new Error(`unknown option ${flag}`);
  return s;
}

function intValue(raw: Map<string, string | string[]>, flag: string): number | undefined {
  const v = raw.get(flag);
  if (v === undefined) return undefined;
  const text = Array.isArray(v) ? v[v.length - 1] : v;
  const s = spec(flag);
  if (!/^\d+$/.test(text.trim())) throw new ConfigError(`--${flag}: expected a non-negative integer, got "${text}"`);
  const n = Number(text.trim());
  if ((s.min !== undefined && n < s.min) || (s.max !== undefined && n > s.max)) {
    throw new ConfigError(`--${flag}: ${n} is outside ${s.min ?? '-inf'}..${s.max ?? 'inf'}`);
  }
  return n;
}

function listValue(raw: Map<string, string | string[]>, flag: string): string[] {
  const v = raw.get(flag);
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v])
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function strValue(raw: Map<string, string | string[]>, flag: string): string | undefined {
  const v = raw.get(flag);
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v[v.length - 1] : v;
}

export function hasModel(dir: string): boolean {
  return existsSync(path.join(dir, 'model.onnx'));
}

/** "phi-4-mini-instruct" from ".../models/phi-4-mini-instruct". */
export function deriveModelName(modelDir: string): string {
  const base = path.basename(path.resolve(modelDir)).toLowerCase();
  return base.length > 0 ? base : 'model';
}

function resolveConfig(raw: Map<string, string | string[]>, cwd: string): ServerConfig {
  const givenDir = strValue(raw, 'model-dir');
  let modelDir: string;
  if (givenDir !== undefined) modelDir = path.resolve(cwd, givenDir);
  else {
    const real = path.resolve(cwd, DEFAULT_REAL_MODEL_DIR);
    modelDir = hasModel(real) ? real : path.resolve(cwd, DEFAULT_TINY_MODEL_DIR);
  }
  const level = strValue(raw, 'log-level') ?? 'info';
  if (!LOG_LEVELS.includes(level as LogLevel)) {
    throw new ConfigError(`--log-level: expected one of ${LOG_LEVELS.join(', ')}, got "${level}"`);
  }
  const modelName = strValue(raw, 'model-name')?.trim() || deriveModelName(modelDir);
  return {
    port: intValue(raw, 'port') ?? 8080,
    host: strValue(raw, 'host') ?? '127.0.0.1',
    modelDir,
    modelDirDefaulted: givenDir === undefined,
    modelName,
    modelAliases: listValue(raw, 'model-alias').filter((a) => a !== modelName),
    maxQueue: intValue(raw, 'max-queue') ?? 32,
    maxConcurrent: 1,
    requestTimeoutSec: intValue(raw, 'request-timeout') ?? 600,
    contextLength: intValue(raw, 'context-length'),
    threads: intValue(raw, 'threads') ?? 0,
    apiKeys: listValue(raw, 'api-key'),
    logLevel: level as LogLevel,
    maxTokensDefault: intValue(raw, 'max-tokens-default'),
    bodyLimit: intValue(raw, 'body-limit') ?? 8 * 1024 * 1024,
  };
}

/** A config for tests and embedding: defaults plus overrides, no argv/env. */
export function defaultConfig(overrides: Partial<ServerConfig> = {}): ServerConfig {
  const parsed = parseConfig([], {}, process.cwd());
  if (parsed.kind !== 'config') throw new Error('unreachable');
  const merged = { ...parsed.config, ...overrides };
  if (overrides.modelDir !== undefined && overrides.modelName === undefined) {
    merged.modelName = deriveModelName(overrides.modelDir);
  }
  return merged;
}
