import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig, type ServerConfig } from '../../src/config.ts';

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
    assert.equal(c.maxConcurrent, 1);
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

  it('--help lists every flag with its env variable', () => {
    const r = parseConfig(['--help'], {});
    assert.equal(r.kind, 'help');
    if (r.kind !== 'help') return;
    for (const flag of ['--port', '--host', '--model-dir', '--model-name', '--max-queue', '--request-timeout', '--context-length', '--threads', '--api-key', '--log-level']) {
      assert.ok(r.text.includes(flag), flag);
    }
    assert.ok(r.text.includes('env MODEL_DIR'));
  });
});
