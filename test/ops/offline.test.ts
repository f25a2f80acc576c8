/**
 * No network at run time: the server starts, loads the model and tokenizer, and serves a chat
 * completion inside a network namespace that has only loopback (`unshare -n`). The server and
 * its client both run inside the namespace (test/ops/offline-probe.ts), which reports back on
 * stdout. Skipped, with the reason, where unprivileged network namespaces are unavailable.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { ROOT } from '../helpers/child.ts';

/**
 * The unshare flags that give a namespace with a working loopback: `-n` as root, `-rn` (a user
 * namespace too) for unprivileged users where the kernel allows it; or why neither works.
 */
function namespaceFlags(): { flags: string[] } | { skip: string } {
  const reasons: string[] = [];
  for (const flags of [['-n'], ['-rn']]) {
    const probe = spawnSync('unshare', [...flags, 'sh', '-c', 'ip link set lo up'], { encoding: 'utf8' });
    if (probe.error) return { skip: `unshare is not available (${probe.error.message})` };
    if (probe.status === 0) return { flags };
    reasons.push(`unshare ${flags.join(' ')}: ${probe.stderr.trim() || `exit ${probe.status}`}`);
  }
  return { skip: `cannot create a network namespace here (${reasons.join('; ')})` };
}

const ns = namespaceFlags();
const skip = 'skip' in ns ? ns.skip : undefined;
const flags = 'flags' in ns ? ns.flags : [];

describe('offline', () => {
  it('serves a chat completion with no network at all', { skip: skip ?? false }, () => {
    const run = spawnSync(
      'unshare',
      [...flags, 'sh', '-c', `ip link set lo up && exec "${process.execPath}" --import tsx test/ops/offline-probe.ts`],
      { cwd: ROOT, encoding: 'utf8', timeout: 180_000 },
    );
    assert.equal(run.status, 0, `probe failed:\n${run.stdout}\n${run.stderr}`);
    const report = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as {
      interfaces: string[];
      outbound: string;
      status: number;
      usage: { completion_tokens: number; prompt_tokens: number };
      contentType: string;
      ready: number;
      exitCode: number;
      errors: string[];
    };
    assert.deepEqual(report.interfaces, ['lo'], 'only loopback inside the namespace');
    assert.notEqual(report.outbound, 'connected', 'the namespace has no route out');
    assert.equal(report.status, 200);
    assert.equal(report.contentType, 'string');
    assert.equal(report.usage.completion_tokens, 5);
    assert.ok(report.usage.prompt_tokens > 0);
    assert.equal(report.ready, 200);
    assert.equal(report.exitCode, 0, 'SIGTERM while idle exits 0');
    assert.deepEqual(report.errors, []);
  });
});
