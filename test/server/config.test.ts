import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig, type ServerConfig } from '../../src/config.ts';
import { Engine } from '../../src/engine/engine.ts';
import { DEFAULT_THREADS_DESCRIPTION, defaultThreads } from '../../src/engine/threads.ts';
import { FIXTURES } from '../setup/model-paths.ts';

function config(argv: string[], env: Record<string, string> = {}, cwd = '/srv'): ServerConfig {
  const r = parseConfig(argv, env, cwd);
  assert.equal(r.kind, 'config');
  return r.kind === 'config' ? r.config : (undefined as never);
}

describe('config', () => {
  it('defaults', () => {
    const c = config([]);
    assert.equal(c.port, 8080);
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.modelDir, '/srv/models/tiny');
    assert.equal(c.modelDirDefaulted, true);
    assert.equal(c.modelName, 'tiny');
    assert.deepEqual(c.apiKeys, []);
    assert.equal(c.maxQueue, 32);
    assert.equal(c.maxRunningSeqs, undefined);
    assert.equal(c.prefixCache, true);
    assert.equal(c.kvUpdate, 'batched');
    assert.equal(c.requestTimeoutSec, 600);
    assert.equal(c.logLevel, 'info');
    assert.equal(c.contextLength, undefined);
    assert.equal(c.maxTokensDefault, undefined);
  });

  it('prefers the real model folder when it has a model.onnx', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'cfg-'));
    mkdirSync(path.join(root, 'models/phi-4-mini-instruct'), { recursive: true });
    writeFileSync(path.join(root, 'models/phi-4-mini-instruct/model.onnx'), '');
    const c = config([], {}, root);
    assert.equal(c.modelDir, path.join(root, 'models/phi-4-mini-instruct'));
    assert.equal(c.modelName, 'phi-4-mini-instruct');
  });

  it('flags beat env, env beats defaults', () => {
    const env = { PORT: '9000', HOST: '0.0.0.0', MODEL_DIR: 'x/My-Model', API_KEY: 'k1,k2', MAX_QUEUE: '3', LOG_LEVEL: 'warn' };
    const c = config(['--port', '9100', '--model-alias', 'a,b', '--model-alias', 'c', '--request-timeout=5'], env);
    assert.equal(c.port, 9100);
    assert.equal(c.host, '0.0.0.0');
    assert.equal(c.modelDir, '/srv/x/My-Model');
    assert.equal(c.modelName, 'my-model');
    assert.deepEqual(c.modelAliases, ['a', 'b', 'c']);
    assert.deepEqual(c.apiKeys, ['k1', 'k2']);
    assert.equal(c.maxQueue, 3);
    assert.equal(c.requestTimeoutSec, 5);
    assert.equal(c.logLevel, 'warn');
    assert.equal(config(['--model-name', 'served', '--api-key', 'x', '--api-key', 'y']).modelName, 'served');
  });

  it('rejects bad values with a clear message', () => {
    assert.throws(() => parseConfig(['--port', 'abc'], {}), ConfigError);
    assert.throws(() => parseConfig(['--port', '70000'], {}), /--port/);
    assert.throws(() => parseConfig(['--log-level', 'loud'], {}), /--log-level/);
    assert.throws(() => parseConfig(['--bogus'], {}), ConfigError);
    assert.throws(() => parseConfig([], { MAX_QUEUE: '-1' }), /--max-queue/);
  });

  it('several models: --models-dir, --max-loaded-models, --unload-after, --preload and their defaults', () => {
    const one = config([]);
    assert.equal(one.modelsDir, undefined);
    assert.deepEqual(one.preload, ['tiny'], 'the one model loads at start');
    assert.equal(one.unloadAfterMs, Infinity, 'and stays loaded');
    assert.equal(one.maxLoadedModels, 3);
    const many = config(['--models-dir', 'models', '--max-loaded-models', '1'], { UNLOAD_AFTER: '90s' });
    assert.equal(many.modelsDir, '/srv/models');
    assert.deepEqual(many.preload, []);
    assert.equal(many.maxLoadedModels, 1);
    assert.equal(many.unloadAfterMs, 90_000);
    assert.equal(config(['--models-dir', 'm']).unloadAfterMs, 300_000, 'five minutes by default, as Ollama');
    assert.equal(config(['--models-dir', 'm', '--unload-after=-1']).unloadAfterMs, Infinity);
    assert.equal(config(['--models-dir', 'm', '--unload-after', 'never']).unloadAfterMs, Infinity);
    assert.equal(config(['--models-dir', 'm', '--unload-after', '1h30m']).unloadAfterMs, 5_400_000);
    assert.deepEqual(config(['--models-dir', 'm', '--preload', 'a,b']).preload, ['a', 'b']);
    assert.throws(() => parseConfig(['--models-dir', 'm', '--model-dir', 'x'], {}), /exclude each other/);
    // The image sets MODEL_DIR: a models folder given to it wins.
    assert.equal(config([], { MODEL_DIR: '/models', MODELS_DIR: '/all-models' }).modelsDir, '/all-models');
    assert.throws(() => parseConfig(['--unload-after', 'soon'], {}), /--unload-after/);
    assert.throws(() => parseConfig(['--max-loaded-models', '0'], {}), /--max-loaded-models/);
  });

  it('--help lists every flag with its env variable', () => {
    const r = parseConfig(['--help'], {});
    assert.equal(r.kind, 'help');
    if (r.kind !== 'help') return;
    for (const flag of ['--port', '--host', '--model-dir', '--model-name', '--max-queue', '--request-timeout', '--context-length', '--threads', '--api-key', '--log-level']) {
      assert.ok(r.text.includes(flag), flag);
    }
    assert.ok(r.text.includes('env MODEL_DIR'));
  });

  it('--threads: --help, the README and the engine agree on the default', async () => {
    const r = parseConfig(['--help'], {});
    assert.equal(r.kind, 'help');
    if (r.kind !== 'help') return;
    const helpLine = r.text.split('\n').find((l) => l.trim().startsWith('--threads'));
    assert.ok(helpLine?.includes(`(default: 0 (${DEFAULT_THREADS_DESCRIPTION}: ${defaultThreads()} here))`), helpLine);
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const row = readme.split('\n').find((l) => l.startsWith('| `--threads` |'));
    assert.equal(row?.split('|')[3].trim(), `0 (${DEFAULT_THREADS_DESCRIPTION})`, row);
    assert.equal(config([]).threads, 0);
    const engine = await Engine.load({ modelDir: FIXTURES.tiny, threads: 0 });
    try {
      assert.equal(engine.session.threads, defaultThreads());
    } finally {
      await engine.close();
    }
  });
});

describe('config: operations flags', () => {
  const keyDir = (): string => mkdtempSync(path.join(tmpdir(), 'cfg-keys-'));

  it('defaults: auth off, metrics follow auth, CORS off, no content in logs, timeouts', () => {
    const c = config([]);
    assert.equal(c.metricsPublic, false);
    assert.deepEqual(c.corsOrigins, []);
    assert.equal(c.logContent, false);
    assert.equal(c.logPretty, false);
    assert.equal(c.shutdownGraceSec, 30);
    assert.equal(c.keepAliveTimeoutSec, 65);
    assert.equal(c.headersTimeoutSec, 30);
    assert.equal(c.readTimeoutSec, 120);
    assert.equal(c.apiKeyFile, undefined);
  });

  it('flags and their env equivalents', () => {
    const fromFlags = config([
      '--metrics-public',
      '--cors-origin',
      'https://a.example,https://b.example',
      '--cors-origin',
      'https://c.example',
      '--log-content',
      '--log-pretty',
      '--shutdown-grace',
      '5',
      '--keep-alive-timeout',
      '10',
      '--headers-timeout',
      '7',
      '--read-timeout',
      '8',
    ]);
    assert.equal(fromFlags.metricsPublic, true);
    assert.deepEqual(fromFlags.corsOrigins, ['https://a.example', 'https://b.example', 'https://c.example']);
    assert.equal(fromFlags.logContent, true);
    assert.equal(fromFlags.logPretty, true);
    assert.equal(fromFlags.shutdownGraceSec, 5);
    assert.equal(fromFlags.keepAliveTimeoutSec, 10);
    assert.equal(fromFlags.headersTimeoutSec, 7);
    assert.equal(fromFlags.readTimeoutSec, 8);

    const fromEnv = config([], {
      METRICS_PUBLIC: 'yes',
      CORS_ORIGIN: '*',
      LOG_CONTENT: '1',
      LOG_PRETTY: 'off',
      SHUTDOWN_GRACE: '0',
      KEEP_ALIVE_TIMEOUT: '3',
      HEADERS_TIMEOUT: '2',
      READ_TIMEOUT: '4',
    });
    assert.equal(fromEnv.metricsPublic, true);
    assert.deepEqual(fromEnv.corsOrigins, ['*']);
    assert.equal(fromEnv.logContent, true);
    assert.equal(fromEnv.logPretty, false);
    assert.equal(fromEnv.shutdownGraceSec, 0);
    assert.equal(fromEnv.keepAliveTimeoutSec, 3);
    assert.equal(fromEnv.headersTimeoutSec, 2);
    assert.equal(fromEnv.readTimeoutSec, 4);
    // A flag beats the env.
    assert.equal(config(['--log-content'], { LOG_CONTENT: 'false' }).logContent, true);
  });

  it('--api-key-file: one key per line, # comments, adds to --api-key / API_KEY', () => {
    const dir = keyDir();
    writeFileSync(path.join(dir, 'keys'), '# team A\nsk-a\r\n\n  sk-b  \n# sk-commented-out\nsk-a\n');
    const c = config(['--api-key-file', 'keys', '--api-key', 'sk-flag'], {}, dir);
    assert.deepEqual(c.apiKeys, ['sk-flag', 'sk-a', 'sk-b']);
    assert.equal(c.apiKeyFile, path.join(dir, 'keys'));
    const e = config([], { API_KEY_FILE: path.join(dir, 'keys'), API_KEY: 'sk-env' }, dir);
    assert.deepEqual(e.apiKeys, ['sk-env', 'sk-a', 'sk-b']);
  });

  it('rejects key files that would silently weaken auth, without quoting keys', () => {
    const dir = keyDir();
    writeFileSync(path.join(dir, 'empty'), '# nothing here\n\n');
    writeFileSync(path.join(dir, 'spaces'), 'sk-secret-one two\n');
    assert.throws(() => parseConfig(['--api-key-file', 'missing'], {}, dir), /--api-key-file: cannot read .*ENOENT/);
    assert.throws(() => parseConfig(['--api-key-file', 'empty'], {}, dir), /holds no keys/);
    assert.throws(
      () => parseConfig(['--api-key-file', 'spaces'], {}, dir),
      (err: Error) => err instanceof ConfigError && /line 1/.test(err.message) && !err.message.includes('sk-secret'),
    );
  });

  it('--chat-template: reads the file; an unreadable one is a startup error', () => {
    const dir = keyDir();
    writeFileSync(path.join(dir, 'tpl.jinja'), '{{ messages[0].content }}');
    assert.equal(config(['--chat-template', 'tpl.jinja'], {}, dir).chatTemplate, '{{ messages[0].content }}');
    assert.equal(config([], {}, dir).chatTemplate, undefined);
    assert.throws(() => parseConfig(['--chat-template', 'missing.jinja'], {}, dir), /--chat-template: cannot read/);
  });

  it('rejects bad booleans and inconsistent timeouts', () => {
    assert.throws(() => parseConfig([], { METRICS_PUBLIC: 'maybe' }), /--metrics-public/);
    assert.throws(() => parseConfig(['--headers-timeout', '60', '--read-timeout', '30'], {}), /--headers-timeout/);
    assert.throws(() => parseConfig(['--keep-alive-timeout', '0'], {}), /--keep-alive-timeout/);
    assert.throws(() => parseConfig(['--shutdown-grace', '-1'], {}), ConfigError);
  });

  it('--help lists the operations flags with their env variables', () => {
    const r = parseConfig(['--help'], {});
    assert.equal(r.kind, 'help');
    if (r.kind !== 'help') return;
    for (const [flag, env] of [
      ['--api-key-file', 'API_KEY_FILE'],
      ['--metrics-public', 'METRICS_PUBLIC'],
      ['--cors-origin', 'CORS_ORIGIN'],
      ['--log-content', 'LOG_CONTENT'],
      ['--log-pretty', 'LOG_PRETTY'],
      ['--shutdown-grace', 'SHUTDOWN_GRACE'],
      ['--keep-alive-timeout', 'KEEP_ALIVE_TIMEOUT'],
      ['--headers-timeout', 'HEADERS_TIMEOUT'],
      ['--read-timeout', 'READ_TIMEOUT'],
      ['--body-limit', 'BODY_LIMIT'],
    ]) {
      const line = r.text.split('\n').find((l) => l.trim().split(/\s+/)[0] === flag);
      assert.ok(line, flag);
      assert.ok(line.includes(`env ${env}`), `${flag} shows env ${env}`);
    }
  });

  it('--log-pretty without pino-pretty says so on stderr and falls back to JSON lines', async () => {
    const { createLogger, PINO_PRETTY_MISSING } = await import('../../src/server/logging.ts');
    const { Writable } = await import('node:stream');
    const out: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        out.push(chunk.toString());
        cb();
      },
    });
    const errors: string[] = [];
    const original = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string | Uint8Array) => {
      errors.push(String(s));
      return true;
    }) as typeof process.stderr.write;
    let logger;
    try {
      logger = await createLogger({ logLevel: 'info', logPretty: true }, sink);
    } finally {
      process.stderr.write = original;
    }
    logger.info({ a: 1 }, 'hello');
    let prettyInstalled = true;
    try {
      await import('pino-pretty' as string);
    } catch {
      prettyInstalled = false;
    }
    if (prettyInstalled) return; // nothing to check: pretty output is in use
    assert.deepEqual(errors, [`${PINO_PRETTY_MISSING}\n`]);
    const line = JSON.parse(out.join('').trim()) as { msg: string; a: number };
    assert.equal(line.msg, 'hello');
  });
});

it('--device takes cpu or cuda (env DEVICE too) and rejects anything else', () => {
  const ok = parseConfig(['--device', 'cuda'], {}, process.cwd());
  assert.equal(ok.kind === 'config' && ok.config.device, 'cuda');
  const env = parseConfig([], { DEVICE: 'cuda' }, process.cwd());
  assert.equal(env.kind === 'config' && env.config.device, 'cuda');
  const dflt = parseConfig([], {}, process.cwd());
  assert.equal(dflt.kind === 'config' && dflt.config.device, 'cpu');
  assert.throws(() => parseConfig(['--device', 'tpu'], {}, process.cwd()), /--device: expected cpu or cuda/);
});

it('--kv-update takes batched or in-place (env KV_UPDATE too), default batched', () => {
  const dflt = parseConfig([], {}, process.cwd());
  assert.equal(dflt.kind === 'config' && dflt.config.kvUpdate, 'batched');
  const flag = parseConfig(['--kv-update', 'in-place'], {}, process.cwd());
  assert.equal(flag.kind === 'config' && flag.config.kvUpdate, 'in-place');
  const env = parseConfig([], { KV_UPDATE: 'in-place' }, process.cwd());
  assert.equal(env.kind === 'config' && env.config.kvUpdate, 'in-place');
  assert.throws(() => parseConfig(['--kv-update', 'copy'], {}, process.cwd()), /--kv-update: expected batched or in-place/);
});

it('--int8-steps takes auto, on or off (env INT8_STEPS too), default auto; --int8-min-rows a row count', () => {
  const dflt = parseConfig([], {}, process.cwd());
  assert.ok(dflt.kind === 'config');
  assert.deepEqual([dflt.config.int8Steps, dflt.config.int8MinRows], ['auto', undefined]);
  const flags = parseConfig(['--int8-steps', 'on', '--int8-min-rows', '16'], {}, process.cwd());
  assert.ok(flags.kind === 'config');
  assert.deepEqual([flags.config.int8Steps, flags.config.int8MinRows], ['on', 16]);
  const env = parseConfig([], { INT8_STEPS: 'off' }, process.cwd());
  assert.equal(env.kind === 'config' && env.config.int8Steps, 'off');
  assert.throws(() => parseConfig(['--int8-steps', 'sometimes'], {}, process.cwd()), /--int8-steps: expected auto, on or off/);
});

it('batching and KV budget flags (and their env vars); unset leaves the engine defaults', () => {
  const dflt = parseConfig([], {}, process.cwd());
  assert.ok(dflt.kind === 'config');
  assert.deepEqual(
    [dflt.config.maxRunningSeqs, dflt.config.maxBatchTokens, dflt.config.kvCacheGib, dflt.config.prefixCache, dflt.config.prefixCacheIdleSec],
    [undefined, undefined, undefined, true, undefined],
  );
  const flags = parseConfig(['--max-running-seqs', '4', '--max-batch-tokens', '32', '--kv-cache-gib', '2.5', '--no-prefix-cache', '--prefix-cache-idle', '60'], {}, process.cwd());
  assert.ok(flags.kind === 'config');
  assert.deepEqual(
    [flags.config.maxRunningSeqs, flags.config.maxBatchTokens, flags.config.kvCacheGib, flags.config.prefixCache, flags.config.prefixCacheIdleSec],
    [4, 32, 2.5, false, 60],
  );
  const env = parseConfig([], { MAX_RUNNING_SEQS: '2', KV_CACHE_GIB: '0.5', NO_PREFIX_CACHE: '1' }, process.cwd());
  assert.ok(env.kind === 'config');
  assert.deepEqual([env.config.maxRunningSeqs, env.config.kvCacheGib, env.config.prefixCache], [2, 0.5, false]);
  assert.throws(() => parseConfig(['--kv-cache-gib', 'lots'], {}, process.cwd()), /--kv-cache-gib: expected a number/);
  assert.throws(() => parseConfig(['--max-batch-tokens', '1'], {}, process.cwd()), /--max-batch-tokens: 1 is outside 2\.\.inf/);
});

it('--prefill-chunk (env PREFILL_CHUNK) takes a positive token count; unset leaves the engine default', () => {
  const dflt = parseConfig([], {}, process.cwd());
  assert.equal(dflt.kind === 'config' && dflt.config.prefillChunk, undefined);
  const flag = parseConfig(['--prefill-chunk', '128'], {}, process.cwd());
  assert.equal(flag.kind === 'config' && flag.config.prefillChunk, 128);
  const env = parseConfig([], { PREFILL_CHUNK: '64' }, process.cwd());
  assert.equal(env.kind === 'config' && env.config.prefillChunk, 64);
  assert.throws(() => parseConfig(['--prefill-chunk', '0'], {}, process.cwd()));
});
