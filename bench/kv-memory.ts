/**
 * MALLOC_ARENA_MAX=1 npx tsx bench/kv-memory.ts [-- --streams 8 --prompt 2048 --max-tokens 32 --kv-cache-gib 4.5 --chunk 48]
 *
 * Peak RSS of the engine loaded in this process (no HTTP, no tokenizer) while `--streams` random
 * prompts of `--prompt` tokens are served together under a KV budget they fill, sampled every
 * 100 ms, against the RSS after load: how far a busy engine goes past its budget. `--chunk` sets
 * both --prefill-chunk and --max-batch-tokens (prompts then read in chunks of that size also
 * beside decoding sequences, which is faster to run and the harder case for memory).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Engine } from '../src/engine/engine.ts';
import { DEFAULT_SAMPLING } from '../src/engine/types.ts';

const { values } = parseArgs({
  options: {
    'model-dir': { type: 'string', default: 'models/phi4-mini-shape' },
    streams: { type: 'string', default: '8' },
    prompt: { type: 'string', default: '2048' },
    'max-tokens': { type: 'string', default: '32' },
    'kv-cache-gib': { type: 'string', default: '4.5' },
    chunk: { type: 'string' },
    threads: { type: 'string', default: '2' },
  },
});
const GiB = 2 ** 30;
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
const budgetGiB = Number(values['kv-cache-gib']);
const chunk = values.chunk !== undefined ? Number(values.chunk) : undefined;
const engine = await Engine.load({
  modelDir: values['model-dir'],
  threads: Number(values.threads),
  kvCacheBytes: budgetGiB * GiB,
  int8Steps: 'off',
  ...(chunk !== undefined ? { prefillChunk: chunk, maxBatchTokens: chunk } : {}),
});
// Let the load's garbage go before taking the baseline.
await new Promise((r) => setTimeout(r, 2500));
const idle = rss();
let peak = 0;
const timer = setInterval(() => (peak = Math.max(peak, rss() - idle)), 100);
/** Deterministic token ids (a linear congruential sequence), so runs compare. */
const prompt = (seed: number, length: number) => {
  let s = seed;
  return Array.from({ length }, () => 1000 + ((s = (s * 1103515245 + 12345) % 2 ** 31) % 50000));
};
const logitBias = new Map(engine.info.eosTokenIds.map((id) => [id, -100]));
const t0 = performance.now();
await Promise.all(
  Array.from({ length: Number(values.streams) }, async (_, i) => {
    for await (const e of engine.generate({ promptIds: prompt(i + 7, Number(values.prompt)), maxTokens: Number(values['max-tokens']), sampling: { ...DEFAULT_SAMPLING, temperature: 0, logitBias } })) {
      if (e.type === 'done' && e.finishReason !== 'length') throw new Error(`stream ${i} ended with ${e.finishReason}: ${e.error ?? ''}`);
    }
  }),
);
clearInterval(timer);
console.log(
  `${values.streams} x ${values.prompt}-token prompts, prefill chunk ${engine.limits.prefillChunk}: peak RSS idle ${(idle / GiB).toFixed(2)} + ${(peak / GiB).toFixed(2)} GiB` +
    ` = budget ${budgetGiB} ${peak >= budgetGiB * GiB ? '+' : '-'} ${(Math.abs(peak - budgetGiB * GiB) / GiB).toFixed(2)} GiB (${((performance.now() - t0) / 1000).toFixed(0)} s)`,
);
await engine.close();
