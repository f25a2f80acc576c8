/**
 * Memory comes back: after a long prompt, once its cached prefix has expired, the idle server's RSS
 * is back near where it was before the request. What this guards is a step's scratch kept for good:
 * onnxruntime's CPU arena kept the largest one any step ever needed (a prompt chunk's attention
 * scores grow with its rows times the past), +600 MB on the tiny model when this was found. Large
 * chunks over a 10,000-token prompt make that scratch big while the prompt stays quick to read:
 * with only the arena turned back on it measured +980 MiB over the level before, -30 to -260 without (an
 * AVX2-only EPYC). The heap trim after an unload is tested in test/server/models.test.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, it } from 'node:test';
import { startChildServer, type ChildServer } from '../helpers/child.ts';

let child: ChildServer | undefined;
after(() => child?.kill());

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

it('idle RSS after a 10,000-token prompt read in 1,024-token chunks returns within 150 MiB of its level before', async () => {
  const args = ['--context-length', '16384', '--prefill-chunk', '1024', '--prefix-cache-idle', '2', '--model-name', 'tiny'];
  // glibc as `npm start` sets it up (one arena for all threads).
  child = await startChildServer(args, { env: { MALLOC_ARENA_MAX: '1' } });
  const pid = child.proc.pid!;
  const ask = (prompt: string | number[]) =>
    fetch(`${child!.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tiny', prompt, max_tokens: 2 }) });
  // A first request of each kind, so one-off allocations (the tokenizer worker, ORT's kernels) are in the baseline.
  const warm = await ask('Hello there, a short warm-up prompt.'.repeat(40));
  assert.equal(warm.status, 200, await warm.text());
  await idleWithoutCache();
  const before = rssMiB(pid);
  const long = Array.from({ length: 10_000 }, (_, i) => 1000 + ((i * 7919) % 150_000));
  const res = await ask(long);
  assert.equal(res.status, 200, await res.text());
  const grown = rssMiB(pid);
  await idleWithoutCache();
  const idle = rssMiB(pid);
  assert.ok(idle - before < 150, `RSS ${before.toFixed(0)} MiB before, ${grown.toFixed(0)} right after, ${idle.toFixed(0)} idle`);
});

/** Waits until the prefix cache has dropped what the last request left (2 s idle), then a second more. */
async function idleWithoutCache(): Promise<void> {
  const cached = async () => (await (await fetch(`${child!.url}/metrics`)).text()).match(/^phi4_prefix_cache_tokens\{[^}]*\} (\S+)$/m)?.[1];
  // Expiry runs 2 s after the engine goes idle, again 2 s later if a timer fired a hair early; a busy host adds more.
  for (let i = 0; i < 200 && (await cached()) !== '0'; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(await cached(), '0', `the cached prefix expired; server output ends: ${child!.output().slice(-1500)}`);
  await new Promise((r) => setTimeout(r, 1000));
}
