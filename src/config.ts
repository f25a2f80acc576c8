/**
 * Server configuration: CLI flags, each with an environment-variable equivalent.
 * Precedence: flag > env > default. Table-driven so later features (auth files, CORS, metrics,
 * shutdown grace, ...) add one row each.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ENGINE_DEFAULTS } from './engine/limits.ts';
import { ITL_FACTOR, PREFILL_CHUNK_MAX, PREFILL_CHUNK_MIN } from './engine/step-cost.ts';
import { DEFAULT_THREADS_DESCRIPTION, defaultThreads } from './engine/threads.ts';
import type { Int8Steps, KvUpdate } from './engine/types.ts';
import { parseKeepAlive } from './server/models/keep-alive.ts';

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
  /** Serve every model folder inside this folder (instead of --model-dir's one model). */
  modelsDir?: string;
  /** Models loaded at once; loading another unloads the least recently used idle one. */
  maxLoadedModels: number;
  /** Estimated memory (weights + KV share) all loaded models may take, in GiB; undefined: 80% of the machine's (or container's). */
  modelsMemoryGib?: number;
  /** Milliseconds an idle model stays loaded (Infinity: until unloaded by hand); a request's keep_alive overrides it. */
  unloadAfterMs: number;
  /** Models loaded at start (the one --model-dir model by default). */
  preload: string[];
  /** Requests allowed to wait in the engine's line behind the running ones; beyond that: 429. */
  maxQueue: number;
  /** Sequences the engine runs together; undefined: the engine's default. */
  maxRunningSeqs?: number;
  /** Tokens per model step while sequences decode; undefined: the engine's default. */
  maxBatchTokens?: number;
  /** KV memory budget in GiB (running, waiting and cached sequences); undefined: from the free RAM. */
  kvCacheGib?: number;
  /** Reuse KV of earlier requests sharing a prompt prefix. */
  prefixCache: boolean;
  /** Seconds an unused cached prefix is kept; undefined: the engine's default. */
  prefixCacheIdleSec?: number;
  /** Whole-request budget in seconds (queue wait + generation); 0 disables. */
  requestTimeoutSec: number;
  /** Caps the model's context window; undefined uses the model's own. */
  contextLength?: number;
  /** ORT intra-op threads; 0: the engine's default (src/engine/threads.ts). */
  threads: number;
  /** 'cuda' uses the CUDA execution provider when available, otherwise CPU (logged). */
  device: 'cpu' | 'cuda';
  /** How each step's keys and values reach the KV buffers (see EngineOptions.kvUpdate). */
  kvUpdate: KvUpdate;
  /** Steps with many rows on the int8 GEMM (see EngineOptions.int8Steps). */
  int8Steps: Int8Steps;
  int8MinRows?: number;
  /** Prompt tokens per step when nothing decodes; undefined uses the engine's default. */
  prefillChunk?: number;
  /** Bearer keys required on every route but the public ones (see auth.ts); empty disables auth. From --api-key and --api-key-file. */
  apiKeys: string[];
  /** Absolute path of the key file the keys were (partly) read from, if any. */
  apiKeyFile?: string;
  /** Serve /metrics without a key even when keys are configured. */
  metricsPublic: boolean;
  /** Origins allowed by CORS ('*' for any); empty: CORS off. */
  corsOrigins: string[];
  logLevel: LogLevel;
  /** Log prompt and completion text (off by default: logs carry counts and times only). */
  logContent: boolean;
  /** Human-readable logs through the optional pino-pretty package instead of JSON lines. */
  logPretty: boolean;
  /** Neither --log-pretty nor LOG_PRETTY was given: `npm start` picks pretty logs on a terminal (src/server/terminal.ts). */
  logPrettyDefaulted: boolean;
  /** Serve the web playground at `/` (off with --no-ui). */
  ui: boolean;
  /** Seconds in-flight generations may take to finish after SIGTERM/SIGINT before they are aborted. */
  shutdownGraceSec: number;
  /** Seconds an idle keep-alive connection stays open after its last response. */
  keepAliveTimeoutSec: number;
  /** Seconds a client has to send the request headers (also closes connections that never send any). */
  headersTimeoutSec: number;
  /** Seconds a client has to send the whole request (headers + body); responses are never cut by it. */
  readTimeoutSec: number;
  /** Default max tokens when a request sets none; undefined means "the rest of the context". */
  maxTokensDefault?: number;
  /** Largest accepted request body in bytes. */
  bodyLimit: number;
  /** Read special-token text in chat message content as special tokens (lets users forge turns). */
  allowSpecialTokensInContent: boolean;
  /** Jinja chat template read from --chat-template FILE, used instead of the model's. */
  chatTemplate?: string;
}

export const DEFAULT_REAL_MODEL_DIR = 'models/phi-4-mini-instruct';
/** As Ollama on a CPU. */
export const DEFAULT_MAX_LOADED_MODELS = 3;
const DEFAULT_MULTI_MODEL_UNLOAD_AFTER_MS = 300_000;
export const DEFAULT_TINY_MODEL_DIR = 'models/tiny';

type Kind = 'int' | 'number' | 'string' | 'list' | 'level' | 'bool';

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
  { flag: 'models-dir', env: 'MODELS_DIR', kind: 'string', help: `serve every model folder inside this folder, each under its folder name (aliases in ${'<dir>'}/models.json); instead of --model-dir` },
  { flag: 'max-loaded-models', env: 'MAX_LOADED_MODELS', kind: 'int', min: 1, defaultText: String(DEFAULT_MAX_LOADED_MODELS), help: 'models loaded at once (each has its own worker, session and KV); more unload the least recently used idle one' },
  { flag: 'models-memory-gib', env: 'MODELS_MEMORY_GIB', kind: 'number', min: 0.001, defaultText: "80% of the machine's (or container's) memory", help: 'memory budget of the loaded models, estimated from their weight files and KV budgets' },
  { flag: 'unload-after', env: 'UNLOAD_AFTER', kind: 'string', defaultText: 'never with --model-dir, 5m with --models-dir', help: 'unload a model idle this long (seconds or 30s/5m/1h; never, or --unload-after=-1); a request\'s keep_alive overrides it' },
  { flag: 'preload', env: 'PRELOAD', kind: 'list', defaultText: 'the --model-dir model; none with --models-dir', help: 'models to load at start (names, or "all")' },
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
  {
    flag: 'threads',
    env: 'THREADS',
    kind: 'int',
    min: 0,
    defaultText: `0 (${DEFAULT_THREADS_DESCRIPTION}: ${defaultThreads()} here)`,
    help: 'ONNX Runtime intra-op threads',
  },
  { flag: 'device', env: 'DEVICE', kind: 'string', defaultText: 'cpu', help: 'cpu|cuda (cuda falls back to cpu, with a log line, when unavailable)' },
  { flag: 'prefill-chunk', env: 'PREFILL_CHUNK', kind: 'int', min: 1, defaultText: `auto: ${PREFILL_CHUNK_MIN}-${PREFILL_CHUNK_MAX}, from the step cost measured at load`, help: 'prompt tokens per model step when nothing else decodes (larger chunks hold more activation memory while a step runs)' },
  { flag: 'max-running-seqs', env: 'MAX_RUNNING_SEQS', kind: 'int', min: 1, defaultText: String(ENGINE_DEFAULTS.maxRunningSeqs), help: 'sequences decoded together in every model step; more wait in line' },
  {
    flag: 'max-batch-tokens',
    env: 'MAX_BATCH_TOKENS',
    kind: 'int',
    min: 2,
    defaultText: `auto: a prompt chunk beside decoding sequences keeps the step within ${ITL_FACTOR}x a decode-only step, from the step cost measured at load`,
    help: 'a fixed token budget per model step while sequences decode: one per decoding sequence, the rest for a prompt chunk',
  },
  {
    flag: 'kv-cache-gib',
    env: 'KV_CACHE_GIB',
    kind: 'number',
    min: 0.001,
    defaultText: `${ENGINE_DEFAULTS.kvShareOfFree * 100}% of the RAM free once the model is loaded`,
    help: 'KV memory budget in GiB for running, waiting and cached sequences; also caps the context',
  },
  { flag: 'no-prefix-cache', env: 'NO_PREFIX_CACHE', kind: 'bool', help: 'do not reuse the KV of earlier requests that share a prompt prefix' },
  {
    flag: 'prefix-cache-idle',
    env: 'PREFIX_CACHE_IDLE',
    kind: 'int',
    min: 1,
    defaultText: String(ENGINE_DEFAULTS.prefixCacheIdleMs / 1000),
    help: 'seconds an unused cached prefix is kept (an idle server then gives its memory back)',
  },
  {
    flag: 'int8-steps',
    env: 'INT8_STEPS',
    kind: 'string',
    defaultText: 'auto',
    help: "steps with many rows (prompt chunks, big batches) on onnxruntime's int8 GEMM: auto (when measured faster here and its weights, ~1 byte per parameter, fit beside the KV budget) | on | off",
  },
  { flag: 'int8-min-rows', env: 'INT8_MIN_ROWS', kind: 'int', min: 1, defaultText: 'measured at load', help: 'step rows from which the int8 path is taken' },
  {
    flag: 'kv-update',
    env: 'KV_UPDATE',
    kind: 'string',
    defaultText: 'batched',
    help: "batched (many sequences per model step; only new KV rows come back) | in-place (the export's own attention, one sequence at a time; for comparison)",
  },
  {
    flag: 'api-key',
    env: 'API_KEY',
    kind: 'list',
    help: 'require "Authorization: Bearer KEY" everywhere but /health, /ready (and /metrics with --metrics-public) (repeatable or comma separated)',
  },
  {
    flag: 'api-key-file',
    env: 'API_KEY_FILE',
    kind: 'string',
    help: 'file of accepted keys, one per line (# comments); adds to --api-key',
  },
  { flag: 'metrics-public', env: 'METRICS_PUBLIC', kind: 'bool', help: 'serve /metrics without a key when keys are set' },
  {
    flag: 'cors-origin',
    env: 'CORS_ORIGIN',
    kind: 'list',
    defaultText: 'none (CORS off)',
    help: "allow browser requests from these origins ('*' for any; repeatable or comma separated)",
  },
  { flag: 'log-level', env: 'LOG_LEVEL', kind: 'level', defaultText: 'info', help: LOG_LEVELS.join('|') },
  {
    flag: 'log-content',
    env: 'LOG_CONTENT',
    kind: 'bool',
    help: 'also log prompt and completion text (never logged otherwise)',
  },
  { flag: 'log-pretty', env: 'LOG_PRETTY', kind: 'bool', defaultText: 'on when stdout is a terminal, else off', help: 'human-readable logs (needs the optional pino-pretty package); off: JSON lines' },
  { flag: 'no-ui', env: 'NO_UI', kind: 'bool', help: 'do not serve the web playground at /' },
  {
    flag: 'shutdown-grace',
    env: 'SHUTDOWN_GRACE',
    kind: 'int',
    min: 0,
    defaultText: '30',
    help: 'seconds running generations may finish after SIGTERM/SIGINT before they are aborted',
  },
  {
    flag: 'keep-alive-timeout',
    env: 'KEEP_ALIVE_TIMEOUT',
    kind: 'int',
    min: 1,
    defaultText: '65',
    help: 'seconds an idle keep-alive connection stays open',
  },
  {
    flag: 'headers-timeout',
    env: 'HEADERS_TIMEOUT',
    kind: 'int',
    min: 1,
    defaultText: '30',
    help: 'seconds a client has to send the request headers',
  },
  {
    flag: 'read-timeout',
    env: 'READ_TIMEOUT',
    kind: 'int',
    min: 1,
    defaultText: '120',
    help: 'seconds a client has to send the whole request (never cuts a response or stream)',
  },
  {
    flag: 'max-tokens-default',
    env: 'MAX_TOKENS_DEFAULT',
    kind: 'int',
    min: 1,
    defaultText: 'rest of the context',
    help: 'max tokens when a request sets none',
  },
  { flag: 'body-limit', env: 'BODY_LIMIT', kind: 'int', min: 1024, defaultText: '8388608', help: 'max request body bytes' },
  { flag: 'allow-special-tokens-in-content', env: 'ALLOW_SPECIAL_TOKENS_IN_CONTENT', kind: 'bool', help: 'read special-token text in chat messages as special tokens (lets users forge turns)' },
  {
    flag: 'chat-template',
    env: 'CHAT_TEMPLATE',
    kind: 'string',
    defaultText: "the model's (with tool calls rendered for Phi-4)",
    help: 'Jinja chat template FILE to use instead of the model folder\'s',
  },
];

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export type ParseResult = { kind: 'help'; text: string } | { kind: 'config'; config: ServerConfig };

export function helpText(): string {
  const rows = OPTIONS.map((o) => {
    const left = `  --${o.flag}${o.kind === 'list' ? ' <v>[,<v>]' : o.kind === 'bool' ? '' : ' <v>'}`;
    const env = o.env ? ` [env ${o.env}${o.kind === 'bool' ? '=1' : ''}]` : '';
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
  for (const o of OPTIONS) {
    options[o.flag] = o.kind === 'bool' ? { type: 'boolean' } : { type: 'string', multiple: o.kind === 'list' };
  }
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
    if (typeof v === 'boolean') raw.set(o.flag, String(v));
    else if (v !== undefined) raw.set(o.flag, v);
    else if (o.env && env[o.env] !== undefined && env[o.env] !== '') raw.set(o.flag, env[o.env] as string);
  }
  return { kind: 'config', config: resolveConfig(raw, cwd, argv) };
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

function numberValue(raw: Map<string, string | string[]>, flag: string): number | undefined {
  const text = strValue(raw, flag)?.trim();
  if (text === undefined) return undefined;
  const s = spec(flag);
  const n = Number(text);
  if (text === '' || !Number.isFinite(n)) throw new ConfigError(`--${flag}: expected a number, got "${text}"`);
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

const TRUE_WORDS = ['1', 'true', 'yes', 'on'];
const FALSE_WORDS = ['0', 'false', 'no', 'off'];

function boolValue(raw: Map<string, string | string[]>, flag: string): boolean {
  const text = strValue(raw, flag)?.trim().toLowerCase();
  if (text === undefined) return false;
  if (TRUE_WORDS.includes(text)) return true;
  if (FALSE_WORDS.includes(text)) return false;
  throw new ConfigError(`--${flag}: expected one of ${[...TRUE_WORDS, ...FALSE_WORDS].join(', ')}, got "${text}"`);
}

/**
 * Keys from a key file: one per line; blank lines and lines starting with # are ignored.
 * Errors never quote a key.
 */
export function readApiKeyFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`--api-key-file: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const keys: string[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const key = line.trim();
    if (key.length === 0 || key.startsWith('#')) return;
    if (/\s/.test(key)) throw new ConfigError(`--api-key-file: line ${i + 1} of ${file} contains whitespace inside a key`);
    keys.push(key);
  });
  if (keys.length === 0) {
    // An empty file must not silently turn authentication off.
    throw new ConfigError(`--api-key-file: ${file} holds no keys`);
  }
  return keys;
}

export function hasModel(dir: string): boolean {
  return existsSync(path.join(dir, 'model.onnx'));
}

/** "phi-4-mini-instruct" from ".../models/phi-4-mini-instruct". */
export function deriveModelName(modelDir: string): string {
  const base = path.basename(path.resolve(modelDir)).toLowerCase();
  return base.length > 0 ? base : 'model';
}

function resolveConfig(raw: Map<string, string | string[]>, cwd: string, argv: readonly string[]): ServerConfig {
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
  const device = strValue(raw, 'device') ?? 'cpu';
  if (device !== 'cpu' && device !== 'cuda') throw new ConfigError(`--device: expected cpu or cuda, got "${device}"`);
  const kvUpdate = strValue(raw, 'kv-update') ?? 'batched';
  if (kvUpdate !== 'batched' && kvUpdate !== 'in-place') {
    throw new ConfigError(`--kv-update: expected batched or in-place, got "${kvUpdate}"`);
  }
  const int8Steps = strValue(raw, 'int8-steps') ?? 'auto';
  if (int8Steps !== 'auto' && int8Steps !== 'on' && int8Steps !== 'off') throw new ConfigError(`--int8-steps: expected auto, on or off, got "${int8Steps}"`);
  const modelName = strValue(raw, 'model-name')?.trim() || deriveModelName(modelDir);
  const modelsDirText = strValue(raw, 'models-dir')?.trim();
  const modelsDir = modelsDirText ? path.resolve(cwd, modelsDirText) : undefined;
  // The image sets MODEL_DIR; MODELS_DIR given to it wins (main logs it). Two explicit choices are an error.
  const modelDirFromEnvOnly = !argv.includes('--model-dir') && !argv.some((a) => a.startsWith('--model-dir='));
  if (modelsDir && givenDir !== undefined && !modelDirFromEnvOnly) throw new ConfigError('--model-dir and --models-dir exclude each other: give one');
  const unloadAfterText = strValue(raw, 'unload-after');
  const unloadAfterMs =
    unloadAfterText === undefined ? (modelsDir ? DEFAULT_MULTI_MODEL_UNLOAD_AFTER_MS : Infinity) : unloadAfterText.trim() === 'never' ? Infinity : parseKeepAlive(unloadAfterText);
  if (unloadAfterMs === undefined) throw new ConfigError(`--unload-after: expected seconds or a duration like 5m (-1: never), got "${unloadAfterText}"`);
  const preloadList = listValue(raw, 'preload');
  const keyFileText = strValue(raw, 'api-key-file')?.trim();
  const apiKeyFile = keyFileText ? path.resolve(cwd, keyFileText) : undefined;
  const apiKeys = [...new Set([...listValue(raw, 'api-key'), ...(apiKeyFile ? readApiKeyFile(apiKeyFile) : [])])];
  const chatTemplate = readChatTemplate(strValue(raw, 'chat-template'), cwd);
  const headersTimeoutSec = intValue(raw, 'headers-timeout') ?? 30;
  const readTimeoutSec = intValue(raw, 'read-timeout') ?? 120;
  if (headersTimeoutSec > readTimeoutSec) {
    throw new ConfigError(`--headers-timeout (${headersTimeoutSec}) must not exceed --read-timeout (${readTimeoutSec})`);
  }
  return {
    port: intValue(raw, 'port') ?? 8080,
    host: strValue(raw, 'host') ?? '127.0.0.1',
    modelDir,
    modelDirDefaulted: givenDir === undefined,
    modelName,
    modelAliases: listValue(raw, 'model-alias').filter((a) => a !== modelName),
    ...(modelsDir ? { modelsDir } : {}),
    maxLoadedModels: intValue(raw, 'max-loaded-models') ?? DEFAULT_MAX_LOADED_MODELS,
    modelsMemoryGib: numberValue(raw, 'models-memory-gib'),
    unloadAfterMs,
    preload: raw.has('preload') ? preloadList : modelsDir ? [] : [modelName],
    maxQueue: intValue(raw, 'max-queue') ?? 32,
    maxRunningSeqs: intValue(raw, 'max-running-seqs'),
    maxBatchTokens: intValue(raw, 'max-batch-tokens'),
    kvCacheGib: numberValue(raw, 'kv-cache-gib'),
    prefixCache: !boolValue(raw, 'no-prefix-cache'),
    prefixCacheIdleSec: intValue(raw, 'prefix-cache-idle'),
    requestTimeoutSec: intValue(raw, 'request-timeout') ?? 600,
    contextLength: intValue(raw, 'context-length'),
    threads: intValue(raw, 'threads') ?? 0,
    device,
    kvUpdate,
    int8Steps,
    int8MinRows: intValue(raw, 'int8-min-rows'),
    prefillChunk: intValue(raw, 'prefill-chunk'),
    apiKeys,
    ...(apiKeyFile ? { apiKeyFile } : {}),
    metricsPublic: boolValue(raw, 'metrics-public'),
    corsOrigins: listValue(raw, 'cors-origin'),
    logLevel: level as LogLevel,
    logContent: boolValue(raw, 'log-content'),
    logPretty: boolValue(raw, 'log-pretty'),
    logPrettyDefaulted: !raw.has('log-pretty'),
    ui: !boolValue(raw, 'no-ui'),
    shutdownGraceSec: intValue(raw, 'shutdown-grace') ?? 30,
    keepAliveTimeoutSec: intValue(raw, 'keep-alive-timeout') ?? 65,
    headersTimeoutSec,
    readTimeoutSec,
    maxTokensDefault: intValue(raw, 'max-tokens-default'),
    bodyLimit: intValue(raw, 'body-limit') ?? 8 * 1024 * 1024,
    allowSpecialTokensInContent: boolValue(raw, 'allow-special-tokens-in-content'),
    ...(chatTemplate !== undefined ? { chatTemplate } : {}),
  };
}

function readChatTemplate(file: string | undefined, cwd: string): string | undefined {
  if (!file?.trim()) return undefined;
  try {
    return readFileSync(path.resolve(cwd, file.trim()), 'utf8');
  } catch (err) {
    throw new ConfigError(`--chat-template: cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** A config for tests and embedding: defaults plus overrides, no argv/env. */
export function defaultConfig(overrides: Partial<ServerConfig> = {}): ServerConfig {
  const parsed = parseConfig([], {}, process.cwd());
  if (parsed.kind !== 'config') throw new Error('unreachable');
  const merged = { ...parsed.config, ...overrides };
  if (overrides.modelDir !== undefined && overrides.modelName === undefined) {
    merged.modelName = deriveModelName(overrides.modelDir);
  }
  // Defaults that follow the model source, as parseConfig derives them.
  if (overrides.preload === undefined) merged.preload = merged.modelsDir ? [] : [merged.modelName];
  if (overrides.unloadAfterMs === undefined && merged.modelsDir) merged.unloadAfterMs = DEFAULT_MULTI_MODEL_UNLOAD_AFTER_MS;
  return merged;
}
