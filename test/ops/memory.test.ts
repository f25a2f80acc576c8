/**
 * Memory comes back: after a 40,000-token prompt, once its cached prefix has expired, the idle
 * server's RSS is back near where it was before the request. (Before: onnxruntime's arena kept the
 * long prompt's attention scratch and nothing collected the freed KV buffers: +600 MB for good on
 * the tiny model; with only the arena turned back on this test failed at +320 MiB on an AVX-512
 * machine, while it passes at about +60 there.) The bound sits between, so a busy host cannot decide
 * the outcome. On an AVX2-only machine it measured -386 MiB, and +124 with the arena on (under the
 * bound, so there the test does not catch the arena alone).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, it } from 'node:test';
import { startChildServer, type ChildServer } from '../helpers/child.ts';

let child: ChildServer | undefined;
after(() => child?.kill());

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

it('idle RSS after a 40,000-token prompt returns within 150 MiB of its level before', async () => {
  child = await startChildServer(['--context-length', '65536', '--prefix-cache-idle', '2', '--model-name', 'tiny']);
  const pid = child.proc.pid!;
  const ask = (prompt: string | number[]) =>
    fetch(`${child!.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tiny', prompt, max_tokens: 2 }) });
  // A first request of each kind, so one-off allocations (the tokenizer worker, ORT's kernels) are in the baseline.
  assert.equal((await ask('Hello there, a short warm-up prompt.'.repeat(40))).status, 200);
  await new Promise((r) => setTimeout(r, 3000));
  const before = rssMiB(pid);
  const long = Array.from({ length: 40_000 }, (_, i) => 1000 + ((i * 7919) % 150_000));
  const res = await ask(long);
  assert.equal(res.status, 200);
  const grown = rssMiB(pid);
  // The prefix cache keeps the prompt's KV (80 MB) until it has been idle for 2 s.
  const metrics = async () => (await (await fetch(`${child!.url}/metrics`)).text()).match(/^phi4_prefix_cache_tokens\{[^}]*\} (\S+)$/m)?.[1];
  // Expiry runs 2 s after the engine goes idle, again 2 s later if a timer fired a hair early; a busy host adds more.
  for (let i = 0; i < 200 && (await metrics()) !== '0'; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(await metrics(), '0', `the cached prefix expired; server output ends: ${child.output().slice(-1500)}`);
  await new Promise((r) => setTimeout(r, 1000));
  const idle = rssMiB(pid);
  assert.ok(idle - before < 150, `RSS ${before.toFixed(0)} MiB before, ${grown.toFixed(0)} right after, ${idle.toFixed(0)} idle`);
});
