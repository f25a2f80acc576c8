/**
 * Does unloading a model give its memory back? Serves one model folder through --models-dir, and
 * for a few cycles loads it (admin route), runs one short generation, unloads it, and reads the
 * process RSS at each point (after a GC and a short settle).
 *
 *   npm run bench:unload -- --model models/phi4-mini-shape [--cycles 3] [--kv-cache-gib 1]
 *
 * Writes bench/results/unload-<model>.md and .json.
 */
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildApp } from '../src/app.ts';
import { defaultConfig } from '../src/config.ts';
import { collectGarbage } from '../src/engine/gc.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/phi4-mini-shape' },
    cycles: { type: 'string', default: '3' },
    'kv-cache-gib': { type: 'string', default: '1' },
    threads: { type: 'string', default: '2' },
  },
});
const modelDir = resolve(values.model);
const name = basename(modelDir).toLowerCase();
const cycles = Number(values.cycles);

const GIB = 1024 ** 3;
const gib = (bytes: number): number => +(bytes / GIB).toFixed(3);

async function settledRss(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    collectGarbage();
    await new Promise((r) => setTimeout(r, 500));
  }
  return process.memoryUsage().rss;
}

const dir = mkdtempSync(join(tmpdir(), 'bench-unload-'));
symlinkSync(modelDir, join(dir, name));
const config = defaultConfig({
  modelsDir: dir,
  logLevel: 'warn',
  threads: Number(values.threads),
  kvCacheGib: Number(values['kv-cache-gib']),
  int8Steps: 'off',
  unloadAfterMs: Infinity,
});
const app = await buildApp(config, { processMetrics: false });
const rows: { cycle: number; idleGib: number; loadedGib: number; unloadedGib: number; loadSeconds: number }[] = [];
try {
  for (let cycle = 1; cycle <= cycles; cycle++) {
    const idle = await settledRss();
    const t0 = performance.now();
    const load = await app.inject({ method: 'POST', url: `/admin/models/${name}/load` });
    if (load.statusCode !== 200) throw new Error(`load: ${load.statusCode} ${load.body}`);
    const loadSeconds = (performance.now() - t0) / 1000;
    const gen = await app.inject({
      method: 'POST',
      url: '/v1/completions',
      payload: { model: name, prompt: 'The quick brown fox', max_tokens: 8, temperature: 0 },
    });
    if (gen.statusCode !== 200) throw new Error(`generation: ${gen.statusCode} ${gen.body}`);
    const loaded = await settledRss();
    const unload = await app.inject({ method: 'POST', url: `/admin/models/${name}/unload` });
    if (unload.statusCode !== 200) throw new Error(`unload: ${unload.statusCode} ${unload.body}`);
    const unloaded = await settledRss();
    rows.push({ cycle, idleGib: gib(idle), loadedGib: gib(loaded), unloadedGib: gib(unloaded), loadSeconds: +loadSeconds.toFixed(1) });
    console.log(rows[rows.length - 1]);
  }
} finally {
  await app.close();
  rmSync(dir, { recursive: true, force: true });
}

const lines = [
  `# Unload returns memory: ${name}`,
  '',
  `${new Date().toISOString().slice(0, 10)}, threads ${values.threads}, --kv-cache-gib ${values['kv-cache-gib']}, int8 steps off. RSS of the whole process (GiB) after a GC and 1.5 s settle.`,
  '',
  '| cycle | idle before load | loaded (after one generation) | after unload | load s |',
  '|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.cycle} | ${r.idleGib} | ${r.loadedGib} | ${r.unloadedGib} | ${r.loadSeconds} |`),
  '',
];
writeFileSync(`bench/results/unload-${name}.md`, lines.join('\n'));
writeFileSync(`bench/results/unload-${name}.json`, JSON.stringify({ model: name, rows }, null, 2) + '\n');
console.log(lines.join('\n'));
