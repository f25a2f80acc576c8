/** What `npm start` does with the model folder it is given. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { ROOT, startChildServer } from '../helpers/child.ts';

const tmp = mkdtempSync(join(tmpdir(), 'startup-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('an empty model folder (a fresh Docker volume) gets the tiny synthetic model, with a warning', async () => {
  const dir = join(tmp, 'volume');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dir);
  const server = await startChildServer(['--model-dir', dir, '--log-level', 'info']);
  try {
    assert.ok(existsSync(join(dir, 'model.onnx')));
    assert.ok(server.lines.some((l) => /SYNTHETIC model with random weights/.test(l.msg)));
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'volume', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
    });
    assert.equal(res.status, 200);
  } finally {
    server.kill();
  }
});

test('a folder with files but no model.onnx (an unfinished download) is refused, not replaced', async () => {
  const dir = join(tmp, 'partial');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dir);
  writeFileSync(join(dir, 'genai_config.json'), '{}');
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', '--port', '0', '--model-dir', dir], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  assert.equal(run.status, 1);
  assert.match(run.stdout + run.stderr, /model\.onnx not found in --model-dir/);
  assert.ok(!existsSync(join(dir, 'model.onnx')));
});
